"""The syscall boundary: ``calls`` wraps the cffi shims in ``_native``; ``consts`` holds the flags.

Nothing outside this package imports ``_native``, cffi or ctypes.
"""
