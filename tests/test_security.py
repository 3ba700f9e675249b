"""Security: secrets are redacted wherever they could leak, the agent listens on 127.0.0.1 by
default, ping keys are compared in constant time, label cardinality and request sizes are bounded.

Covered elsewhere, not repeated here:
- a wrong ping key gets 403 and records nothing: test_checkin.py::test_bad_check_ins_get_a_clear_json_4xx_and_record_nothing,
  a bot key for another bot: test_checkin.py::test_a_bot_may_check_in_with_its_own_key_but_not_for_other_bots,
  no key configured: test_checkin.py::test_check_ins_are_refused_when_no_ping_key_is_configured,
  the events API: test_checkin.py::test_the_events_api_needs_the_key_when_one_is_configured;
- TLS and basic auth on a real agent: test_checkin.py::test_tls_and_basic_auth_protect_metrics_and_the_api_but_not_check_ins;
- an announced oversized body (413): test_checkin.py::test_bad_check_ins_get_a_clear_json_4xx_and_record_nothing,
  too many events in a batch (413): test_e2e_alerting.py::play_scenario (the fixture of its tests), per-bot rate (429): test_checkin.py::test_a_bot_over_its_rate_gets_429_and_the_refusals_are_counted;
- the max_bots cap on a small scale: test_scale_out.py::test_auto_registration_stops_at_max_bots_and_counts_what_it_refuses.

The short `-p` flag: only where it is unambiguous (see botwatch.core.redact): glued to mysql/mariadb
(`-pSECRET`) and after sshpass. `ssh -p 2222`, `docker run -p 8080:80`, `mkdir -p`, `mysql -p NAME`
(a prompt, then a database name) and `mysql -P3306` (a port) are left as they are.
"""

from __future__ import annotations

import hmac
import http.client
import json
import re
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from conftest import BOTWATCH, free_port, http_get, http_post_json, metrics_when

import botwatch.core.redact as redact_module
from botwatch.core.redact import redact

MASK = "[REDACTED]"

