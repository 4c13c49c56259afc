#!/usr/bin/env python3
"""Exits 0 when this machine lets a process use io_uring; else prints why and exits 1.

A kernel built without it, kernel.io_uring_disabled, or a seccomp filter (many
container runtimes refuse io_uring_setup) all show up as io_uring_setup failing,
so that is what this tries: a 4-entry ring, closed at once.

    python3 scripts/io_uring_probe.py
"""
import ctypes
import errno
import os
import platform
import sys

# io_uring_setup is 425 on every Linux architecture (system calls added since 5.1
# share one number); the parameters struct is 120 bytes, zeroed.
IO_URING_SETUP = 425
PARAMS_BYTES = 120


def main():
    if platform.system() != 'Linux':
        print(f'io_uring is Linux only (this is {platform.system()})')
        return 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    params = ctypes.create_string_buffer(PARAMS_BYTES)
    fd = libc.syscall(ctypes.c_long(IO_URING_SETUP), ctypes.c_uint(4), params)
    if fd < 0:
        err = ctypes.get_errno()
        name = errno.errorcode.get(err, str(err))
        print(f'io_uring_setup failed with {name} ({os.strerror(err)}) on Linux {platform.release()}'
              '; ENOSYS: no io_uring in this kernel, EPERM: kernel.io_uring_disabled or a seccomp filter')
        return 1
    os.close(fd)
    return 0


if __name__ == '__main__':
    sys.exit(main())
