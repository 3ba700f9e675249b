"""Secret scanning: detect-secrets over a bot's source files and over text in no file of its own.

Only the type and line number of a hit are kept, never the secret. Scans are cached by
(path, mtime, size), and by the text's hash, so that periodic checks are cheap. detect-secrets
comes with the governance extra; without it nothing is scanned (`SecretScanner.available`).

Encodings: detect-secrets opens a file in the locale's encoding (cp1252 on a Western Windows
host), where UTF-8 text reads wrong or, at a byte cp1252 leaves undefined, not at all (the file
is then skipped as binary), and UTF-16 (what PowerShell and some editors save) reads as noise.
Its only public scan of text with a file's name is `scan_file`; the one that takes lines is
private. So a file it would misread is given to it as a private copy of the same name (its
filters and transformers go by the name) holding the file's text (decode_source) in the locale's
encoding, unencodable characters replaced: line for line the original, so line numbers hold.
Files it reads right (ASCII, or UTF-8 under a UTF-8 locale) are scanned where they are.
"""

from __future__ import annotations

import codecs
import hashlib
import locale
import logging
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from ..core import extras

log = logging.getLogger("botwatch.governance")

SCANNING = "secret scanning"  # the capability the governance extra adds, as messages name it

MAX_FILES = 2000  # per bot source
MAX_FILE_BYTES = 2 * 1024 * 1024  # larger files are not scanned (noted)
MAX_CACHE = 50_000  # scanned files remembered
# byte order marks, longest first (UTF-32-LE's begins with UTF-16-LE's)
BOMS = ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"), (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
SKIP_DIRS = frozenset({".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", "venv", ".tox",
                       ".mypy_cache", ".pytest_cache"})


@dataclass
class SourceScan:
    """What a scan of a bot's source found: (file, line, secret type), and what it left out."""

    hits: list[tuple[str, int, str]] = field(default_factory=list)
    scanned: int = 0
    notes: list[str] = field(default_factory=list)