# (id, text, secrets that must go, neighbouring text that must stay). Every secret is unique.
SHAPES = [
    ("option=", "robot --password=Pw01xQz7 --outputdir out tasks.robot",
     ["Pw01xQz7"], ["robot --password=", "--outputdir out", "tasks.robot"]),
    ("option space", "UiRobot.exe execute --password Pw02mKv9 --file Main.xaml",
     ["Pw02mKv9"], ["UiRobot.exe execute --password", "--file Main.xaml"]),
    ("compound option", "sync.py --db-password 'Pw03 hYt4' --dry-run",
     ["Pw03", "hYt4"], ["sync.py --db-password", "--dry-run"]),
    ("powershell parameter", "Start-Bot.ps1 -User svc -Password Pw04jWq1 -Queue invoices",
     ["Pw04jWq1"], ["-User svc -Password", "-Queue invoices"]),
    ("mysql -pSECRET", "mysql -u recon -pPw05kLm3 -h db1 ledger",
     ["Pw05kLm3"], ["mysql -u recon -p", "-h db1 ledger"]),
    ("sshpass -p", "sshpass -p Pw06nBv8 ssh bot@sftp.example.com",
     ["Pw06nBv8"], ["sshpass -p", "ssh bot@sftp.example.com"]),
    ("--token=", "bw sync --token=Tk07cXz5ab --verbose",
     ["Tk07cXz5ab"], ["bw sync --token=", "--verbose"]),
    ("--api-key", "uploader --api-key Ak08rTy6 --dry-run",
     ["Ak08rTy6"], ["uploader --api-key", "--dry-run"]),
    ("curl -u", "curl -fsS -u svc:Pw09gHj2 https://erp.example.com/api",
     ["Pw09gHj2"], ["curl -fsS -u svc:", "https://erp.example.com/api"]),
    ("query string", "GET https://erp.example.com/login?user=bob&password=Pw10uIo4&lang=en failed",
     ["Pw10uIo4"], ["?user=bob&password=", "&lang=en failed"]),
    ("https user:pass@", "proxy https://svc:Pw11aSd7@orchestrator.example.com/odata refused",
     ["Pw11aSd7"], ["proxy https://svc:", "@orchestrator.example.com/odata refused"]),
    ("ftp", "upload to ftp://bot:Pw12fGh9@files.example.com/in/ done",
     ["Pw12fGh9"], ["ftp://bot:", "@files.example.com/in/ done"]),
    ("postgresql", "db postgresql://recon:Pw13zXc1@db:5432/ledger down",
     ["Pw13zXc1"], ["postgresql://recon:", "@db:5432/ledger down"]),
    ("mongodb+srv", "mongodb+srv://app:Pw14vBn2@cluster0.example.net/?retryWrites=true",
     ["Pw14vBn2"], ["mongodb+srv://app:", "@cluster0.example.net/?retryWrites=true"]),
    ("redis no user", "cache redis://:Pw15mQw3@cache:6379/0 timed out",
     ["Pw15mQw3"], ["redis://:", "@cache:6379/0 timed out"]),
    ("ODBC Password=", "Driver={ODBC Driver 18};Server=sql01;Database=erp;User Id=svc;Password=Pw16eRt4;Encrypt=yes",
     ["Pw16eRt4"], ["Server=sql01;Database=erp;User Id=svc;Password=", ";Encrypt=yes"]),
    ("ODBC PWD={}", "DSN=erp;UID=svc;PWD={Pw17;yUi5};APP=recon",
     ["Pw17", "yUi5"], ["DSN=erp;UID=svc;PWD=", ";APP=recon"]),
    ("Authorization Bearer", "GET /invoices Authorization: Bearer Tk18oPa6sDfGh ok",
     ["Tk18oPa6sDfGh"], ["GET /invoices Authorization: Bearer", " ok"]),
    ("Authorization bare token", "Proxy-Authorization=Tk45aZsXdCfVgBhN; retrying",
     ["Tk45aZsXdCfVgBhN"], ["Proxy-Authorization=", "retrying"]),
    ("Authorization Basic", "Authorization: Basic c3ZjOlB3MTlqS2w3 sent",
     ["c3ZjOlB3MTlqS2w3"], ["Authorization: Basic", "sent"]),
    ("JSON password", '{"user": "svc", "password": "Pw20zXv8", "retries": 3}',
     ["Pw20zXv8"], ['"user": "svc", "password":', '"retries": 3']),
    ("JSON client_secret", '{"client_id": "app-21", "client_secret": "Cs21bNm9qW"}',
     ["Cs21bNm9qW"], ['"client_id": "app-21", "client_secret":']),
    ("X-Api-Key header", "X-Api-Key: Ak22wEr0tY sent to /v1/invoices",
     ["Ak22wEr0tY"], ["X-Api-Key:", "sent to /v1/invoices"]),
    ("X-Botwatch-Key header", "curl -H 'X-Botwatch-Key: Bk23tYu1' http://agent:9464/api/v1/events",
     ["Bk23tYu1"], ["X-Botwatch-Key:", "http://agent:9464/api/v1/events"]),
    ("AWS access key id", "using AKIA2E0A8F3B244C9E24 for the upload",
     ["AKIA2E0A8F3B244C9E24"], ["using", "for the upload"]),
    ("AWS secret key", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCY25EXAMPLEKEY",
     ["wJalrXUtnFEMI/K7MDENG/bPxRfiCY25EXAMPLEKEY"], ["aws_secret_access_key ="]),
    ("GitHub token", "clone with ghp_26aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789 failed",
     ["ghp_26aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"], ["clone with", "failed"]),
    ("GitHub fine-grained token", "token github_pat_11ABCDEFG0123456789_27abcdefghijKLMNOP used",
     ["github_pat_11ABCDEFG0123456789_27abcdefghijKLMNOP"], ["used"]),
    ("Slack token", "post with xoxb-28123456789-abcdefABCDEF failed",
     ["xoxb-28123456789-abcdefABCDEF"], ["post with", "failed"]),
    ("JWT", "id eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib3QyOSJ9.Sg29kLmNoPqRs expired",
     ["eyJzdWIiOiJib3QyOSJ9", "Sg29kLmNoPqRs"], ["id", "expired"]),
    ("private key block", "loaded key:\n-----BEGIN PRIVATE KEY-----\nMIIEv30QIBADANBgkqhkiG9w0BAQEFAASC\n"
     "Ka30xYz9PqRsTuV\n-----END PRIVATE KEY-----\nnext step",
     ["MIIEv30QIBADANBgkqhkiG9w0BAQEFAASC", "Ka30xYz9PqRsTuV"], ["loaded key:", "-----BEGIN PRIVATE KEY-----",
                                                                "-----END PRIVATE KEY-----\nnext step"]),
    ("cut private key block", "-----BEGIN RSA PRIVATE KEY-----\nMIIEp31AIBAAKCAQEA7Xq",
     ["MIIEp31AIBAAKCAQEA7Xq"], ["-----BEGIN RSA PRIVATE KEY-----"]),
    ("export PASS=", "export PASS=Pw32hJk4 && ./run.sh",
     ["Pw32hJk4"], ["export PASS=", "&& ./run.sh"]),
    ("set PASSWORD=", "set PASSWORD=Pw33lZx5\r\ncall bot.cmd",
     ["Pw33lZx5"], ["set PASSWORD=", "call bot.cmd"]),
    ("SECRET_KEY=", "SECRET_KEY=Sk34cVb6nM DEBUG=0",
     ["Sk34cVb6nM"], ["SECRET_KEY=", "DEBUG=0"]),
    ("DB_PASSWORD / PGPASSWORD", "DB_PASSWORD=Pw35qAz7 PGPASSWORD=Pw35wSx8 psql -h db",
     ["Pw35qAz7", "Pw35wSx8"], ["DB_PASSWORD=", "PGPASSWORD=", "psql -h db"]),
    ("Azure AccountKey", "DefaultEndpointsProtocol=https;AccountName=invoices;"
     "AccountKey=Ak36eDc8rFv9+tGb0/yHn1==;EndpointSuffix=core.windows.net",
     ["Ak36eDc8rFv9+tGb0/yHn1"], ["AccountName=invoices;AccountKey=", ";EndpointSuffix=core.windows.net"]),
    ("Azure SAS sig=", "GET https://acct.blob.core.windows.net/c/f.csv?sv=2022-11-02&ss=b&sig=Sg37uJm2%2BiKl%3D 403",
     ["Sg37uJm2"], ["?sv=2022-11-02&ss=b&sig=", " 403"]),
    ("Azure SharedAccessSignature", "SharedAccessSignature=sv=2022-11-02&sig=Sg38oLp3;BlobEndpoint=x",
     ["Sg38oLp3"], ["SharedAccessSignature=", "BlobEndpoint=x"]),
    ("Google API key", "maps key AIzaSyA39bcdefghijklmnopqrstuvwxyz01234 denied",
     ["AIzaSyA39bcdefghijklmnopqrstuvwxyz01234"], ["maps key", "denied"]),
    ("Stripe key", "charge with sk_live_40aBcDeFgHiJkLmNoPqRsTu failed",
     ["sk_live_40aBcDeFgHiJkLmNoPqRsTu"], ["charge with", "failed"]),
    ("ping key in a check-in URL", "curl -fsS https://agent:9464/ping/Pk41zQx9wE/invoice-recon/fail",
     ["Pk41zQx9wE"], ["https://agent:9464/ping/", "/invoice-recon/fail"]),
    ("cmdkey /pass:", "cmdkey /add:srv01 /user:svc /pass:Pw42rTg5",
     ["Pw42rTg5"], ["cmdkey /add:srv01 /user:svc /pass:"]),
    ("YAML password:", "  username: svc\n  password: Pw43yHn6\n  host: erp",
     ["Pw43yHn6"], ["username: svc", "password:", "host: erp"]),
    ("token:", "refresh_token: Rt44uJm7 expires_in: 3600",
     ["Rt44uJm7"], ["refresh_token:", "expires_in: 3600"]),
]

