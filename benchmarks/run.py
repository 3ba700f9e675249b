"""Run every benchmark and write BENCHMARKS.md (and print it): `make bench`.

Each benchmark runs in a fresh interpreter of its own, so that one does not measure the heap or
the imports the other left behind. A missed goal is reported as MISSED; the exit status is 0
unless a benchmark could not run (or, with --strict, a goal was missed).

    .venv/bin/python benchmarks/run.py [--strict] [--quick] [--output FILE]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

HERE = Path(__file__).resolve().parent
BENCHMARKS = [
    # (script, section title, arguments for --quick[, arguments for every run: a size that keeps
    # `make bench` within minutes, where the benchmark's own default is a larger proof run alone])
    ("bench_run_wrapper.py", "1. `botwatch run` wall time", ["--runs", "5", "--reps", "3", "--warmup", "2"]),
    ("bench_metrics_render.py", "2. `/metrics` scrapes: the first, at rest, after every bot changed",
     ["--runs", "5", "--reps", "1", "--warmup", "1"]),
    ("bench_log_throughput.py", "3. Log throughput (UiPath execution log)", ["--runs", "5", "--lines", "200000"]),
    ("bench_process_sweep.py", "4. Process sweep CPU time", ["--runs", "5", "--reps", "1", "--warmup", "1"]),
    ("bench_ui_drift.py", "5. UI drift check of one snapshot", ["--runs", "5", "--reps", "2", "--warmup", "1"]),
    ("bench_estate_scale.py", "6. Estate on one machine: 10 agents × 200 bots, Prometheus and VictoriaMetrics",
     ["--runs", "5", "--reps", "1", "--warmup", "0"]),
    ("bench_agent_at_rest.py", "7. `botwatch agent` at rest: 500 bots, 50 watched logs",
     ["--runs", "5", "--window", "15", "--settle", "5"]),
    ("bench_alert_latency.py", "8. Alert latency: failed run to the team's webhook",
     ["--runs", "5", "--reps", "1", "--warmup", "1"]),
    ("bench_delivery_latency.py", "9. Delivery beside a target that is away",
     ["--runs", "5", "--reps", "2", "--warmup", "1"]),
    ("bench_webhook_latency.py", "10. Orchestrator webhook: job faulted to the metric",
     ["--runs", "5", "--reps", "2", "--warmup", "1"]),
    ("bench_orchestrator_tenant.py", "11. A large UiPath Orchestrator tenant: 2,000 processes, 200 folders, "
     "100,000 jobs", ["--runs", "5", "--folders", "20", "--processes", "200", "--jobs", "10000", "--window", "30"]),
    ("bench_connectors.py", "12. Power Automate, Blue Prism, Automation Anywhere and Robocorp: 1,000 automations, "
     "a day of runs", ["--automations", "200", "--runs-per-day", "2000", "--window", "30"],
     ["--runs-per-day", "10000"]),
    ("bench_install_footprint.py", "13. Install footprint: `pip install botwatch` without extras",
     ["--runs", "5", "--warmup", "0"]),
    ("bench_deps_extraction.py", "14. Dependency extraction: a UiPath project of 500 workflows, a Robot Framework "
     "project of 200 files", ["--runs", "5", "--reps", "1", "--warmup", "1"]),
]


def run_benchmark(script: str, quick_args: list[str], quick: bool, args: Sequence[str] = ()) -> dict:
    common.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = common.RESULTS_DIR / (Path(script).stem + ".json")
    out.unlink(missing_ok=True)
    cmd = [sys.executable, str(HERE / script), "--json", str(out), *args, *(quick_args if quick else [])]
    t0 = time.monotonic()
    p = subprocess.run(cmd, cwd=common.ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    elapsed = time.monotonic() - t0
    if p.returncode != 0 or not out.exists():
        tail = "\n".join((p.stderr or p.stdout).strip().splitlines()[-15:])
        return {"error": f"`{script}` failed (exit {p.returncode}):\n\n```\n{tail}\n```", "seconds": elapsed}
    result = json.loads(out.read_text(encoding="utf-8"))
    result["seconds"] = elapsed
    return result


def render(machine: dict, results: list[tuple[str, str, dict]], total_s: float) -> str:
    figures = [f for _s, _t, r in results for f in r.get("figures", [])]
    missed = [f["key"] for f in figures if not f["passed"]]
    errors = [title for _s, title, r in results if "error" in r]
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`benchmarks/run.py`); what each figure measures and why its reference is "
        "fair: [benchmarks/README.md](benchmarks/README.md).",
        "",
        "## Machine",
        "",
        *common.machine_lines(machine),
        "",
        "## Results",
        "",
        *common.results_table(figures),
        "",
    ]
    if missed or errors:
        verdict = []
        if missed:
            verdict.append(f"goal MISSED by {', '.join(missed)}")
        if errors:
            verdict.append(f"could not run: {', '.join(errors)}")
        lines.append("**" + "; ".join(verdict) + ".**")
    else:
        lines.append(f"All {len(figures)} figures meet their goals.")
    lines += [
        "",
        "Each value is the median over the runs of a benchmark; in brackets, the lowest and highest run. "
        "A run interleaves repetitions of the measured thing and of its reference (in rotating order) and "
        "keeps the median of each; the ratio is taken per run, measured over reference. A figure passes "
        "when its median ratio is within the goal. Runs × repetitions: " + common.runs_line(figures) + ". "
        f"The whole suite took {total_s:.0f} s.",
    ]
    for script, title, result in results:
        lines += ["", f"## {title}", ""]
        if "error" in result:
            lines.append(result["error"])
            continue
        for f in result["figures"]:
            iqr_m, iqr_r = f["measured"], f["ratio"]
            lines.append(f"- {f['key']}: interquartile range over the runs {common.fmt(iqr_m['q1'], f['unit'])} to "
                         f"{common.fmt(iqr_m['q3'], f['unit'])}, ratio {iqr_r['q1']:.2f}x to {iqr_r['q3']:.2f}x")
            for note in f["notes"]:
                lines.append(f"- {f['key']}: {note}")
        lines += result.get("details", [])
        lines.append("")
        lines.append(f"Raw samples: `benchmarks/results/{Path(script).stem}.json` (not committed); "
                     f"this benchmark took {result['seconds']:.0f} s.")
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    p.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke test, not for the record)")
    p.add_argument("--output", default=str(common.ROOT / "BENCHMARKS.md"))
    args = p.parse_args(argv)
    t0 = time.monotonic()
    machine = common.machine()
    results = []
    for script, title, quick_args, *always in BENCHMARKS:
        print(f"running {script} ...", file=sys.stderr, flush=True)
        results.append((script, title, run_benchmark(script, quick_args, args.quick, *always)))
    text = render(machine, results, time.monotonic() - t0)
    Path(args.output).write_text(text, encoding="utf-8")
    print(text)
    print(f"written to {args.output}", file=sys.stderr)
    if any("error" in r for _s, _t, r in results):
        return 1
    missed = any(not f["passed"] for _s, _t, r in results for f in r.get("figures", []))
    return 1 if (args.strict and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
