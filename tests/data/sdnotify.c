/* sd_notify(3) for the busybox rootfs of tests/test_notify.py: sends argv[1] to $NOTIFY_SOCKET. */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

int main(int argc, char **argv)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    if (!path || argc < 2 || fd < 0)
        return 2;
    strncpy(addr.sun_path, path, sizeof addr.sun_path - 1);
    return sendto(fd, argv[1], strlen(argv[1]), 0, (struct sockaddr *)&addr, sizeof addr) < 0;
}
