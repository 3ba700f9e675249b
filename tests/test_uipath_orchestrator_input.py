"""UiPath Orchestrator input at its edges: results of thousands of pages, answers that are not
OData, items the agent cannot read, and a control plane whose clock is hours off the agent's. A
real agent pulls the stand-in Orchestrator (tests/orchestrator_fake.py) and each ended job is
recorded exactly once; what it cannot read is counted, logged with the connection's name, and
loses nothing already recorded."""

from __future__ import annotations

import json
import random
import threading
from datetime import datetime, timedelta, timezone

import pytest

from botwatch.sources.controlplane import RequestBudget
from conftest import free_port, metrics_when
from orchestrator_fake import TERMINAL_STATES, FakeOrchestrator
from test_uipath_orchestrator import assert_each_job_once, estate, journal_rows, runs_total, terminal_jobs

pytestmark = pytest.mark.integration

ERRORS = 'botwatch_agent_parse_errors_total{source="uipath"}'
UP = 'botwatch_agent_controlplane_up{connection="prod",platform="uipath"}'
OK = 'botwatch_agent_controlplane_requests_total{connection="prod",outcome="ok",platform="uipath"}'
EVENTS = 'botwatch_agent_events_total{source="uipath"}'


def a_day_of_jobs(fake: FakeOrchestrator, n: int, seed: int) -> None:
    """`n` ended jobs of three processes in one folder, created in order over the last day, each
    lasting up to five hours: their ends are not in the order of their Ids."""
    rng = random.Random(seed)
    folder = fake.add_folder("Finance")
    fake.add_robot(folder, "fin-unattended-1", machine_name="RPA-FIN-VM01")
    releases = [fake.add_release(folder, name) for name in ("Invoice Recon", "Vendor Check", "GL Posting")]
    now = datetime.now(timezone.utc)
    for i in range(n):
        started = now - timedelta(hours=29) + timedelta(seconds=i * 86400 / n)
        state = rng.choices(("Successful", "Faulted", "Stopped"), (80, 15, 5))[0]
        fake.add_job(folder, rng.choice(releases), state=state, started=started,
                     ended=min(now - timedelta(seconds=1), started + timedelta(seconds=rng.randint(10, 5 * 3600))),
                     info="UiPath.Core.BusinessRuleException: Vendor 4711 is blocked" if state == "Faulted" else None)


@pytest.mark.parametrize("paging", ["top_skip", "next_link"])
def test_a_result_of_2000_pages_is_read_whole_and_each_job_recorded_once(tmp_path, agents, paging):
    # top_skip: a page size of 1; next_link: the server sends one job a page and @odata.nextLink
    with FakeOrchestrator(jobs_per_minute=None, next_link_page=1 if paging == "next_link" else 0) as fake:
        a_day_of_jobs(fake, 2000, seed=7)
        port = free_port()
        config = estate(tmp_path, fake, port, "auto_register: true\nrequests_per_minute: 100000\n"
                                              f"page_size: {1 if paging == 'top_skip' else 1000}")
        agent = agents(config, port, env={"UIPATH_SECRET": fake.client_secret}).start()
        m = metrics_when(agent, lambda m: runs_total(m) >= 2000, "the 2,000 jobs as runs", timeout=300)
        assert runs_total(m) == 2000
        assert_each_job_once(tmp_path, fake)
        # the first pull walked the whole result: one request per job and one past the end
        first = [r for r in fake.requests if r.path.endswith("/odata/Jobs")][:2001]
        assert sorted(int(r.query["$skip"]) for r in first) == list(range(2001))
        assert len({r.query["$filter"] for r in first}) == 1
        # later pulls read it again only from the cursor on: nothing is applied twice
        later = metrics_when(agent, lambda later: later[OK] >= m[OK] + 5, "a few more pulls", timeout=120)
        assert runs_total(later) == 2000 and later[EVENTS] == 2000
        assert later.get(ERRORS, 0) == 0


def page_of(fake: FakeOrchestrator, items: list) -> bytes:
    return json.dumps({"@odata.context": f"{fake.api_url}/odata/$metadata#Jobs", "value": items}).encode()


