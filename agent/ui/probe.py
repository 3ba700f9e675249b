"""Snapshots checked against their baselines: what the agent's API, its watched folder and
`botwatch drift` share.

A baseline is kept per bot, screen and kind of snapshot (html, a11y, png) in the journal
(table ui_baselines): the snapshot's fingerprint, each declared selector's matches, and for
pages the snapshot itself (compressed), so that a selector declared later is looked up in the
baseline too. A screenshot's baseline is its scaled-down grey image. The agent's first snapshot
of a screen becomes its baseline; `botwatch drift baseline` sets one and `botwatch drift
accept` replaces it, recording the acceptance as a flip of kind "ui" (never read as a bot
state). The latest score per screen and kind is kept in the journal too (table ui_drift), so
the agent's UI state survives a restart and an acceptance made by the CLI reaches the agent.

What is stored is bounded: the agent keeps baselines for at most `agent.limits.max_screens`
screens per bot besides those declared under `ui.screens` (a snapshot of another new screen is
refused, ScreenLimitReached; the CLI, an operator's decision, is not held to it), and a baseline
takes at most `agent.limits.max_baseline_bytes` compressed: a page over it is kept as its
fingerprint alone (a selector declared later then matches nothing in that baseline), a
fingerprint over it is refused. At most READERS snapshots are read at once: each may take a
few hundred MB while it is parsed or decoded.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import Callable

from ..core.extras import require
from . import KINDS, SnapshotError

DRIFT = "UI drift comparison"  # the capability the drift extra adds, as messages name it

CONTENT_TYPES = {"text/html": "html", "application/xhtml+xml": "html", "application/json": "a11y",
                 "image/png": "png"}
# content types that say nothing of the kind (curl -d sends the form one): the content decides
_GENERIC_TYPES = {"application/octet-stream", "text/plain", "application/x-www-form-urlencoded"}
EXTENSIONS = {".html": "html", ".htm": "html", ".json": "a11y", ".png": "png"}
FORMAT = 1  # of the stored fingerprints
READERS = 2  # snapshots parsed or decoded at once (more would not be faster: the GIL)
_reading = threading.BoundedSemaphore(READERS)
CACHE_BYTES = 128 * 1024 * 1024  # decoded baselines kept in memory, by their rough size
_BYTES_PER_ELEMENT = 400  # a decoded fingerprint's element: seven Python values and their slots


class NoBaseline(Exception):
    """The screen has no baseline of this kind of snapshot."""


class ScreenLimitReached(SnapshotError):
    """A snapshot of a new screen for a bot whose baselines already cover its share of screens."""


class BaselineExists(Exception):
    """`drift baseline` on a screen that already has one (replace it with `drift accept`)."""

    def __init__(self, created: float):
        super().__init__(created)
        self.created = created


def kind_for(*, explicit: str | None = None, content_type: str | None = None, filename: str | None = None,
             data: bytes | None = None) -> str:
    """The kind of a snapshot: as given, else by file extension, else by content type, else by
    its first bytes."""
    if explicit:
        k = explicit.strip().lower()
        if k in ("htm", "dom"):
            k = "html"
        elif k in ("json", "accessibility", "ax"):
            k = "a11y"
        elif k in ("image", "screenshot"):
            k = "png"
        if k not in KINDS:
            raise SnapshotError(f"unknown snapshot kind {explicit!r}: use html, a11y or png")
        return k
    if filename:
        dot = filename.rfind(".")
        ext = filename[dot:].lower() if dot >= 0 else ""
        if ext in EXTENSIONS:
            return EXTENSIONS[ext]
    if content_type:
        ct = content_type.split(";", 1)[0].strip().lower()
        if ct in CONTENT_TYPES:
            return CONTENT_TYPES[ct]
        if ct.endswith("+json"):
            return "a11y"
        if ct and ct not in _GENERIC_TYPES:
            raise SnapshotError(f"cannot tell the kind of snapshot from Content-Type {ct}: send text/html, "
                                "application/json or image/png (or ?kind=html|a11y|png)")
    if data:
        head = data[:64].lstrip()
        if head.startswith(b"\x89PNG"):
            return "png"
        if head[:1] in (b"{", b"["):
            return "a11y"
        if head[:1] == b"<":
            return "html"
    raise SnapshotError("cannot tell the kind of snapshot: send Content-Type text/html, application/json or "
                        "image/png (or ?kind=html|a11y|png)")


# -- settings -----------------------------------------------------------------------------------

@dataclass
class ScreenSettings:
    """What the estate says about one screen of one bot, and what the bot's source adds."""

    selectors: dict  # name -> selectors.Selector
    mask: list
    warning: float
    not_checkable: list = field(default_factory=list)  # botwatch.deps.to_ui.NotCheckable on this screen

    @property
    def extracted(self) -> dict:
        """Name -> FILE:LINE of the selectors read from the bot's source."""
        return {name: sel.origin for name, sel in self.selectors.items() if sel.origin}


