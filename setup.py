# setuptools needs setup.py to hand cffi_modules to the cffi build hook.
from setuptools import setup

setup(cffi_modules=["runtime/pyrunc/syscalls/_build.py:ffi", "runtime/pyrunc/syscalls/_seccomp_build.py:ffi"])