# Ordinary text: left exactly as it is, by every rule (not only thanks to the fast precheck).
ORDINARY = [
    "ssh -p 2222 bot@sftp.example.com",
    "docker run -p 8080:80 --user 1000:1000 invoices:latest",
    "mkdir -p /srv/bots/out",
    "mysql -u recon -p ledger",  # -p alone prompts; ledger is the database
    "mysql -u recon -P3306 -h db1 ledger",  # -P is the port
    "passport number checked, compass=north, bypass=1",
    "monkey=1 key=value sort_key=name keyboard shortcut",
    "https://example.com:8443/path?q=1&lang=en",
    "mail ana.diaz@example.com about https://wiki.example.com/bots/invoice-recon",
    "pg_restore --password-file /run/secrets/db --no-password --verbose",
    "token_count=3 passes: 12, pass: 12, fail: 0",
    "Authorization failed for user svc; the password was rejected",
    "OAuth: consent required",
    "Click 'Speichern': SelectorNotFoundException",
    "signal=9 sig: SIGTERM",
    "curl -fsS https://agent:9464/healthz",
]


@pytest.mark.parametrize("text, secrets, keep", [s[1:] for s in SHAPES], ids=[s[0] for s in SHAPES])
def test_each_secret_shape_is_redacted_and_its_surroundings_stay_readable(text, secrets, keep):
    out = redact(text)
    for secret in secrets:
        assert secret not in out, out
    assert MASK in out
    for part in keep:
        assert part in out, out


