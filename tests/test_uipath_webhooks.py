"""Orchestrator webhooks, reconciled by pull: a real agent receives webhooks the stand-in
Orchestrator (tests/orchestrator_fake.py) signs and sends, records each job at once, refuses and
counts what it cannot trust, and lets the pull fill in what no webhook told it, each job once."""

from __future__ import annotations

import http.client
import json
import urllib.parse
from pathlib import Path

import pytest

from conftest import free_port, http_get, metrics_when, wait_for
from orchestrator_fake import FakeOrchestrator, webhook_signature
from test_uipath_orchestrator import journal_runs, runs_total

pytestmark = pytest.mark.integration

SECRET = "wh-Secr3t-0f-the-webhook"
SELECTOR_FAULT = ("Click 'Post Document': UiPath.Core.Activities.SelectorNotFoundException: Cannot find the UI "
                  "element corresponding to this selector: <wnd app='saplogon.exe' title='Post Document*' />")


def estate(tmp_path: Path, fake: FakeOrchestrator, port: int, connection: str = "", agent: str = "") -> Path:
    """One connection, pulled once at start and then hourly (unless a webhook asks for a pull), with
    the webhook secret from the environment."""
    config = tmp_path / "botwatch.yaml"
    config.write_text(
        f"agent:\n  listen: 127.0.0.1:{port}\n  journal: {tmp_path / 'journal.db'}\n  sweep_interval: 1s\n{agent}"
        f"platforms:\n  uipath:\n    - name: prod\n      url: '{fake.url}'\n      organization: {fake.org}\n"
        f"      tenant: {fake.tenant}\n      client_id: {fake.client_id}\n      client_secret: env:UIPATH_SECRET\n"
        f"      history: 2d\n      auto_register: true\n"
        + "".join(f"      {line}\n" for line in (connection or "interval: 1h\nwebhook_secret: env:UIPATH_WEBHOOK_SECRET")
                  .splitlines())
        + "bots: []\n", encoding="utf-8")
    return config


def start(tmp_path, agents, fake, **kw):
    """An agent whose first pull has read the folders (and recorded what had ended)."""
    port = free_port()
    agent = agents(estate(tmp_path, fake, port, **kw), port,
                   env={"UIPATH_SECRET": fake.client_secret, "UIPATH_WEBHOOK_SECRET": SECRET}).start()
    metrics_when(agent, lambda m: m.get(UP) == 1, "the first pull")
    return agent


def hook_url(agent, connection: str = "prod", platform: str = "uipath") -> str:
    return f"{agent.url}/api/v1/webhooks/{platform}/{connection}"