class SecretScanner:
    """detect-secrets over files, cached by (path, mtime, size) so that periodic checks are cheap.

    Only the type and line number of a hit are kept, never the secret.
    """

    @property
    def available(self) -> bool:
        """Whether detect-secrets is installed (the governance extra)."""
        return extras.available("governance")

    def __init__(self, max_files: int = MAX_FILES, max_file_bytes: int = MAX_FILE_BYTES, *, isolated: bool = False):
        """isolated: scan in a short-lived subprocess (what a long-lived agent wants), else here."""
        self.max_files, self.max_file_bytes = max_files, max_file_bytes
        self.isolated = isolated
        self._cache: dict[str, tuple[int, int, tuple[tuple[int, str], ...]]] = {}
        self._text_cache: dict[str, tuple[tuple[int, str], ...]] = {}  # sha256 of the text -> hits
        self.files_scanned = 0  # cache misses, for tests and self-monitoring
        self.batches = 0  # scans run (a subprocess each when isolated)
        self.cache_only = False  # after a prefetch: what it could not scan is not tried again per bot

    def scan_paths(self, paths: list[Path]) -> SourceScan:
        result = SourceScan()
        todo, large, binary = self._listing(paths, result)
        if todo and not self.cache_only:
            self._scan_into_cache(todo)
        failed = 0
        for f, st in todo:
            cached = self._cache.get(str(f))
            if cached is None or cached[:2] != (st.st_mtime_ns, st.st_size):
                failed += 1
                continue
            result.scanned += 1
            result.hits += [(str(f), line, kind) for line, kind in cached[2]]
        if large:
            result.notes.append(f"{large} file(s) over {self.max_file_bytes // 1024} KiB not scanned")
        if binary:
            result.notes.append(f"{binary} binary file(s) not scanned")
        if failed:
            result.notes.append(f"{failed} file(s) not scanned: the secret scanner failed (tried again next time)")
        return result

    def _listing(self, paths: list[Path], result: SourceScan) -> tuple[list[tuple[Path, os.stat_result]], int, int]:
        """The files of `paths` to scan (cached ones counted into `result` at once), and how many
        were too large or binary."""
        files: list[Path] = []
        too_many = False
        for p in paths:
            if not p.exists():
                result.notes.append(f"source {p} not found")
                continue
            for f in _walk(p):
                if len(files) >= self.max_files:
                    too_many = True
                    break
                files.append(f)
        if too_many:
            result.notes.append(f"only the first {self.max_files} files scanned")
        large = binary = 0
        todo: list[tuple[Path, os.stat_result]] = []
        for f in files:
            try:
                st = f.stat()
            except OSError:
                continue
            if st.st_size > self.max_file_bytes:
                large += 1
                continue
            cached = self._cache.get(str(f))
            if cached is not None and cached[:2] == (st.st_mtime_ns, st.st_size):
                result.scanned += 1
                result.hits += [(str(f), line, kind) for line, kind in cached[2]]
                continue
            if _is_binary(f):
                binary += 1
                continue
            todo.append((f, st))
        return todo, large, binary

    def _scan_into_cache(self, todo: list[tuple[Path, os.stat_result]], texts: dict[str, str] | None = None) -> None:
        """Scan files (with their stat) and texts (by their key) in one go; what was scanned goes
        into the caches, what failed does not (it is tried again next time)."""
        texts = texts or {}
        folder = tempfile.mkdtemp(prefix="botwatch-gov-") if texts else None  # 0700: entries may hold secrets
        try:
            text_files = []
            for i, text in enumerate(texts.values()):
                path = Path(folder or "", f"entry-{i}.yaml")
                path.write_text(text, encoding="utf-8")
                text_files.append(path)
            found = self._scan_files([f for f, _ in todo] + text_files)
        finally:
            if folder:
                shutil.rmtree(folder, ignore_errors=True)
        for (f, st), hits in zip(todo, found):
            if hits is not None:
                if len(self._cache) >= MAX_CACHE:
                    self._cache.pop(next(iter(self._cache)))
                self._cache[str(f)] = (st.st_mtime_ns, st.st_size, hits)
        for key, hits in zip(texts, found[len(todo):]):
            if hits is not None:
                if len(self._text_cache) >= 10_000:
                    self._text_cache.clear()
                self._text_cache[key] = hits

    def prefetch(self, texts: list[str], paths: list[Path]) -> None:
        """Scan, in one batch, whatever of `texts` and the files of `paths` is not cached yet: a
        refresh of the whole estate pays one scanner start, not one per bot."""
        keys = {_text_key(t): t for t in texts}
        todo_texts = {k: t for k, t in keys.items() if k not in self._text_cache}
        todo, _large, _binary = self._listing(paths, SourceScan())
        if todo or todo_texts:
            self._scan_into_cache(todo, todo_texts)

    def scan_text(self, text: str) -> tuple[tuple[int, str], ...]:
        """Scan text that is in no file of its own (an estate entry) through a private temporary
        file. A scanner failure gives no hits and is not remembered."""
        key = _text_key(text)
        if key not in self._text_cache and not self.cache_only:
            self._scan_into_cache([], {key: text})
        return self._text_cache.get(key, ())

    def _scan_files(self, files: list[Path]) -> list[tuple[tuple[int, str], ...] | None]:
        """Hits per file; None for a file that could not be scanned (the scanner failed)."""
        extras.require("governance", SCANNING)
        self.files_scanned += len(files)
        self.batches += 1
        if not self.isolated:
            return list(scan_in_process(files))
        return scan_in_subprocess(files)


Hits = tuple[tuple[int, str], ...]
_scan_lock = threading.Lock()  # detect-secrets keeps its settings in module globals
WORKER_TIMEOUT = 600.0  # seconds for one batch of files in the scanning subprocess


