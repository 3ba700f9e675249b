"""Is a path on a network share? The journal and the spool must not be.

Both are SQLite databases in WAL mode, whose readers and writers share an index in memory
mapped from the -shm file: a network file system (SMB, NFS, ...) does not keep that coherent
between hosts, nor honour the locks SQLite takes, so a database there ends up corrupted or
"locked" (https://www.sqlite.org/wal.html, "WAL does not work over a network filesystem").

`describe_network_path` decides from what it is given (the Windows drive type, the mount table),
so that both systems' cases are tested anywhere; `network_path_here` asks this host.
Standard library only, ctypes on Windows when a drive letter must be asked about: the spool's
check runs on the wrapper's path.
"""

from __future__ import annotations

import os
import posixpath
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (the wrapper's path)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

DRIVE_REMOTE = 4  # GetDriveTypeW: a network drive
MOUNTS = "/proc/self/mounts"
# file system types (as /proc/self/mounts names them) that live on another host
NETWORK_FILE_SYSTEMS = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "afs", "ceph", "glusterfs", "lustre", "gpfs", "beegfs",
    "ncpfs", "davfs", "fuse.sshfs", "sshfs", "fuse.glusterfs", "fuse.cephfs", "fuse.s3fs", "fuse.rclone",
    "fuse.gcsfuse", "fuse.davfs2", "fuse.smbnetfs",
})


def describe_network_path(path: str, *, windows: bool, drive_type: Callable[[str], int] | None = None,
                          mounts: Iterable[tuple[str, str]] | None = None) -> str | None:
    r"""What puts the absolute `path` on a network share, in a few words; None when it is local
    or that cannot be told. Windows: a UNC path (\\server\share\..., \\?\UNC\...) or a drive that
    `drive_type` (GetDriveTypeW of its root, e.g. "Z:\") says is remote. Elsewhere: the file
    system type of the longest of `mounts` ((mount point, type) pairs) that holds the path."""
    if windows:
        return _windows_share(path, drive_type)
    if mounts is None:
        return None
    best: tuple[str, str] | None = None
    where = posixpath.normpath(path)
    for point, fstype in mounts:
        inside = point == "/" or where == point or where.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(best[0])):  # the last of stacked mounts wins
            best = (point, fstype)
    if best is None or best[1].lower() not in NETWORK_FILE_SYSTEMS:
        return None
    return f"on a {best[1]} network file system (mounted at {best[0]})"


def is_network_path(path: str, *, windows: bool, drive_type: Callable[[str], int] | None = None,
                    mounts: Iterable[tuple[str, str]] | None = None) -> bool:
    """Whether `path` is on a network share (see describe_network_path)."""
    return describe_network_path(path, windows=windows, drive_type=drive_type, mounts=mounts) is not None


def _windows_share(path: str, drive_type: Callable[[str], int] | None) -> str | None:
    p = path.replace("/", "\\")
    prefix = p[:8].upper()
    if prefix in ("\\\\?\\UNC\\", "\\\\.\\UNC\\"):
        return "a UNC path (a network share)"
    if prefix.startswith(("\\\\?\\", "\\\\.\\")):
        p = p[4:]  # \\?\C:\... is C:\...; \\?\Volume{...}\ has no drive letter: a local volume
    elif p.startswith("\\\\"):
        return "a UNC path (a network share)"
    if len(p) < 2 or p[1] != ":" or not p[0].isalpha() or drive_type is None:
        return None
    drive = p[0].upper() + ":"
    return f"on network drive {drive}" if drive_type(drive + "\\") == DRIVE_REMOTE else None


def parse_mounts(text: str) -> list[tuple[str, str]]:
    """(mount point, file system type) of each line of /proc/self/mounts, in order."""
    out = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3:  # spaces and the like in a mount point are written \040 (octal)
            out.append((_unescape(fields[1]) if "\\" in fields[1] else fields[1], fields[2]))
    return out


def _unescape(field: str) -> str:
    import re  # not loaded on the wrapper's path unless a mount point needs it

    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def network_path_here(path: str) -> str | None:
    """describe_network_path for `path` on this host (links resolved on POSIX); None when this
    host cannot tell (no mount table to read) or asking it failed."""
    try:
        if sys.platform == "win32":  # pragma: no cover - exercised on Windows hosts only
            return describe_network_path(os.path.abspath(path), windows=True, drive_type=_drive_type)
        try:
            with open(MOUNTS, "rb") as fh:
                mounts = parse_mounts(fh.read().decode("utf-8", "surrogateescape"))
        except OSError:  # no /proc (macOS, BSDs): not told
            return None
        return describe_network_path(os.path.realpath(path), windows=False, mounts=mounts)
    except Exception:  # a check that fails must not stop what it guards
        return None


if sys.platform == "win32":  # pragma: no cover - exercised on Windows hosts only
    def _drive_type(root: str) -> int:
        import ctypes

        return int(ctypes.WinDLL("kernel32").GetDriveTypeW(root))
