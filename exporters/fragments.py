"""Each bot's exposition lines, kept as bytes until that bot's samples may have changed.

A scrape of 500 bots holds 24,000 samples, and at rest none of them changes from one scrape to
the next. So the lines of each bot (one piece per family of bot_series.BOT_FAMILIES) are
encoded once and kept with what they were made from:

- the version of the bot's record in the estate state (state.runtime.next_version: any change
  to the record, from an event, a sweep's flip, a drift row or a control plane, gives it a new
  one), and
- the span of time they hold for: from the scrape that encoded them until the next time the
  bot's time-driven values may change (`BotRuntime.next_change`: its next run due, due plus
  grace, a maintenance window opening or closing, an active run passing max_runtime). A bot
  turning late shows in the first scrape after its due time, with no event; a body is never
  stale.

A scrape checks each bot's version and the clock (well under a microsecond a bot), encodes the
bots that changed and joins the rest as they are: each family's samples stay contiguous, as the
text format requires, by putting every bot's piece of a family after that family's header.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from prometheus_client.samples import Exemplar

from botwatch.state.readmodel import BotView
from botwatch.state.runtime import EstateState

from .bot_series import BOT_FAMILIES, write_bot
from .catalogue import METRICS
from .textformat import FamilyCodec, exemplar_text

CODECS = tuple(FamilyCodec(METRICS[name]) for name in BOT_FAMILIES)


class BotEncoder:
    """A bot_series sink that writes one bot's samples as lines, one piece per family: the
    text format's, and OpenMetrics' (the same but for the exemplars of the run counters)."""

    def __init__(self, codecs: Sequence[FamilyCodec] = CODECS):
        self.codecs = codecs
        self.lines: list[list[str]] = [[] for _ in codecs]
        self.exemplars: list[tuple[int, int, str]] = []  # (family, line, exemplar text)

    def add(self, family: int, labels: Sequence[str], value: float, exemplar: Exemplar | None = None) -> None:
        lines = self.lines[family]
        if exemplar is not None:
            self.exemplars.append((family, len(lines), exemplar_text(exemplar)))
        lines.append(self.codecs[family].line(labels, value))

    def add_histogram(self, family: int, labels: Sequence[str], buckets: list[tuple[str, float]],
                      sum_value: float) -> None:
        self.lines[family].append(self.codecs[family].histogram_lines(labels, buckets, sum_value))

    def pieces(self) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
        """(text pieces, OpenMetrics pieces), one per family."""
        text = tuple("".join(lines).encode() for lines in self.lines)
        if not self.exemplars:
            return text, text
        om = list(text)
        marked: dict[int, list[str]] = {}
        for family, i, tail in self.exemplars:
            lines = marked.setdefault(family, list(self.lines[family]))
            lines[i] = lines[i][:-1] + tail + "\n"
        for family, lines in marked.items():
            om[family] = "".join(lines).encode()
        return text, tuple(om)


@dataclass(frozen=True, slots=True)
class Fragment:
    version: int  # of the bot's record it was encoded from
    since: float  # it holds from this time...
    until: float  # ...to before this one
    text: tuple[bytes, ...]
    om: tuple[bytes, ...]


def encode_bot(view: BotView) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    encoder = BotEncoder()
    write_bot(view, encoder)
    return encoder.pieces()


class BotFragments:
    """The bots' pieces of /metrics, kept per bot (see the module's docstring)."""

    def __init__(self, state: EstateState):
        self.state = state
        self._kept: dict[str, Fragment] = {}  # in the state's order of bots
        self.generation = 0  # a new one whenever a piece changed, a bot came or went
        self.encoded = 0  # bots encoded (tests, benchmarks)

    def refresh(self, now: float) -> int:
        """Bring every bot's piece up to date at `now`; returns the generation."""
        state, kept = self.state, self._kept
        stale: list[tuple[str, int, BotView, float]] = []
        with state.lock:  # views of the bots that changed, as one moment sees them
            names = list(state.bots)
            for name, bot in state.bots.items():
                f = kept.get(name)
                if f is None or f.version != bot.version or not f.since <= now < f.until:
                    stale.append((name, bot.version, BotView.of(bot, now), bot.next_change(now)))
        if not stale and names == list(kept):
            return self.generation
        fresh = {}
        for name, version, view, until in stale:
            fresh[name] = Fragment(version, now, until, *encode_bot(view))
        self.encoded += len(fresh)
        self._kept = {name: fresh.get(name) or kept[name] for name in names}
        self.generation += 1
        return self.generation

    def chunks(self, openmetrics: bool) -> list[bytes]:
        """Each family's header, then every bot's piece of it."""
        kept = [f.om for f in self._kept.values()] if openmetrics else [f.text for f in self._kept.values()]
        columns = zip(*kept) if kept else [()] * len(CODECS)
        out: list[bytes] = []
        for codec, column in zip(CODECS, columns):
            out.append(codec.om_header if openmetrics else codec.text_header)
            out.extend(column)
        return out
