"""The few platform specifics, chosen at run time: process groups and signals on POSIX,
process groups, CTRL_BREAK and job-less tree kills on Windows. Everything else is portable."""

import os

if os.name == "nt":  # pragma: no cover - exercised on Windows hosts only
    from .windows import Child, install_forwarding, lock_exclusive, spawn_detached, user_state_dir
else:
    from .posix import Child, install_forwarding, lock_exclusive, spawn_detached, user_state_dir

__all__ = ["Child", "install_forwarding", "lock_exclusive", "spawn_detached", "user_state_dir"]
