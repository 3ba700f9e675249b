"""The few platform specifics, chosen at run time: process groups and signals on POSIX,
process groups, CTRL_BREAK, WM_CLOSE and job objects on Windows. Everything else is portable."""

import sys

# sys.platform rather than os.name: type checkers read it and check only this platform's branch
if sys.platform == "win32":  # pragma: no cover - exercised on Windows hosts only
    from .windows import (Child, create_private, install_forwarding, lock_exclusive, narrow_private,
                          output_code_pages, private_dir, spawn_detached, user_state_dir)
else:
    from .posix import (Child, create_private, install_forwarding, lock_exclusive, narrow_private,
                        output_code_pages, private_dir, spawn_detached, user_state_dir)

__all__ = ["Child", "create_private", "install_forwarding", "lock_exclusive", "narrow_private", "output_code_pages",
           "private_dir", "spawn_detached", "user_state_dir"]

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (the hot path)
if TYPE_CHECKING:  # what terminate_tree and kill_tree take of a descendant: for annotations only
    if sys.platform == "win32":
        from .windows import Signallable
    else:
        from .posix import Signallable
    __all__ += ["Signallable"]
