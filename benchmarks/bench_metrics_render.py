"""Benchmark 2: `/metrics` render time for an estate of 1,000 bots against prometheus-client's
own `generate_latest` over a registry of plain labelled metrics with the same number of samples.

The agent serves `/metrics` with `generate_latest(estate_registry(state))`; the registry is built
once at start, so each scrape pays the collector (views of every bot, metric families) and the
text encoding. The reference pays the same two things for ordinary Gauge/Counter metrics with
one `bot` label: prometheus-client's collection of its own metrics and the same encoder.

Run alone:  .venv/bin/python benchmarks/bench_metrics_render.py [--runs N] [--reps N] [--json FILE]
"""

from __future__ import annotations

import gc
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

GOAL = 1.5
BOTS = 1000
RUNS_PER_BOT = 6
# bot-labelled counter families in the estate output; the reference gets as many Counters
COUNTER_FAMILIES = 4


def build_state(n_bots: int = BOTS, seed: int = 1):
    """An estate of `n_bots` with a few finished runs each, some failed, some bots mid-run."""
    from botwatch.core.classify import REASONS
    from botwatch.config.estate import PLATFORMS, BotConfig, Estate
    from botwatch.core.events import ResourceSample, RunFinished, RunStarted
    from botwatch.state.runtime import EstateState

    rnd = random.Random(seed)
    now = 1_767_225_600.0  # fixed, so that every render prints the same samples
    bots = []
    for i in range(n_bots):
        kind = i % 5
        bots.append(BotConfig(
            name=f"bot-{i:04d}", team=f"team-{i % 25}", owner=f"owner-{i % 60}",
            platform=PLATFORMS[i % len(PLATFORMS)],
            lifecycle=("prototype", "certified", "production")[i % 3],
            criticality=("low", "medium", "high")[i % 3],
            every=(300.0, 900.0, 3600.0)[i % 3] if kind in (0, 1) else None,  # 40 % on an interval
            schedule="*/15 * * * *" if kind == 2 else None,  # 20 % on cron, the rest unscheduled
            grace=600.0,
            failure_threshold=1 + i % 3,
        ))
    estate = Estate(bots=bots)
    state = EstateState(estate, journal=None, clock=lambda: now)
    events = []
    failure_reasons = [r for r in REASONS if r != "unknown"]
    for i, cfg in enumerate(bots):
        t = now - 6 * 3600.0
        for k in range(RUNS_PER_BOT):
            duration = rnd.choice((0.4, 3.0, 12.0, 45.0, 200.0, 900.0, 5000.0)) * rnd.uniform(0.8, 1.2)
            failed = rnd.random() < 0.2
            events.append(RunFinished(
                bot=cfg.name, run_id=f"{i}-{k}", started=t, ended=t + duration,
                outcome="failure" if failed else "success", exit_status=1 if failed else 0,
                reason=rnd.choice(failure_reasons) if failed else None,
                cpu_seconds=duration * rnd.uniform(0.05, 0.9), host="host-1"))
            t += duration + rnd.uniform(60.0, 1800.0)
        if i % 10 == 0:  # a tenth of the estate is running right now
            run_id = f"{i}-active"
            events.append(RunStarted(bot=cfg.name, run_id=run_id, time=now - 120.0, host="host-1"))
            events.append(ResourceSample(bot=cfg.name, run_id=run_id, time=now - 5.0, cpu_seconds=12.5,
                                         rss_bytes=250_000_000))
    result = state.apply(events)
    if result.rejected or result.accepted != len(events):
        raise RuntimeError(f"events not applied: {result}")
    return state, [b.name for b in bots], now


def sample_values(text: bytes) -> list[float]:
    """The value of every sample line (comment lines and blank lines are not samples)."""
    return [float(line.rsplit(b" ", 1)[1]) for line in text.splitlines() if line and not line.startswith(b"#")]


