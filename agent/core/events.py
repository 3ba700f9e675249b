"""Events: the only thing sources emit and estate state consumes.

Each carries the bot, a run id where there is one, and the time it happened at the source
(not the time it was received), so replays after an outage keep their original timestamps.
The wire form is a plain dict with a `type`; the agent's API validates it (see api.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from .vocabulary import LookupKind, SnapshotKind

Outcome = Literal["success", "failure", "unknown"]


@dataclass(frozen=True, slots=True)
class RunStarted:
    bot: str
    run_id: str
    time: float
    host: str | None = None
    source: str = "wrapper"
    type: Literal["run_started"] = "run_started"


@dataclass(frozen=True, slots=True)
class RunFinished:
    bot: str
    run_id: str
    ended: float
    outcome: Outcome
    started: float | None = None
    exit_status: int | None = None
    reason: str | None = None
    signal: int | None = None
    timed_out: bool = False
    host: str | None = None
    output_tail: str | None = None
    cpu_seconds: float | None = None
    peak_rss_bytes: int | None = None
    source: str = "wrapper"
    screen: str | None = None  # a ui_drift failure: the screen and selector that failed, when known
    selector: str | None = None
    items_processed: int | None = None  # work items the run reported (None: it reported none)
    items_failed: int | None = None
    empty: bool = False  # set by the agent: a success that processed fewer items than the bot's min_items
    type: Literal["run_finished"] = "run_finished"

    @property
    def duration(self) -> float | None:
        return None if self.started is None else max(0.0, self.ended - self.started)


@dataclass(frozen=True, slots=True)
class ResourceSample:
    """CPU and memory of a running bot's whole process tree."""

    bot: str
    run_id: str
    time: float
    cpu_seconds: float
    rss_bytes: int
    processes: int = 1
    source: str = "wrapper"
    type: Literal["resource_sample"] = "resource_sample"


@dataclass(frozen=True, slots=True)
class StepFinished:
    """A known step of a run (an SDK step, a Robot Framework task or keyword, a transaction)."""

    bot: str
    run_id: str
    name: str
    ended: float
    status: Literal["pass", "fail", "skip"] = "pass"
    started: float | None = None
    message: str | None = None
    source: str = "api"
    parent: str | None = None  # the name of the run's step this one is part of (a task's keyword)
    type: Literal["step"] = "step"


@dataclass(frozen=True, slots=True)
class FailureNoted:
    """The bot says why its run is failing (SDK `botwatch.fail`, a listener); the run's
    failure reason when it finishes without one."""

    bot: str
    run_id: str
    time: float
    reason: str
    message: str | None = None
    source: str = "api"
    type: Literal["failure"] = "failure"


@dataclass(frozen=True, slots=True)
class UiLookup:
    """One look-up of a UI element by a bot (selector health)."""

    bot: str
    time: float
    screen: str
    found: bool
    run_id: str | None = None
    selector: str | None = None
    kind: LookupKind | None = None
    wait: float | None = None
    healed: bool = False
    source: str = "api"
    type: Literal["ui_lookup"] = "ui_lookup"


@dataclass(frozen=True, slots=True)
class UiSnapshot:
    """A snapshot of a screen (HTML, accessibility tree or screenshot) scored against its
    baseline: the drift score in [0, 1] and how many elements each declared selector matched
    (by the selector's declared name; empty for a screenshot)."""

    bot: str
    time: float
    screen: str
    kind: SnapshotKind
    score: float
    selectors: dict[str, int] = field(default_factory=dict)  # elements each declared selector matched
    baseline_time: float | None = None
    run_id: str | None = None
    source: str = "api"
    type: Literal["ui_snapshot"] = "ui_snapshot"


@dataclass(frozen=True, slots=True)
class LogNoted:
    """A log excerpt sent with a check-in (`/ping/.../log`): kept, changes no state."""

    bot: str
    time: float
    excerpt: str
    run_id: str | None = None
    source: str = "ping"
    type: Literal["log"] = "log"


@dataclass(frozen=True, slots=True)
class SpoolDropped:
    """A client's spool overflowed: it dropped its `count` oldest events (counted, never silent)."""

    count: int
    time: float
    host: str | None = None
    source: str = "spool"
    type: Literal["spool_dropped"] = "spool_dropped"


Event = (RunStarted | RunFinished | ResourceSample | StepFinished | FailureNoted | UiLookup | UiSnapshot | LogNoted
         | SpoolDropped)
EVENT_TYPES: dict[str, type[Event]] = {
    "run_started": RunStarted, "run_finished": RunFinished, "resource_sample": ResourceSample,
    "step": StepFinished, "failure": FailureNoted, "ui_lookup": UiLookup, "ui_snapshot": UiSnapshot,
    "log": LogNoted, "spool_dropped": SpoolDropped,
}


def to_wire(event: Event) -> dict[str, Any]:  # JSON values
    """The event as the events API takes it: a run's items as `items: {processed, failed}`;
    `empty` left out (the agent decides it)."""
    data = {k: v for k, v in asdict(event).items() if v is not None}
    if isinstance(event, RunFinished):
        data.pop("empty", None)
        processed, failed = data.pop("items_processed", None), data.pop("items_failed", None)
        if processed is not None or failed is not None:
            data["items"] = {"processed": processed or 0, "failed": failed or 0}
    return data


def from_wire(data: dict[str, Any]) -> Event:
    """Build an event from an already validated wire dict (unknown keys are ignored; a run's
    `empty` is the agent's to decide, never taken from the wire)."""
    cls = EVENT_TYPES[data["type"]]
    names = {f.name for f in fields(cls)} - {"empty"}
    values = {k: v for k, v in data.items() if k in names}
    items = data.get("items")
    if cls is RunFinished and isinstance(items, dict):
        values["items_processed"], values["items_failed"] = items.get("processed", 0), items.get("failed", 0)
    return cls(**values)