def post_raw(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    target = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(target.netloc, timeout=30)
    try:
        conn.request("POST", target.path, body, {"Content-Type": "application/json", **headers})
        r = conn.getresponse()
        return r.status, json.loads(r.read() or b"{}")
    finally:
        conn.close()


def signed_post(url: str, body: bytes, secret: str = SECRET) -> tuple[int, dict]:
    return post_raw(url, body, {"X-UiPath-Signature": webhook_signature(secret, body)})


UP = 'botwatch_agent_controlplane_up{connection="prod",platform="uipath"}'
LAST_PULL = 'botwatch_agent_controlplane_last_success_timestamp_seconds{connection="prod",platform="uipath"}'


def webhooks(m: dict[str, float], outcome: str) -> float:
    return m[f'botwatch_agent_webhooks_total{{connection="prod",outcome="{outcome}",platform="uipath"}}']


def failures(m: dict[str, float], bot: str, reason: str) -> float:
    return m[f'botwatch_run_failures_total{{bot="{bot}",reason="{reason}"}}']


def tenant(fake: FakeOrchestrator):
    """A Finance folder with one process, one job already ended, and a queue."""
    folder = fake.add_folder("Finance")
    release = fake.add_release(folder, "Invoice Recon")
    fake.add_job(folder, release, state="Successful")
    queue = fake.add_queue(folder, "Invoice Recon_Queue", release=release)
    return folder, release, queue


def pull_now(agent, fake: FakeOrchestrator, queue) -> dict[str, float]:
    """A queue item webhook, which asks for a pull; the metrics once that pull has ended."""
    before = agent.metrics()[LAST_PULL]
    item = fake.add_queue_item(queue, status="Failed", exception_type="BusinessException", reason="Missing cost center")
    assert fake.send_webhook(hook_url(agent), SECRET, fake.queue_item_event(item)) == 202
    return metrics_when(agent, lambda m: m[LAST_PULL] > before, "the pull a queue item webhook asked for")


def test_a_signed_faulted_job_is_recorded_at_once_and_the_pull_does_not_count_it_again(tmp_path, agents):
    with FakeOrchestrator() as fake:
        folder, release, queue = tenant(fake)
        agent = start(tmp_path, agents, fake)
        assert runs_total(agent.metrics()) == 1
        job = fake.add_job(folder, release, state="Faulted", info=SELECTOR_FAULT)
        assert fake.send_webhook(hook_url(agent), SECRET, fake.job_event(job, "job.faulted")) == 200
        run_id = f"uipath:{job['Key']}"
        run = wait_for(lambda: journal_runs(tmp_path).get(run_id), what="the faulted job recorded")
        assert (run["bot"], run["outcome"], run["reason"], run["source"]) == ("invoice-recon", "failure", "ui_drift",
                                                                             "uipath")
        assert run["host"] == job["HostMachineName"]
        m = agent.metrics()
        assert runs_total(m) == 2 and failures(m, "invoice-recon", "ui_drift") == 1
        assert webhooks(m, "accepted") == 1
        # the job was fetched from its folder, by its Id, as the webhook carries no process name
        fetch = [r for r in fake.requests if r.path.endswith(f"/odata/Jobs({job['Id']})")]
        assert len(fetch) == 1 and fetch[0].header("X-UIPATH-OrganizationUnitId") == str(folder["Id"])
        # the next pull reads the same job again: still one run
        m = pull_now(agent, fake, queue)
        assert runs_total(m) == 2 and failures(m, "invoice-recon", "ui_drift") == 1
        assert [r for r in journal_runs(tmp_path) if r == run_id] == [run_id]


def test_a_webhook_never_sent_is_filled_in_by_the_pull(tmp_path, agents):
    with FakeOrchestrator() as fake:
        folder, release, _ = tenant(fake)
        agent = start(tmp_path, agents, fake, connection=f"interval: 1s\nwebhook_secret: {SECRET}")
        missed = fake.add_job(folder, release, state="Faulted",
                              info="UiPath.Core.BusinessRuleException: Vendor 4711 is blocked for payment")
        m = metrics_when(agent, lambda m: runs_total(m) == 2, "the job no webhook told of")
        assert journal_runs(tmp_path)[f"uipath:{missed['Key']}"]["reason"] == "business"
        assert webhooks(m, "accepted") == 0


def test_a_stopped_job_in_a_jobs_array_is_a_killed_run(tmp_path, agents):
    with FakeOrchestrator() as fake:
        folder, release, queue = tenant(fake)
        agent = start(tmp_path, agents, fake)
        job = fake.add_job(folder, release, state="Running")
        fake.update_job(job, state="Stopped")
        event = fake.job_event(job, "job.stopped")
        assert isinstance(event["Jobs"], list) and "Job" not in event
        assert fake.send_webhook(hook_url(agent), SECRET, event) == 200
        run = wait_for(lambda: journal_runs(tmp_path).get(f"uipath:{job['Key']}"), what="the stopped job")
        assert (run["outcome"], run["reason"]) == ("failure", "killed")
        assert failures(pull_now(agent, fake, queue), "invoice-recon", "killed") == 1


def test_a_started_job_then_its_end_is_one_run(tmp_path, agents):
    with FakeOrchestrator() as fake:
        folder, release, queue = tenant(fake)
        agent = start(tmp_path, agents, fake)
        job = fake.add_job(folder, release, state="Running")
        assert fake.send_webhook(hook_url(agent), SECRET, fake.job_event(job, "job.started")) == 200
        metrics_when(agent, lambda m: m['botwatch_run_in_progress{bot="invoice-recon"}'] == 1, "the run in progress")
        fake.update_job(job, state="Successful")
        assert fake.send_webhook(hook_url(agent), SECRET, fake.job_event(job, "job.completed")) == 200
        m = metrics_when(agent, lambda m: runs_total(m) == 2, "the run ended")
        assert m['botwatch_run_in_progress{bot="invoice-recon"}'] == 0
        m = pull_now(agent, fake, queue)
        assert runs_total(m) == 2 and m['botwatch_run_in_progress{bot="invoice-recon"}'] == 0
        assert webhooks(m, "accepted") == 3  # two jobs' events and the queue item's


def test_a_bad_or_missing_signature_is_refused_with_401_counted_and_nothing_recorded(tmp_path, agents):
    with FakeOrchestrator() as fake:
        folder, release, _ = tenant(fake)
        agent = start(tmp_path, agents, fake)
        job = fake.add_job(folder, release, state="Faulted")
        event = fake.job_event(job, "job.faulted")
        assert fake.send_webhook(hook_url(agent), "not-the-secret", event) == 401
        assert fake.send_webhook(hook_url(agent), None, event) == 401
        body = json.dumps(event).encode()
        assert post_raw(hook_url(agent), body, {"X-UiPath-Signature": "%%% not base64"})[0] == 401
        m = metrics_when(agent, lambda m: webhooks(m, "bad_signature") == 3, "three refusals counted")
        assert webhooks(m, "accepted") == 0 and runs_total(m) == 1
        assert f"uipath:{job['Key']}" not in journal_runs(tmp_path)
        assert not [r for r in fake.requests if r.path.endswith(f"/odata/Jobs({job['Id']})")]  # nothing fetched
        agent.stop()
        assert SECRET not in agent.log.read_text(encoding="utf-8")


def test_a_connection_without_a_webhook_secret_takes_no_webhooks(tmp_path, agents):
    with FakeOrchestrator() as fake:
        folder, release, _ = tenant(fake)
        agent = start(tmp_path, agents, fake, connection="interval: 1h")
        event = fake.job_event(fake.add_job(folder, release, state="Faulted"), "job.faulted")
        assert fake.send_webhook(hook_url(agent), SECRET, event) == 404
        assert fake.send_webhook(hook_url(agent), None, event) == 404
        assert fake.send_webhook(hook_url(agent, connection="staging"), SECRET, event) == 404
        assert fake.send_webhook(hook_url(agent, platform="blueprism"), SECRET, event) == 404
        m = metrics_when(agent, lambda m: m['botwatch_agent_parse_errors_total{source="api"}'] == 4, "404s counted")
        assert runs_total(m) == 1 and webhooks(m, "accepted") == 0


def test_a_malformed_event_is_refused_with_400_and_counted(tmp_path, agents):
    with FakeOrchestrator() as fake:
        folder, release, _ = tenant(fake)
        agent = start(tmp_path, agents, fake)
        good = fake.job_event(fake.add_job(folder, release, state="Faulted"), "job.faulted")
        no_folder = {k: v for k, v in good.items() if k != "OrganizationUnitId"}
        no_key = {**good, "Job": {**good["Job"], "Key": None}}
        for body in (b"{not json", b"[1, 2]", b'{"EventId": "x"}', json.dumps(no_folder).encode(),
                     json.dumps(no_key).encode(), json.dumps({**good, "Job": None}).encode(), b"[" * 100_000):
            status, answer = signed_post(hook_url(agent), body)
            assert status == 400 and answer["error"] == "malformed event", (body[:40], answer)
        m = metrics_when(agent, lambda m: webhooks(m, "malformed") == 7, "seven malformed webhooks counted")
        assert webhooks(m, "bad_signature") == 0 and runs_total(m) == 1
        # an event of a type the receiver does not take is answered and counted, not refused
        status, answer = signed_post(hook_url(agent), json.dumps({"Type": "robot.disconnected"}).encode())
        assert status == 200 and answer == {"unknown": "robot.disconnected"}
        assert webhooks(agent.metrics(), "unknown") == 1


def test_a_job_that_cannot_be_fetched_is_left_to_the_pull_and_recorded_once(tmp_path, agents):
    with FakeOrchestrator() as fake:
        folder, release, queue = tenant(fake)
        agent = start(tmp_path, agents, fake)
        job = fake.add_job(folder, release, state="Faulted")
        fake.error_once(f"/odata/Jobs({job['Id']})", 503)
        status = fake.send_webhook(hook_url(agent), SECRET, fake.job_event(job, "job.faulted"))
        assert status == 202
        m = agent.metrics()
        assert webhooks(m, "deferred") == 1 and runs_total(m) == 1
        m = pull_now(agent, fake, queue)
        assert runs_total(m) == 2
        assert journal_runs(tmp_path)[f"uipath:{job['Key']}"]["outcome"] == "failure"


def test_a_job_of_a_folder_the_connection_does_not_read_is_ignored(tmp_path, agents):
    with FakeOrchestrator() as fake:
        tenant(fake)
        hr = fake.add_folder("HR")
        job = fake.add_job(hr, fake.add_release(hr, "Payroll Check"), state="Faulted")
        agent = start(tmp_path, agents, fake,
                      connection="interval: 1h\nfolders: [Finance]\nwebhook_secret: env:UIPATH_WEBHOOK_SECRET")
        assert fake.send_webhook(hook_url(agent), SECRET, fake.job_event(job, "job.faulted")) == 200
        m = metrics_when(agent, lambda m: webhooks(m, "ignored") == 1, "the job ignored")
        assert runs_total(m) == 1
        assert not [r for r in fake.requests if r.path.endswith(f"/odata/Jobs({job['Id']})")]


def test_a_queue_item_event_is_accepted_and_pulls_the_connection(tmp_path, agents):
    with FakeOrchestrator() as fake:
        folder, release, queue = tenant(fake)
        agent = start(tmp_path, agents, fake)
        jobs_read = fake.counts["Jobs"]
        later = fake.add_job(folder, release, state="Successful")  # no webhook for it: the pull finds it
        m = pull_now(agent, fake, queue)
        assert fake.counts["Jobs"] > jobs_read
        assert webhooks(m, "accepted") == 1 and runs_total(m) == 2
        assert f"uipath:{later['Key']}" in journal_runs(tmp_path)


def test_a_body_over_the_size_limit_is_refused_before_it_is_parsed(tmp_path, agents):
    with FakeOrchestrator() as fake:
        tenant(fake)
        agent = start(tmp_path, agents, fake, agent="  limits: {max_body_bytes: 4096}\n")
        body = json.dumps({"Type": "job.faulted", "Padding": "x" * 10_000}).encode()
        status, answer = signed_post(hook_url(agent), body)
        assert status == 413 and answer["max_bytes"] == 4096
        m = metrics_when(agent, lambda m: m['botwatch_agent_events_dropped_total{source="http"}'] == 1, "413 counted")
        assert webhooks(m, "malformed") == 0 and webhooks(m, "bad_signature") == 0


def test_the_webhook_route_is_in_the_api_description(tmp_path, agents):
    with FakeOrchestrator() as fake:
        tenant(fake)
        agent = start(tmp_path, agents, fake)
        status, body = http_get(agent.url + "/api/v1/openapi.json")
        assert status == 200
        operation = json.loads(body)["paths"]["/api/v1/webhooks/{platform}/{connection}"]["post"]
        assert {"200", "202", "400", "401", "404", "413"} <= set(operation["responses"])


def test_webhooks_need_no_password_when_basic_auth_is_on(tmp_path, agents):
    import bcrypt

    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    (tmp_path / "web.yml").write_text(f"basic_auth_users:\n  prom: '{hashed}'\n", encoding="utf-8")
    with FakeOrchestrator() as fake:
        folder, release, _ = tenant(fake)
        port = free_port()
        agent = agents(estate(tmp_path, fake, port, agent=f"  web_config: {tmp_path / 'web.yml'}\n"), port,
                       env={"UIPATH_SECRET": fake.client_secret, "UIPATH_WEBHOOK_SECRET": SECRET}).start()
        assert http_get_status(agent.url + "/metrics") == 401  # the password guards the rest
        job = fake.add_job(folder, release, state="Faulted")
        # before the first pull has read the folders a job is left to it (202); then recorded at once (200)
        wait_for(lambda: fake.send_webhook(hook_url(agent), SECRET, fake.job_event(job, "job.faulted")) == 200,
                 what="the webhook taken without a password")
        assert journal_runs(tmp_path)[f"uipath:{job['Key']}"]["outcome"] == "failure"
        status, answer = signed_post(hook_url(agent), b"{}", secret="wrong")
        assert (status, answer) == (401, {"error": "missing or wrong X-UiPath-Signature"})


def http_get_status(url: str) -> int:
    import urllib.error

    try:
        return http_get(url)[0]
    except urllib.error.HTTPError as exc:
        return exc.code