def test_answers_and_items_that_are_not_odata_are_counted_logged_and_lose_nothing(tmp_path, agents):
    with FakeOrchestrator() as fake:
        folder = fake.add_folder("Finance")
        release = fake.add_release(folder, "Invoice Recon")
        for _ in range(3):
            fake.add_job(folder, release, state="Successful")
        port = free_port()
        agent = agents(estate(tmp_path, fake, port, "auto_register: true\npage_size: 2"), port,
                       env={"UIPATH_SECRET": fake.client_secret}).start()
        metrics_when(agent, lambda m: runs_total(m) == 3, "the first 3 jobs")
        recorded = {r["run_id"] for r in journal_rows(tmp_path)}
        errors = 0

        def bad_answer(body: bytes, after: int = 0, content_type: str = "application/json; charset=utf-8",
                       times: int = 1) -> None:
            nonlocal errors
            before = agent.metrics()[OK]
            for _ in range(times):
                fake.answer_once("/odata/Jobs", body, after=after, content_type=content_type)
            errors += 1
            # counted, the connection down, then (the next pull) up again
            m = metrics_when(agent, lambda m: m.get(ERRORS, 0) == errors and m[UP] == 1 and m[OK] > before + after,
                             f"bad answer {errors} counted and the connection back")
            assert runs_total(m) >= len(recorded)
            assert recorded <= {r["run_id"] for r in journal_rows(tmp_path)}  # nothing recorded is lost

        # a proxy's error page instead of JSON, to the request and its two retries
        bad_answer(b"<html><body><h1>502 Bad Gateway</h1></body></html>", content_type="text/html", times=3)
        assert agent.metrics()[OK.replace('"ok"', '"error"')] == 3
        # `value` that is not a list, in the middle of a pull (its first page applied)
        for _ in range(3):
            fake.add_job(folder, release, state="Faulted", info="UiPath.Core.BusinessRuleException: Vendor blocked")
        bad_answer(b'{"@odata.context": "x", "value": {"Id": 1}}', after=1)
        metrics_when(agent, lambda m: runs_total(m) == 6, "the 3 new jobs, once")
        recorded = {r["run_id"] for r in journal_rows(tmp_path)}

        # a page whose items cannot all be read: the readable one is recorded, each other counted
        good = fake.add_job(folder, release, state="Successful")
        shaped = json.loads(json.dumps({k: v for k, v in good.items() if not k.startswith("_")}, default=str))
        broken = [dict(shaped, Key=None), dict(shaped, Key="k-no-release", ReleaseName=None),
                  dict(shaped, Key="k-bad-end", EndTime="yesterday at noon"),
                  dict(shaped, Key="k-no-end", State="Faulted", EndTime=None),
                  dict(shaped, Key="k-odd-state", State="Teleported"), "not an object"]
        before = agent.metrics()[OK]
        fake.answer_once("/odata/Jobs", page_of(fake, [shaped, *broken]))
        errors += len(broken)
        m = metrics_when(agent, lambda m: m.get(ERRORS, 0) == errors and m[OK] > before + 1,
                         "the unreadable items counted")
        assert runs_total(m) == 7 and m[UP] == 1
        assert {r["run_id"] for r in journal_rows(tmp_path)} == recorded | {f"uipath:{good['Key']}"}
        assert_each_job_once(tmp_path, fake)

        agent.stop()
        log = agent.log.read_text(encoding="utf-8")
        for message in ("uipath prod: folder 'Finance': answer is not JSON",
                        "uipath prod: folder 'Finance': odata/Jobs: an answer without a 'value' list",
                        "uipath prod: a job without Key", "uipath prod: a job without ReleaseName",
                        "uipath prod: a Successful job without EndTime", "uipath prod: a Faulted job without EndTime",
                        "uipath prod: a job in an unknown state 'Teleported'"):
            assert message in log, (message, log)


@pytest.mark.parametrize("skew_hours", [5, -5])
def test_a_control_plane_clock_hours_off_skips_nothing_and_repeats_nothing(tmp_path, agents, skew_hours):
    skew = timedelta(hours=skew_hours)
    with FakeOrchestrator(seed=8, wall_clock=lambda: datetime.now(timezone.utc) + skew) as fake:
        fake.populate(n_folders=2, n_processes=2, n_jobs=60, seed=12, anchor=fake.wall_clock())
        port = free_port()
        agent = agents(estate(tmp_path, fake, port, "auto_register: true\npage_size: 7"), port,
                       env={"UIPATH_SECRET": fake.client_secret}).start()
        n = len(terminal_jobs(fake))
        metrics_when(agent, lambda m: runs_total(m) == n, f"the {n} ended jobs")
        assert_each_job_once(tmp_path, fake)
        # Orchestrator goes on, on its own clock: runs end, new ones start and end between pulls
        live = [j for j in fake.rows("Jobs") if j["State"] not in TERMINAL_STATES]
        folders, releases = fake.rows("Folders"), fake.rows("Releases")
        for i, job in enumerate(live):
            fake.update_job(job, state=("Successful", "Faulted", "Stopped")[i % 3],
                            info="Could not find the user-interface (UI) element for this action" if i % 3 == 1
                            else None)
            fake.add_job(folders[i % 2]["Id"], releases[i % len(releases)]["Id"], state="Successful")
        n = len(terminal_jobs(fake))
        m = metrics_when(agent, lambda m: runs_total(m) == n, f"all {n} ended jobs", timeout=120)
        assert_each_job_once(tmp_path, fake)
        assert sum(v for k, v in m.items() if k.startswith("botwatch_run_in_progress{")) == 0
        later = metrics_when(agent, lambda later: later[OK] >= m[OK] + 6, "a few more pulls")
        assert runs_total(later) == n and later.get(ERRORS, 0) == 0


def test_the_budget_leaves_a_second_for_the_requests_way_to_the_server():
    # the server counts a request when it arrives: a slot comes back 61 s after it was taken, not 60
    now = [1000.0]
    budget = RequestBudget(2, clock=lambda: now[0])
    stopped = threading.Event()
    assert budget.take(stopped) and budget.take(stopped)
    now[0] += 60.0
    assert budget.wait_needed() == pytest.approx(1.0)
    now[0] += 1.0
    assert budget.wait_needed() == 0 and budget.take(stopped)
    budget.hold(30.0)  # a 429's Retry-After holds every slot
    assert budget.wait_needed() == pytest.approx(30.0)
