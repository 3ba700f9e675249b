"""Asking windowed processes to close on Windows: WM_CLOSE posted to their top-level windows,
what clicking a window's close button sends. Ctrl-Break reaches console programs only; a GUI
bot (a desktop application, an RPA robot's executor) has no console and learns of the end
this way, with the chance to save and log off before the job kills it.

ctypes and user32, loaded on first use; the choice of windows is a pure function.
"""

from __future__ import annotations

import ctypes
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (the wrapper's path)
if TYPE_CHECKING:
    from collections.abc import Collection, Iterable

WM_CLOSE = 0x0010
# A console's window reports one of the processes attached to it as its owner, and closing it
# ends every one of them, the wrapper too when it shares the console. Console programs get
# Ctrl-Break instead.
CONSOLE_CLASSES = frozenset({"ConsoleWindowClass", "PseudoConsoleWindow"})


def windows_to_close(windows: Iterable[tuple[int, int, str]], pids: Collection[int]) -> list[int]:
    """Of the top-level windows (handle, owning process id, window class), those of the
    processes `pids`, visible or not (a bot running unattended may show none), but no console."""
    return [hwnd for hwnd, pid, cls in windows if pid in pids and cls not in CONSOLE_CLASSES]


def close_windows(pids: Collection[int]) -> int:
    """Post WM_CLOSE to the top-level windows of `pids`; how many were asked. Never raises."""
    if not pids or sys.platform != "win32":
        return 0
    try:
        from ctypes import wintypes

        user32 = ctypes.WinDLL("user32", use_last_error=True)
        found: list[tuple[int, int, str]] = []

        @ctypes.WINFUNCTYPE(wintypes.BOOL, wintypes.HWND, wintypes.LPARAM)
        def each(hwnd: int, _param: int) -> bool:
            pid, cls = wintypes.DWORD(), ctypes.create_unicode_buffer(256)
            user32.GetWindowThreadProcessId(wintypes.HWND(hwnd), ctypes.byref(pid))
            user32.GetClassNameW(wintypes.HWND(hwnd), cls, len(cls))
            found.append((hwnd, pid.value, cls.value))
            return True

        user32.EnumWindows(each, 0)
        asked = 0
        for hwnd in windows_to_close(found, pids):
            if user32.PostMessageW(wintypes.HWND(hwnd), WM_CLOSE, 0, 0):
                asked += 1
        return asked
    except Exception:
        return 0  # the kill after the grace period still ends them
