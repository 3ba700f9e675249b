"""The estate's dependencies: each bot's `source:` read once (per change), and the questions asked
of them: what a bot depends on (`botwatch deps BOT`) and which bots a change would hit
(`botwatch impact TEXT`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import extract
from .model import KINDS, Dependency, Extraction, Problem

if TYPE_CHECKING:
    from ..config.estate import BotConfig, LoadedEstate

CRITICALITY_ORDER = ("high", "medium", "low")  # most critical first; none given comes last


@dataclass
class BotDependencies:
    bot: str
    sources: list[str]  # as the estate file names them
    extraction: Extraction = field(default_factory=Extraction)

    def to_json(self) -> dict[str, Any]:
        return {"bot": self.bot, "sources": self.sources, "files_read": self.extraction.files_read,
                "dependencies": [_dep_json(d) for d in sorted(set(self.extraction.dependencies),
                                                               key=lambda d: (KINDS.index(d.kind), d))],
                "problems": [{"file": p.file, "line": p.line, "message": p.message}
                             for p in sorted(self.extraction.problems)]}


def _dep_json(d: Dependency) -> dict[str, Any]:
    out = {"kind": d.kind, "value": d.value, "file": d.file, "line": d.line, "tool": d.tool}
    for key in ("context", "screen", "app"):
        if getattr(d, key):
            out[key] = getattr(d, key)
    return out


def bot_dependencies(loaded: LoadedEstate, bot: BotConfig) -> BotDependencies:
    """What `bot`'s sources give; a source that does not exist is a problem, not an error."""
    sources = list(bot.source or [])
    found = BotDependencies(bot.name, sources)
    for s in sources:
        path = loaded.resolve(s)
        if not path.exists():
            found.extraction.problems.append(Problem(s, 0, "source not found"))
            continue
        part = extract(path)
        prefix = _prefix(path, s)
        for d in part.dependencies:
            found.extraction.dependencies.append(_under(d, prefix))
        found.extraction.problems += [Problem(prefix + p.file if p.file != "." else s, p.line, p.message)
                                      for p in part.problems]
        found.extraction.steps += part.steps
        found.extraction.files_read += part.files_read
    return found


def _prefix(path: Path, given: str) -> str:
    """File names of an extraction are relative to the folder read (or the file's folder): the
    estate's own spelling of that folder is put before them, so that they read as the estate names them."""
    folder = given if path.is_dir() else str(Path(given).parent)
    folder = folder.replace("\\", "/").rstrip("/")
    return "" if folder in ("", ".") else folder + "/"


def _under(d: Dependency, prefix: str) -> Dependency:
    if not prefix:
        return d
    return Dependency(d.kind, d.value, prefix + d.file, d.line, d.tool, d.context, d.screen, d.app)


@dataclass(frozen=True)
class Hit:
    bot: str
    dependency: Dependency


def impact(estate_deps: list[BotDependencies], text: str, kinds: tuple[str, ...] = ()) -> list[Hit]:
    """Every dependency whose value, screen or application holds `text` (case-insensitive), in
    the bots given: the bots a change there would hit."""
    needle = text.casefold()
    hits = []
    for bd in estate_deps:
        for d in sorted(set(bd.extraction.dependencies)):
            if kinds and d.kind not in kinds:
                continue
            if any(needle in v.casefold() for v in (d.value, d.screen, d.app) if v):
                hits.append(Hit(bd.bot, d))
    return hits


def impact_answer(bots: list[BotConfig], estate_deps: list[BotDependencies], text: str,
                  kinds: tuple[str, ...] = ()) -> dict[str, Any]:
    """The bots a change to `text` would hit, most critical first, each with its owner, team,
    criticality and the dependencies that match: `botwatch impact --json` and the agent's
    /api/v1/impact. `estate_deps`: the bots that have a source."""
    configs = {b.name: b for b in bots}
    by_bot: dict[str, list[Dependency]] = {}
    for h in impact(estate_deps, text, kinds):
        if h.bot in configs:
            by_bot.setdefault(h.bot, []).append(h.dependency)
    rows = [{"bot": name, "owner": configs[name].owner, "team": configs[name].team,
             "criticality": configs[name].criticality,
             "dependencies": [{"kind": d.kind, "value": d.value, "file": d.file, "line": d.line} for d in ds]}
            for name, ds in sorted(by_bot.items(), key=lambda kv: (criticality_rank(configs[kv[0]].criticality),
                                                                   kv[0]))]
    return {"query": text, "kinds": list(kinds), "bots": rows, "bots_read": len(estate_deps)}


def criticality_rank(criticality: str | None) -> int:
    return CRITICALITY_ORDER.index(criticality) if criticality in CRITICALITY_ORDER else len(CRITICALITY_ORDER)
