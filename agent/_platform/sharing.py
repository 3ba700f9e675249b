"""Reading a file that its writer renames or deletes while it is read (log rotation).

Windows refuses to rename or delete a file that another program holds open without
FILE_SHARE_DELETE, and Python's open() does not give it: while botwatch read a log, NLog's
archiving, UiPath Robot's log rotation or a clean-up script failed on it. Watched files are
therefore opened through CreateFileW sharing read, write and delete, then wrapped as an ordinary
binary file. POSIX never locks a file against rename or unlink: open() is all it needs.
"""

from __future__ import annotations

import os
import sys
from typing import BinaryIO, NamedTuple

GENERIC_READ = 0x80000000
FILE_SHARE_READ = 0x1
FILE_SHARE_WRITE = 0x2
FILE_SHARE_DELETE = 0x4
OPEN_EXISTING = 3
FILE_ATTRIBUTE_NORMAL = 0x80
INVALID_HANDLE_VALUE = -1


class CreateFileArgs(NamedTuple):
    """What CreateFileW is asked for, besides the path."""

    access: int
    share: int
    disposition: int
    flags: int


def read_shared_args() -> CreateFileArgs:
    """Read only; the writer may go on writing, rename the file or delete it meanwhile; never
    create the file (one that is gone is not found, as open() says)."""
    return CreateFileArgs(GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, OPEN_EXISTING,
                          FILE_ATTRIBUTE_NORMAL)


def open_shared(path: str | os.PathLike[str]) -> BinaryIO:
    """`path` opened to read bytes, without keeping its writer from renaming or deleting it."""
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows hosts only
        return _open_shared_windows(path)
    return open(path, "rb")


if sys.platform == "win32":  # pragma: no cover - exercised on Windows hosts only
    import functools

    @functools.cache
    def _kernel32():  # type: ignore[no-untyped-def]  # loaded and declared once per process
        import ctypes
        from ctypes import wintypes

        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
        kernel32.CreateFileW.argtypes = (wintypes.LPCWSTR, wintypes.DWORD, wintypes.DWORD, wintypes.LPVOID,
                                         wintypes.DWORD, wintypes.DWORD, wintypes.HANDLE)
        kernel32.CreateFileW.restype = wintypes.HANDLE
        kernel32.CloseHandle.argtypes = (wintypes.HANDLE,)
        return kernel32

    def _open_shared_windows(path: str | os.PathLike[str]) -> BinaryIO:
        import ctypes
        import msvcrt

        kernel32 = _kernel32()
        args = read_shared_args()
        path = os.fspath(path)
        handle = kernel32.CreateFileW(path, args.access, args.share, None, args.disposition, args.flags, None)
        if handle is None or handle == ctypes.c_void_p(INVALID_HANDLE_VALUE).value:
            code = ctypes.get_last_error()
            # OSError with a winerror maps it to errno and the matching subclass (FileNotFoundError...)
            raise OSError(None, ctypes.FormatError(code), path, code)
        try:
            fd = msvcrt.open_osfhandle(handle, os.O_RDONLY | os.O_BINARY | os.O_NOINHERIT)
        except OSError:
            kernel32.CloseHandle(handle)
            raise
        return open(fd, "rb")  # closing the file closes the descriptor and with it the handle
