"""The read model: read-only snapshots of the bots, taken from the estate state for the
exporters, the status page, `botwatch status` and the API. Nothing read here changes the state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..config.estate import BotConfig

if TYPE_CHECKING:
    from .runtime import BotRuntime, UiScreen


@dataclass(frozen=True, slots=True)
class BotView:
    """A read-only snapshot of one bot, for exporters and `botwatch status`."""

    name: str
    cfg: BotConfig
    state: str
    state_since: float
    state_why: str
    runs_total: int
    failures: dict[str, int]
    bucket_counts: tuple[int, ...]
    duration_sum: float
    duration_count: int
    last_run_duration: float | None
    last_run_end: float | None
    last_outcome: str | None
    last_reason: str | None
    last_success: float | None
    last_failure: float | None
    consecutive_failures: int
    runs_in_progress: int
    oldest_active_start: float | None
    next_due: float | None
    missed_runs_total: int
    cpu_seconds_total: float
    resident_memory_bytes: int
    ui: dict[str, UiScreen]
    ui_screens_overflowed: int
    hung: bool = False  # an active run is older than max_runtime
    processes: int = 0  # processes in the active runs' trees
    last_ui_failure: tuple[str | None, str | None] | None = None  # (screen, selector) of the latest ui_drift failure
    items_processed_total: int = 0
    items_failed_total: int = 0
    empty_runs_total: int = 0
    last_empty: bool = False  # the latest run was a success that processed fewer items than min_items
    scheduled: bool = False  # on a schedule: the estate file's, or its control plane's
    last_run: tuple[str, float] | None = None  # (run id, end) of the latest finished run
    last_failed_run: tuple[str, str, float] | None = None  # (run id, reason, end) of the latest failed run

    @classmethod
    def of(cls, bot: BotRuntime, now: float) -> BotView:
        state, since, why = bot.status(now)
        return cls(
            bot.cfg.name, bot.cfg, state, since, why, bot.runs_total, dict(bot.failures),
            tuple(bot.bucket_counts), bot.duration_sum, bot.duration_count, bot.last_run_duration,
            bot.last_run_end, bot.last_outcome, bot.last_reason, bot.last_success, bot.last_failure,
            bot.consecutive_failures, len(bot.active), min(bot.active.values()) if bot.active else None,
            None if bot.cfg.paused else bot.next_due(bot.maintenance(now)[1]), bot.missed_runs_total, bot.cpu_seconds_total,
            bot.resident_memory_bytes, {k: v.copy() for k, v in bot.ui.items()} if bot.ui else {},
            bot.ui_screens_overflowed, hung=bot.hung(now), processes=bot.processes,
            last_ui_failure=bot.last_ui_failure if bot.last_reason == "ui_drift" else None,
            items_processed_total=bot.items_processed_total, items_failed_total=bot.items_failed_total,
            empty_runs_total=bot.empty_runs_total, last_empty=bot.last_empty,
            scheduled=bool(bot.cfg.schedule or bot.cfg.every) or bot.platform_scheduled,
            last_run=bot.last_run, last_failed_run=bot.last_failed_run,
        )

    def to_json(self) -> dict[str, Any]:
        c = self.cfg
        return {
            "bot": self.name, "team": c.team, "owner": c.owner, "platform": c.platform,
            "lifecycle": c.lifecycle, "criticality": c.criticality, "runbook": c.runbook,
            "state": self.state, "state_since": self.state_since, "state_why": self.state_why,
            "runs_total": self.runs_total, "failures": self.failures,
            "last_run_end": self.last_run_end, "last_run_duration": self.last_run_duration,
            "last_outcome": self.last_outcome, "last_reason": self.last_reason,
            "last_success": self.last_success, "last_failure": self.last_failure,
            "consecutive_failures": self.consecutive_failures, "runs_in_progress": self.runs_in_progress,
            "next_due": self.next_due, "grace": c.grace if (c.schedule or c.every) else None,
            "missed_runs_total": self.missed_runs_total,
            "hung": self.hung, "processes": self.processes,
            "items_processed_total": self.items_processed_total, "items_failed_total": self.items_failed_total,
            "empty_runs_total": self.empty_runs_total, "last_empty": self.last_empty, "min_items": c.min_items,
            "scheduled": self.scheduled,
            **({"last_failure_screen": self.last_ui_failure[0], "last_failure_selector": self.last_ui_failure[1]}
               if self.last_ui_failure else {}),
        }
