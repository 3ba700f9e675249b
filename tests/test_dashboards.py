"""The Grafana dashboards: committed JSON equals the builder's output, lint, schema and metric names.

The lint tests implement the rules of grafana/dashboard-linter that apply to these dashboards:
template-datasource-rule, template-on-time-change-reload, template-label-promql-rule (variable
queries parse), panel-datasource-rule, panel-title-description-rule, panel-units-rule,
panel-no-targets-rule, target-promql-rule (every expression is parsed by promtool, as a recording
rule), target-rate-interval-rule (here for increase() too), target-counter-agg-rule (here for
histogram series too) and a fixed uid per dashboard.

template-job-rule, template-instance-rule, target-job-rule and target-instance-rule do not apply:
bot metrics are identified by the `bot` label, set by the agent from the estate file whatever
the scrape job, so the dashboards filter by `bot` and `team` variables instead (and no query
names a job or instance); dashboards/.lint records these exclusions for the linter itself.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest

from botwatch.config.estate import BotConfig, Estate
from botwatch.dashboards import build
from botwatch.core.events import RunFinished, UiLookup, UiSnapshot
from botwatch.exporters.prometheus import estate_registry
from botwatch.state.runtime import EstateState
from conftest import require
from promql import selectors

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS = ROOT / "dashboards"

# Metrics of the catalogue that the agent does not emit yet (the dashboards may already show them).
COMING_LATER: dict[str, str] = {}
# Recording rules of alerts/ (already aggregated: never counters).
RECORDING_RULES = {
    "bot:botwatch_runs:rate1h", "bot:botwatch_run_failures:rate1h", "bot_reason:botwatch_run_failures:rate1h",
    "bot:botwatch_run_success:ratio1h", "bot:botwatch_run_success:ratio6h", "bot:botwatch_run_success:ratio1d",
    "team:botwatch_run_success:ratio1h", "team:botwatch_run_success:ratio1d", "bot:botwatch_fragility:score",
}
# Grafana's unit ids that these dashboards may use (a subset of grafana-data's value formats).
VALID_UNITS = {
    "none", "short", "percent", "percentunit", "s", "ms", "m", "h", "d", "dtdurations", "bytes", "decbytes",
    "ops", "reqps", "cps", "opm", "cpm", "dateTimeAsIso", "dateTimeAsLocal", "dateTimeFromNow", "bool",
    "bool_yes_no", "bool_on_off",
}
KNOWN_PANEL_TYPES = {"row", "stat", "timeseries", "table", "bargauge", "state-timeline", "heatmap", "piechart",
                     "gauge", "status-history", "text"}
GRAFANA_VARIABLES = {"__rate_interval", "__interval", "__range", "__range_s", "__range_ms", "__interval_ms"}


def exported_metrics() -> dict[str, str]:
    """{name: type} of what the agent's exporter really emits for a bot with runs, UI look-ups and a
    UI snapshot."""
    estate = Estate(bots=[BotConfig(name="b", every=600, team="t", lifecycle="prototype")])
    st = EstateState(estate, None, clock=lambda: 1_800_000_000.0)
    st.apply([RunFinished(bot="b", run_id="r1", started=1_799_999_990.0, ended=1_800_000_000.0, outcome="failure",
                          exit_status=1),
              UiLookup(bot="b", time=1_800_000_000.0, screen="login", found=True, wait=0.5),
              UiSnapshot(bot="b", time=1_800_000_000.0, screen="login", kind="html", score=0.4,
                         selectors={"submit": 1}, baseline_time=1_799_000_000.0)])
    for count in (st.count_event, st.count_dropped, st.count_parse_error):
        count("api")
    st.count_request("uipath", "prod", "ok")  # a control-plane connection pulled once
    st.note_connection("uipath", "prod", up=True)
    st.controlplanes.note_pull("prod", {"b"}, {"b": 1})
    text = generate_latest(estate_registry(st, clock=lambda: 1_800_000_000.0)).decode()
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))


def series_names(types: dict[str, str]) -> dict[str, str]:
    """{series name: 'counter' | 'gauge'}: counters with _total, histograms with _bucket, _sum, _count."""
    out = {}
    for name, kind in types.items():
        if kind == "counter":
            out[name if name.endswith("_total") else name + "_total"] = "counter"
        elif kind == "histogram":
            out.update({name + s: "counter" for s in ("_bucket", "_sum", "_count")})
        else:
            out[name] = "gauge"
    return out


KNOWN_SERIES = {**series_names(exported_metrics()), **series_names(COMING_LATER),
                **{name: "recording rule" for name in RECORDING_RULES}}


def test_the_promql_reader_finds_selectors_ranges_and_calls():
    sels = selectors('sum by (le) (rate(x_bucket{a=~"$b", c="}"}[$__rate_interval])) / on (bot) group_left (t) '
                     "max(y) + histogram_quantile(0.9, sum(increase(z_total[5m])) by (le)) and w offset 5m")
    assert [(s["name"], s["range"], s["call"]) for s in sels] == [
        ("x_bucket", "$__rate_interval", "rate"), ("y", None, "max"), ("z_total", "5m", "increase"), ("w", None, None)]


# --- fixtures -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def boards() -> dict[str, dict]:
    return {name: json.loads((DASHBOARDS / name).read_text(encoding="utf-8")) for name in build.DASHBOARDS}


def all_panels(boards):
    for name, d in boards.items():
        for p in d["panels"]:
            yield d, p


def query_panels(boards):
    return [(d, p) for d, p in all_panels(boards) if p["type"] != "row"]


def all_targets(boards):
    for d, p in query_panels(boards):
        for t in p["targets"]:
            yield d, p, t


def variable_queries(boards):
    for d in boards.values():
        for v in d["templating"]["list"]:
            if v["type"] == "query":
                yield d, v, build.variable_query(v)


# --- generated, committed, shipped ------------------------------------------------------------

def test_the_committed_json_files_equal_the_builder_output():
    for name, d in build.dashboards().items():
        assert (DASHBOARDS / name).read_text(encoding="utf-8") == build.render(d), (
            f"dashboards/{name} is stale: run python -m botwatch.dashboards.build")
    assert sorted(p.name for p in DASHBOARDS.glob("*.json")) == sorted(build.DASHBOARDS)


def test_the_build_module_regenerates_the_files_and_checks_them(tmp_path):
    run = [sys.executable, "-m", "botwatch.dashboards.build"]
    out = subprocess.run([*run, "--out", str(tmp_path)], capture_output=True, text=True, check=True)
    assert len(out.stdout.splitlines()) == 4
    for name in build.DASHBOARDS:
        assert (tmp_path / name).read_bytes() == (DASHBOARDS / name).read_bytes()
    assert subprocess.run([*run, "--check"], capture_output=True).returncode == 0
    (tmp_path / "ui-drift.json").write_text("{}")
    check = subprocess.run([*run, "--check", "--out", str(tmp_path)], capture_output=True, text=True)
    assert check.returncode == 1 and "ui-drift.json" in check.stderr


def test_the_builder_output_does_not_change_between_runs():
    assert [build.render(d) for d in build.dashboards().values()] == \
        [build.render(d) for d in build.dashboards().values()]


def test_the_wheel_ships_the_dashboards_and_the_provisioning_files(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True)
    names = zipfile.ZipFile(next(tmp_path.glob("botwatch-*.whl"))).namelist()
    for expected in [*(f"botwatch/dashboards/{n}" for n in build.DASHBOARDS), "botwatch/dashboards/build.py",
                     "botwatch/dashboards/README.md",
                     "botwatch/dashboards/provisioning/datasources/botwatch.yml",
                     "botwatch/dashboards/provisioning/dashboards/botwatch.yml"]:
        assert expected in names, expected


# --- dashboard-level rules --------------------------------------------------------------------

def test_each_dashboard_has_its_fixed_uid_a_recent_schema_and_the_botwatch_tag(boards):
    assert {d["uid"] for d in boards.values()} == {"botwatch-estate", "botwatch-bot", "botwatch-ui-drift",
                                                   "botwatch-coe"}
    for d in boards.values():
        assert d["schemaVersion"] >= 39 and "botwatch" in d["tags"] and d["title"] and d["description"]
        assert "id" not in d or d["id"] is None  # imports must not carry an instance's database id


def test_each_dashboard_has_a_prometheus_datasource_variable(boards):  # template-datasource-rule
    for d in boards.values():
        ds = [v for v in d["templating"]["list"] if v["type"] == "datasource"]
        assert len(ds) == 1, d["uid"]
        assert (ds[0]["name"], ds[0]["label"], ds[0]["query"]) == ("datasource", "Data source", "prometheus")


def test_query_variables_use_the_datasource_and_reload_on_time_change(boards):  # template-on-time-change-reload
    for d, v, _ in variable_queries(boards):
        assert v["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, (d["uid"], v["name"])
        assert v["refresh"] == 2, (d["uid"], v["name"])
        if v.get("includeAll"):
            assert v["allValue"] == ".*", (d["uid"], v["name"])


def test_bot_and_team_variables_take_the_place_of_job_and_instance(boards):  # template-job/instance-rule
    for d in boards.values():
        names = {v["name"] for v in d["templating"]["list"]}
        assert "team" in names and not names & {"job", "instance"}, d["uid"]
        for v in d["templating"]["list"]:
            if v["name"] in ("team", "bot"):
                assert build.variable_query(v).startswith("botwatch_bot_info"), (d["uid"], v["name"])
    assert {"bot", "screen"} <= {v["name"] for v in boards["bot-detail.json"]["templating"]["list"]}
    assert {"bot", "screen"} <= {v["name"] for v in boards["ui-drift.json"]["templating"]["list"]}


def test_the_slo_variable_defaults_to_95_percent(boards):
    slo = next(v for v in boards["coe-reliability.json"]["templating"]["list"] if v["name"] == "slo")
    assert slo["type"] == "custom" and slo["current"]["value"] == "0.95"
    assert [o["value"] for o in slo["options"] if o["selected"]] == ["0.95"]


def test_no_query_names_a_job_or_an_instance(boards):
    exprs = [t["expr"] for _, _, t in all_targets(boards)] + [q for _, _, q in variable_queries(boards)]
    for expr in exprs:
        for sel in selectors(expr):
            assert not re.search(r"\b(job|instance)\s*[=!]", sel["matchers"]), expr


def test_dashboards_link_to_each_other_and_the_overview_links_to_bot_detail(boards):
    for d in boards.values():
        assert any(link["type"] == "dashboards" and "botwatch" in link["tags"] and link["includeVars"]
                   for link in d["links"]), d["uid"]
    links = [link["url"] for _, p in query_panels({"e": boards["estate-overview.json"]})
             for link in p["fieldConfig"]["defaults"].get("links", [])]
    assert links and all(u.startswith("/d/botwatch-bot/") and "var-bot=${__field.labels.bot}" in u for u in links)
    assert any(u.startswith("/d/botwatch-bot/") for _, p in query_panels(boards)
               for u in (x["url"] for x in p["fieldConfig"]["defaults"].get("links", [])))


# --- panel schema and panel rules -----------------------------------------------------------------

def test_panels_have_unique_ids_a_known_type_and_a_place_on_the_grid(boards):
    for d in boards.values():
        ids = [p["id"] for p in d["panels"]]
        assert len(ids) == len(set(ids)), d["uid"]
        cells = set()
        for p in d["panels"]:
            assert p["type"] in KNOWN_PANEL_TYPES, (d["uid"], p["title"])
            g = p["gridPos"]
            assert all(isinstance(g[k], int) for k in "hwxy") and g["w"] > 0 and g["h"] > 0
            assert g["x"] + g["w"] <= 24, (d["uid"], p["title"])
            mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
            assert not mine & cells, f"{d['uid']}: {p['title']} overlaps another panel"
            cells |= mine


def test_every_panel_has_a_title_and_a_description(boards):  # panel-title-description-rule
    for d, p in all_panels(boards):
        assert p["title"].strip(), d["uid"]
        if p["type"] != "row":
            assert len(p["description"].strip()) > 20, (d["uid"], p["title"])
    titles = [(d["uid"], p["title"]) for d, p in all_panels(boards)]
    assert len(titles) == len(set(titles)), "panel titles repeat within a dashboard"


def test_every_panel_has_a_valid_unit(boards):  # panel-units-rule
    for d, p in query_panels(boards):
        assert p["fieldConfig"]["defaults"]["unit"] in VALID_UNITS, (d["uid"], p["title"])


def test_every_panel_and_target_uses_the_datasource_variable(boards):  # panel-datasource-rule
    for d, p in query_panels(boards):
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, (d["uid"], p["title"])
        for t in p["targets"]:
            assert t["datasource"] == p["datasource"], (d["uid"], p["title"])


def test_every_panel_has_targets_with_unique_ref_ids(boards):  # panel-no-targets-rule
    for d, p in query_panels(boards):
        refs = [t["refId"] for t in p["targets"]]
        assert refs and len(refs) == len(set(refs)) and all(refs), (d["uid"], p["title"])
        assert all(t["expr"].strip() for t in p["targets"]), (d["uid"], p["title"])


# --- PromQL rules ---------------------------------------------------------------------------------

def test_every_query_parses_as_promql(tmp_path):  # target-promql-rule, template-label-promql-rule
    promtool = require("promtool", "prometheus")
    queries = list(build.iter_queries())
    rules = [{"record": f"dashboard_query:q{i}", "expr": q} for i, (_, _, q) in enumerate(queries)]
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}, sort_keys=False))
    out = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    if out.returncode != 0:
        bad = [f"{uid} / {title}: {q}" for i, (uid, title, q) in enumerate(queries)
               if f'"dashboard_query:q{i}"' in out.stdout + out.stderr]
        pytest.fail(f"promtool rejects dashboard queries:\n{out.stdout}{out.stderr}\n" + "\n".join(bad))
    assert f"SUCCESS: {len(rules)} rules found" in out.stdout


def test_promtool_rejects_a_query_whose_variables_were_not_filled_in(tmp_path):
    promtool = require("promtool", "prometheus")
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [
        {"record": "dashboard_query:q0", "expr": "sum(rate(x[$__rate_interval]))"}]}]}))
    assert subprocess.run([promtool, "check", "rules", str(path)], capture_output=True).returncode != 0


def test_every_rate_and_increase_uses_the_rate_interval(boards):  # target-rate-interval-rule
    for d, p, t in all_targets(boards):
        for sel in selectors(t["expr"]):
            if sel["call"] in ("rate", "irate", "increase"):
                assert sel["range"] == "$__rate_interval", (d["uid"], p["title"], t["expr"])


def test_counters_are_only_read_through_rate_or_increase(boards):  # target-counter-agg-rule
    for d, p, t in all_targets(boards):
        for sel in selectors(t["expr"]):
            if sel["name"].endswith("_total") or KNOWN_SERIES.get(sel["name"]) == "counter":
                assert sel["call"] in ("rate", "irate", "increase") and sel["range"], (
                    d["uid"], p["title"], sel["name"])


def test_every_metric_is_in_the_catalogue_or_a_recording_rule(boards):
    exprs = [(d["uid"], p["title"], t["expr"]) for d, p, t in all_targets(boards)]
    exprs += [(d["uid"], v["name"], q) for d, v, q in variable_queries(boards)]
    used = set()
    for uid, title, expr in exprs:
        for sel in selectors(expr):
            assert sel["name"] in KNOWN_SERIES, f"{uid} / {title}: unknown metric {sel['name']}"
            used.add(sel["name"])
    # the dashboards show every recording rule they were promised and the newer agent metrics
    assert RECORDING_RULES <= used
    assert {"botwatch_bot_hung", "botwatch_bot_processes", "botwatch_ui_screens_overflow_total"} <= used


def test_the_exporter_knows_the_metrics_the_dashboards_expect():
    assert {"botwatch_bot_info", "botwatch_bot_state", "botwatch_runs_total", "botwatch_run_failures_total",
            "botwatch_run_duration_seconds", "botwatch_ui_lookups_total", "botwatch_bot_hung"} <= set(exported_metrics())


def test_template_variables_are_defined_and_only_used_in_regex_matchers(boards):
    for d in boards.values():
        defined = {v["name"] for v in d["templating"]["list"]} | GRAFANA_VARIABLES
        exprs = [t["expr"] for p in d["panels"] for t in p.get("targets", [])]
        exprs += [build.variable_query(v) for v in d["templating"]["list"] if v["type"] == "query"]
        for expr in exprs:
            for name in re.findall(r"\$\{?(\w+)", expr):
                assert name in defined, (d["uid"], name, expr)
            for sel in selectors(expr):
                for label, op, value in re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"', sel["matchers"]):
                    if "$" in value:
                        assert op == "=~", f"{d['uid']}: {label}{op}\"{value}\" in {expr}"


# --- iter_queries -----------------------------------------------------------------------------

def test_iter_queries_fills_in_every_variable():
    queries = list(build.iter_queries({"bot": "healthy-invoices", "team": "finance"}))
    assert {uid for uid, _, _ in queries} == {"botwatch-estate", "botwatch-bot", "botwatch-ui-drift", "botwatch-coe"}
    for uid, title, q in queries:
        assert "$" not in q, (uid, title, q)
    by_title = {(uid, title): q for uid, title, q in queries}
    assert by_title[("botwatch-bot", "variable bot")] == 'botwatch_bot_info{team=~"finance"}'
    assert by_title[("botwatch-bot", "variable screen")] == 'botwatch_ui_lookups_total{bot=~"healthy-invoices"}'
    assert by_title[("botwatch-coe", "variable lifecycle")] == 'botwatch_bot_info{team=~"finance"}'
    assert 'screen=~".*"' in by_title[("botwatch-bot", "UI look-ups per screen")]
    assert "[1m]" in by_title[("botwatch-bot", "UI look-ups per screen")]
    assert "vector(0.95)" in by_title[("botwatch-coe", "Success ratio by team against the SLO (1 d) (B)")]
    assert "[1h]" in by_title[("botwatch-coe", "Mean time to recovery by team and lifecycle (approx.)")]


def test_iter_queries_yields_every_target_and_every_query_variable(boards):
    n_targets = sum(1 for _ in all_targets(boards))
    n_vars = sum(1 for _ in variable_queries(boards))
    assert len(list(build.iter_queries())) == n_targets + n_vars


# --- README and provisioning --------------------------------------------------------------------

def test_the_readme_describes_every_panel(boards):
    readme = " ".join((DASHBOARDS / "README.md").read_text(encoding="utf-8").split())  # titles may wrap
    for d, p in query_panels(boards):
        assert p["title"] in readme, f"dashboards/README.md does not mention panel {p['title']!r} of {d['uid']}"
    for needle in ("python -m botwatch.dashboards.build", "botwatch grafana push", "provisioning"):
        assert needle in readme


def test_the_datasource_provisioning_file_defines_the_prometheus_datasource():
    doc = yaml.safe_load((DASHBOARDS / "provisioning/datasources/botwatch.yml").read_text(encoding="utf-8"))
    assert doc["apiVersion"] == 1
    (ds,) = doc["datasources"]
    assert (ds["type"], ds["uid"], ds["url"], ds["access"]) == ("prometheus", "prometheus", "http://127.0.0.1:9090",
                                                                "proxy")
    assert ds["name"]


def test_the_dashboard_provisioning_file_is_a_file_provider_with_a_documented_path():
    doc = yaml.safe_load((DASHBOARDS / "provisioning/dashboards/botwatch.yml").read_text(encoding="utf-8"))
    assert doc["apiVersion"] == 1
    (provider,) = doc["providers"]
    assert provider["type"] == "file" and provider["name"] and provider["folder"]
    path = provider["options"]["path"]
    assert path.startswith("/") and path in (DASHBOARDS / "README.md").read_text(encoding="utf-8")


def test_the_lint_exclusions_give_a_reason_for_each_rule():
    doc = yaml.safe_load((DASHBOARDS / ".lint").read_text(encoding="utf-8"))
    assert set(doc["exclusions"]) == {"template-job-rule", "template-instance-rule", "target-job-rule",
                                      "target-instance-rule"}
    assert all(rule["reason"] for rule in doc["exclusions"].values())
