"""`/metrics` bodies: built from pieces that are each encoded again only when they changed.

A body is the sections of its registry's collectors, in order, each section a run of whole
families:

- the estate's bots (`fragments.BotFragments`): every bot's lines kept until the bot's record
  changes or the clock reaches a time its samples may change at (late, down, hung, a
  maintenance window);
- the estate's other families (agent self-metrics, control planes, queues, robots) and any
  other collector's (`HashedFamilies`): collected at every scrape, each family encoded again only
  when a hash of its samples changed;
- the governance findings (governance.GovernanceSection): encoded once per refresh of them.

Each section says, at each scrape, a stamp that changes whenever its text does; when every stamp
equals those behind the last body of the same format, that body is served again, else the
sections' pieces are joined anew. Nothing is stale: every check runs at every scrape.

Formats: the text format 0.0.4, and OpenMetrics 1.0 when the scraper asks for it (`Accept:
application/openmetrics-text`), with the run counters' exemplars. prometheus_client chooses
(`choose_encoder`), so the content type is its; an escaping of names other than the ones that
leave the catalogue's names as they are is left to prometheus_client's own encoder.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Hashable, Iterable, Protocol

from prometheus_client.exposition import choose_encoder, generate_latest
from prometheus_client.core import Metric
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.registry import Collector, CollectorRegistry

from .fragments import BotFragments
from .textformat import finite

log = logging.getLogger("botwatch.exporters.exposition")
EOF = b"# EOF\n"
# the escapings of names under which the catalogue's names and label names print as they are
_PLAIN_ESCAPINGS = ("escaping=underscores", "escaping=allow-utf-8", "escaping=values")


class Section(Protocol):
    def refresh(self) -> Hashable:
        """Bring the section up to date; a stamp that differs whenever its text does."""

    def chunks(self, openmetrics: bool) -> list[bytes]:
        """Its text as of the last refresh, in the format asked for."""


class _Collected:
    """Families in the shape an encoder reads (a registry's collect())."""

    def __init__(self, families: list):
        self.families = families

    def collect(self):
        return iter(self.families)


def encode_family(family: Metric, openmetrics_format: bool) -> bytes:
    """One family as prometheus_client writes it (OpenMetrics: without the closing `# EOF`)."""
    if openmetrics_format:
        return openmetrics.generate_latest(_Collected([family]))[:-len(EOF)]
    return generate_latest(_Collected([family]))


def _fingerprint(family: Metric) -> int:
    """A hash of the family and each of its samples, chained one sample at a time."""
    h = hash((family.name, family.type, family.documentation, family.unit))
    for s in family.samples:
        h = hash((h, s.name, tuple(s.labels.items()), s.value, s.timestamp))
        if s.exemplar is not None:
            h = hash((h, tuple(s.exemplar.labels.items()), s.exemplar.value, s.exemplar.timestamp))
    return h


class HashedFamilies:
    """Families collected at every scrape; each family is encoded again only when its hash changed."""

    def __init__(self, collect: Callable[[], Iterable[Metric]]):
        self.collect = collect
        self._kept: list[tuple[int, Metric, dict[bool, bytes]]] = []  # (hash, family, format -> bytes)
        self._generation = 0

    def refresh(self) -> int:
        families = list(self.collect())
        keys = [_fingerprint(f) for f in families]
        if keys != [k for k, _, _ in self._kept]:
            before = {k: encoded for k, _, encoded in self._kept}
            self._kept = [(k, f, before.get(k, {})) for k, f in zip(keys, families)]
            self._generation += 1
        return self._generation

    def families(self) -> list[Metric]:
        """The families of the last refresh."""
        return [f for _, f, _ in self._kept]

    def chunks(self, openmetrics_format: bool) -> list[bytes]:
        out = []
        for _, family, encoded in self._kept:
            body = encoded.get(openmetrics_format)
            if body is None:
                body = encoded[openmetrics_format] = encode_family(family, openmetrics_format)
            out.append(body)
        return out


class EstateSection:
    """An EstateCollector's samples: the bots' kept pieces, then its other families. Should the
    pieces fail, the collector's own collect() stands in (it logs, counts and serves the rest)."""

    def __init__(self, collector):
        self.collector = collector
        self.bots = BotFragments(collector.state)
        self.others = HashedFamilies(lambda: finite(collector.other_families()))
        self.whole = HashedFamilies(collector.collect)
        self._whole_served = False

    def refresh(self) -> Hashable:
        try:
            stamp = (self.bots.refresh(self.collector.clock()), self.others.refresh())
            self._whole_served = False
            return stamp
        except Exception:
            self.collector.errors_total += 1
            log.exception("rendering the estate's metrics failed; collected instead")
            self._whole_served = True
            return "whole", self.whole.refresh()

    def chunks(self, openmetrics_format: bool) -> list[bytes]:
        if self._whole_served:
            return self.whole.chunks(openmetrics_format)
        return self.bots.chunks(openmetrics_format) + self.others.chunks(openmetrics_format)


def section_of(collector: Collector) -> Section:
    """A collector's own section (`collector.section()`), else its families hashed at each scrape."""
    own = getattr(collector, "section", None)
    return own() if callable(own) else HashedFamilies(collector.collect)


class CachedExposition:
    """The bodies of /metrics for a registry; an EstateRegistry's collectors each render their
    own way (see the module's docstring), any other registry as one HashedFamilies."""

    def __init__(self, registry: CollectorRegistry):
        self.registry = registry
        collectors = getattr(registry, "collectors", None)
        self.sections: list[Section] = ([section_of(c) for c in collectors] if collectors is not None
                                        else [HashedFamilies(registry.collect)])
        self._whole = HashedFamilies(registry.collect)  # for an escaping only prometheus_client writes
        self._last: dict[str, tuple[Hashable, bytes]] = {}  # content type -> (stamps, body)
        self._lock = threading.Lock()  # one scrape at a time: the sections keep state between them
        self.encoded = self.reused = 0  # bodies joined anew and served again (tests, self-checks)

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """(body, content type) for a scrape that sent `accept`."""
        encoder, content_type = choose_encoder(accept)
        om = content_type.startswith("application/openmetrics-text")
        # names escaped otherwise than the catalogue's print: prometheus_client's encoder writes it
        whole = "escaping=" in content_type and not content_type.endswith(_PLAIN_ESCAPINGS)
        with self._lock:
            stamps = ("whole", self._whole.refresh()) if whole else tuple(s.refresh() for s in self.sections)
            last = self._last.get(content_type)
            if last is not None and last[0] == stamps:
                self.reused += 1
                return last[1], content_type
            if whole:
                body = encoder(_Collected(self._whole.families()))
            else:
                chunks: list[bytes] = []
                for section in self.sections:
                    chunks += section.chunks(om)
                body = b"".join(chunks) + (EOF if om else b"")
            self._last[content_type] = (stamps, body)
            self.encoded += 1
            return body, content_type
