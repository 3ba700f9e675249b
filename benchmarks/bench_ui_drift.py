"""Benchmark 5: drift check of one UI snapshot, a 5,000-element page and a 1920x1080 screenshot,
against parsing the same page with lxml's HTML parser alone and decoding the same PNG alone.

What is timed is `DriftProbe.check()` as the agent runs it for every snapshot posted or dropped
into the snapshot folder: read the snapshot, fingerprint it (elements, or perceptual hashes of
the tiles), count the declared selectors, compare with the screen's baseline (already loaded,
as the agent keeps it) and build the report. The goal is absolute, at most 50 ms for each; the
ratios to the parser and the decoder alone say what the drift check costs over reading the input.

Run alone:  .venv/bin/python benchmarks/bench_ui_drift.py [--runs N] [--reps N] [--json FILE]
"""

from __future__ import annotations

import gc
import io
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

GOAL_MS = 50.0
ELEMENTS = 5000
SIZE = (1920, 1080)
SELECTORS = {"search": "#search", "submit": "#btnSubmit", "amount": "input[name=amount]",
             "grid": "//table[@id='grid']", "next": "css:a.next-page"}


def page(seed: int = 1, variant: bool = False) -> bytes:
    """A business web application's page of exactly ELEMENTS elements: a header, a menu, a form, a grid of invoices and a footer. `variant`: the same
    page a day later with a maintenance banner, other dates and amounts, and the submit button
    moved into a new toolbar."""
    rnd = random.Random(seed)
    parts = ["<!doctype html><html><head><title>Invoices</title><meta charset='utf-8'>",
             "<link rel='stylesheet' href='/static/app.css?v=123'><script>var x = 1;</script></head><body>"]
    count = 7  # html, head, title, meta, link, script, body
    if variant:
        parts.append("<div class='banner warning'><p>Maintenance tonight from <b>22:00</b></p><a href='#'>close</a></div>")
        count += 4
    parts.append("<header id='top'><h1>Invoice portal</h1><span class='date'>%s</span>"
                 "<input id='search' name='q' placeholder='Search'></header>" % ("2025-06-02" if variant else "2025-06-01"))
    count += 4
    parts.append("<nav><ul>" + "".join(f"<li><a href='/m/{i}'>Menu {i}</a></li>" for i in range(20)) + "</ul></nav>")
    count += 2 + 40
    submit = "<button id='btnSubmit' class='btn primary' type='submit'>Submit</button>"
    parts.append("<form id='invoice'><label for='amount'>Amount</label><input name='amount' type='text'>"
                 + ("<div class='actions'><div class='toolbar'>" + submit + "</div></div>" if variant
                    else "<div class='actions'>" + submit + "</div>")
                 + "</form>")
    count += 5 + (1 if variant else 0)
    parts.append("<table id='grid' class='table'><tbody>")
    count += 2
    footer_elems = 3
    rows = []
    while count + 7 + footer_elems <= ELEMENTS:
        i = len(rows)
        amount = rnd.randint(100, 99999) + (7 if variant else 0)
        rows.append(f"<tr class='row {'odd' if i % 2 else 'even'}'><td>INV-{i:05d}</td><td class='amount'>{amount}.00</td>"
                    f"<td><span class='status s{i % 4}'>{('open', 'paid', 'late', 'held')[i % 4]}</span></td>"
                    f"<td><a href='/invoice/{i}'>open</a></td></tr>")
        count += 7
    parts.append("".join(rows) + "</tbody></table>")
    while count + footer_elems < ELEMENTS:
        parts.append("<p class='note'>note</p>")
        count += 1
    parts.append("<footer><a class='next-page' href='?p=2'>next</a><span>© example</span></footer></body></html>")
    return "".join(parts).encode("utf-8")


def screenshot(seed: int = 1, variant: bool = False) -> bytes:
    """A 1920x1080 screenshot of such an application, drawn deterministically: a title bar with
    a clock, a menu, form fields and a grid of text. `variant`: another time on the clock (a
    masked region) and one button in another colour."""
    from PIL import Image, ImageDraw

    rnd = random.Random(seed)
    im = Image.new("RGB", SIZE, (245, 246, 248))
    d = ImageDraw.Draw(im)
    d.rectangle([0, 0, SIZE[0], 48], fill=(32, 48, 80))
    d.text((20, 16), "Invoice portal", fill="white")
    d.text((1800, 16), "08:15:02" if variant else "07:59:41", fill="white")
    d.rectangle([0, 48, 220, SIZE[1]], fill=(230, 232, 236))
    for i in range(20):
        d.text((20, 70 + 40 * i), f"Menu entry {i}", fill=(40, 40, 40))
    for i in range(6):
        d.rectangle([260, 80 + 50 * i, 700, 115 + 50 * i], outline=(150, 150, 150), fill="white")
        d.text((270, 90 + 50 * i), f"Field {i}: {rnd.randint(0, 10**6)}", fill=(20, 20, 20))
    d.rectangle([260, 400, 420, 440], fill=(200, 60, 60) if variant else (40, 110, 200))
    d.text((300, 412), "Submit", fill="white")
    for r in range(30):
        y = 470 + 20 * r
        d.line([260, y, 1880, y], fill=(220, 220, 220))
        for c in range(8):
            d.text((270 + 200 * c, y + 4), f"{rnd.randint(0, 10**8):,}", fill=(30, 30, 30))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000.0


