/* For tests/test_seccomp.py: calls each syscall number in argv with zero arguments and prints
   the errno name it failed with (or "ok"), one per line. Static: runs in the busybox rootfs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        long r = syscall(strtol(argv[i], NULL, 10), 0, 0, 0, 0, 0, 0);
        int err = errno;
        printf("%s\n", r >= 0 ? "ok" : err == ENOSYS ? "ENOSYS" : err == EPERM ? "EPERM"
                                   : err == EACCES ? "EACCES" : err == EFAULT ? "EFAULT" : "other");
    }
    return 0;
}
