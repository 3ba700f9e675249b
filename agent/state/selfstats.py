"""The agent's counts about itself: events taken, dropped and ignored, parse errors and failed
exports, each by source (or exporter). Exported as the botwatch_agent_* counters."""

from __future__ import annotations

import threading

from ..sources import registry


class SelfStats:
    """The counters the agent keeps about itself, each a dict from label value to count.

    `lock` is the one the estate state holds while it applies a batch (it counts the batch's
    events under it), so that a reader sees the counts and the state of the same moment."""

    def __init__(self, lock: threading.RLock | None = None) -> None:
        self.lock = lock if lock is not None else threading.RLock()
        self.events: dict[str, int] = {}  # by source; a source nobody declared is "other"
        self.dropped: dict[str, int] = {}
        self.ignored: dict[str, int] = {}  # events of a type this agent does not know (newer clients)
        self.parse_errors: dict[str, int] = {}
        self.export_failures: dict[str, int] = {}  # by exporter (otlp_metrics, otlp_traces)

    def count_event(self, source: str, n: int = 1) -> None:
        with self.lock:
            source = registry.event_label(source)  # bounded label values
            self.events[source] = self.events.get(source, 0) + n

    def count_parse_error(self, source: str, n: int = 1) -> None:
        with self.lock:
            self.parse_errors[source] = self.parse_errors.get(source, 0) + n

    def count_dropped(self, source: str, n: int = 1) -> None:
        with self.lock:
            self.dropped[source] = self.dropped.get(source, 0) + n

    def count_ignored(self, source: str, n: int = 1) -> None:
        """Events of a type this agent does not know (sent by a newer client): taken, not applied."""
        with self.lock:
            self.ignored[source] = self.ignored.get(source, 0) + n

    def count_export_failure(self, exporter: str, n: int = 1) -> None:
        with self.lock:
            self.export_failures[exporter] = self.export_failures.get(exporter, 0) + n

    def snapshot(self, screen_labels_shortened: int) -> dict[str, dict[str, int]]:
        """Copies of every counter, by kind; the screen names shortened into label values are
        counted by the bots that had them (`BotRuntime.labels_shortened`) and passed in."""
        with self.lock:
            return {"events": dict(self.events), "dropped": dict(self.dropped), "ignored": dict(self.ignored),
                    "parse_errors": dict(self.parse_errors), "export_failures": dict(self.export_failures),
                    "labels_shortened": {"screen": screen_labels_shortened}}
