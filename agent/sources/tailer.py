"""Following files as they grow: complete lines read once, across rotation and truncation.

A `Tailer` follows the files of one watched path (or of the matches of a glob, which its reader
finds) and hands each bounded chunk of complete lines to its reader, with where that leaves it
in the file. It:

- hands every complete line over once: a last line without its line ending waits until the
  writer ends it (unless the reader can tell it is whole, e.g. a complete JSON entry, or the file
  has been quiet for `idle_flush` seconds);
- follows rotation by rename and create (the file is recognised by its identity, device and
  inode plus a hash of its first 512 bytes, wherever it was moved in its folder; what was
  written to it is read to the end before the new file) and by copytruncate (a file smaller
  than what was read, or whose first bytes changed, starts again from 0; the copy is found by
  its first bytes and its unread end is read); a file written and rotated away between two
  polls (same name family, changed after anything of that path it read) is read whole;
- hands over bytes that end on a line ending of the file's encoding (a BOM stripped, UTF-16
  and UTF-32 cut at their code unit, CRLF or LF), with the encoding's name: the reader decodes;
- never keeps the writer from rotating: on Windows files are opened sharing delete, so a rename
  or delete during a read succeeds (botwatch._platform.sharing).

Where it is in each file is a position: the file's identity (as text) and an offset. The
reader names positions (`position_key`), gives back the saved ones (`load_position`) and saves
the ones handed with each chunk, together with what it made of the lines, once the chunk has
been consumed; position changes that come with no chunk wait in `pending` for the reader's
next save. A `consume` that raises stops the tailer where it was: nothing is advanced, and the
same lines are handed over again on the next poll.
"""

from __future__ import annotations

import codecs
import hashlib
import logging
import os
import re
import stat as statmod
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Protocol

from .._platform.sharing import open_shared

HEAD_BYTES = 512  # identity: a hash of the first bytes of a file, besides device and inode
CHUNK = 8 << 20  # bytes read (and committed, with one sync to disk) at a time
COMPRESSED = (".gz", ".bz2", ".xz", ".zip", ".zst", ".7z", ".lz4", ".z", ".tgz")  # never read as text

Position = tuple[str, int]  # (identity as text, offset)


class Consume(Protocol):
    def __call__(self, data: bytes, encoding: str, positions: dict[str, Position], moved: bool) -> int:
        """Take the complete lines in `data` (bytes in `encoding`); save `positions` with them when
        anything moved (`moved`, or other positions waiting in `pending`); the lines taken."""


class Warn(Protocol):
    def __call__(self, key: tuple[object, ...], msg: str, *args: object) -> object:
        """Say a problem (at most every few minutes for the same `key`)."""


@dataclass(frozen=True, slots=True)
class Identity:
    """What tells a file from the one that replaced it at the same path."""

    dev: int
    ino: int  # 0 where the file system has none
    n: int  # bytes hashed
    digest: str

    def __str__(self) -> str:
        return f"{self.dev}:{self.ino}:{self.n}:{self.digest}"

    @classmethod
    def parse(cls, text: str) -> "tuple[Identity, int | None] | None":
        """(identity, modification time when last read) from the saved form, see `_saved`."""
        try:
            dev, ino, n, digest, *rest = text.split(":")
            mtime = int(rest[0]) if rest and rest[0] else None
            return cls(int(dev), int(ino), int(n), digest), mtime
        except (ValueError, AttributeError, IndexError):
            return None


def _saved(ident: Identity | None, mtime: int | None) -> str:
    """A file's identity as a position keeps it, with its modification time when last read
    (which tells the generations written after it from older ones)."""
    if ident is None:
        return ""
    return f"{ident}:{'' if mtime is None else mtime}"