def settings_for(bot_cfg, screen: str, extracted=None) -> ScreenSettings:
    """`extracted`: the bot's botwatch.deps.to_ui.UiDependencies, merged under what the estate
    file declares (see merge_extracted)."""
    from .selectors import compile_selectors

    ui = getattr(bot_cfg, "ui", None)
    warning = ui.drift_warning if ui is not None else 0.3
    sc = ui.screens.get(screen) if ui is not None else None
    declared = compile_selectors(sc.selectors) if sc is not None else {}
    mask = [tuple(r) for r in sc.mask] if sc is not None else []
    if extracted is None:
        return ScreenSettings(declared, mask, warning)
    selectors, skipped = merge_extracted(declared, extracted.by_screen.get(screen, []))
    skipped += [n for n in extracted.not_checkable if n.dependency.screen == screen]
    return ScreenSettings(selectors, mask, warning, skipped)


def merge_extracted(declared: dict, found: list) -> tuple[dict, list]:
    """The declared selectors with the extracted ones (botwatch.deps.to_ui.UiSelector) added;
    the estate file wins: an extracted selector that selects as a declared one does (the same
    XPath) is left out, and a declared name is never taken. At most MAX_PER_SCREEN are added
    (their names are metric labels); the others are returned as not checkable."""
    from ..deps.to_ui import MAX_PER_SCREEN, NotCheckable, selector_name
    from .selectors import Selector, to_xpath

    out = dict(declared)
    seen = {sel.xpath for sel in declared.values()}
    skipped = []
    for ui in found:
        syntax, xpath = to_xpath(ui.text)
        if xpath in seen:
            continue
        if len(out) - len(declared) >= MAX_PER_SCREEN:
            skipped.append(NotCheckable(ui.dependency, f"over the {MAX_PER_SCREEN} selectors read from the source "
                                                       "that are checked per screen"))
            continue
        seen.add(xpath)
        name = selector_name(ui.dependency.value, set(out))
        out[name] = Selector(name, ui.text, syntax, xpath, ui.origin)
    return out, skipped


# -- snapshots and baselines ---------------------------------------------------------------------

@dataclass
class Snapshot:
    kind: str
    digest: str
    data: object  # dom.Fingerprint or image.Screenshot
    selectors: dict = field(default_factory=dict)  # name -> drift.SelectorState
    raw: bytes | None = None  # pages only


def _selector_states(root, index: dict, selectors: dict) -> dict:
    from .drift import MAX_TARGETS, SelectorState

    out = {}
    for name, sel in selectors.items():
        found = sel.select(root)
        targets = [index[e] for e in found[:MAX_TARGETS] if e in index]
        out[name] = SelectorState(sel.text, len(found), targets)
    return out


def _parse_page(kind: str, data: bytes):
    from .dom import parse_a11y, parse_html

    return parse_html(data) if kind == "html" else parse_a11y(data)


