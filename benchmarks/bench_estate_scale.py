"""Benchmark 6: an estate on one machine (10 agents x 200 bots) scraped by Prometheus and
remote-written to VictoriaMetrics: series counts, scrape sizes, estate dashboard query times.

The set-up is the estate test's (tests/estate_scale.py): 10 real agents with 200 bots each and a
fixed plan of runs, a real Prometheus finding them through one agent's /sd with the shipped rules,
remote-writing to a real VictoriaMetrics. Every query of the estate dashboard is evaluated at one
fixed time on both engines, after both hold the same samples.

Run alone:  .venv/bin/python benchmarks/bench_estate_scale.py [--runs N] [--reps N] [--json FILE]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

sys.path.insert(0, str(common.ROOT / "tests"))
import estate_scale as es  # noqa: E402

# VictoriaMetrics answers from a remote-written copy: the dashboard may not get much slower there
GOAL_VM = 2.0
# the whole estate dashboard (every panel and variable, one after the other) within this many seconds
GOAL_REFRESH_S = 3.0


def refresh(url: str, queries: list[tuple[str, str]], at: float, per_query: dict[str, list[float]]) -> float:
    """Evaluate every query once, one after the other; the total wall time in ms."""
    total = 0.0
    for title, expr in queries:
        t0 = time.perf_counter()
        result = es.query(url, expr, at)
        ms = (time.perf_counter() - t0) * 1000.0
        if not result:
            raise RuntimeError(f"{url}: no data for {title}: {expr}")
        per_query.setdefault(title, []).append(ms)
        total += ms
    return total


def measure(runs: int, reps: int, warmup: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="botwatch-bench-estate-") as tmp:
        estate = es.Estate(Path(tmp))
        t0 = time.monotonic()
        try:
            estate.start()
            delivered = estate.deliver()
            at = estate.settle()
            setup_s = time.monotonic() - t0
            return _measure(estate, at, delivered, setup_s, runs, reps, warmup)
        finally:
            estate.stop()


def _measure(estate: es.Estate, at: float, delivered: dict, setup_s: float, runs: int, reps: int,
             warmup: int) -> dict:
    queries = es.estate_queries()
    floor = [("vector(1)", "vector(1)")] * len(queries)
    per_query = {"prometheus": {}, "victoriametrics": {}, "floor": {}}
    fns = {
        "prometheus": lambda: refresh(estate.prom.url, queries, at, per_query["prometheus"]),
        "victoriametrics": lambda: refresh(estate.vm.url, queries, at, per_query["victoriametrics"]),
        "floor": lambda: refresh(estate.prom.url, floor, at, per_query["floor"]),
    }
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    for name in per_query:
        per_query[name].clear()
    per_run: dict[str, list[float]] = {k: [] for k in fns}
    for i in range(runs):
        got = common.interleaved(list(fns), reps, fns, start=i)
        for k, v in got.items():
            per_run[k].append(statistics.median(v))

    sizes = estate.scrape_sizes()
    series = estate.series_counts(at)
    bots = len(estate.plan.bots)
    n = len(queries)
    fig_vm = common.figure(
        key="6a", title=f"estate dashboard refresh ({n} queries) on VictoriaMetrics, "
                        f"{es.AGENTS} agents × {es.BOTS_PER_AGENT} bots remote-written by Prometheus",
        unit="ms", measured_runs=per_run["victoriametrics"], reference_runs=per_run["prometheus"],
        reference_title="the same queries on Prometheus", goal=GOAL_VM, reps=reps,
        extra={"series": series, "scrape_bytes": sizes})
    fig_prom = common.figure(
        key="6b", title=f"estate dashboard refresh ({n} queries) on Prometheus, {bots:,} bots",
        unit="ms", measured_runs=per_run["prometheus"], reference_runs=per_run["floor"],
        reference_title=f"{n} × `vector(1)` on Prometheus", reps=reps,
        goal=GOAL_REFRESH_S * 1000.0 / statistics.median(per_run["floor"]))
    scraped = series["prometheus_scraped"]
    recorded = series["prometheus_recorded"]
    fig_vm["notes"] += [
        f"series: Prometheus {series['prometheus_all']:,} ({scraped:,} scraped from the agents, {recorded:,} "
        f"recorded by the shipped rules), VictoriaMetrics {series['victoriametrics_all']:,} "
        f"({series['victoriametrics_scraped']:,} scraped, {series['victoriametrics_recorded']:,} recorded)",
        f"per bot: {scraped / bots:.1f} scraped series and {recorded / bots:.1f} recorded ones "
        f"({(scraped + recorded) / bots:.1f} in all)",
        f"scrape size per agent ({es.BOTS_PER_AGENT} bots): median {statistics.median(sizes) / 1e3:,.0f} kB "
        f"({min(sizes) / 1e3:,.0f}–{max(sizes) / 1e3:,.0f} kB), {statistics.median(sizes) / es.BOTS_PER_AGENT:,.0f} "
        "bytes per bot",
    ]
    fig_prom["notes"] += [
        f"goal: the whole dashboard within {GOAL_REFRESH_S:g} s (shown as a ratio to the reference's median)",
    ]
    details = [
        "",
        f"Set-up: {es.AGENTS} agents × {es.BOTS_PER_AGENT} bots, {delivered['accepted']:,} events delivered "
        f"through `POST /api/v1/events`; scrape and rule evaluation interval {es.SCRAPE_INTERVAL:g} s; "
        f"set-up took {setup_s:.0f} s. Queries evaluated at one fixed time on both engines.",
        "",
        "| Estate dashboard query | Prometheus | VictoriaMetrics | ratio |",
        "|---|---|---|---|",
    ]
    for title, _expr in queries:
        p = statistics.median(per_query["prometheus"][title])
        v = statistics.median(per_query["victoriametrics"][title])
        details.append(f"| {title} | {common.fmt(p, 'ms')} | {common.fmt(v, 'ms')} | {v / p:.2f}x |")
    return {
        "benchmark": "estate_scale",
        "figures": [fig_vm, fig_prom],
        "details": details,
        "settings": {"runs": runs, "reps": reps, "warmup": warmup, "agents": es.AGENTS,
                     "bots_per_agent": es.BOTS_PER_AGENT, "setup_s": setup_s,
                     "samples_in_window": estate.samples_in_window},
    }


def main(argv: list[str] | None = None) -> int:
    return common.bench_main(__doc__, measure, argv, runs=7, reps=1, warmup=1)


if __name__ == "__main__":
    sys.exit(main())
