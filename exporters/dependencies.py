"""Prometheus exposition of what the bots' sources say: botwatch_bot_duplicate_candidates{bot}.

For every bot with a `source:`, the number of duplicate candidate pairs it is in (0 when none),
as the agent's dependency index last scored them (botwatch.deps.index, refreshed in the
background): a scrape only reads them. Bots without a source have no sample, since nothing of
them was read.
"""

from __future__ import annotations

import logging
from typing import Iterator

from prometheus_client.core import Metric

from botwatch.deps.index import DependencyIndex

from .prometheus import family

NAME = "botwatch_bot_duplicate_candidates"

log = logging.getLogger("botwatch.exporters.dependencies")


class DependenciesCollector:
    def __init__(self, index: DependencyIndex):
        self.index = index
        self.errors_total = 0

    def describe(self) -> list[Metric]:
        return []  # unchecked collector: registration must not trigger a collect

    def collect(self) -> Iterator[Metric]:
        try:
            counts = self.index.latest_duplicate_counts or {}
        except Exception:  # an exporter never breaks the pipeline
            self.errors_total += 1
            log.exception("collecting duplicate candidates failed")
            return
        g = family(NAME)
        for bot in sorted(counts):
            g.add_metric([bot], counts[bot])
        yield g