def reference_registry(bot_names: list[str], values: list[float]):
    """Ordinary labelled metrics with one `bot` label holding exactly `len(values)` samples,
    set to the estate's own sample values (so that number formatting costs the same).

    A Counter child exposes two samples (`_total` and `_created`), a Gauge child one.
    """
    from prometheus_client import CollectorRegistry, Counter, Gauge

    registry = CollectorRegistry(auto_describe=False)
    n = len(bot_names)
    feed = iter(values)
    left = len(values)
    for j in range(COUNTER_FAMILIES):
        if left < 2 * n:
            break
        c = Counter(f"reference_counter_{j}", "A plain labelled counter.", ["bot"], registry=registry)
        for name in bot_names:
            c.labels(name).inc(abs(next(feed)))
            next(feed)  # the `_created` sample stands for this value
        left -= 2 * n
    j = 0
    while left > 0:
        g = Gauge(f"reference_gauge_{j}", "A plain labelled gauge.", ["bot"], registry=registry)
        for name in bot_names[:min(n, left)]:
            g.labels(name).set(next(feed))
        left -= min(n, left)
        j += 1
    return registry


def timed(fn) -> float:
    gc.collect()
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000.0


def measure(runs: int, reps: int, warmup: int) -> dict:
    from prometheus_client import generate_latest

    from botwatch.exporters.prometheus import EstateCollector, estate_registry

    t0 = time.perf_counter()
    state, names, now = build_state()
    setup_ms = (time.perf_counter() - t0) * 1000.0
    registry = estate_registry(state, clock=lambda: now)
    ours = generate_latest(registry)
    values = sample_values(ours)
    n_samples = len(values)
    reference = reference_registry(names, values)
    theirs = generate_latest(reference)
    if len(sample_values(theirs)) != n_samples:
        raise RuntimeError(f"reference has {len(sample_values(theirs))} samples, ours {n_samples}")
    if ours != generate_latest(registry):
        raise RuntimeError("the estate output is not stable between renders")
    collector = EstateCollector(state, clock=lambda: now)

    measure_fns = {
        "estate": lambda: timed(lambda: generate_latest(registry)),
        "reference": lambda: timed(lambda: generate_latest(reference)),
        "collect": lambda: timed(lambda: list(collector.collect())),
    }
    for _ in range(warmup):
        for fn in measure_fns.values():
            fn()
    per_run: dict[str, list[float]] = {k: [] for k in measure_fns}
    raw: dict[str, list[list[float]]] = {k: [] for k in measure_fns}
    for _ in range(runs):
        got = common.interleaved(list(measure_fns), reps, measure_fns)
        for k, v in got.items():
            per_run[k].append(statistics.median(v))
            raw[k].append(v)
    if collector.errors_total:
        raise RuntimeError("the estate collector failed while measuring")

    fig = common.figure(
        key="2", title=f"`/metrics` render, estate of {BOTS:,} bots: "
                       f"`generate_latest(estate_registry(state))`",
        unit="ms", measured_runs=per_run["estate"], reference_runs=per_run["reference"],
        reference_title=f"`generate_latest` over {n_samples:,} plain samples", goal=GOAL, reps=reps,
        samples={"raw_ms": raw["estate"], "reference_raw_ms": raw["reference"], "collect_raw_ms": raw["collect"]},
        extra={"samples": n_samples, "bytes": len(ours), "reference_bytes": len(theirs)})
    collect_ms = statistics.median(per_run["collect"])
    est_ms = fig["measured"]["median"]
    fig["notes"] += [
        f"{n_samples:,} samples, {len(ours) / 1e6:.2f} MB of text ({len(ours) / n_samples:.0f} bytes a sample); "
        f"the reference's {n_samples:,} samples make {len(theirs) / 1e6:.2f} MB "
        f"({len(theirs) / n_samples:.0f} bytes a sample): the estate's samples carry more labels",
        f"collecting (bot views and metric families, no encoding) takes {collect_ms:.1f} ms of the "
        f"{est_ms:.1f} ms ({100 * collect_ms / est_ms:.0f} %)",
        f"per bot: {n_samples / BOTS:.1f} samples; {est_ms / BOTS * 1000:.0f} µs to render",
    ]
    return {
        "benchmark": "metrics_render",
        "figures": [fig],
        "details": [],
        "settings": {"runs": runs, "reps": reps, "warmup": warmup, "bots": BOTS, "runs_per_bot": RUNS_PER_BOT,
                     "setup_ms": setup_ms},
    }


def main(argv: list[str] | None = None) -> int:
    return common.bench_main(__doc__, measure, argv, runs=7, reps=3, warmup=2)

if __name__ == "__main__":
    sys.exit(main())
