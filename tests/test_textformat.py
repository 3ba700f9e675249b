"""The lean encoder writes the bytes prometheus_client writes, for any label value and number."""

from __future__ import annotations

import math
import sys

from hypothesis import given, settings, strategies as st
from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.samples import Exemplar
from prometheus_client.utils import floatToGoString

from botwatch.exporters.catalogue import MetricSpec
from botwatch.exporters.textformat import finite
from botwatch.exporters.textformat import FamilyCodec, LARGEST, number

# any text a label may hold but lone surrogates (no encoder writes those); the odd ones often
label_values = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12) | st.sampled_from(
    ["", '"', "\\", "\n", '\\"', "a\\nb", 'say "hi"\n\\', "ünïcødé ✓", "tab\there", "{}=,"])
numbers = st.integers(min_value=-(10 ** 30), max_value=10 ** 30) | st.floats(allow_nan=True) | st.sampled_from(
    [0, 1, 4095, 4096, 1.0, 0.5, 1e6, 1234567.0, 1e7, 1e-7, 1767225600.123, 10 ** 400, -(10 ** 400)])
label_names = st.lists(st.sampled_from(["bot", "state", "screen", "team", "le_x", "a", "zz", "kind"]),
                       unique=True, max_size=4)
helps = st.sampled_from(["Finished runs.", 'Counted under screen="other".', "back\\slash\nand a line"])


class Families:
    def __init__(self, families: list):
        self.families = families

    def collect(self):
        return iter(self.families)


def both(families: list) -> tuple[bytes, bytes]:
    return generate_latest(Families(families)), openmetrics_latest(Families(families))


@given(st.sampled_from(["counter", "gauge"]), label_names, helps,
       st.lists(st.tuples(st.lists(label_values, min_size=4, max_size=4), numbers), max_size=6), st.data())
@settings(max_examples=300, deadline=None)
def test_counter_and_gauge_lines_equal_prometheus_clients(kind, names, doc, rows, data):
    spec = MetricSpec("botwatch_example", kind, doc, tuple(names), "example", "1")
    codec = FamilyCodec(spec)
    fam = (CounterMetricFamily if kind == "counter" else GaugeMetricFamily)(spec.name, doc, labels=names)
    text, om = [codec.text_header], [codec.om_header]
    for values, value in rows:
        values = values[:len(names)]
        exemplar = None
        if kind == "counter" and data.draw(st.booleans()):
            exemplar = Exemplar({"run_id": data.draw(label_values)}, 1.0, data.draw(st.sampled_from([None, 17.5])))
        fam.add_metric(values, value, **({"exemplar": exemplar} if exemplar else {}))
        text.append(codec.line(values, value).encode())
        om.append(codec.line(values, value, exemplar).encode())
    ref_text, ref_om = both(list(finite([fam])))
    assert b"".join(text) == ref_text
    assert b"".join(om) + b"# EOF\n" == ref_om


@given(label_names, st.lists(label_values, min_size=4, max_size=4),
       st.lists(st.integers(min_value=0, max_value=10 ** 6), min_size=1, max_size=5), numbers)
@settings(max_examples=200, deadline=None)
def test_histogram_lines_equal_prometheus_clients(names, values, counts, total):
    values = values[:len(names)]
    bounds = [floatToGoString(b) for b in (0.5, 1.0, 15.0, 3600.0, 1e7)][:len(counts) - 1] + ["+Inf"]
    buckets = [(le, sum(counts[:i + 1])) for i, le in enumerate(bounds)]
    spec = MetricSpec("botwatch_example_seconds", "histogram", "Waits.", tuple(names), "example", "s")
    fam = HistogramMetricFamily(spec.name, spec.help, labels=names)
    fam.add_metric(values, buckets, total)
    codec = FamilyCodec(spec)
    ref_text, ref_om = both(list(finite([fam])))
    assert codec.text_header + codec.histogram_lines(values, buckets, total).encode() == ref_text
    assert codec.om_header + codec.histogram_lines(values, buckets, total).encode() + b"# EOF\n" == ref_om


@given(numbers)
def test_numbers_are_written_as_floatToGoString_writes_them_once_finite(value):
    expected = floatToGoString(value if -LARGEST <= value <= LARGEST else
                               LARGEST if value > 0 else -LARGEST if value < 0 else 0.0)
    assert number(value) == expected


def test_values_that_are_not_finite_become_the_largest_float_of_their_sign():
    assert number(float("inf")) == number(10 ** 400) == floatToGoString(sys.float_info.max)
    assert number(float("-inf")) == "-" + floatToGoString(sys.float_info.max)
    assert number(float("nan")) == "0.0" and not math.isnan(float(number(float("nan"))))
    assert floatToGoString(float("inf")) == "+Inf"  # what would be printed without the guard


def test_label_values_escape_backslash_quote_and_line_feed_only():
    codec = FamilyCodec(MetricSpec("botwatch_example", "gauge", "h", ("team", "bot"), "e", "1"))
    assert codec.line(('a\\b"c\nd\te', "x"), 1) == 'botwatch_example{bot="x",team="a\\\\b\\"c\\nd\te"} 1.0\n'
