"""Exposition lines of catalogue families, written straight from label values and numbers.

prometheus_client's encoders take Sample tuples with a dict of labels each, sort every sample's
labels, escape every value: building and encoding those costs more than the numbers they carry
(24,000 samples for 500 bots). Here each family's label order, names and headers are worked out
once (`FamilyCodec`), and a sample is one join of its escaped label values. The bytes are those
prometheus_client writes (tests/test_textformat.py holds them equal over random samples):

- labels sorted by name, values escaped as the text format 0.0.4 and OpenMetrics both ask:
  backslash, double quote and line feed (`\\\\`, `\\"`, `\\n`), nothing else;
- values as prometheus_client's `floatToGoString` writes them (`1.0`, `1.5e+09`, `+Inf`), after
  `finite_value` (a value that is not a finite float never reaches a scrape);
- text 0.0.4: a counter's HELP and TYPE name it with `_total`; HELP escapes backslash and line
  feed. OpenMetrics: the family name without it, HELP escapes the double quote too, and a
  counter's sample may carry an exemplar (`# {run_id="..."} 1.0 <timestamp>`).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Iterable, Iterator, Sequence

from prometheus_client.core import Metric
from prometheus_client.samples import Exemplar
from prometheus_client.utils import floatToGoString

from .catalogue import MetricSpec

log = logging.getLogger("botwatch.exporters.prometheus")
LARGEST = sys.float_info.max
_warned = [-60.0]


def finite_value(value: float, what: object = "a sample") -> float:
    """`value` when it is a finite float (or an int that fits one), else the largest float of its
    sign (NaN: 0), logged at most once a minute: one value beyond a float (an integer of 400
    digits), infinite or NaN must not break a scrape. Inputs are bounded where they enter: this
    is the second line."""
    if -LARGEST <= value <= LARGEST:  # False for NaN too
        return value
    replaced = LARGEST if value > 0 else -LARGEST if value < 0 else 0.0
    now = time.monotonic()
    if now - _warned[0] >= 60.0:
        _warned[0] = now
        log.warning("%s had a value that is not a finite number; exported as %s", what, replaced)
    return replaced


def finite(families: Iterable[Metric]) -> Iterator[Metric]:
    """The families with every sample value a finite float (`finite_value`)."""
    for fam in families:
        for i, s in enumerate(fam.samples):
            if not -LARGEST <= s.value <= LARGEST:
                fam.samples[i] = s._replace(value=finite_value(s.value, f"{s.name}{s.labels}"))
        yield fam


def escape_label_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


_SMALL_INTS = tuple(floatToGoString(i) for i in range(4096))  # counts, 0/1 gauges: most samples


def number(value: float) -> str:
    if type(value) is int and 0 <= value < 4096:
        return _SMALL_INTS[value]
    return floatToGoString(finite_value(value))


# label name -> value -> `name="escaped value"`: bot names, states, reasons, bucket bounds repeat
# in every family and every scrape. Each map is emptied when it reaches _MAX_PAIRS (a bound, not
# a size any estate reaches: the values of a label are bounded where they enter).
_PAIRS: dict[str, dict[str, str]] = {}
_MAX_PAIRS = 65536


def _pair(name: str, pairs: dict[str, str], value: str) -> str:
    if len(pairs) >= _MAX_PAIRS:
        pairs.clear()
    text = pairs[value] = f'{name}="{escape_label_value(value)}"'
    return text


def exemplar_text(exemplar: Exemplar) -> str:
    """What follows an OpenMetrics sample that carries `exemplar` (prometheus_client's form)."""
    labels = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in sorted(exemplar.labels.items()))
    stamp = "" if exemplar.timestamp is None else f" {exemplar.timestamp}"
    return f" # {{{labels}}} {floatToGoString(exemplar.value)}{stamp}"


class FamilyCodec:
    """The headers and sample lines of one catalogue family (counter, gauge or histogram)."""

    def __init__(self, spec: MetricSpec, help_text: str | None = None):
        doc = spec.help if help_text is None else help_text
        self.name, self.type = spec.name, spec.type
        text_name = spec.name + "_total" if spec.type == "counter" else spec.name
        text_doc = doc.replace("\\", r"\\").replace("\n", r"\n")
        om_doc = text_doc.replace('"', r"\"")
        self.text_header = f"# HELP {text_name} {text_doc}\n# TYPE {text_name} {spec.type}\n".encode()
        self.om_header = f"# HELP {spec.name} {om_doc}\n# TYPE {spec.name} {spec.type}\n".encode()
        self.sample_name = text_name
        # (label name, its position in the catalogue's order, its pairs), as samples print them
        self._sorted = [(n, i, _PAIRS.setdefault(n, {})) for n, i in sorted((n, i) for i, n in enumerate(spec.labels))]
        self._bucket_sorted = sorted([*self._sorted, ("le", len(spec.labels), _PAIRS.setdefault("le", {}))],
                                     key=lambda t: t[0])

    @staticmethod
    def _labels(order: list[tuple[str, int, dict[str, str]]], values: Sequence[str]) -> str:
        if len(order) == 1:  # most families: `bot` alone
            n, i, pairs = order[0]
            return pairs.get(values[i]) or _pair(n, pairs, values[i])
        return ",".join([pairs.get(values[i]) or _pair(n, pairs, values[i]) for n, i, pairs in order])

    def line(self, values: Sequence[str], value: float, exemplar: Exemplar | None = None) -> str:
        """One sample (a counter's or a gauge's); `exemplar`: OpenMetrics only, else None."""
        tail = exemplar_text(exemplar) if exemplar is not None else ""
        if values:
            return f"{self.sample_name}{{{self._labels(self._sorted, values)}}} {number(value)}{tail}\n"
        return f"{self.sample_name} {number(value)}{tail}\n"

    def histogram_lines(self, values: Sequence[str], buckets: Sequence[tuple[str, float]],
                        sum_value: float) -> str:
        """A histogram's `_bucket` samples (cumulative, +Inf last), then `_count` and `_sum`."""
        head = self._labels(self._sorted, values)
        out = [f"{self.name}_bucket{{{self._labels(self._bucket_sorted, (*values, le))}}} {number(n)}\n"
               for le, n in buckets]
        labels = f"{{{head}}}" if values else ""
        if float(buckets[0][0]) >= 0:  # as prometheus_client: no count and sum beside negative buckets
            out.append(f"{self.name}_count{labels} {number(buckets[-1][1])}\n")
            out.append(f"{self.name}_sum{labels} {number(sum_value)}\n")
        return "".join(out)
