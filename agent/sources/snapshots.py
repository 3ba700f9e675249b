"""The snapshot folder: UI snapshots that bots (or their capture helpers) save as files.

    agent:
      snapshots: ./snapshots          # relative to the estate file

    snapshots/<bot>/<screen>/<file>.html | .htm | .json | .png

Every new file is checked once against its screen's baseline, in name order (name files so
that they sort in the order they were taken, e.g. by a timestamp), as if it had been posted to
`/api/v1/snapshots/<bot>/<screen>`: the first snapshot of a screen becomes its baseline. A
file is read when it has not changed between two polls (a writer still busy with it is
waited for); write to another extension (`.tmp`) and rename to publish at once. Files with other
extensions are ignored. A file that cannot be read is counted in
`botwatch_agent_parse_errors_total{source="snapshot"}` and not tried again; a folder of a bot
not in the estate is logged once.

The folder is never followed out of itself: a symbolic link (to a file or a folder, wherever it
points, inside the folder too) is refused, as is anything but a regular file and a file larger
than `agent.limits.max_body_bytes` (the limit of the HTTP API): each is counted and warned of
by name, never read. Where the system allows it (POSIX), every level is opened relative to the
one above with O_NOFOLLOW, so a link swapped in while a file is read is refused too; elsewhere
each level is checked not to be a link and the file opened checked to be the one looked at.
At most the limit + 1 bytes are ever read of a file.

What was checked is remembered in the journal (table checkpoints, source `snapshots`, identity
`<bot>/<screen>`: the names, sizes and modification times of the files checked that are still
there), so a restarted agent does not check a file twice; a file rewritten in place counts as new.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import threading
from pathlib import Path

from ..state.journal import JournalError
from ..ui.probe import EXTENSIONS
from .base import Source

log = logging.getLogger("botwatch.sources.snapshots")

SOURCE = "folder"  # the label of its events
ERRORS = "snapshot"  # the label of what it cannot read

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
# O_NONBLOCK: a FIFO put in the folder must not hold the reader up before it is refused
_FILE_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
_LINK_ERRNOS = {errno.ELOOP, getattr(errno, "EMLINK", errno.ELOOP)}  # O_NOFOLLOW on a link (EMLINK: BSDs)


class Refused(Exception):
    """A file of the snapshot folder that is not read: the message says why."""


def read_inside(root: str | Path, parts: tuple[str, ...], limit: int) -> bytes:
    """The file `root/parts[0]/.../parts[-1]`, reached without following any link below `root`:
    Refused when some part is a link, it is not a regular file or it holds more than `limit`
    bytes; OSError when it cannot be read."""
    fd = _open_inside(str(root), parts)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Refused("not a regular file")
        if st.st_size > limit:
            raise Refused(f"{st.st_size:,} bytes, more than agent.limits.max_body_bytes ({limit:,})")
        return read_at_most(fd, limit)
    finally:
        os.close(fd)


def read_at_most(fd: int, limit: int) -> bytes:
    """What an open file holds, reading at most `limit` + 1 bytes: Refused when there is more
    (it grew after it was looked at)."""
    chunks, left = [], limit + 1
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    if left <= 0:
        raise Refused(f"more than agent.limits.max_body_bytes ({limit:,}) bytes")
    return b"".join(chunks)


def _open_inside(root: str, parts: tuple[str, ...]) -> int:
    if _NOFOLLOW and _DIRECTORY and os.open in os.supports_dir_fd:
        dfd = os.open(root, os.O_RDONLY | _DIRECTORY)  # the configured folder itself may be a link
        try:
            for name in parts[:-1]:
                inner = _open_no_link(name, os.O_RDONLY | _DIRECTORY, dfd)
                os.close(dfd)
                dfd = inner
            return _open_no_link(parts[-1], _FILE_FLAGS, dfd)
        finally:
            os.close(dfd)
    path, st = root, None
    for name in parts:
        path = os.path.join(path, name)
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode) or getattr(st, "st_reparse_tag", 0):  # a link or a junction (Windows)
            raise Refused("a symbolic link")
    fd = os.open(path, _FILE_FLAGS)
    if not os.path.samestat(os.fstat(fd), st):
        os.close(fd)
        raise Refused("replaced while it was opened")
    return fd


def _open_no_link(name: str, flags: int, dir_fd: int) -> int:
    try:
        return os.open(name, flags | _NOFOLLOW, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in _LINK_ERRNOS:
            raise Refused("a symbolic link") from None
        if exc.errno == errno.ENOTDIR:  # what Linux answers for a link opened as a folder
            try:
                is_link = stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
            except OSError:
                is_link = False
            if is_link:
                raise Refused("a symbolic link") from None
        raise


class SnapshotWatcher(Source):
    name = "snapshots"
    event_labels = (SOURCE,)
    error_labels = (ERRORS,)
    config_keys = ("agent.snapshots", "agent.limits.max_body_bytes")

    def __init__(self, root: Path, state, probe, journal=None, *, poll_interval: float = 1.0):
        super().__init__(state, journal, interval=poll_interval)
        self.root, self.probe = Path(root), probe
        self._seen: dict[str, dict[str, str]] = {}  # "bot/screen" -> {file name: "size:mtime_ns"} checked
        self._pending: dict[str, str] = {}  # path -> stat seen on the previous poll (not yet settled)
        self._loaded: set[str] = set()
        self._refused_links: set[str] = set()  # bot and screen folders that are links (counted once)
        self._lock = threading.Lock()

    @classmethod
    def wanted(cls, loaded) -> bool:
        return loaded.snapshots_path is not None

    @classmethod
    def from_estate(cls, loaded, state, journal, *, probe=None, **deps) -> "SnapshotWatcher":
        from ..core.extras import require
        from ..ui.probe import DRIFT

        require("drift", f"{DRIFT} of the snapshot folder {loaded.snapshots_path}")  # the folder is left as it is
        if probe is None:
            from ..ui.probe import DriftProbe

            probe = DriftProbe(loaded.estate, journal)
        return cls(loaded.snapshots_path, state, probe, journal)

    @property
    def poll_interval(self) -> float:
        return self.interval

    def _report(self, what: tuple, msg: str, *args) -> None:
        self.warn(what, msg, *args)

    # -- polling ---------------------------------------------------------------------------
    def poll_once(self, settle: bool = True) -> int:
        """Check every new, settled snapshot file; returns how many were checked.
        `settle=False` takes files at once (tests, a folder known to be complete)."""
        with self._lock:
            checked = 0
            for bot, screen, folder in self._screens():
                checked += self._poll_screen(bot, screen, folder, settle)
            return checked

    def _screens(self):
        try:
            bots = sorted(os.scandir(self.root), key=lambda e: e.name)
        except FileNotFoundError:
            self._report(("missing",), "snapshot folder %s does not exist (yet)", self.root)
            return
        except OSError as exc:
            self._report(("root", str(exc)), "cannot read the snapshot folder %s: %s", self.root, exc)
            return
        for b in bots:
            if b.name.startswith("."):
                continue
            if b.is_symlink():
                self._refuse_link(b.path)
                continue
            if not b.is_dir(follow_symlinks=False):
                continue
            if b.name not in self.state.bots and not self.state.estate.agent.auto_register:
                self._report(("bot", b.name), "snapshot folder %s: bot %r is not in the estate file; skipped",
                             b.path, b.name)
                continue
            try:
                screens = sorted(os.scandir(b.path), key=lambda e: e.name)
            except OSError:
                continue
            for s in screens:
                if s.name.startswith(".") or len(s.name) > 64:
                    continue
                if s.is_symlink():
                    self._refuse_link(s.path)
                elif s.is_dir(follow_symlinks=False):
                    yield b.name, s.name, s.path

    def _refuse_link(self, path: str) -> None:
        if path not in self._refused_links:
            self._refused_links.add(path)
            log.warning("snapshot folder: %s is a symbolic link; not followed", path)
            self.state.count_parse_error(ERRORS)

    def _seen_for(self, key: str) -> dict[str, str]:
        if key not in self._loaded:
            self._loaded.add(key)
            stored = self.load_checkpoint(key)
            seen = stored.get("seen") if stored else None
            if isinstance(seen, dict):
                self._seen[key] = {str(k): str(v) for k, v in seen.items()}
        return self._seen.setdefault(key, {})

    def _poll_screen(self, bot: str, screen: str, folder: str, settle: bool) -> int:
        key = f"{bot}/{screen}"
        seen = self._seen_for(key)
        try:
            entries = sorted((e for e in os.scandir(folder) if not e.is_dir(follow_symlinks=False)),
                             key=lambda e: e.name)
        except OSError:
            return 0
        present = {}
        for e in entries:
            ext = os.path.splitext(e.name)[1].lower()
            if ext not in EXTENSIONS or e.name.startswith("."):
                continue
            try:
                # os.stat, not the entry's: on Windows that comes from the folder's listing, which
                # NTFS brings up to date late, so a file still being written would look settled.
                # A link is looked at (and refused when read), not its target.
                st = os.stat(e.path, follow_symlinks=False)
            except OSError:
                continue
            present[e.name] = (e.path, f"{st.st_size}:{st.st_mtime_ns}", EXTENSIONS[ext])
        checked, changed = 0, False
        for name in [n for n in seen if n not in present]:  # gone: forget it
            del seen[name]
            changed = True
        for name, (path, stamp, kind) in present.items():
            if seen.get(name) == stamp:
                continue
            if settle and self._pending.get(path) != stamp:
                self._pending[path] = stamp  # wait one poll: is the writer done?
                continue
            self._pending.pop(path, None)
            if not self._check(bot, screen, kind, name, path):
                break  # the journal is unavailable: try this file again on the next poll
            seen[name] = stamp
            changed = True
            checked += 1
            self._save(key, seen)
            changed = False
        if changed:
            self._save(key, seen)
        return checked

    def _check(self, bot: str, screen: str, kind: str, name: str, path: str) -> bool:
        """Check one file; False only when it must be tried again (journal unavailable)."""
        from ..ui import SnapshotError

        try:
            data = read_inside(self.root, (bot, screen, name), self.state.estate.agent.limits.max_body_bytes)
        except Refused as exc:
            log.warning("snapshot %s refused, not read: %s", path, exc)
            self.state.count_parse_error(ERRORS)
            return True
        except OSError as exc:
            self._report(("read", path), "snapshot %s cannot be read: %s", path, exc)
            self.state.count_parse_error(ERRORS)
            return True
        try:
            report = self.probe.ingest(self.state, bot, screen, kind, data, source=SOURCE)
        except SnapshotError as exc:
            log.warning("snapshot %s: %s", path, exc)
            self.state.count_parse_error(ERRORS)
            return True
        except JournalError as exc:
            self._report(("journal",), "snapshot %s not recorded (journal unavailable: %s); trying again", path, exc)
            return False
        if report.warning:
            log.info("bot %s screen %s drifting: score %.2f (%s)", bot, screen, report.score,
                     "; ".join(report.changes[:3]))
        return True

    def _save(self, key: str, seen: dict[str, str]) -> None:
        self.save_checkpoint(key, {"seen": seen})
