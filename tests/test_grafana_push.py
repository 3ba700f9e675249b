"""`botwatch grafana push` against a fake Grafana HTTP API on 127.0.0.1 that records every request.

Grafana's server cannot be installed here, so the fake answers the few calls the push makes the
way Grafana's HTTP API does (GET /api/search, POST /api/folders, POST /api/dashboards/db); the
CLI runs for real, as a child process.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import ssl
import subprocess
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from conftest import BOTWATCH, LocalHTTPServer, free_port, require

DASHBOARDS = Path(__file__).resolve().parents[1] / "dashboards"
UIDS = {"botwatch-estate", "botwatch-bot", "botwatch-ui-drift", "botwatch-coe"}


class FakeGrafana:
    """Enough of Grafana's HTTP API for a dashboard push, with a request log."""

    def __init__(self, token: str, *, prefix: str = "", folders: list[dict] | None = None,
                 dashboard_status: int = 200, tls: ssl.SSLContext | None = None):
        self.token, self.prefix, self.dashboard_status = token, prefix, dashboard_status
        self.folders = list(folders or [])
        self.requests: list[dict] = []
        self.dashboards: dict[str, dict] = {}
        self._http = LocalHTTPServer(self._handler(), tls=tls, path=prefix)
        self.url = self._http.url

    def __enter__(self) -> "FakeGrafana":
        self._http.start()
        return self

    def __exit__(self, *exc) -> None:
        self._http.stop()

    def calls(self, method: str, path: str) -> list[dict]:
        return [r for r in self.requests if r["method"] == method and r["path"] == self.prefix + path]

    def _answer(self, method: str, path: str, query: dict, headers: dict, body) -> tuple[int, object]:
        if headers.get("Authorization") != f"Bearer {self.token}":
            return 401, {"message": "invalid API key", "traceID": ""}
        if not path.startswith(self.prefix + "/api/"):
            return 404, {"message": "Not found"}
        path = path[len(self.prefix):]
        if method == "GET" and path == "/api/search":
            assert query.get("type") == ["dash-folder"], query
            q = query.get("query", [""])[0].lower()
            return 200, [{"type": "dash-folder", **f} for f in self.folders if q in f["title"].lower()]
        if method == "POST" and path == "/api/folders":
            if any(f["title"] == body["title"] for f in self.folders):
                return 409, {"message": "a folder with the same name already exists"}
            folder = {"id": len(self.folders) + 1, "uid": f"folder{len(self.folders) + 1}", "title": body["title"]}
            self.folders.append(folder)
            return 200, {**folder, "url": f"{self.prefix}/dashboards/f/{folder['uid']}/"}
        if method == "POST" and path == "/api/dashboards/db":
            if self.dashboard_status != 200:
                return self.dashboard_status, {"message": "database is locked"}
            if body.get("folderUid") not in {f["uid"] for f in self.folders}:
                return 400, {"message": "folder not found"}
            d = body["dashboard"]
            slug = re.sub(r"[^a-z0-9]+", "-", d["title"].lower()).strip("-")
            self.dashboards[d["uid"]] = d
            return 200, {"id": len(self.dashboards), "uid": d["uid"], "url": f"{self.prefix}/d/{d['uid']}/{slug}",
                         "status": "success", "version": 1, "slug": slug}
        return 404, {"message": "Not found"}

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self):
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                headers = dict(self.headers.items())
                query = parse_qs(parts.query)
                fake.requests.append({"method": self.command, "path": parts.path, "query": query,
                                      "headers": headers, "body": body})
                status, answer = fake._answer(self.command, parts.path, query, headers, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = _serve

            def log_message(self, *args):
                pass

        return Handler


@pytest.fixture
def token() -> str:
    return "glsa_" + secrets.token_hex(16)


@pytest.fixture
def token_file(tmp_path, token) -> Path:
    path = tmp_path / "grafana-token"
    path.write_text(f"  {token}\n\n", encoding="utf-8")  # as pasted by hand: stripped before use
    return path


def push(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
    return subprocess.run([*BOTWATCH, "grafana", "push", *args], capture_output=True, text=True, env=env, timeout=120)


def assert_token_not_in(out: subprocess.CompletedProcess, token: str) -> None:
    assert token not in out.stdout and token not in out.stderr
    assert token[5:] not in out.stdout + out.stderr


def test_push_creates_the_folder_and_saves_every_dashboard_with_overwrite(token, token_file):
    with FakeGrafana(token) as g:
        out = push("--url", g.url, "--token-file", str(token_file))
    assert out.returncode == 0, out.stderr
    assert all(r["headers"]["Authorization"] == f"Bearer {token}" for r in g.requests)
    (search,) = g.calls("GET", "/api/search")
    assert search["query"] == {"query": ["botwatch"], "type": ["dash-folder"]}
    (create,) = g.calls("POST", "/api/folders")
    assert create["body"]["title"] == "botwatch"
    saves = g.calls("POST", "/api/dashboards/db")
    assert {s["body"]["dashboard"]["uid"] for s in saves} == UIDS and len(saves) == 4
    for s in saves:
        assert s["body"]["overwrite"] is True and s["body"]["folderUid"] == "folder1"
        assert s["body"]["dashboard"]["id"] is None
        committed = json.loads((DASHBOARDS / {"botwatch-estate": "estate-overview.json", "botwatch-bot": "bot-detail.json",
                                              "botwatch-ui-drift": "ui-drift.json",
                                              "botwatch-coe": "coe-reliability.json"}[s["body"]["dashboard"]["uid"]])
                               .read_text())
        assert {k: v for k, v in s["body"]["dashboard"].items() if k != "id"} == committed
    lines = out.stdout.splitlines()
    assert len(lines) == 4
    assert f"botwatch / Estate overview: {g.url}/d/botwatch-estate/botwatch-estate-overview" in lines
    assert all(f"{g.url}/d/" in line for line in lines)
    assert_token_not_in(out, token)


def test_push_reuses_an_existing_folder_with_exactly_that_title(token, token_file):
    folders = [{"id": 7, "uid": "rpa-old", "title": "RPA monitoring (old)"},
               {"id": 8, "uid": "rpa", "title": "RPA monitoring"}]
    with FakeGrafana(token, folders=folders) as g:
        out = push("--url", g.url, "--token-file", str(token_file), "--folder", "RPA monitoring")
    assert out.returncode == 0, out.stderr
    assert g.calls("GET", "/api/search")[0]["query"]["query"] == ["RPA monitoring"]
    assert g.calls("POST", "/api/folders") == []
    assert {s["body"]["folderUid"] for s in g.calls("POST", "/api/dashboards/db")} == {"rpa"}
    assert len(out.stdout.splitlines()) == 4


def test_pushing_twice_overwrites_the_same_dashboards(token, token_file):
    with FakeGrafana(token) as g:
        first = push("--url", g.url, "--token-file", str(token_file))
        second = push("--url", g.url, "--token-file", str(token_file))
    assert first.returncode == second.returncode == 0
    assert len(g.calls("POST", "/api/folders")) == 1  # the second push finds the folder
    assert first.stdout == second.stdout and set(g.dashboards) == UIDS


def test_a_grafana_under_a_sub_path_is_called_under_that_path(token, token_file):
    with FakeGrafana(token, prefix="/grafana") as g:
        out = push("--url", g.url + "/", "--token-file", str(token_file))
    assert out.returncode == 0, out.stderr
    assert g.requests and all(r["path"].startswith("/grafana/api/") for r in g.requests)
    assert f"botwatch / CoE reliability: {g.url}/d/botwatch-coe/botwatch-coe-reliability" in out.stdout.splitlines()


def test_a_refused_token_exits_non_zero_naming_the_url_and_not_the_token(token, tmp_path):
    wrong = tmp_path / "wrong-token"
    wrong.write_text("glsa_" + secrets.token_hex(16))
    with FakeGrafana(token) as g:
        out = push("--url", g.url, "--token-file", str(wrong))
    assert out.returncode == 1
    assert g.url in out.stderr and "401" in out.stderr and "token" in out.stderr
    assert out.stdout == ""
    assert g.calls("POST", "/api/dashboards/db") == []
    assert_token_not_in(out, wrong.read_text())
    assert_token_not_in(out, token)


def test_a_server_error_names_the_url_and_the_dashboard(token, token_file):
    with FakeGrafana(token, dashboard_status=500) as g:
        out = push("--url", g.url, "--token-file", str(token_file))
    assert out.returncode == 1
    assert g.url in out.stderr and "HTTP 500" in out.stderr and "database is locked" in out.stderr
    assert "saving dashboard botwatch-" in out.stderr
    assert_token_not_in(out, token)


def test_an_unreachable_grafana_exits_non_zero_naming_the_url(token_file, token):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    out = push("--url", url, "--token-file", str(token_file))
    assert out.returncode == 1
    assert f"cannot reach Grafana at {url}" in out.stderr and "Traceback" not in out.stderr
    assert_token_not_in(out, token)


@pytest.mark.parametrize("content", [None, "", " \n\t\n"], ids=["missing", "empty", "blank"])
def test_a_missing_or_empty_token_file_exits_non_zero_before_any_request(tmp_path, token, content):
    path = tmp_path / "grafana-token"
    if content is not None:
        path.write_text(content)
    with FakeGrafana(token) as g:
        out = push("--url", g.url, "--token-file", str(path))
    assert out.returncode == 1
    assert str(path) in out.stderr and g.url in out.stderr
    assert ("does not exist" if content is None else "is empty") in out.stderr
    assert g.requests == []


def test_a_url_that_is_not_http_is_refused(token_file):
    out = push("--url", "grafana.example.com", "--token-file", str(token_file))
    assert out.returncode == 1 and "http:// or https://" in out.stderr


def test_tls_is_verified_unless_insecure_is_given(tmp_path, token, token_file):
    subprocess.run([require("openssl", "openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(tmp_path / "key.pem"),
                    "-out", str(tmp_path / "cert.pem")], check=True, capture_output=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    with FakeGrafana(token, tls=ctx) as g:
        refused = push("--url", g.url, "--token-file", str(token_file))
        allowed = push("--url", g.url, "--token-file", str(token_file), "--insecure")
    assert refused.returncode == 1
    assert f"cannot reach Grafana at {g.url}" in refused.stderr and "certificate" in refused.stderr.lower()
    assert allowed.returncode == 0, allowed.stderr
    assert len(allowed.stdout.splitlines()) == 4 and set(g.dashboards) == UIDS
    assert "Unverified HTTPS" not in allowed.stderr
    assert_token_not_in(refused, token)
    assert_token_not_in(allowed, token)