def scan_in_process(files: list[Path]) -> list[Hits]:
    """detect-secrets over `files` in this process (it stays loaded: 15-20 MB)."""
    from detect_secrets.core.scan import scan_file
    from detect_secrets.settings import default_settings

    encoding = locale.getpreferredencoding(False)  # what detect-secrets opens files in
    copies: list[str] = []  # the private folder of the copies, once one is needed
    out: list[Hits] = []
    with _scan_lock, default_settings():
        try:
            for f in files:
                hits: set[tuple[int, str]] = set()
                try:
                    readable = _readable(f, encoding, copies)
                    hits = {(s.line_number, s.type) for s in scan_file(readable)}
                    if readable != str(f):
                        os.unlink(readable)  # a copy may hold a secret: gone as soon as it is read
                except OSError as exc:  # gone or unreadable since it was listed
                    log.debug("secret scan of %s: %s", f, exc)
                except Exception:  # a scanner problem with one file must not stop the checks
                    log.warning("secret scan of %s failed", f, exc_info=True)
                out.append(tuple(sorted(hits)))
        finally:
            if copies:
                shutil.rmtree(copies[0], ignore_errors=True)
    return out


def scan_in_subprocess(files: list[Path]) -> list[Hits | None]:
    """scan_in_process in a short-lived `python -m botwatch.governance.scan_worker`: the agent
    never loads detect-secrets, whose memory would stay with it between the periodic checks.
    What goes over the pipe is file names and (line, type) pairs, never a secret."""
    import json
    import subprocess
    import sys

    request = json.dumps({"files": [str(f) for f in files]})
    try:
        done = subprocess.run([sys.executable, "-P", "-m", "botwatch.governance.scan_worker"], input=request,
                              capture_output=True, text=True, encoding="utf-8", timeout=WORKER_TIMEOUT,
                              creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0))
        if done.returncode != 0:
            raise RuntimeError(f"exit {done.returncode}: {done.stderr.strip()[-300:]}")
        found = json.loads(done.stdout)["hits"]
        if len(found) != len(files):
            raise RuntimeError(f"{len(found)} answers for {len(files)} files")
        return [tuple((int(line), str(kind)) for line, kind in hits) for hits in found]
    except Exception as exc:  # the checks go on; these files are tried again at the next refresh
        log.warning("secret scanning of %d file(s) failed: %s", len(files), exc)
        return [None] * len(files)


def _text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def decode_source(data: bytes) -> str:
    """A source file's text: in the encoding its byte order mark names (UTF-8, UTF-16 or UTF-32,
    either byte order), else UTF-8; bytes that do not decode are replaced."""
    for bom, codec in BOMS:
        if data.startswith(bom):
            return data[len(bom):].decode(codec, "replace")
    return data.decode("utf-8", "replace")


def scan_copy(data: bytes, locale_encoding: str) -> bytes | None:
    """What detect-secrets, reading in `locale_encoding`, must be given in place of a file holding
    `data`: None when it reads the file right as it is, else the file's text in that encoding."""
    if not data.startswith(tuple(bom for bom, _ in BOMS)):
        if data.isascii():
            return None
        if codecs.lookup(locale_encoding).name == "utf-8":
            try:
                data.decode("utf-8")
                return None
            except UnicodeDecodeError:
                pass
    return decode_source(data).encode(locale_encoding, "replace")


def _readable(f: Path, encoding: str, copies: list[str]) -> str:
    """The path detect-secrets reads for the file `f`: itself, or a copy detect-secrets reads
    right (scan_copy), of the same name, in a private folder made on first need (`copies`)."""
    with open(f, "rb") as fh:
        data = fh.read()
    copy = scan_copy(data, encoding)
    if copy is None:
        return str(f)
    if not copies:
        copies.append(tempfile.mkdtemp(prefix="botwatch-gov-"))  # 0700: the copy may hold a secret
    path = os.path.join(copies[0], f.name)
    with open(path, "wb") as fh:
        fh.write(copy)
    return path


def _walk(p: Path) -> Iterator[Path]:
    if p.is_file():
        yield p
        return
    for root, dirs, names in os.walk(p):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        for n in sorted(names):
            f = Path(root) / n
            if f.is_file() and not f.is_symlink():
                yield f


def _is_binary(f: Path) -> bool:
    """NUL bytes in the first 8 KiB, unless a byte order mark says it is text (UTF-16 has them)."""
    try:
        with open(f, "rb") as fh:
            head = fh.read(8192)
    except OSError:
        return True
    return b"\0" in head and not head.startswith(tuple(bom for bom, _ in BOMS))
