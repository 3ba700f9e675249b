"""How a bot's command is found on Windows (os only: the wrapper's path loads this).

CreateProcess appends only `.exe` to a program named without an extension, so `botwatch run --
backup` would not find `backup.bat` or `backup.cmd` where cmd.exe would. A command named without
its extension is resolved through PATH and PATHEXT first (`shutil.which` does both on Windows).
"""

import os

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (the hot path)
if TYPE_CHECKING:
    from collections.abc import Callable


def resolve(argv: "list[str]", which: "Callable[[str], str | None]") -> "list[str]":
    """`argv` with its program found as cmd.exe would find it: unchanged when it names an
    extension or cannot be found (CreateProcess then says why)."""
    if not argv or os.path.splitext(argv[0])[1]:
        return argv
    found = which(argv[0])
    return [found, *argv[1:]] if found else argv
