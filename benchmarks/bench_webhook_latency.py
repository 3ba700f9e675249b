"""Benchmark 10: an Orchestrator job faulting to its failure on `/metrics`, through the job's
webhook, against a failed run posted to the agent's events API.

The stand-in Orchestrator of the tests (tests/orchestrator_fake.py: a real HTTP server on a
loopback port, its token endpoint, folders and OData API) holds one folder and one process; a real
`botwatch agent` (`python -m botwatch agent --config FILE`) reads it as a `platforms.uipath`
connection with a `webhook_secret`, pulled once at start and then hourly, so that no pull records
a job during the measurement: the webhook alone does.

Each repetition makes a Running job Faulted in the stand-in (T0), which then sends the signed
`job.faulted` webhook to `POST /api/v1/webhooks/uipath/<connection>` as Orchestrator would; the
agent checks the signature, fetches the job from the stand-in (`GET /odata/Jobs(<Id>)`), maps it to
its bot and records the run. T1 is the moment a `/metrics` answer shows the bot's
`botwatch_run_failures_total` grown (polled every 10 ms); the latency is T1 − T0, one monotonic
clock.

The reference, interleaved on the same agent, is the same failure without Orchestrator: a
`run_finished` event posted to `POST /api/v1/events` at T0, to the same kind of T1. The ratio says
what the webhook path (signature, fetching the job, mapping it) costs over the agent's plainest
input. The goal is absolute, the issue's: with webhooks, under 2 s from the job faulting to the
metric (the measured median).

Run alone:  .venv/bin/python benchmarks/bench_webhook_latency.py [--runs N] [--reps N] [--json FILE]
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

sys.path.insert(0, str(common.ROOT / "tests"))
from orchestrator_fake import FakeOrchestrator  # noqa: E402

GOAL_S = 2.0  # with webhooks, a faulted job is on /metrics within 2 s
TIMEOUT = 30.0  # bound on each wait: it stops a hang, it asserts no speed
POLL_S = 0.01  # how often /metrics is read
SECRET = "bench-webhook-secret"
PROCESS, BOT = "Invoice Recon", "invoice-recon"  # the Orchestrator process and the bot it becomes
API_BOT = "api-recon"  # the reference's bot, in the estate file
FAULT = ("Click 'Post Document': UiPath.Core.Activities.SelectorNotFoundException: Cannot find the UI element "
         "corresponding to this selector: <wnd app='saplogon.exe' title='Post Document*' />")
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def estate(port: int, journal: Path, fake: FakeOrchestrator) -> str:
    return (f"agent:\n  listen: 127.0.0.1:{port}\n  journal: {journal}\n"
            f"platforms:\n  uipath:\n    - name: prod\n      url: '{fake.url}'\n      organization: {fake.org}\n"
            f"      tenant: {fake.tenant}\n      client_id: {fake.client_id}\n"
            f"      client_secret: '{fake.client_secret}'\n      webhook_secret: '{SECRET}'\n"
            f"      auto_register: true\n      interval: 1h\n"
            f"bots:\n  - {{name: {API_BOT}, team: finance, platform: uipath}}\n")


def failures(text: str, bot: str) -> float:
    return sum(float(v) for v in re.findall(
        rf'^botwatch_run_failures_total\{{bot="{re.escape(bot)}",reason="[a-z_]+"\}} (\S+)$', text, re.M))


def measure(runs: int, reps: int, warmup: int) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="botwatch-bench-webhook-"))
    fake = FakeOrchestrator().start()
    proc = logf = None
    try:
        folder = fake.add_folder("Finance")
        release = fake.add_release(folder, PROCESS)
        fake.add_robot(folder, "fin-unattended-1", machine_name="RPA-FIN-VM01")
        port = free_port()
        config = tmp / "estate.yaml"
        config.write_text(estate(port, tmp / "journal.db", fake), encoding="utf-8")
        url = f"http://127.0.0.1:{port}"
        hook = f"{url}/api/v1/webhooks/uipath/prod"
        t_setup = time.monotonic()
        logf = open(tmp / "agent.log", "wb")
        proc = subprocess.Popen([PYTHON, "-m", "botwatch", "agent", "--config", str(config)], cwd=tmp,
                                env=common.clean_env(), stdin=subprocess.DEVNULL, stdout=logf,
                                stderr=subprocess.STDOUT, preexec_fn=common.die_with_parent)

        def scrape() -> str:
            if proc.poll() is not None:
                raise RuntimeError(f"the agent exited with {proc.returncode}:\n"
                                   + (tmp / "agent.log").read_text(errors="replace")[-2000:])
            with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
                return r.read().decode()

        def first_pull_done() -> bool:
            try:
                return 'botwatch_agent_controlplane_up{connection="prod",platform="uipath"} 1.0' in scrape()
            except OSError:
                return False

        deadline = time.monotonic() + 60
        while not first_pull_done():
            if time.monotonic() > deadline:
                raise RuntimeError("the agent's first pull did not end within 60 s")
            time.sleep(0.1)
        setup_s = time.monotonic() - t_setup
        expected = {BOT: 0, API_BOT: 0}

        def wait_seen(bot: str, t0: float) -> tuple[float, int]:
            polls = 0
            while True:
                polls += 1
                text = scrape()
                t1 = time.monotonic()
                if failures(text, bot) >= expected[bot]:
                    return t1 - t0, polls
                if t1 - t0 > TIMEOUT:
                    raise RuntimeError(f"{bot}: failure not on /metrics {TIMEOUT:g} s after T0")
                time.sleep(POLL_S)

        def webhook() -> dict:
            job = fake.add_job(folder, release, state="Running")  # untimed: the job was running
            expected[BOT] += 1
            t0 = time.monotonic()
            fake.update_job(job, state="Faulted", info=FAULT)
            status = fake.send_webhook(hook, SECRET, fake.job_event(job, "job.faulted"))
            answered = time.monotonic() - t0
            if status != 200:
                raise RuntimeError(f"the webhook was answered {status}")
            latency, polls = wait_seen(BOT, t0)
            return {"latency_s": latency, "answered_s": answered, "polls": polls}

        def api() -> dict:
            expected[API_BOT] += 1
            now = time.time()
            body = json.dumps({"events": [{"type": "run_finished", "bot": API_BOT, "run_id": f"api-{expected[API_BOT]}",
                                           "started": now - 47, "ended": now, "outcome": "failure",
                                           "output_tail": FAULT}]}).encode()
            req = urllib.request.Request(url + "/api/v1/events", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
            t0 = time.monotonic()
            with urllib.request.urlopen(req, timeout=10) as r:
                if json.loads(r.read())["accepted"] != 1:
                    raise RuntimeError("the reference run was not accepted")
            answered = time.monotonic() - t0
            latency, polls = wait_seen(API_BOT, t0)
            return {"latency_s": latency, "answered_s": answered, "polls": polls}

        names = ["measured", "reference"]
        fns = {"measured": webhook, "reference": api}
        warm = common.interleaved(names, warmup, fns) if warmup else {k: [] for k in names}
        samples: dict[str, list[list[dict]]] = {k: [] for k in names}
        for r in range(runs):
            got = common.interleaved(names, reps, fns, start=warmup + r * reps)
            for k, v in got.items():
                samples[k].append(v)
        final = scrape()
        fetches = sum(1 for r in fake.requests if re.search(r"/odata/Jobs\(\d+\)$", r.path))
    finally:
        if proc is not None:
            common.stop_process(proc, logf, timeout=15)
        fake.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    # every job once: as many failures and runs as jobs faulted, none counted twice
    accepted = float(re.search(r'^botwatch_agent_webhooks_total\{connection="prod",outcome="accepted",'
                               r'platform="uipath"\} (\S+)$', final, re.M).group(1))
    if failures(final, BOT) != expected[BOT] or accepted != expected[BOT] or fetches != expected[BOT]:
        raise RuntimeError(f"{expected[BOT]} jobs faulted: {failures(final, BOT)} failures, {accepted} webhooks "
                           f"accepted, {fetches} jobs fetched")
    per_run = {k: [statistics.median(x["latency_s"] for x in run) * 1000 for run in samples[k]] for k in names}
    every = {k: [x["latency_s"] for run in samples[k] for x in run] for k in names}
    answered = {k: [x["answered_s"] for run in samples[k] for x in run] for k in names}
    ref_median = statistics.median(per_run["reference"])
    fig = common.figure(
        key="10", title="Orchestrator job faulted → its failure on the agent's `/metrics`, through the signed "
                        "`job.faulted` webhook (signature checked, job fetched from Orchestrator, recorded)",
        unit="ms", measured_runs=per_run["measured"], reference_runs=per_run["reference"],
        reference_title="a failed run posted to `POST /api/v1/events` → on `/metrics`",
        goal=round(GOAL_S * 1000 / ref_median, 2), reps=reps,
        samples={"measured": samples["measured"], "reference": samples["reference"],
                 "warmup": {k: warm[k] for k in names}})
    med = fig["measured"]["median"] / 1000
    fig["passed"] = med <= GOAL_S
    fig["notes"] += [
        f"goal: at most {GOAL_S:g} s absolute, the issue's requirement (the Goal column is that, as a ratio to this "
        f"run's reference median); measured median {med * 1000:.1f} ms: {'PASS' if fig['passed'] else 'MISSED'}; "
        f"every repetition: {min(every['measured']) * 1000:.1f}–{max(every['measured']) * 1000:.1f} ms, "
        f"{sum(x <= GOAL_S for x in every['measured'])} of {len(every['measured'])} within the goal",
        f"the webhook was answered (run recorded, journal written) after a median "
        f"{statistics.median(answered['measured']) * 1000:.1f} ms, the reference's batch after "
        f"{statistics.median(answered['reference']) * 1000:.1f} ms; the rest is the next `/metrics` read "
        f"(polled every {POLL_S * 1000:.0f} ms)",
        f"checked: {expected[BOT]} jobs faulted, {expected[BOT]} webhooks accepted, {fetches} jobs fetched, "
        f"{expected[BOT]} failures on /metrics (none twice)",
        "everything runs on loopback: a real Orchestrator adds its own delivery of the webhook and one round trip "
        "of the agent's fetch of the job; without a webhook the job waits for the connection's next pull, up to "
        "`interval` (60 s by default)",
    ]
    details = [
        "",
        f"Set-up: the tests' stand-in Orchestrator and one `botwatch agent` on loopback ports, one connection "
        f"(pulled once at start, then hourly) and one bot in the estate file; set-up took {setup_s:.1f} s. "
        f"{warmup} warm-up repetition(s) of each, not counted; each run is the median of {reps} repetition(s).",
    ]
    return {
        "benchmark": "webhook_latency",
        "figures": [fig],
        "details": details,
        "settings": {"runs": runs, "reps": reps, "warmup": warmup, "goal_s": GOAL_S, "poll_s": POLL_S,
                     "timeout_s": TIMEOUT, "setup_s": setup_s},
    }


def main(argv: list[str] | None = None) -> int:
    return common.bench_main(__doc__, measure, argv, runs=7, reps=3, warmup=1)


if __name__ == "__main__":
    sys.exit(main())