def measure(runs: int, reps: int, warmup: int) -> dict:
    import lxml.html
    from PIL import Image

    from botwatch.config.estate import BotConfig, Estate
    from botwatch.ui.probe import DriftProbe

    estate = Estate(bots=[BotConfig.model_validate({"name": "bench", "ui": {"screens": {
        "invoice": {"selectors": SELECTORS}, "screen": {"mask": [[1700, 0, 1920, 48]]}}}})])
    probe = DriftProbe(estate, None)
    base_html, cur_html = page(1), page(1, variant=True)
    base_png, cur_png = screenshot(1), screenshot(1, variant=True)
    n_elements = sum(1 for e in lxml.html.document_fromstring(base_html).iter() if isinstance(e.tag, str))
    first = probe.check("bench", "invoice", "html", base_html)
    first_png = probe.check("bench", "screen", "png", base_png)
    if not (first.baseline and first_png.baseline):
        raise RuntimeError("the baselines were not taken")
    html_report = probe.check("bench", "invoice", "html", cur_html)
    png_report = probe.check("bench", "screen", "png", cur_png)
    if html_report.selectors != {k: 1 for k in SELECTORS} or not html_report.warning:
        raise RuntimeError(f"unexpected page report: {html_report.to_json()}")
    if png_report.warning:
        raise RuntimeError(f"unexpected screenshot report: {png_report.to_json()}")

    def decode():
        with Image.open(io.BytesIO(cur_png)) as im:
            im.load()

    fns = {
        "page": lambda: timed(lambda: probe.check("bench", "invoice", "html", cur_html)),
        "parse": lambda: timed(lambda: lxml.html.document_fromstring(cur_html)),
        "png": lambda: timed(lambda: probe.check("bench", "screen", "png", cur_png)),
        "decode": lambda: timed(decode),
    }
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    per_run: dict[str, list[float]] = {k: [] for k in fns}
    raw: dict[str, list[list[float]]] = {k: [] for k in fns}
    gc.collect()
    for r in range(runs):
        got = common.interleaved(list(fns), reps, fns, start=r * reps)
        for k, v in got.items():
            per_run[k].append(statistics.median(v))
            raw[k].append(v)

    figures = []
    for key, what, ref, ref_title, report, extra in (
        ("5a", f"Drift check of a {n_elements:,}-element page (HTML, {len(SELECTORS)} declared selectors)", "parse",
         "`lxml.html.document_fromstring` alone", html_report, {"bytes": len(cur_html), "elements": n_elements}),
        ("5b", f"Drift check of a {SIZE[0]}x{SIZE[1]} screenshot (PNG, one masked region)", "decode",
         "Pillow decoding the PNG alone", png_report, {"bytes": len(cur_png)}),
    ):
        m = "page" if key == "5a" else "png"
        ref_median = statistics.median(per_run[ref])
        fig = common.figure(key=key, title=what, unit="ms", measured_runs=per_run[m], reference_runs=per_run[ref],
                            reference_title=ref_title, goal=round(GOAL_MS / ref_median, 2), reps=reps,
                            samples={"raw_ms": raw[m], "reference_raw_ms": raw[ref]}, extra=extra)
        med = fig["measured"]["median"]
        fig["passed"] = med <= GOAL_MS
        fig["notes"] += [
            f"goal: at most {GOAL_MS:.0f} ms absolute (the Goal column is that, as a ratio to this run's reference "
            f"median); measured median {med:.1f} ms: {'PASS' if fig['passed'] else 'MISSED'}",
            f"the snapshot scored {report.score:.2f} against its baseline "
            f"({'drifting' if report.warning else 'not drifting'}); first changes: "
            + "; ".join(report.changes[:2]),
            f"input: {extra['bytes']:,} bytes" + (f", {extra['elements']:,} elements" if "elements" in extra else ""),
        ]
        figures.append(fig)
    return {"benchmark": "ui_drift", "figures": figures, "details": [],
            "settings": {"runs": runs, "reps": reps, "warmup": warmup, "elements": ELEMENTS, "size": SIZE}}


def main(argv: list[str] | None = None) -> int:
    return common.bench_main(__doc__, measure, argv, runs=7, reps=5, warmup=3)


if __name__ == "__main__":
    sys.exit(main())
