"""The syscall boundary: ``calls`` wraps the C shims in ``_native``; ``consts`` holds the flags.

Nothing outside this package imports ``_native`` or ctypes.
"""
