"""What a bot depends on, in the running agent: its dependency index (read in the background, read
again only for a bot whose files changed), /api/v1/dependencies and /api/v1/impact answering as
`botwatch deps --json` and `botwatch impact --json` do, the status page's "depends on" line, and
the CoE report's "Applications and their bots", over the real projects of tests/corpus/deps."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from urllib.parse import urlencode

import pytest
from conftest import BOTWATCH, free_port, http_get, wait_for, write_estate
from lxml import html as lxml_html

from botwatch.config.estate import load_estate
from botwatch.deps.index import DependencyIndex
from botwatch.state.journal import Journal

CORPUS = Path(__file__).resolve().parent / "corpus" / "deps"
BOTS = {  # bot -> (project, team, criticality)
    "web-orders": ("robot/robocorp__example-web-store-order-processor", "sales", "high"),
    "calculator": ("robot/robocorp__example-windows-calculator", "finance", "low"),
    "rbc-banking": ("uipath/yashbrahmbhatt__uipath", "treasury", "high"),
    "invoices": ("python/invoice_portal", "finance", "medium"),
}
LOCAL_BOT = 'from selenium import webdriver\n\ndriver = webdriver.Chrome()\ndriver.get("{url}")\n'


def corpus_bots() -> str:
    return "".join(f"- name: {bot}\n  owner: {bot}@example.com\n  team: {team}\n  criticality: {crit}\n"
                   f"  source: {CORPUS / project}\n" for bot, (project, team, crit) in BOTS.items())


def local_bot(tmp_path: Path, url: str = "https://one.example.com/start") -> Path:
    """A bot of our own, to change on disk: one URL, and a file that is not valid Python."""
    folder = tmp_path / "local-bot"
    folder.mkdir(exist_ok=True)
    (folder / "run.py").write_text(LOCAL_BOT.format(url=url), encoding="utf-8")
    (folder / "broken.py").write_text("def broken(:\n", encoding="utf-8")
    return folder


def botwatch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*BOTWATCH, *args], capture_output=True, text=True, timeout=300)


def get_json(url: str) -> dict:
    status, body = http_get(url, timeout=60)
    assert status == 200, body
    return json.loads(body)


@pytest.fixture
def agent(tmp_path, agents):
    port = free_port()
    bots = corpus_bots() + f"- name: local\n  team: ops\n  source: {local_bot(tmp_path)}\n- name: no-source\n"
    config = write_estate(tmp_path / "botwatch.yaml", bots, port, extra="  governance_interval: 2s")
    return agents(config, port).start(), config


def test_the_agent_answers_dependencies_and_impact_as_the_cli_does(agent):
    running, config = agent
    answer = get_json(running.url + "/api/v1/dependencies")
    by_bot = {b["bot"]: b for b in answer["bots"]}
    assert set(by_bot) == {*BOTS, "local", "no-source"}
    for bot in ("web-orders", "rbc-banking", "no-source"):
        cli = botwatch("deps", bot, "--config", str(config), "--json")
        assert cli.returncode == 0, cli.stderr
        assert by_bot[bot] == json.loads(cli.stdout)
    assert by_bot["web-orders"]["dependencies"]  # the comparison above compares something
    for query, kinds in (("saucedemo.com", ()), ("chrome.exe", ("application", "screen")), ("http", ("url",))):
        api = get_json(running.url + "/api/v1/impact?" + urlencode({"q": query, "kind": kinds}, doseq=True))
        cli = botwatch("impact", query, *[a for k in kinds for a in ("--kind", k)], "--config", str(config), "--json")
        assert cli.returncode == 0, cli.stderr
        assert {k: v for k, v in api.items() if k not in ("time", "refreshed_at")} == json.loads(cli.stdout)
        assert api["bots"]
    hit = get_json(running.url + "/api/v1/impact?q=saucedemo.com")["bots"]
    assert [(b["bot"], b["owner"], b["team"], b["criticality"]) for b in hit] == \
        [("web-orders", "web-orders@example.com", "sales", "high")]
    assert http_get(running.url + "/api/v1/impact?q=x&kind=nothing")[0] == 422
    assert http_get(running.url + "/api/v1/impact")[0] == 422


def test_the_status_page_shows_what_each_bot_depends_on_with_links_to_the_impact(agent):
    running, _ = agent
    wait_for(lambda: "depends on:" in http_get(running.url + "/")[1].decode(), what="the dependency index")
    doc = lxml_html.fromstring(http_get(running.url + "/")[1])
    line = {card.get("data-bot"): "".join(p.text_content() for p in card.xpath(".//p[@class='deps']"))
            for card in doc.xpath("//article[@data-bot]")}
    assert "saucedemo.com" in line["web-orders"]
    assert "chrome.exe (6 screens)" in line["rbc-banking"] and "rbcroyalbank.com" in line["rbc-banking"]
    assert line["no-source"] == ""
    (link,) = doc.xpath("//article[@data-bot='web-orders']//p[@class='deps']//a[text()='saucedemo.com']/@href")
    assert link == "/api/v1/impact?q=saucedemo.com"
    assert [b["bot"] for b in get_json(running.url + link)["bots"]] == ["web-orders"]
    assert doc.xpath("//footer//a[@href='/api/v1/dependencies']")


def test_a_changed_source_shows_after_a_refresh_and_an_unreadable_one_is_a_problem(agent, tmp_path):
    running, _ = agent

    def local() -> dict:
        return next(b for b in get_json(running.url + "/api/v1/dependencies")["bots"] if b["bot"] == "local")

    first = local()
    assert [d["value"] for d in first["dependencies"] if d["kind"] == "url"] == ["https://one.example.com/start"]
    assert [(p["file"].rsplit("/", 1)[-1], p["line"]) for p in first["problems"]] == [("broken.py", 1)]
    local_bot(tmp_path, "https://two.example.com/start")
    def changed_one() -> dict | None:
        now = local()
        return now if any(d["value"] == "https://two.example.com/start" for d in now["dependencies"]) else None

    changed = wait_for(changed_one, what="the changed source in the index")
    assert "https://one.example.com/start" not in [d["value"] for d in changed["dependencies"]]
    assert [b["bot"] for b in get_json(running.url + "/api/v1/impact?q=two.example.com")["bots"]] == ["local"]
    assert http_get(running.url + "/healthz")[0] == 200  # the broken file stopped nothing


def test_a_refresh_with_nothing_changed_reads_nothing_and_a_failing_bot_hides_no_other(tmp_path, monkeypatch):
    folder = local_bot(tmp_path)
    (tmp_path / "botwatch.yaml").write_text(
        f"bots:\n- name: local\n  source: {folder}\n- name: calculator\n"
        f"  source: {CORPUS / BOTS['calculator'][0]}\n- name: gone\n  source: {tmp_path / 'nowhere'}\n",
        encoding="utf-8")
    index = DependencyIndex(load_estate(tmp_path / "botwatch.yaml"))
    assert index.latest is None and index.latest_applications is None
    index.refresh()
    assert index.reads_total == 3
    index.refresh()
    assert index.reads_total == 3  # nothing changed: each bot's files were stat'ed, none read
    run = folder / "run.py"
    run.write_text(LOCAL_BOT.format(url="https://three.example.com/"), encoding="utf-8")
    os.utime(run, ns=(run.stat().st_atime_ns, run.stat().st_mtime_ns + 1_000_000_000))
    found = index.refresh()
    assert index.reads_total == 4
    assert [d.value for d in found["local"].extraction.of_kind("url")] == ["https://three.example.com/"]
    assert [p.message for p in found["gone"].extraction.problems] == ["source not found"]

    import botwatch.deps.index as index_module

    def failing(loaded, bot):
        if bot.name == "local":
            raise RuntimeError("the disk went away")
        return real(loaded, bot)

    real = index_module.bot_dependencies
    monkeypatch.setattr(index_module, "bot_dependencies", failing)
    (folder / "more.py").write_text(LOCAL_BOT.format(url="https://four.example.com/"), encoding="utf-8")
    found = index.refresh()
    assert index.errors_total == 1
    assert [p.message for p in found["local"].extraction.problems] == ["not read: RuntimeError: the disk went away"]
    assert found["calculator"].extraction.of_kind("application")  # the other bots are still there
    assert [a.name for a in index.latest_applications["calculator"]] == ["calc.exe", "Calculator"]


def test_the_report_lists_the_applications_and_their_bots_most_depended_on_first(tmp_path):
    shared = tmp_path / "shared-site"
    shared.mkdir()
    (shared / "run.py").write_text(LOCAL_BOT.format(url="https://www.saucedemo.com/inventory.html"), encoding="utf-8")
    journal = tmp_path / "journal.db"
    Journal(journal).close()
    config = write_estate(tmp_path / "botwatch.yaml", corpus_bots() + f"- name: stock-check\n  source: {shared}\n",
                          free_port(), journal)
    done = subprocess.run([*BOTWATCH, "report", "--format", "md", "--out", "-", "--config", str(config)],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    section = done.stdout.split("## Applications and their bots", 1)[1].split("\n## ", 1)[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines()
            if line.startswith("| ") and not line.startswith("| application ")]
    assert rows[0] == ["saucedemo.com", "site", "2", "web-orders (sales, high); stock-check ((none), medium)"]
    by_name = {r[0]: r for r in rows}
    assert by_name["chrome.exe"][1:] == ["application", "1", "rbc-banking (treasury, high)"]
    assert by_name["calc.exe"][1:] == ["application", "1", "calculator (finance, low)"]
    assert by_name["invoices.example.com"][3] == "invoices (finance, medium)"
    assert [int(r[2]) for r in rows] == sorted((int(r[2]) for r in rows), reverse=True)
    html = subprocess.run([*BOTWATCH, "report", "--format", "html", "--out", "-", "--config", str(config)],
                          capture_output=True, text=True, timeout=300)
    assert html.returncode == 0, html.stderr
    doc = lxml_html.fromstring(html.stdout)
    (table,) = doc.xpath("//h2[text()='Applications and their bots']/following-sibling::table[1]")
    assert table.xpath(".//tbody/tr[1]/td/text()")[:3] == ["saucedemo.com", "site", "2"]


@pytest.mark.parametrize("name", ["<script>alert(1)</script>", "a'b&c"])
def test_the_status_page_escapes_application_names(name):
    from botwatch.deps.applications import Application
    from botwatch.server.status_page import _depends_on

    line = _depends_on([Application(name, "application", frozenset({"s1", "s2"}))])
    assert "<script>" not in line and "a'b" not in line
    doc = lxml_html.fromstring(line)
    assert doc.text_content() == f"depends on: {name} (2 screens)"
    (href,) = doc.xpath("//a/@href")
    assert href == "/api/v1/impact?" + urlencode({"q": name}) and re.fullmatch(r"[^' <>]+", href)
