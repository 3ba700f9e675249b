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

What was checked is remembered in the journal (table log_offsets, key `snapshots:<bot>/<screen>`:
the names, sizes and modification times of the files checked that are still there), so a
restarted agent does not check a file twice; a file rewritten in place counts as new.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

from ..journal import JournalError
from ..ui.probe import EXTENSIONS

log = logging.getLogger("botwatch.sources.snapshots")

SOURCE = "folder"
KEY = "snapshots:"
_REPORT_EVERY = 300.0


class SnapshotWatcher:
    def __init__(self, root: Path, state, probe, journal=None, *, poll_interval: float = 1.0):
        self.root, self.state, self.probe, self.journal = Path(root), state, probe, journal
        self.poll_interval = poll_interval
        self._seen: dict[str, dict[str, str]] = {}  # "bot/screen" -> {file name: "size:mtime_ns"} checked
        self._pending: dict[str, str] = {}  # path -> stat seen on the previous poll (not yet settled)
        self._loaded: set[str] = set()
        self._reported: dict[tuple, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="botwatch-snapshots", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:
                log.exception("snapshot folder: polling failed; trying again")
            self._stop.wait(self.poll_interval)

    def _report(self, what: tuple, msg: str, *args) -> None:
        now = time.monotonic()
        if now - self._reported.get(what, -_REPORT_EVERY - 1) > _REPORT_EVERY:
            log.warning(msg, *args)
            self._reported[what] = now

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
            if not b.is_dir() or b.name.startswith("."):
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
                if s.is_dir() and not s.name.startswith(".") and len(s.name) <= 64:
                    yield b.name, s.name, s.path

    def _seen_for(self, key: str) -> dict[str, str]:
        if key not in self._loaded:
            self._loaded.add(key)
            stored = self.journal.offset(KEY + key) if self.journal is not None else None
            if stored:
                try:
                    self._seen[key] = dict(json.loads(stored[0]))
                except (ValueError, TypeError):
                    self._seen[key] = {}
        return self._seen.setdefault(key, {})

    def _poll_screen(self, bot: str, screen: str, folder: str, settle: bool) -> int:
        key = f"{bot}/{screen}"
        seen = self._seen_for(key)
        try:
            entries = sorted((e for e in os.scandir(folder) if e.is_file()), key=lambda e: e.name)
        except OSError:
            return 0
        present = {}
        for e in entries:
            ext = os.path.splitext(e.name)[1].lower()
            if ext not in EXTENSIONS or e.name.startswith("."):
                continue
            try:
                st = e.stat()
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
            if not self._check(bot, screen, kind, path):
                break  # the journal is unavailable: try this file again on the next poll
            seen[name] = stamp
            changed = True
            checked += 1
            self._save(key, seen)
            changed = False
        if changed:
            self._save(key, seen)
        return checked

    def _check(self, bot: str, screen: str, kind: str, path: str) -> bool:
        """Check one file; False only when it must be tried again (journal unavailable)."""
        from ..ui import SnapshotError

        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            self._report(("read", path), "snapshot %s cannot be read: %s", path, exc)
            self.state.count_parse_error("snapshot")
            return True
        try:
            report = self.probe.ingest(self.state, bot, screen, kind, data, source=SOURCE)
        except SnapshotError as exc:
            log.warning("snapshot %s: %s", path, exc)
            self.state.count_parse_error("snapshot")
            return True
        except JournalError as exc:
            self._report(("journal",), "snapshot %s not recorded (journal unavailable: %s); trying again", path, exc)
            return False
        if report.warning:
            log.info("bot %s screen %s drifting: score %.2f (%s)", bot, screen, report.score,
                     "; ".join(report.changes[:3]))
        return True

    def _save(self, key: str, seen: dict[str, str]) -> None:
        if self.journal is None:
            return
        try:
            with self.journal.transaction() as j:
                j.set_offset(KEY + key, json.dumps(seen, sort_keys=True), len(seen), time.time())
        except JournalError as exc:
            self._report(("save",), "cannot remember the snapshots checked: %s", exc)
