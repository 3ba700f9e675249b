"""Exit statuses as Windows and POSIX give them (no imports: the wrapper's path loads this).

POSIX statuses are 0-255. Windows statuses are 32 bits: 0xC0000005 (access violation),
0xC000013A (ended by Ctrl-C or Ctrl-Break), 0xE0434352 (an unhandled .NET exception), 4294967295
(`exit /b -1`). A client may send one signed (-1073741819) or unsigned (3221225477): both are
kept as the unsigned value.
"""

MIN_STATUS = -(2 ** 31)
MAX_STATUS = 2 ** 32 - 1
CTRL_C_EXIT = 0xC000013A  # STATUS_CONTROL_C_EXIT: the console's Ctrl-C or Ctrl-Break ended it
# NTSTATUS severity "error" (and the exception codes above it, 0xE0434352 of .NET): an access
# violation, a stack overflow, a failed DLL load, an unhandled exception
NT_ERROR = 0xC0000000


def unsigned(status: int) -> int:
    """A 32-bit status as the unsigned value Windows reports (GetExitCodeProcess)."""
    return status & MAX_STATUS


def valid(status: int) -> bool:
    """Whether `status` is an exit status of either kind (signed or unsigned 32 bits)."""
    return MIN_STATUS <= status <= MAX_STATUS


def reason(status: int) -> str | None:
    """What a Windows status says of the failure: killed (Ctrl-C, Ctrl-Break) or crash (an
    NTSTATUS error); None for a program's own status."""
    status = unsigned(status)
    if status == CTRL_C_EXIT:
        return "killed"
    if status >= NT_ERROR:
        return "crash"
    return None


def of_sys_exit(code: int, windows: bool) -> int:
    """The status a process exits with after `sys.exit(code)`: its low byte on POSIX, its 32 bits
    on Windows."""
    return unsigned(code) if windows else code & 0xFF


def for_sys_exit(status: int, windows: bool) -> int:
    """The value to give `sys.exit` for the process to exit with `status`: on Windows the signed
    32-bit value, since Python 3.11 (before 3.12.8) turns a larger one into 0xFFFFFFFF."""
    if windows:
        status = unsigned(status)
        return status - 2 ** 32 if status > 0x7FFFFFFF else status
    return status
