# setuptools needs setup.py to hand cffi_modules to the cffi build hook, and to build the
# sealed launcher (runtime/pyrunc/syscalls/launcher.c: a static program without libc).
import os
import subprocess

from setuptools import setup
from setuptools.command.build_ext import build_ext

LAUNCHER = "runtime/pyrunc/syscalls/launcher.c"
FLAGS = ["-static", "-nostdlib", "-no-pie", "-fno-pie", "-O2", "-Wall", "-fno-stack-protector", "-ffreestanding",
         "-fno-builtin", "-fno-tree-loop-distribute-patterns", "-fno-asynchronous-unwind-tables",
         "-Wl,--build-id=none", "-Wl,-z,noexecstack", "-s"]


class BuildWithLauncher(build_ext):
    def run(self) -> None:
        super().run()
        out = os.path.dirname(LAUNCHER) if self.inplace else os.path.join(self.build_lib, "pyrunc", "syscalls")
        os.makedirs(out, exist_ok=True)
        subprocess.run([os.environ.get("CC", "gcc"), *FLAGS, "-o", os.path.join(out, "pyrunc-launch"), LAUNCHER],
                       check=True)


setup(cffi_modules=["runtime/pyrunc/syscalls/_build.py:ffi", "runtime/pyrunc/syscalls/_seccomp_build.py:ffi"],
      cmdclass={"build_ext": BuildWithLauncher})
