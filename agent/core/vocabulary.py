"""The words every part of botwatch shares: failure reasons, bot states, kinds, name patterns, buckets.

Defined once here and imported everywhere else. Standard library only: the wrapper and the
deliverer import it on bot hosts, where nothing heavier than the standard library is loaded.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from typing import Any, Literal, MutableMapping, Sequence, get_args


# Each word list is a Literal type (for models and type checking) and a tuple of its values.
# The failure taxonomy (DESIGN.md): every failed run gets one of these.
Reason = Literal["ui_drift", "credentials", "business", "data", "timeout", "crash", "killed", "unknown"]
REASONS: tuple[str, ...] = get_args(Reason)
# A bot's state, as /metrics exports it one-hot.
State = Literal["new", "up", "late", "down", "failing", "paused"]
STATES: tuple[str, ...] = get_args(State)
# Why a UI look-up failed (the `kind` of a ui_drift failure); the first is the default.
LookupKind = Literal["not_found", "ambiguous", "wrong_app"]
LOOKUP_KINDS: tuple[str, ...] = get_args(LookupKind)
# A screen snapshot: an HTML page, an accessibility tree (JSON) or a screenshot.
SnapshotKind = Literal["html", "a11y", "png"]
SNAPSHOT_KINDS: tuple[str, ...] = get_args(SnapshotKind)
# The `status` of a run's work items (botwatch_bot_items_total).
ItemStatus = Literal["processed", "failed"]
ITEM_STATUSES: tuple[str, ...] = get_args(ItemStatus)

BOT_NAME_PATTERN = r"^[a-z0-9_-]{1,64}$"
RUN_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
BOT_NAME = re.compile(BOT_NAME_PATTERN)
RUN_ID = re.compile(RUN_ID_PATTERN)

# Run duration histogram buckets, 1 s .. 4 h (the catalogue's contract).
DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0)
# UI look-up wait histogram buckets, seconds.
UI_WAIT_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def bucket_index(value: float, buckets: Sequence[float]) -> int | None:
    """The index of the first bucket whose upper bound (`le`) holds `value`, None beyond the
    last one (counted in +Inf only). Buckets are sorted ascending."""
    if not value <= buckets[-1]:  # beyond the last bucket, or NaN
        return None
    return bisect_left(buckets, value)


def count_finished_run(counts: MutableMapping[str, Any], buckets: list[int], duration: float | None,
                       outcome: str | None, reason: str | None, ended: float | None) -> bool:
    """Fold one finished run into `counts`: the counting rules the agent's state (a bot's
    attributes) and a bot host's totals (a spool row) share. `counts` holds runs_total,
    failures (by reason), duration_sum, duration_count, last_success, last_failure,
    last_run_end, last_run_duration, last_outcome and consecutive_failures; `buckets` is the
    duration histogram. True if the run is the latest known (a replayed older run counts, but
    does not rewrite the latest)."""
    counts["runs_total"] += 1
    if duration is not None:
        counts["duration_sum"] += duration
        counts["duration_count"] += 1
        i = bucket_index(duration, DURATION_BUCKETS)
        if i is not None:
            buckets[i] += 1
    if ended is None:
        return False
    if outcome == "failure":
        counts["failures"][reason if reason in REASONS else "unknown"] += 1
        counts["last_failure"] = max(counts["last_failure"] or 0.0, ended)
    elif outcome == "success":
        counts["last_success"] = max(counts["last_success"] or 0.0, ended)
    if counts["last_run_end"] is not None and ended < counts["last_run_end"]:
        return False
    counts["last_run_end"] = ended
    counts["last_run_duration"] = duration
    counts["last_outcome"] = outcome
    if outcome == "failure":
        counts["consecutive_failures"] += 1
    elif outcome == "success":
        counts["consecutive_failures"] = 0
    return True
