"""Prometheus exposition of the governance checks: botwatch_bot_governance_findings{bot,check}.

1 for a check the bot fails, 0 for one it passes: every check of every bot is always present,
so `sum by (check)` counts findings and a fixed finding goes back to 0 instead of vanishing.
The findings come from `botwatch.governance.Governance`, which the agent refreshes in the
background; a scrape only reads them (the first one computes them if nothing has yet). Each
refresh makes a new set of findings: /metrics encodes the family once per set
(`GovernanceSection`), not at every scrape.
"""

from __future__ import annotations

import logging
from typing import Iterator

from prometheus_client.core import Metric

from botwatch.governance import CHECKS, Finding, Governance, failed_checks

from .catalogue import METRICS
from .prometheus import family
from .textformat import FamilyCodec

NAME = "botwatch_bot_governance_findings"

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
        g = family(NAME)
        for bot, check, failed in _samples(findings):
            g.add_metric([bot, check], failed)
        yield g

    def section(self) -> "GovernanceSection":
        return GovernanceSection(self)


def _samples(findings: dict[str, list[Finding]]) -> Iterator[tuple[str, str, int]]:
    for bot in sorted(findings):
        failed = failed_checks(findings[bot])
        for check in CHECKS:
            yield bot, check, failed[check]


class GovernanceSection:
    """The collector's family in /metrics (exposition.Section), encoded once per set of findings."""

    def __init__(self, collector: GovernanceCollector):
        self.collector = collector
        self.codec = FamilyCodec(METRICS[NAME])
        self._findings: dict[str, list[Finding]] | None = None  # held: its identity is the stamp
        self._samples = b""
        self._generation = 0

    def refresh(self) -> int:
        try:
            findings = self.collector.governance.findings()
        except Exception:  # an exporter never breaks the pipeline: the family is left out
            self.collector.errors_total += 1
            log.exception("collecting governance findings failed")
            findings = None
        if findings is not self._findings:
            self._findings = findings
            self._samples = "".join(self.codec.line((bot, check), failed)
                                    for bot, check, failed in _samples(findings or {})).encode()
            self._generation += 1
        return self._generation

    def chunks(self, openmetrics: bool) -> list[bytes]:
        if self._findings is None:
            return []
        return [self.codec.om_header if openmetrics else self.codec.text_header, self._samples]
