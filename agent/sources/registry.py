"""The agent's sources, by name: each registers itself when its module is imported.

The built-in sources are imported on first use (they import the state, which asks this module
for the labels: importing them here at import time would be circular); more source modules are
named in the estate file (`agent.source_modules`) and imported by `load_modules`.

The label values of `botwatch_agent_events_total{source}` and
`botwatch_agent_parse_errors_total{source}` are those the agent's clients send plus those the
registered sources declare: a label nobody declared is counted as "other" (events), so a client
cannot grow a label's values without end.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol, TypeVar

if TYPE_CHECKING:
    from ..config.estate import LoadedEstate
    from ..state.journal import Journal
    from ..state.runtime import EstateState
    from .base import PeriodicTask


class SourceClass(Protocol):
    """What the registry and the agent use of a source class (`Source` subclasses have it all)."""

    @property
    def name(self) -> str: ...

    @property
    def event_labels(self) -> tuple[str, ...]: ...

    @property
    def error_labels(self) -> tuple[str, ...]: ...

    def wanted(self, loaded: LoadedEstate) -> bool: ...

    def from_estate(self, loaded: LoadedEstate, state: EstateState, journal: Journal | None,
                    **deps: object) -> PeriodicTask: ...


SourceClassT = TypeVar("SourceClassT", bound=SourceClass)

BUILTIN_MODULES = (
    "botwatch.sources.processes",
    "botwatch.sources.logs",
    "botwatch.sources.snapshots",
    "botwatch.sources.uipath_orchestrator",
    "botwatch.sources.blueprism",
    "botwatch.sources.automationanywhere",
    "botwatch.sources.powerautomate",
    "botwatch.sources.robocorp",
)
# what the agent's clients (HTTP API, check-ins, SDKs, deliverers, wrapper) count under
CLIENT_EVENT_LABELS = ("api", "ping", "robot", "sdk", "spool", "wrapper")
CLIENT_ERROR_LABELS = ("api", "ping")
OTHER = "other"

_classes: dict[str, SourceClass] = {}
_lock = threading.RLock()
_builtins_loaded = False
_labels: tuple[tuple[str, ...], frozenset[str], tuple[str, ...]] | None = None  # events, known events, errors


def register(cls: SourceClassT) -> SourceClassT:
    """Adds a source class (called by `Source.__init_subclass__`; usable as a decorator on a
    class that is not a Source but has its `name`, `event_labels`, `error_labels`, `wanted` and
    `from_estate`). A second class of the same name replaces the first (a reloaded module)."""
    global _labels
    with _lock:
        _classes[cls.name] = cls
        _labels = None
    return cls


def _load_builtins() -> None:
    global _builtins_loaded
    if _builtins_loaded:
        return
    with _lock:
        if not _builtins_loaded:
            for module in BUILTIN_MODULES:
                importlib.import_module(module)
            _builtins_loaded = True


def load_modules(names: Iterable[str]) -> None:
    """Imports the source modules named (dotted); raises ImportError for one that is not found."""
    _load_builtins()
    for name in names:
        importlib.import_module(name)


def sources() -> dict[str, SourceClass]:
    """Every registered source class, by name."""
    _load_builtins()
    with _lock:
        return dict(_classes)


def wanted(loaded: LoadedEstate) -> list[SourceClass]:
    """The source classes this estate (a LoadedEstate) asks for, in registration order."""
    return [cls for cls in sources().values() if cls.wanted(loaded)]


def _ordered(labels: Iterable[str]) -> tuple[str, ...]:
    plain = sorted(x for x in labels if ":" not in x)
    return (*plain, *sorted(x for x in labels if ":" in x))


def _compute() -> tuple[tuple[str, ...], frozenset[str], tuple[str, ...]]:
    global _labels
    if _labels is None:
        classes = sources()
        with _lock:
            events = _ordered({*CLIENT_EVENT_LABELS, *(x for c in classes.values() for x in c.event_labels)})
            errors = _ordered({*CLIENT_ERROR_LABELS, *(x for c in classes.values() for x in c.error_labels)})
            _labels = ((*events, OTHER), frozenset(events) | {OTHER}, errors)
    return _labels


def event_labels() -> tuple[str, ...]:
    """The values of botwatch_agent_events_total{source}, "other" last."""
    return _compute()[0]


def event_label(source: str) -> str:
    """`source` when it is a declared label, else "other"."""
    return source if source in _compute()[1] else OTHER


def error_labels() -> tuple[str, ...]:
    """The values of botwatch_agent_parse_errors_total{source} exported from the start (at 0)."""
    return _compute()[2]