def _digest(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()[:24]


def _head(path: str, n: int) -> bytes | None:
    try:
        with open_shared(path) as fh:
            return fh.read(n)
    except OSError:
        return None


def identify(path: str, st: os.stat_result) -> Identity | None:
    head = _head(path, min(HEAD_BYTES, st.st_size))
    if head is None:
        return None
    return Identity(st.st_dev, st.st_ino, len(head), _digest(head))


def _same_inode(ident: Identity, st: os.stat_result) -> bool:
    if not ident.ino or not st.st_ino:
        return True  # no inode to compare: the first bytes decide
    return (ident.dev, ident.ino) == (st.st_dev, st.st_ino)


def _head_matches(ident: Identity, path: str, st: os.stat_result) -> bool:
    if st.st_size < ident.n:
        return False
    head = _head(path, ident.n)
    return head is not None and len(head) == ident.n and _digest(head) == ident.digest


def _same_family(base: str, name: str) -> bool:
    """Is `name` a rotated generation of the file `base` (bot.log.1, bot.log-20240501,
    bot.1.log, bot_2024-05-01.log)?"""
    b, n = base.lower(), name.lower()
    if n.startswith(b) and len(n) > len(b):
        return True
    stem, ext = os.path.splitext(b)
    return bool(stem) and re.fullmatch(re.escape(stem) + r"[.\-_][\dT.\-_]+" + re.escape(ext), n) is not None


def norm_path(path: str) -> str:
    """The form of a path that tells two paths to the same place apart from two different ones."""
    return os.path.normcase(os.path.abspath(path))


def regular_file_stat(path: str) -> os.stat_result | None:
    """The stat of the regular file at `path`; None for anything else or nothing."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st if statmod.S_ISREG(st.st_mode) else None


@dataclass(frozen=True, slots=True)
class _Codec:
    name: str
    bom: bytes
    newline: bytes

    @property
    def unit(self) -> int:
        return len(self.newline)


def _codec(encoding: str, head: bytes) -> _Codec:
    try:
        enc = codecs.lookup(encoding).name
    except LookupError:
        enc = "utf-8"
    boms = {"utf-16": ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")),
            "utf-32": ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be")),
            "utf-8": ((codecs.BOM_UTF8, "utf-8"),)}
    family = "utf-8" if enc in ("utf-8", "utf-8-sig") else enc[:6] if enc.startswith(("utf-16", "utf-32")) else None
    name = "utf-8" if enc == "utf-8-sig" else enc
    if family in ("utf-16", "utf-32") and enc == family:
        name = family + "-le"  # no BOM: little-endian, as Windows writes it
    bom = b""
    for mark, codec_name in boms.get(family or "", ()):
        if head.startswith(mark) and (enc in (family, "utf-8-sig") or enc == codec_name):
            bom, name = mark, codec_name
            break
    return _Codec(name, bom, "\n".encode(name))


def _line_end(body: bytes, newline: bytes) -> int:
    """Index just past the last newline of `body` (aligned to the code unit), 0 if none."""
    unit = len(newline)
    i = body.rfind(newline)
    while i >= 0 and i % unit:
        i = body.rfind(newline, 0, i + unit - 1)
    return i + unit if i >= 0 else 0


@dataclass(eq=False)
class _File:
    """One file being read."""

    home: str  # the watched path it belongs to (its position's key)
    path: str  # where it is now (a rotated file is elsewhere)
    ident: Identity | None
    offset: int = 0
    retired: bool = False
    checked: tuple[int, int, int] | None = None  # (ino, size, mtime) when its identity was last confirmed
    done: tuple[int, int] | None = None  # (size, mtime) when it was last read to the end
    tail: tuple[int, int, int] | None = None  # where an unterminated last line waits, and since when
    tail_since: float = 0.0
    changed_at: float = field(default_factory=time.monotonic)
    codec: _Codec | None = None
    mtime: int | None = None  # its modification time when it was last read (this process)


class Tailer:
    """The files of one watched path or glob, each followed from where it was read to
    (see the module docstring). `path`: the one path it follows, None for a glob's matches."""

    def __init__(self, path: str | None, encoding: str, *,
                 position_key: Callable[[str, bool], str],
                 load_position: Callable[[str], Position | None],
                 is_complete: Callable[[str], bool],
                 consume: Consume,
                 warn: Warn,
                 idle_flush: float, retire_after: float,
                 label: str, log: logging.Logger):
        self.path, self.encoding = path, encoding
        self.position_key, self.load_position = position_key, load_position
        self.is_complete, self.consume, self.warn = is_complete, consume, warn
        self.idle_flush, self.retire_after = idle_flush, retire_after
        self.label, self.log = label, log  # messages say `label` (whose files) and go to `log`
        self.files: dict[str, _File] = {}  # active files by normalised home path
        self.retired: dict[str, list[_File]] = {}  # rotated away from a home, oldest first
        self.known: set[str] = set()  # homes whose positions were loaded
        # per home: the newest modification time of anything of it we read (a rotated file
        # changed after it, that we do not follow, was written and rotated between two polls)
        self.seen_ns: dict[str, int] = {}
        self.forgotten: deque[tuple[int, int]] = deque(maxlen=256)  # (dev, ino) of rotated files read and let go
        self.pending: dict[str, Position] = {}  # position changes to save with the next batch

    def _key(self, home: str, retired: bool = False) -> str:
        return self.position_key(home, retired)

    # -- polling ---------------------------------------------------------------------------
    def poll(self, paths: list[tuple[str, os.stat_result]]) -> int:
        """Read everything new in the files at `paths` (the regular files the watched path or
        glob names now, with their stat) and in files rotated away; the lines handed over."""
        present: dict[str, tuple[str, os.stat_result]] = {}
        for path, st in paths:
            home = norm_path(path)
            present[home] = (path, st)
            if home not in self.known:
                self.adopt(path)
        lost: list[_File] = []
        for home, f in list(self.files.items()):
            cur = present.get(home)
            if cur is None or not self._still(f, *cur):
                lost.append(self.files.pop(home))
        # Homes whose file is not the one read on the last poll (rotated, gone, or new): a file
        # may have been written there and rotated away in between. Watermarks before any read.
        unsettled = {norm_path(f.home): (f.home, self.seen_ns.get(norm_path(f.home))) for f in lost}
        if self.path is not None and norm_path(self.path) not in self.files:
            unsettled.setdefault(norm_path(self.path), (self.path, self.seen_ns.get(norm_path(self.path))))
        lines = 0
        for home in list(self.retired):
            for r in list(self.retired.get(home, ())):
                lines += self._follow_retired(r)
        for f in lost:
            lines += self._relocate(f, present)
        for path, mark in unsettled.values():
            if mark is not None:
                lines += self._read_missed(path, mark, present)
        for home, (path, st) in present.items():
            if home not in self.files:
                self.files[home] = _File(home=path, path=path, ident=None)
        order = sorted(self.files.items(), key=lambda kv: (present[kv[0]][1].st_mtime_ns, kv[0]))
        for home, f in order:
            st = present[home][1]
            if f.done == (st.st_size, st.st_mtime_ns) and f.tail is None:
                continue  # unchanged since it was read to the end
            lines += self._read(f)
        return lines

    def adopt(self, path: str) -> None:
        """First sight of a watched path: where the saved positions say we were in it."""
        home = norm_path(path)
        main = self.load_position(self._key(path))
        rot = self.load_position(self._key(path, retired=True))
        if rot and rot[0] and (parsed := Identity.parse(rot[0])) is not None:
            r = _File(home=path, path=path, ident=parsed[0], offset=rot[1], retired=True, mtime=parsed[1])
            self.retired.setdefault(home, []).append(r)
        if main and main[0] and (parsed := Identity.parse(main[0])) is not None:
            self.files[home] = _File(home=path, path=path, ident=parsed[0], offset=main[1], mtime=parsed[1])
        marks = [f.mtime for f in [self.files.get(home), *self.retired.get(home, ())] if f is not None and f.mtime]
        # Nothing read of it yet: files rotated from now on are ours (a second back, as file
        # systems stamp times coarsely); older ones were there before the path was watched.
        self.seen_ns[home] = max(marks) if marks else time.time_ns() - 1_000_000_000
        self.known.add(home)

    # -- identity and rotation -------------------------------------------------------------
    @staticmethod
    def _still(f: _File, path: str, st: os.stat_result) -> bool:
        """Is the file at `path` still the one we were reading (not replaced, not truncated)?"""
        if f.ident is None:
            return True
        if not _same_inode(f.ident, st) or st.st_size < f.offset:
            return False
        sig = (st.st_ino, st.st_size, st.st_mtime_ns)
        if f.checked == sig:
            return True
        if _head_matches(f.ident, path, st):
            f.checked = sig
            return True
        return False

    @staticmethod
    def _find(f: _File, paths: list[str]) -> tuple[str, os.stat_result, bool] | None:
        """Where the file `f` is now among `paths`: (path, stat, is_a_copy)."""
        ident = f.ident
        if ident is None:
            return None
        copy: tuple[str, os.stat_result, bool] | None = None
        for p in paths:
            st = regular_file_stat(p)
            if st is None:
                continue
            if ident.ino and st.st_ino and st.st_dev == ident.dev and st.st_ino == ident.ino:
                if st.st_size >= f.offset and _head_matches(ident, p, st):
                    return p, st, False
                continue  # the same file, truncated: not where the unread lines are
            if ident.n and st.st_size >= max(f.offset, ident.n) and _head_matches(ident, p, st):
                if copy is None or st.st_mtime_ns > copy[1].st_mtime_ns:
                    copy = (p, st, True)
        return copy

    @staticmethod
    def _siblings(f: _File) -> list[str]:
        """Candidates for a rotated file: the files of its folder (and of the home's folder)."""
        out: list[str] = []
        seen: set[str] = set()
        for d in {os.path.dirname(f.path) or ".", os.path.dirname(f.home) or "."}:
            try:
                with os.scandir(d) as it:
                    for e in it:
                        if e.name.lower().endswith(COMPRESSED) or e.path in seen:
                            continue
                        seen.add(e.path)
                        out.append(e.path)
            except OSError:
                continue
        return out

    def _relocate(self, f: _File, present: dict[str, tuple[str, os.stat_result]]) -> int:
        """`f` is no longer at its home: moved to another watched path, rotated away, or gone."""
        old_home = f.home
        self.pending[self._key(old_home)] = ("", 0)
        free = [p for h, (p, _) in present.items() if h not in self.files]
        found = self._find(f, free)
        if found is not None:
            path, st, is_copy = found
            if is_copy and f.ident is not None:
                f.ident = Identity(st.st_dev, st.st_ino, f.ident.n, f.ident.digest)
            self.log.debug("%s: %s is now %s (%s)", self.label, old_home, path, "a copy" if is_copy else "moved")
            f.home = f.path = path
            f.checked = f.done = f.tail = None
            self.files[norm_path(path)] = f
            self.pending[self._key(path)] = (_saved(f.ident, f.mtime), f.offset)
            return 0
        found = self._find(f, [p for p in self._siblings(f) if norm_path(p) not in present])
        if found is None:
            self.log.info("%s: %s was replaced and the old file is gone; reading the new one", self.label, old_home)
            return 0
        path, st, is_copy = found
        self.log.debug("%s: %s was rotated to %s (%s) at offset %d of %d", self.label, old_home, path,
                       "a copy" if is_copy else "moved", f.offset, st.st_size)
        if is_copy and f.ident is not None:
            f.ident = Identity(st.st_dev, st.st_ino, f.ident.n, f.ident.digest)
        f.path, f.retired = path, True
        f.checked = f.done = f.tail = None
        f.changed_at = time.monotonic()
        self.retired.setdefault(norm_path(old_home), []).append(f)
        self.pending[self._key(old_home, retired=True)] = (_saved(f.ident, f.mtime), f.offset)
        return self._read(f)

    def _read_missed(self, home: str, after_ns: int, present: dict[str, tuple[str, os.stat_result]]) -> int:
        """Files written at `home` and rotated away between two polls (same name family,
        changed after anything of `home` we read, not followed): read whole, oldest first."""
        lines = 0
        for p, st in self._generations(home, after_ns, present):
            g = _File(home=home, path=p, ident=identify(p, st), retired=True)
            if g.ident is None:
                continue
            self.log.debug("%s: %s was written and rotated between two polls", self.label, p)
            self.retired.setdefault(norm_path(home), []).append(g)
            self.pending[self._key(home, retired=True)] = (_saved(g.ident, None), 0)
            lines += self._read(g)
        return lines

    def _generations(self, home: str, after_ns: int,
                     present: dict[str, tuple[str, os.stat_result]]) -> list[tuple[str, os.stat_result]]:
        tracked_paths = {norm_path(x.path) for x in self.files.values()}
        tracked_inodes = {(x.ident.dev, x.ident.ino) for x in self.files.values() if x.ident and x.ident.ino}
        tracked_inodes.update(self.forgotten)
        for group in self.retired.values():
            tracked_paths |= {norm_path(x.path) for x in group}
            tracked_inodes |= {(x.ident.dev, x.ident.ino) for x in group if x.ident and x.ident.ino}
        base = os.path.basename(home)
        out = []
        for p in self._siblings(_File(home=home, path=home, ident=None)):
            n = norm_path(p)
            if n in present or n in tracked_paths or not _same_family(base, os.path.basename(p)):
                continue
            st = regular_file_stat(p)
            if st is None or st.st_mtime_ns <= after_ns or (st.st_ino and (st.st_dev, st.st_ino) in tracked_inodes):
                continue
            out.append((p, st))
        return sorted(out, key=lambda ps: (ps[1].st_mtime_ns, ps[0]))

    def _follow_retired(self, r: _File) -> int:
        """Read what is still written to a rotated file; forget it once it is quiet."""
        st = regular_file_stat(r.path)
        if st is None or not self._still(r, r.path, st):
            found = self._find(r, self._siblings(r)) if r.ident is not None else None
            if found is None:
                self._drop_retired(r)
                return 0
            r.path, st, is_copy = found
            if is_copy and r.ident is not None:
                r.ident = Identity(st.st_dev, st.st_ino, r.ident.n, r.ident.digest)
            r.checked = None
        lines = self._read(r)
        if r.done is not None and r.tail is None and time.monotonic() - r.changed_at >= self.retire_after:
            self._drop_retired(r)
        return lines

    def _drop_retired(self, r: _File) -> None:
        if r.ident is not None and r.ident.ino:
            self.forgotten.append((r.ident.dev, r.ident.ino))
        home = norm_path(r.home)
        group = self.retired.get(home, [])
        newest = bool(group) and group[-1] is r
        if r in group:
            group.remove(r)
        if not group:
            self.retired.pop(home, None)
        if newest:
            self.pending[self._key(r.home, retired=True)] = (
                (_saved(group[-1].ident, group[-1].mtime), group[-1].offset) if group else ("", 0))

    # -- reading ---------------------------------------------------------------------------
    def _read(self, f: _File) -> int:
        """Read `f` from its offset to the end, handing complete lines over a chunk at a time
        with the position they advance to. What `consume` raises stops it, nothing advanced."""
        total = 0
        while True:
            try:
                fh = open_shared(f.path)
            except OSError as exc:
                self.warn(("open", f.path, type(exc).__name__), "cannot read %s: %s", f.path, exc)
                return total
            with fh:
                st = os.fstat(fh.fileno())
                if f.ident is not None and not _same_inode(f.ident, st):
                    return total  # rotated since it was looked at: the next poll finds where it went
                size = st.st_size
                if f.ident is None:
                    head = fh.read(min(HEAD_BYTES, size))
                    f.ident = Identity(st.st_dev, st.st_ino, len(head), _digest(head))
                if size < f.offset:
                    return total  # truncated meanwhile: the next poll sees it
                sig = (size, st.st_mtime_ns)
                if f.done == sig:
                    return total
                if f.codec is None:
                    fh.seek(0)
                    f.codec = _codec(self.encoding, fh.read(4))
                fh.seek(f.offset)
                data = fh.read(CHUNK)
                ident = f.ident
                if ident.n < HEAD_BYTES and size > ident.n and f.offset + len(data) > ident.n:
                    fh.seek(0)
                    head = fh.read(HEAD_BYTES)
                    if _digest(head[:ident.n]) == ident.digest:
                        ident = Identity(ident.dev, ident.ino, len(head), _digest(head))
            codec = f.codec
            skip = len(codec.bom) if f.offset == 0 and codec.bom and data.startswith(codec.bom) else 0
            body = data[skip:]
            cut = _line_end(body, codec.newline)
            at_eof = len(data) < CHUNK
            if cut == 0 and not at_eof:
                cut = len(body) - len(body) % codec.unit  # one line longer than a chunk: taken as it is
            tail = body[cut:] if at_eof else b""
            waiting = False
            if tail:
                text = tail.decode(codec.name, "replace").rstrip("\r")
                now = time.monotonic()
                where = (f.offset + skip + cut, size, st.st_mtime_ns)
                whole = len(body) - len(body) % codec.unit
                if self.is_complete(text):
                    cut = whole
                elif f.tail == where and now - f.tail_since >= self.idle_flush:
                    cut = whole  # quiet long enough: the writer will not end this line
                else:
                    if f.tail != where:
                        f.tail, f.tail_since = where, now
                    waiting = True
            consumed = skip + cut
            new_offset = f.offset + consumed
            positions = {self._key(f.home, f.retired): (_saved(ident, st.st_mtime_ns), new_offset)}
            if f.retired and self.retired.get(norm_path(f.home), [f])[-1] is not f:
                positions = {}  # only the newest rotated file of a path keeps a position
            moved = bool(consumed) or ident != f.ident or f.mtime is None
            count = self.consume(body[:cut], codec.name, positions, moved)
            f.offset, f.ident, f.mtime = new_offset, ident, st.st_mtime_ns
            home = norm_path(f.home)
            if st.st_mtime_ns > self.seen_ns.get(home, 0):
                self.seen_ns[home] = st.st_mtime_ns
            total += count
            if consumed:
                f.changed_at = time.monotonic()
            if not waiting:
                f.tail = None
            if at_eof:
                f.done = None if waiting else sig
                return total