def read_snapshot(kind: str, data: bytes, settings: ScreenSettings) -> Snapshot:
    """Parse and fingerprint a snapshot; SnapshotError when it cannot be read."""
    if kind not in KINDS:
        raise SnapshotError(f"unknown snapshot kind {kind!r}: use html, a11y or png")
    if isinstance(data, str):
        data = data.encode("utf-8")
    digest = hashlib.sha256(data).hexdigest()
    if kind == "png":
        from .image import parse_png

        return Snapshot(kind, digest, parse_png(data))
    from .dom import fingerprint

    root = _parse_page(kind, data)
    fp, index = fingerprint(root, kind)
    if not len(fp):
        raise SnapshotError("no element to compare: the page is empty")
    return Snapshot(kind, digest, fp, _selector_states(root, index, settings.selectors), raw=data)


@dataclass
class Baseline:
    id: int
    created: float
    source: str | None
    digest: str
    kind: str
    data: object
    sel: dict  # name -> SelectorState, as stored
    raw_compressed: bytes | None  # the page (zlib), None for screenshots and pages kept without it
    _recomputed: dict = field(default_factory=dict)

    def size(self) -> int:
        """Roughly what it takes in memory."""
        raw = len(self.raw_compressed or b"")
        if self.kind == "png":
            return len(self.data.gray) + raw
        return len(self.data) * _BYTES_PER_ELEMENT + raw

    def selectors_for(self, settings: ScreenSettings) -> dict:
        """The declared selectors on the baseline; looked up again in the stored page for those
        declared (or changed) since it was taken."""
        from .drift import SelectorState

        out, missing = {}, {}
        for name, sel in settings.selectors.items():
            got = self.sel.get(name)
            if got is not None and got.text == sel.text:
                out[name] = got
            elif (name, sel.text) in self._recomputed:
                out[name] = self._recomputed[(name, sel.text)]
            else:
                missing[name] = sel
        if missing and self.raw_compressed is not None:
            from .dom import fingerprint

            root = _parse_page(self.kind, zlib.decompress(self.raw_compressed))
            _, index = fingerprint(root, self.kind)
            for name, state in _selector_states(root, index, missing).items():
                self._recomputed[(name, missing[name].text)] = out[name] = state
        elif missing:
            for name, sel in missing.items():
                out[name] = SelectorState(sel.text, 0, [])
        return out


def encode_snapshot(snap: Snapshot, max_bytes: int | None = None) -> tuple[bytes, bytes | None]:
    """(fingerprint blob, raw blob) as the journal stores them, together at most `max_bytes`:
    the page is left out when it does not fit; SnapshotError when the fingerprint alone does not."""
    doc = {"v": FORMAT, "data": snap.data.to_json(),
           "sel": {k: {"text": s.text, "count": s.count, "targets": s.targets} for k, s in snap.selectors.items()}}
    fp = zlib.compress(json.dumps(doc, separators=(",", ":")).encode("utf-8"), 6)
    if max_bytes is not None and len(fp) > max_bytes:
        raise SnapshotError(f"too large to keep as a baseline: its fingerprint takes {len(fp):,} bytes compressed, "
                            f"more than agent.limits.max_baseline_bytes ({max_bytes:,})")
    raw = zlib.compress(snap.raw, 6) if snap.raw is not None else None
    if raw is not None and max_bytes is not None and len(fp) + len(raw) > max_bytes:
        raw = None  # kept as its fingerprint alone
    return fp, raw


def decode_baseline(row: dict, kind: str) -> Baseline:
    from .drift import SelectorState

    doc = json.loads(zlib.decompress(row["fingerprint"]))
    if doc.get("v") != FORMAT:
        raise SnapshotError(f"baseline stored in format {doc.get('v')}, this version reads {FORMAT}: "
                            "take it again with `botwatch drift accept`")
    if kind == "png":
        from .image import Screenshot

        data = Screenshot.from_json(doc["data"])
    else:
        from .dom import Fingerprint

        data = Fingerprint.from_json(doc["data"])
    sel = {k: SelectorState(v["text"], v["count"], list(v["targets"])) for k, v in doc.get("sel", {}).items()}
    return Baseline(row["id"], row["created"], row.get("source"), row.get("digest") or "", kind, data, sel,
                    row.get("raw"))


# -- reports -------------------------------------------------------------------------------------

