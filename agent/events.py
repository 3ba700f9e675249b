"""Events: the only thing sources emit and estate state consumes.

Each carries the bot, a run id where there is one, and the time it happened at the source
(not the time it was received), so replays after an outage keep their original timestamps.
The wire form is a plain dict with a `type`; the agent's API validates it (see api.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Literal

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


Event = RunStarted | RunFinished | ResourceSample
EVENT_TYPES: dict[str, type] = {"run_started": RunStarted, "run_finished": RunFinished, "resource_sample": ResourceSample}


def to_wire(event: Event) -> dict:
    return {k: v for k, v in asdict(event).items() if v is not None}


def from_wire(data: dict) -> Event:
    """Build an event from an already validated wire dict (unknown keys are ignored)."""
    cls = EVENT_TYPES[data["type"]]
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})
