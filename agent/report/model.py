"""The report's plain data model: what the renderers (html, md, csv) draw, nothing they compute."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core import vocabulary

REASONS = vocabulary.REASONS  # the renderers read it from here


@dataclass
class Figures:
    """Reliability figures of one bot or one group of bots over the window."""

    runs: int = 0
    successes: int = 0
    failures: int = 0
    failures_by_reason: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))
    missed_runs: int = 0
    recoveries: int = 0  # incidents (failing spells) that recovered inside the window
    recovery_seconds: float = 0.0  # their summed durations
    open_incidents: int = 0  # failing spells still open at the end of the window
    uptimes: int = 0  # spells between a recovery and the next failure, inside the window
    uptime_seconds: float = 0.0
    slo: float = 0.95

    @property
    def success_ratio(self) -> float | None:
        return self.successes / self.runs if self.runs else None

    @property
    def error_budget_left(self) -> float | None:
        """1 - failed share / allowed failed share: 1.0 untouched, 0 spent, negative overspent."""
        ratio = self.success_ratio
        if ratio is None or self.slo >= 1.0:
            return None
        return 1.0 - (1.0 - ratio) / (1.0 - self.slo)

    @property
    def mttr_seconds(self) -> float | None:
        return self.recovery_seconds / self.recoveries if self.recoveries else None

    @property
    def mtbf_seconds(self) -> float | None:
        return self.uptime_seconds / self.uptimes if self.uptimes else None

    def add(self, other: "Figures") -> None:
        for name in ("runs", "successes", "failures", "missed_runs", "recoveries", "recovery_seconds",
                     "open_incidents", "uptimes", "uptime_seconds"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for reason, n in other.failures_by_reason.items():
            self.failures_by_reason[reason] = self.failures_by_reason.get(reason, 0) + n


@dataclass
class BotRow:
    bot: str
    team: str
    platform: str
    lifecycle: str
    owner: str | None
    figures: Figures
    fragility: float | None = None
    governance_failed: list[str] = field(default_factory=list)
    last_run: float | None = None  # end of its latest finished run, whenever that was
    scheduled: bool | None = None  # on a schedule (the estate file's or its control plane's); None: not known


@dataclass
class GroupRow:
    dimension: str  # team | platform | lifecycle
    name: str
    bots: int
    figures: Figures


@dataclass
class DriftWarning:
    bot: str
    screen: str
    kind: str
    score: float
    time: float
    threshold: float


@dataclass
class QueueRow:
    """A work queue of a control plane: its items that ended in the window (whole UTC days)."""

    platform: str
    connection: str
    folder: str
    queue: str
    team: str
    successful: int = 0
    failed: int = 0
    failed_by_exception: dict[str, int] = field(default_factory=dict)  # business, application, unknown
    retries: int = 0
    seconds: float = 0.0

    @property
    def success_ratio(self) -> float | None:
        done = self.successful + self.failed
        return self.successful / done if done else None

    @property
    def mean_seconds(self) -> float | None:
        done = self.successful + self.failed
        return self.seconds / done if done else None


@dataclass
class DuplicateRow:
    """Two bots that seem to do the same work (botwatch.deps.duplicates): score and top evidence."""

    bot_a: str
    bot_b: str
    score: float
    evidence: list[str] = field(default_factory=list)


@dataclass
class ApplicationRow:
    """An application or site (a URL's host) and the bots whose sources depend on it."""

    name: str
    kind: str  # application | site
    bots: list[tuple[str, str, str]] = field(default_factory=list)  # (bot, team, criticality), most critical first


@dataclass
class Period:
    """One calendar week or month of the window (trends.py): the figures of what happened in it."""

    label: str  # 2026-W23 (ISO week) or 2026-06
    start: float  # the calendar period, UTC: [start, end)
    end: float
    first: float  # what the figures cover: (first, last], the period clipped to the window
    last: float
    figures: Figures
    bots: int = 0  # the estate's size: bots that existed by the end of the period
    groups: dict[tuple[str, str], GroupRow] = field(default_factory=dict)  # (platform | lifecycle, name)
    items_from_runs: int = 0  # work items the bots' runs reported processing
    items_from_queues: int | None = 0  # control-plane queue items that ended successfully; None: not in the source

    @property
    def partial(self) -> bool:
        """The window covers only part of the period."""
        return self.first > self.start or self.last < self.end

    @property
    def items_processed(self) -> int:
        return self.items_from_runs + (self.items_from_queues or 0)

    def group(self, dimension: str) -> list[GroupRow]:
        return [self.groups[k] for k in sorted(self.groups) if k[0] == dimension]


@dataclass
class Report:
    start: float
    end: float
    slo: float
    source: str
    bots: list[BotRow] = field(default_factory=list)
    groups: list[GroupRow] = field(default_factory=list)
    estate: Figures = field(default_factory=Figures)
    drift_warnings: list[DriftWarning] = field(default_factory=list)
    fragile: list[tuple[str, float]] = field(default_factory=list)  # top 10, most fragile first
    prototypes_on_schedule: list[tuple[str, str]] = field(default_factory=list)  # (bot, schedule)
    unregistered: list[dict] | None = None  # None: not asked (no --agent) or not reachable
    governance: dict[str, list[tuple[str, str, str]]] | None = None  # bot -> [(check, detail, where)]
    queues: list[QueueRow] | None = None  # None: the source keeps no work-queue history (Prometheus)
    duplicates: list[DuplicateRow] | None = None  # None: no estate file, or no bot in it has a `source:`
    applications: list[ApplicationRow] | None = None  # most depended-on first; None: no estate file to read
    period: str = "week"  # of the trends: week | month
    trends: list[Period] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def group(self, dimension: str) -> list[GroupRow]:
        return [g for g in self.groups if g.dimension == dimension]

    def trend_names(self, dimension: str) -> list[str]:
        """The platforms (or lifecycles) that have bots in any period, for the trend tables' columns."""
        return sorted({k[1] for p in self.trends for k in p.groups if k[0] == dimension})