@dataclass
class Report:
    bot: str
    screen: str
    kind: str
    score: float
    drift_warning: float
    baseline: bool  # this snapshot became the baseline
    selectors: dict  # declared name -> elements matched
    changes: list
    baseline_time: float | None
    time: float
    run_id: str | None = None
    selector_text: dict = field(default_factory=dict)  # declared name -> the selector
    extracted: dict = field(default_factory=dict)  # name -> FILE:LINE of the selectors read from the source
    not_checkable: list = field(default_factory=list)  # the source's selectors on this screen not checked

    @property
    def warning(self) -> bool:
        return self.score >= self.drift_warning

    def to_json(self) -> dict:
        out = {"bot": self.bot, "screen": self.screen, "kind": self.kind, "score": self.score,
               "warning": self.warning, "drift_warning": self.drift_warning, "baseline": self.baseline,
               "selectors": dict(self.selectors), "changes": list(self.changes),
               "baseline_time": self.baseline_time, "time": self.time}
        if self.run_id:
            out["run_id"] = self.run_id
        if self.extracted:
            out["extracted"] = dict(self.extracted)
        if self.not_checkable:
            out["not_checkable"] = [n.to_json() for n in self.not_checkable]
        return out


def compare(base: Baseline, snap: Snapshot, settings: ScreenSettings) -> tuple[float, list[str]]:
    """(score, what changed) of a snapshot against its baseline."""
    if base.kind != snap.kind:
        raise SnapshotError(f"a {snap.kind} snapshot cannot be compared with a {base.kind} baseline")
    if base.digest == snap.digest:
        return 0.0, []  # the very same bytes
    if snap.kind == "png":
        from .image import compare_images

        diff = compare_images(base.data, snap.data, settings.mask)
        return diff.score, diff.changes
    from .drift import compare_dom

    base_sel = base.selectors_for(settings)
    diff = compare_dom(base.data, base_sel, snap.data, snap.selectors)
    notes = list(diff.changes)
    for name, cs in snap.selectors.items():
        bs = base_sel.get(name)
        if cs.count == 0 and bs is not None and bs.count == 0:
            notes.append(f"selector {name} ({cs.text}) matches nothing, nor did it in the baseline")
    return diff.score, notes


def _first_notes(snap: Snapshot) -> list[str]:
    notes = ["taken as the baseline of this screen"]
    for name, s in snap.selectors.items():
        if s.count != 1:
            notes.append(f"selector {name} ({s.text}) matches {s.count} elements in the baseline: check it")
    return notes


# -- the probe -----------------------------------------------------------------------------------

