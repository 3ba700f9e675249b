"""Prometheus exposition of the governance checks: botwatch_bot_governance_findings{bot,check}.

1 for a check the bot fails, 0 for one it passes: every check of every bot is always present,
so `sum by (check)` counts findings and a fixed finding goes back to 0 instead of vanishing.
The findings come from `botwatch.governance.Governance`, which the agent refreshes in the
background; a scrape only reads them (the first one computes them if nothing has yet).
"""

from __future__ import annotations

import logging
from typing import Iterator

from prometheus_client.core import Metric

from botwatch.governance import CHECKS, Governance, failed_checks

from .prometheus import family

log = logging.getLogger("botwatch.exporters.governance")


class GovernanceCollector:
    def __init__(self, governance: Governance):
        self.governance = governance
        self.errors_total = 0

    def describe(self) -> list[Metric]:
        return []  # unchecked collector: registration must not trigger a collect

    def collect(self) -> Iterator[Metric]:
        try:
            findings = self.governance.findings()
        except Exception:  # an exporter never breaks the pipeline
            self.errors_total += 1
            log.exception("collecting governance findings failed")
            return
        g = family("botwatch_bot_governance_findings")
        for bot in sorted(findings):
            failed = failed_checks(findings[bot])
            for check in CHECKS:
                g.add_metric([bot, check], failed[check])
        yield g
