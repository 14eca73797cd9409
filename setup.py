# setuptools needs setup.py for the two C extensions (the syscall shims and libseccomp's
# binding, on Python's stable ABI) and to build the sealed launcher
# (runtime/pyrunc/syscalls/launcher.c: a static program without libc).
import os
import subprocess

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

SYSCALLS = "runtime/pyrunc/syscalls"
LAUNCHER = f"{SYSCALLS}/launcher.c"
FLAGS = ["-static", "-nostdlib", "-no-pie", "-fno-pie", "-O2", "-Wall", "-fno-stack-protector", "-ffreestanding",
         "-fno-builtin", "-fno-tree-loop-distribute-patterns", "-fno-asynchronous-unwind-tables",
         "-Wl,--build-id=none", "-Wl,-z,noexecstack", "-s"]
ABI3 = {"py_limited_api": True, "define_macros": [("Py_LIMITED_API", "0x030B0000")]}


class BuildWithLauncher(build_ext):
    def run(self) -> None:
        super().run()
        out = os.path.dirname(LAUNCHER) if self.inplace else os.path.join(self.build_lib, "pyrunc", "syscalls")
        os.makedirs(out, exist_ok=True)
        subprocess.run([os.environ.get("CC", "gcc"), *FLAGS, "-o", os.path.join(out, "pyrunc-launch"), LAUNCHER],
                       check=True)


setup(ext_modules=[Extension("pyrunc.syscalls._native", [f"{SYSCALLS}/native.c"], depends=[f"{SYSCALLS}/rawsys.h"],
                             **ABI3),
                   Extension("pyrunc.syscalls._seccomp", [f"{SYSCALLS}/libseccomp.c"], libraries=["seccomp"], **ABI3)],
      cmdclass={"build_ext": BuildWithLauncher})