def test_there_are_at_least_20_shapes_each_with_its_own_secret():
    secrets = [s for shape in SHAPES for s in shape[2]]
    assert len(SHAPES) >= 20 and len(set(secrets)) == len(secrets)


def _every_rule(text: str) -> str:
    """redact() without its trigger words and precheck: every rule, always."""
    for _, pattern, repl in redact_module._RULES:
        text = pattern.sub(repl, text)
    return text


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_text_is_left_alone_by_every_rule(text):
    assert redact(text) == text
    assert _every_rule(text) == text  # not only thanks to the precheck


def test_every_rule_is_reachable_through_the_fast_precheck():
    """redact() runs a rule only when one of its trigger words is in the text: on every shape,
    in any case, it gives what all the rules give, and every rule fires on some shape."""
    for _, text, _, _ in SHAPES:
        for variant in (text, text.upper(), text.lower()):
            assert redact(variant) == _every_rule(variant), variant
    for _, pattern, repl in redact_module._RULES:
        assert any(pattern.sub(repl, text) != text for _, text, _, _ in SHAPES), (
            f"no shape exercises {pattern.pattern!r}")


def test_redaction_is_idempotent():
    for _, text, _, _ in SHAPES:
        once = redact(text)
        assert redact(once) == once


# -- end to end: a real wrapped bot, a real agent, every output ---------------------------------

PING_KEY = f"pk-{uuid.uuid4().hex}"
E2E = {  # what the failing bot prints: shape -> (line, secret)
    "command line": ("mysql -u recon -pMy5q1{u} -h db1 ledger", "My5q1{u}"),
    "connection string": ("Server=sql01;Database=erp;User Id=svc;Password=Odbc{u};Encrypt=yes", "Odbc{u}"),
    "url": ("proxy https://svc:UrlPw{u}@proxy.example.com:8080/ refused", "UrlPw{u}"),
    "bearer": ("GET /invoices Authorization: Bearer Tok{u}", "Tok{u}"),
    "json": ('{{"client_secret": "Cs{u}", "retries": 3}}', "Cs{u}"),
    "aws": ("aws_secret_access_key = Aws{u}", "Aws{u}"),
    "ping url": ("curl -fsS http://127.0.0.1:9464/ping/{key}/leaky/start", "{key}"),
}


def _raw(path: Path) -> bytes:
    """A SQLite file's bytes and its write-ahead log's, as they are on disk."""
    data = path.read_bytes() if path.exists() else b""
    wal = path.with_name(path.name + "-wal")
    return data + (wal.read_bytes() if wal.exists() else b"")


def estate_file(tmp_path: Path, port: int, agent_lines: list[str], bots: str) -> Path:
    path = tmp_path / "botwatch.yaml"
    path.write_text("agent:\n" + "".join(f"  {line}\n" for line in [
        f"listen: 127.0.0.1:{port}", f"journal: {tmp_path / 'journal.db'}", *agent_lines])
        + "bots:\n" + textwrap.indent(textwrap.dedent(bots), "  "), encoding="utf-8")
    return path