class DriftProbe:
    """Checks snapshots against the baselines in the journal (in memory without one)."""

    def __init__(self, estate, journal=None, *, clock: Callable[[], float] = time.time, dependencies=None):
        """`dependencies`: the agent's botwatch.deps.index.DependencyIndex; the selectors it has
        read from each bot's source are checked with those the estate file declares (its latest
        reading is taken, never waited for)."""
        self.estate, self.journal, self.clock = estate, journal, clock
        self.dependencies = dependencies
        self._lock = threading.RLock()
        self._settings: dict[tuple[str, str], tuple[object, ScreenSettings]] = {}
        self._extracted: dict[str, tuple[object, object]] = {}  # bot -> (its reading, UiDependencies)
        self._cache: dict[tuple[str, str, str], Baseline] = {}
        self._cached_bytes = 0
        self._memory: dict[tuple[str, str, str], dict] = {}  # no journal: baselines as rows

    def settings(self, bot: str, screen: str) -> ScreenSettings:
        """Worked out again when the dependency index has read the bot's source anew."""
        reading, extracted = self._extracted_for(bot)
        key = (bot, screen)
        got = self._settings.get(key)
        if got is None or got[0] is not reading:
            got = (reading, settings_for(self.estate.bot(bot), screen, extracted))
            if len(self._settings) > 10_000:
                self._settings.clear()
            self._settings[key] = got
        return got[1]

    def _extracted_for(self, bot: str) -> tuple[object, object]:
        """(the index's latest reading of the bot, its UiDependencies), (None, None) without one."""
        latest = self.dependencies.latest if self.dependencies is not None else None
        reading = latest.get(bot) if latest is not None else None
        if reading is None:
            return None, None
        got = self._extracted.get(bot)
        if got is None or got[0] is not reading:
            from ..deps.to_ui import ui_dependencies

            got = (reading, ui_dependencies(reading.extraction.dependencies))
            self._extracted[bot] = got
        return got

    # -- baselines ------------------------------------------------------------------------
    def _row(self, key: tuple[str, str, str], header_only: bool) -> dict | None:
        if self.journal is None:
            return self._memory.get(key)
        return self.journal.ui_baseline(*key, header_only=header_only)

    def baseline(self, bot: str, screen: str, kind: str) -> Baseline | None:
        key = (bot, screen, kind)
        head = self._row(key, header_only=True)
        if head is None:
            self._uncache(key)
            return None
        cached = self._cache.get(key)
        if cached is not None and cached.id == head["id"]:
            return cached
        row = self._row(key, header_only=False)
        if row is None:
            return None
        base = decode_baseline(row, kind)
        self._uncache(key)
        while self._cache and (len(self._cache) >= 256 or self._cached_bytes + base.size() > CACHE_BYTES):
            self._uncache(next(iter(self._cache)))  # the oldest first
        self._cache[key] = base
        self._cached_bytes += base.size()
        return base

    def _uncache(self, key) -> None:
        got = self._cache.pop(key, None)
        if got is not None:
            self._cached_bytes -= got.size()

    def _screens_with_baselines(self, j, bot: str) -> set[str]:
        if j is None:
            return {s for (b, s, _) in self._memory if b == bot}
        return set(j.ui_baseline_screens(bot))

    def _make_room(self, j, bot: str, screen: str) -> None:
        """ScreenLimitReached when `screen` would be one screen too many for the bot's baselines
        (screens declared under `ui.screens` are not counted: the estate file bounds them)."""
        ui = getattr(self.estate.bot(bot), "ui", None)
        declared = ui.screens if ui is not None else {}
        if screen in declared:
            return
        have = self._screens_with_baselines(j, bot)
        if screen in have:
            return
        limit = self.estate.agent.limits.max_screens
        if len(have.difference(declared)) >= limit:
            raise ScreenLimitReached(
                f"bot {bot} has baselines for as many screens as agent.limits.max_screens allows ({limit}): none is "
                f"taken for another; the screens it has are still compared (declare this one under ui.screens or "
                f"raise the limit)")

    def _encode(self, snap: Snapshot) -> tuple[bytes, bytes | None]:
        return encode_snapshot(snap, self.estate.agent.limits.max_baseline_bytes)

    def _store(self, j, key, snap: Snapshot, blobs: tuple[bytes, bytes | None], now: float, source: str | None,
               replace: bool) -> bool:
        fp, raw = blobs
        if j is None:
            if key in self._memory and not replace:
                return False
            self._memory[key] = {"id": len(self._memory) + 1 + int(now * 1000), "created": now, "source": source,
                                 "digest": snap.digest, "fingerprint": fp, "raw": raw}
            return True
        return j.put_ui_baseline(*key, created=now, digest=snap.digest, fingerprint=fp, raw=raw, source=source,
                                 replace=replace)

    # -- checking -------------------------------------------------------------------------
    def check(self, bot: str, screen: str, kind: str, data: bytes, *, run_id: str | None = None,
              bootstrap: bool = True, source: str | None = "api") -> Report:
        """Score a snapshot against the screen's baseline. Without a baseline the snapshot
        becomes it (`bootstrap`, the agent) or NoBaseline is raised (`drift check`). MissingExtra
        without the drift extra (lxml, cssselect, Pillow)."""
        require("drift", DRIFT)
        settings = self.settings(bot, screen)
        key = (bot, screen, kind)
        with _reading:
            if bootstrap and self._row(key, header_only=True) is None:
                self._make_room(self.journal, bot, screen)  # before reading: a refused screen costs no parsing
            snap = read_snapshot(kind, data, settings)
            now = self.clock()
            counts = {k: s.count for k, s in snap.selectors.items()}
            texts = {k: s.text for k, s in snap.selectors.items()}
            with self._lock:
                base = self.baseline(*key)
                if base is None:
                    if not bootstrap:
                        raise NoBaseline(f"no {kind} baseline for bot {bot} screen {screen}")
                    blobs = self._encode(snap)
                    if self.journal is None:
                        self._make_room(None, bot, screen)
                        stored = self._store(None, key, snap, blobs, now, source, replace=False)
                    else:
                        with self.journal.transaction() as j:
                            self._make_room(j, bot, screen)  # again, in the transaction: posts race
                            stored = self._store(j, key, snap, blobs, now, source, replace=False)
                    if stored:
                        return Report(bot, screen, kind, 0.0, settings.warning, True, counts, _first_notes(snap),
                                      now, now, run_id, texts, settings.extracted, settings.not_checkable)
                    base = self.baseline(*key)  # another snapshot became the baseline meanwhile
                    if base is None:
                        raise NoBaseline(f"no {kind} baseline for bot {bot} screen {screen}")
            score, changes = compare(base, snap, settings)
        return Report(bot, screen, kind, score, settings.warning, False, counts, changes, base.created, now, run_id,
                      texts, settings.extracted, settings.not_checkable)

    def ingest(self, state, bot: str, screen: str, kind: str, data: bytes, *, run_id: str | None = None,
               source: str = "api") -> Report:
        """Check a snapshot and apply the result to the estate state (a UiSnapshot event);
        SnapshotError for an unreadable snapshot, JournalError when the journal cannot be written."""
        from ..core.events import UiSnapshot

        report = self.check(bot, screen, kind, data, run_id=run_id, bootstrap=True, source=source)
        state.apply([UiSnapshot(bot=bot, time=report.time, screen=screen, kind=kind, score=report.score,
                                selectors=dict(report.selectors), baseline_time=report.baseline_time,
                                run_id=run_id, source=source)])
        return report

    def set_baseline(self, bot: str, screen: str, kind: str, data: bytes, *, replace: bool, accept: bool,
                     source: str = "cli") -> Report:
        """Take a snapshot as the screen's baseline (`drift baseline`; `replace` for --force) or
        accept it in place of the current one (`drift accept`). Replacing or accepting records a
        flip of kind "ui"; the screen's latest drift becomes 0 against the new baseline."""
        from ..state.journal import UI_FLIP, Flip

        require("drift", DRIFT)
        settings = self.settings(bot, screen)
        with _reading:
            snap = read_snapshot(kind, data, settings)
            blobs = self._encode(snap)
        now = self.clock()
        key = (bot, screen, kind)
        counts = {k: s.count for k, s in snap.selectors.items()}
        texts = {k: s.text for k, s in snap.selectors.items()}
        if self.journal is None:
            with self._lock:
                if key in self._memory and not (replace or accept):
                    raise BaselineExists(self._memory[key]["created"])
                self._store(None, key, snap, blobs, now, source, replace=True)
        else:
            with self._lock, self.journal.transaction() as j:
                existing = j.ui_baseline(*key, header_only=True)
                if existing is not None and not (replace or accept):
                    raise BaselineExists(existing["created"])
                latest = j.ui_drift_latest(*key)
                self._store(j, key, snap, blobs, now, source, replace=True)
                if existing is not None or accept:
                    if existing is None:
                        old = "none"
                    elif latest is not None and latest["score"] >= settings.warning:
                        old = "drifting"
                    else:
                        old = "steady"
                    verb = "accepted" if accept else "replaced"
                    j.insert_flip(Flip(bot, now, old, "accepted", f"ui baseline {verb}: screen {screen} ({kind})",
                                       kind=UI_FLIP))
                j.set_ui_drift(bot, screen, kind, time=now, score=0.0, baseline_time=now, run_id=None,
                               selectors=counts, source=source)
        notes = _first_notes(snap)
        notes[0] = "taken as the new baseline of this screen" if (replace or accept) else notes[0]
        return Report(bot, screen, kind, 0.0, settings.warning, True, counts, notes, now, now, None, texts,
                      settings.extracted, settings.not_checkable)
