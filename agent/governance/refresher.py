"""The periodic task that keeps the governance findings fresh, off the scrape path."""

from __future__ import annotations

import logging

from ..sources.base import PeriodicTask
from .checks import Governance

log = logging.getLogger("botwatch.governance")


class GovernanceRefresher(PeriodicTask):
    """Re-runs the governance checks every `interval` seconds, off the scrape path."""

    thread_name = "botwatch-governance"

    def __init__(self, governance: Governance, interval: float):
        super().__init__(interval)
        self.governance = governance

    def poll_once(self) -> None:
        found = self.governance.refresh()
        failed = sum(1 for fs in found.values() for f in fs if not f.ok)
        log.info("governance: %d bot(s) checked, %d finding(s)", len(found), failed)