def _cli(*args, env=None, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([*BOTWATCH, *args], capture_output=True, text=True, env=env, timeout=timeout)


def test_secrets_a_bot_prints_reach_no_output_of_the_agent(tmp_path, agents, run_env, fake_robot):
    u = uuid.uuid4().hex[:12]
    lines = {k: line.format(u=u, key=PING_KEY) for k, (line, _) in E2E.items()}
    secrets = {k: s.format(u=u, key=PING_KEY) for k, (_, s) in E2E.items()}
    cmd_secret = f"CmdPw{u}"
    robot_secret = f"RobotPw{u}"
    api_secret = f"ApiPw{u}"
    marker = f"botwatch-sec-{u}"
    port = free_port()
    config = estate_file(tmp_path, port, ["ping_key: env:TEST_PING_KEY", "process_interval: 0.2s",
                                          "governance_interval: 1s"], f"""\
        - name: leaky
          owner: ana@example.com
          team: finance
        - name: watched
          watch: {{process: {{cmdline: '{marker}'}}}}
        """)
    agent = agents(config, port, env={"TEST_PING_KEY": PING_KEY}).start()
    env = {**run_env, "TEST_PING_KEY": PING_KEY}
    procs = []
    try:
        # a watched bot whose command line holds a password, and a shadow robot with one
        procs.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", marker,
                                       f"--password={cmd_secret}"]))
        procs.append(subprocess.Popen([str(fake_robot), f"--password={robot_secret}", "tasks.robot"]))
        # a wrapped bot that prints the secrets and fails
        script = tmp_path / "leaky.py"
        script.write_text("import sys\n" + "".join(f"print({line!r})\n" for line in lines.values())
                          + "print(\"Logon failed for user 'svc'\", file=sys.stderr)\nsys.exit(1)\n")
        r = subprocess.run([*BOTWATCH, "run", "--bot", "leaky", "--config", str(config), "--", sys.executable,
                            str(script)], env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 1 and secrets["command line"] in r.stdout  # the bot's own output is untouched
        # the same bot once more, its run kept in a spool that is not delivered (a delivered run
        # leaves its spool): the spool file as it stays on the bot's host while the agent is away
        kept = tmp_path / "kept-spool.db"
        k = subprocess.run([*BOTWATCH, "run", "--bot", "leaky", "--", sys.executable, str(script)],
                           env={**env, "BOTWATCH_SPOOL": str(kept), "BOTWATCH_NO_DELIVERY": "1"},
                           capture_output=True, text=True, timeout=120)
        assert k.returncode == 1
        # the same through a check-in body and the events API (a raw client that redacts nothing)
        status, body = http_get_post(f"{agent.url}/ping/{PING_KEY}/leaky/fail?rid=ping-{u}",
                                     f"db postgresql://recon:{api_secret}@db:5432/ledger down\n".encode())
        assert status == 200, body
        status, answer = http_post_json(agent.url + "/api/v1/events", {"events": [
            {"type": "run_finished", "bot": "leaky", "run_id": f"api-{u}", "ended": time.time(), "outcome": "failure",
             "reason": "ui_drift", "screen": "login", "output_tail": f"login with --password={api_secret}x",
             "selector": f"<webctrl url='https://svc:{api_secret}y@erp.example.com/login' />"},
            {"type": "step", "bot": "leaky", "run_id": f"api-{u}", "name": "log in", "ended": time.time(),
             "status": "fail", "message": f"token={api_secret}z"}]},
            headers={"X-Botwatch-Key": PING_KEY})
        assert status == 200 and answer["accepted"] == 2, answer
        m = metrics_when(agent, lambda m: m.get('botwatch_runs_total{bot="leaky"}') == 3
                         and m.get('botwatch_bot_governance_findings{bot="watched",check="plaintext_secret"}') == 1
                         and m.get('botwatch_unregistered_bot_processes{platform="robotframework"}', 0) >= 1,
                         "the three runs, the secret on the command line and the shadow robot")
        assert m['botwatch_run_failures_total{bot="leaky",reason="credentials"}'] == 1

        every = [*secrets.values(), cmd_secret, robot_secret, api_secret]
        outputs: dict[str, str | bytes] = {}
        outputs["/metrics"] = http_get(agent.url + "/metrics")[1]
        outputs["/"] = http_get(agent.url + "/")[1]
        outputs["/api/v1/status"] = http_get(agent.url + "/api/v1/status")[1]
        outputs["/api/v1/unregistered"] = http_get(agent.url + "/api/v1/unregistered")[1]
        for fmt in ("html", "md", "csv"):
            rep = _cli("report", "--config", str(config), "--agent", agent.url, "--format", fmt, "--out", "-",
                       env=env)
            assert rep.returncode == 0, rep.stderr
            outputs[f"report {fmt}"] = rep.stdout + rep.stderr
        st = _cli("status", "--json", "--agent", agent.url, env=env)
        assert st.returncode == 0, st.stderr
        outputs["status --json"] = st.stdout + st.stderr
        un = _cli("status", "--unregistered", "--agent", agent.url, env={**env, "COLUMNS": "400"})
        outputs["status --unregistered"] = un.stdout + un.stderr
        inv = _cli("inventory", "--config", str(config), "--agent", agent.url, "--format", "json", env=env)
        assert inv.returncode == 0, inv.stderr
        outputs["inventory"] = inv.stdout + inv.stderr
        outputs["journal"] = _raw(tmp_path / "journal.db")
        outputs["spool"] = _raw(tmp_path / "spool.db")
        outputs["undelivered spool"] = _raw(kept)
        outputs["wrapper stderr"] = r.stderr
        outputs["agent log"] = agent.log.read_bytes()

        # the checks could fail: what is around the secrets is there
        journal = sqlite3.connect(f"file:{tmp_path / 'journal.db'}?mode=ro", uri=True)
        try:
            tails = dict(journal.execute("SELECT run_id, output_tail FROM runs WHERE bot = 'leaky'").fetchall())
            selector = journal.execute("SELECT selector FROM runs WHERE run_id = ?", (f"api-{u}",)).fetchone()[0]
        finally:
            journal.close()
        wrapped = next(t for rid, t in tails.items() if rid not in (f"api-{u}", f"ping-{u}"))
        assert "mysql -u recon -p[REDACTED] -h db1 ledger" in wrapped
        assert "Server=sql01;Database=erp;User Id=svc;Password=[REDACTED];Encrypt=yes" in wrapped
        assert "/ping/[REDACTED]/leaky/start" in wrapped and "Logon failed for user 'svc'" in wrapped
        assert tails[f"ping-{u}"] == "db postgresql://recon:[REDACTED]@db:5432/ledger down\n"
        assert tails[f"api-{u}"] == "login with --password=[REDACTED]"
        assert selector == "<webctrl url='https://svc:[REDACTED]@erp.example.com/login' />"
        assert b"mysql -u recon -p[REDACTED]" in outputs["undelivered spool"]
        assert "--password=[REDACTED]" in outputs["report md"] and str(procs[1].pid) in outputs["report md"]
        assert "--password=[REDACTED]" in outputs["status --unregistered"]
        assert re.search(rb"<dt>governance</dt><dd class='warn'>\d findings \([a-z_, ]*plaintext_secret", outputs["/"])
        assert b'"last_failure_selector"' in outputs["/api/v1/status"]

        leaks = [(where, secret) for where, text in outputs.items() for secret in every
                 if (secret.encode() if isinstance(text, bytes) else secret) in text]
        assert not leaks, leaks
    finally:
        for p in procs:
            p.kill()
            p.wait(timeout=30)


def http_get_post(url: str, body: bytes) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


# -- the agent listens on 127.0.0.1 by default ------------------------------------------------------

_IN_NAMESPACE = r"""
import fcntl, json, socket, struct, subprocess, sys, time, urllib.request
import psutil
# a fresh network namespace has its loopback down: bring it up (SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
flags = struct.unpack("16sh", fcntl.ioctl(s, 0x8913, struct.pack("16sh", b"lo", 0)))[1]
fcntl.ioctl(s, 0x8914, struct.pack("16sh", b"lo", flags | 1))
log = open(sys.argv[2], "ab")
agent = subprocess.Popen([sys.executable, "-m", "botwatch", "agent", "--config", sys.argv[1]], stdout=log,
                         stderr=subprocess.STDOUT)
out = {}
try:
    for _ in range(600):
        try:
            with urllib.request.urlopen("http://127.0.0.1:9464/healthz", timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.1)
    proc = psutil.Process(agent.pid)
    out["listening"] = sorted({(c.laddr.ip, c.laddr.port) for p in [proc, *proc.children(recursive=True)]
                               for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN})
    for path in ("/metrics", "/api/v1/status", "/"):
        with urllib.request.urlopen("http://127.0.0.1:9464" + path, timeout=5) as r:
            out[path] = r.status
finally:
    agent.terminate()
    agent.wait(timeout=30)
print(json.dumps(out))
"""


@pytest.mark.posix_only("a private Linux network namespace (unshare -rn)")
def test_without_a_listen_address_the_agent_listens_on_127_0_0_1_only(tmp_path):
    """In a private network namespace (unshare -rn) the default port 9464 is free for sure; the
    agent's real listening sockets are read from the kernel through psutil."""
    config = tmp_path / "botwatch.yaml"
    config.write_text(f"agent:\n  journal: {tmp_path / 'journal.db'}\nbots:\n  - name: alpha\n")
    probe = subprocess.run(["unshare", "-rn", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.fail(f"unshare -rn (util-linux, user namespaces) is needed here: {probe.stderr}", pytrace=False)
    r = subprocess.run(["unshare", "-rn", sys.executable, "-c", _IN_NAMESPACE, str(config), str(tmp_path / "agent.log")],
                       capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert r.returncode == 0, r.stderr + (tmp_path / "agent.log").read_text()
    got = json.loads(r.stdout)
    assert got["listening"] == [["127.0.0.1", 9464]], got
    assert (got["/metrics"], got["/api/v1/status"], got["/"]) == (200, 200, 200)
    assert "listening on http://127.0.0.1:9464" in (tmp_path / "agent.log").read_text()


# -- ping keys are compared in constant time ---------------------------------------------------------

def test_ping_keys_are_compared_with_compare_digest_for_estate_and_bot_keys(monkeypatch):
    from fastapi.testclient import TestClient

    import botwatch.config.web as webconfig
    from botwatch.config.estate import parse_estate_text
    from botwatch.exporters.prometheus import estate_registry
    from botwatch.server.app import Security, create_app
    from botwatch.state.runtime import EstateState

    calls = []
    real = hmac.compare_digest

    def recording(a, b):
        calls.append((bytes(a), bytes(b)))
        return real(a, b)

    monkeypatch.setattr(webconfig.hmac, "compare_digest", recording)
    state = EstateState(parse_estate_text("bots:\n  - name: alpha\n  - name: gamma\n"), None)
    security = Security(estate_key="estate-key-1", bot_keys={"gamma": "gamma-key-2"})
    client = TestClient(create_app(state, estate_registry(state), security))

    assert client.get("/ping/estate-key-1/alpha").status_code == 200
    assert calls == [(b"estate-key-1", b"estate-key-1")]
    calls.clear()
    assert client.get("/ping/gamma-key-2/gamma").status_code == 200
    assert calls == [(b"gamma-key-2", b"estate-key-1"), (b"gamma-key-2", b"gamma-key-2")]
    calls.clear()
    answer = client.get("/ping/gamma-key-3/gamma")  # one character off
    assert answer.status_code == 403 and answer.json()["error"] == "wrong ping key"
    assert calls == [(b"gamma-key-3", b"estate-key-1"), (b"gamma-key-3", b"gamma-key-2")]
    calls.clear()
    batch = {"events": [{"type": "run_finished", "bot": "alpha", "run_id": "e1", "ended": 1.0, "outcome": "success"}]}
    assert client.post("/api/v1/events", json=batch, headers={"X-Botwatch-Key": "estate-key-X"}).status_code == 401
    assert calls == [(b"estate-key-X", b"estate-key-1")]
    assert state.bots["alpha"].runs_total == 1 and state.bots["gamma"].runs_total == 1  # nothing recorded on refusal


def test_an_empty_or_missing_ping_key_records_nothing():
    from fastapi.testclient import TestClient

    from botwatch.config.estate import parse_estate_text
    from botwatch.exporters.prometheus import estate_registry
    from botwatch.server.app import Security, create_app
    from botwatch.state.runtime import EstateState

    state = EstateState(parse_estate_text("bots:\n  - name: alpha\n"), None)
    client = TestClient(create_app(state, estate_registry(state), Security(estate_key="estate-key-1")))
    for path in ("/ping//alpha", "/ping/alpha", "/ping/%20/alpha", "/ping/estate-key-/alpha"):
        assert client.get(path).status_code in (403, 404, 422), path
    assert state.bots["alpha"].runs_total == 0


# -- cardinality ----------------------------------------------------------------------------------------

ATTEMPTS = 100_000


def test_100000_new_bot_names_register_at_most_max_bots_and_count_the_rest_exactly():
    from botwatch.config.estate import parse_estate_text
    from botwatch.core.events import RunStarted
    from botwatch.state.runtime import EstateState

    state = EstateState(parse_estate_text("agent:\n  auto_register: true\nbots:\n  - name: alpha\n"), None)
    max_bots = state.estate.agent.limits.max_bots
    rejected = 0
    for start in range(0, ATTEMPTS, 1000):
        result = state.apply([RunStarted(f"flood-{i}", "r1", 1.0) for i in range(start, start + 1000)])
        rejected += len(result.rejected)
    assert len(state.bots) == max_bots
    assert rejected == ATTEMPTS - (max_bots - 1)
    assert state.self_metrics()["dropped"]["bot_limit"] == ATTEMPTS - (max_bots - 1)


def _screen_flood(names):
    from botwatch.config.estate import parse_estate_text
    from botwatch.core.events import UiLookup
    from botwatch.state.runtime import EstateState

    state = EstateState(parse_estate_text("bots:\n  - name: alpha\n"), None)
    for start in range(0, len(names), 1000):
        state.apply([UiLookup("alpha", 1.0, name, found=False) for name in names[start:start + 1000]])
    return state


def test_100000_screen_names_keep_max_screens_plus_other_and_count_the_overflow_exactly():
    state = _screen_flood([f"screen-{i}" for i in range(ATTEMPTS)])
    bot = state.bots["alpha"]
    max_screens = state.estate.agent.limits.max_screens
    assert len(bot.ui) == max_screens + 1 and "other" in bot.ui
    assert bot.ui_screens_overflowed == ATTEMPTS - max_screens
    assert bot.ui["other"].lookups == ATTEMPTS - max_screens
    assert sum(s.lookups for s in bot.ui.values()) == ATTEMPTS  # every look-up counted somewhere


def test_long_screen_names_are_shortened_distinctly_and_counted():
    from botwatch.state.runtime import bounded_label

    limit = 64
    names = [f"{'checkout-page-' * 10}{i}" for i in range(ATTEMPTS)]
    state = _screen_flood(names)
    bot = state.bots["alpha"]
    assert bot.labels_shortened == ATTEMPTS
    assert state.self_metrics()["labels_shortened"] == {"screen": ATTEMPTS}
    assert all(len(s) <= limit for s in bot.ui)
    assert len({bounded_label(n, limit) for n in names[:1000]}) == 1000  # distinct values stay distinct
    assert bounded_label("short", limit) == "short"


def test_rendered_metrics_stay_bounded_after_100000_attempted_names_of_each_kind():
    from prometheus_client import generate_latest

    from botwatch.config.estate import parse_estate_text
    from botwatch.core.events import RunStarted, UiLookup
    from botwatch.exporters.prometheus import estate_registry
    from botwatch.state.runtime import EstateState

    state = EstateState(parse_estate_text("agent:\n  auto_register: true\n  limits: {max_bots: 200}\n"
                                          "bots:\n  - name: alpha\n"), None)
    for start in range(0, ATTEMPTS, 1000):
        state.apply([RunStarted(f"flood-{i}", "r1", 1.0) for i in range(start, start + 1000)])
        state.apply([UiLookup("alpha", 1.0, f"screen-{i}-{'x' * (i % 100)}", found=False)
                     for i in range(start, start + 1000)])
    text = generate_latest(estate_registry(state)).decode()
    series = [line for line in text.splitlines() if line and not line.startswith("#")]
    bots = set(re.findall(r'\bbot="([^"]*)"', text))
    screens = set(re.findall(r'\bscreen="([^"]*)"', text))
    assert len(bots) == 200
    assert len(screens) == state.estate.agent.limits.max_screens + 1
    assert max(len(s) for s in screens) <= state.estate.agent.limits.max_label_length
    assert len(series) < 200 * 120  # about 80 series a bot, plus alpha's screens
    assert len(text.encode()) < 4_000_000
    assert f'botwatch_agent_events_dropped_total{{source="bot_limit"}} {float(ATTEMPTS - 199)}' in text
    assert f'botwatch_ui_screens_overflow_total{{bot="alpha"}} {float(ATTEMPTS - 50)}' in text


# -- request size limits ---------------------------------------------------------------------------------

def test_a_streamed_body_without_content_length_is_cut_at_the_limit_with_413_and_counted(tmp_path, agents):
    port = free_port()
    config = estate_file(tmp_path, port, ["ping_key: env:TEST_PING_KEY", "limits: {max_body_bytes: 65536}"],
                         "- name: alpha\n")
    agent = agents(config, port, env={"TEST_PING_KEY": PING_KEY}).start()

    def chunks():
        yield b'{"events": ['
        for i in range(20_000):  # about 2 MB, sent in chunks, never announced
            yield b'{"type": "run_started", "bot": "alpha", "run_id": "r%d", "time": 1.0},' % i
        yield b'{"type": "run_started", "bot": "alpha", "run_id": "last", "time": 1.0}]}'

    for path in ("/api/v1/events", f"/ping/{PING_KEY}/alpha/fail", "/api/v1/snapshots/alpha/login"):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request("POST", path, body=chunks(), encode_chunked=True,
                         headers={"Content-Type": "application/json", "X-Botwatch-Key": PING_KEY})
            answer = conn.getresponse()
            status, body = answer.status, json.loads(answer.read())
        finally:
            conn.close()
        assert (status, body["error"], body["max_bytes"]) == (413, "request body too large", 65536), path
    m = agent.metrics()
    assert m['botwatch_agent_events_dropped_total{source="http"}'] == 3
    assert m['botwatch_runs_total{bot="alpha"}'] == 0 and m['botwatch_run_in_progress{bot="alpha"}'] == 0
    assert agent.proc.poll() is None
