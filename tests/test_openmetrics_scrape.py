"""A real Prometheus scrapes the agent over OpenMetrics (it asks for it first) and keeps the
exemplar of a bot's latest run: the run id, found with query_exemplars from the run counter."""

from __future__ import annotations

import time
import urllib.parse

from conftest import free_port, http_post_json, require, wait_for, write_estate

from botwatch.commands import stack

HANG = 120.0  # bounds each wait against a hang; it asserts no speed


def test_prometheus_keeps_the_latest_run_id_as_the_exemplar_of_the_run_counters(tmp_path, agents):
    binary = require(stack.find_binary(stack.PROMETHEUS) or "/usr/bin/prometheus", "prometheus")
    port = free_port()
    agent = agents(write_estate(tmp_path / "botwatch.yaml", "- name: invoice-recon\n- name: ledger-close\n",
                                port), port).start()
    config = stack.write_prometheus_config(tmp_path / "prometheus.yml", [f"127.0.0.1:{port}"], scrape_interval="1s")
    listen = f"127.0.0.1:{free_port()}"
    prom = stack.Server("Prometheus", [
        binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'prom-data'}",
        f"--web.listen-address={listen}", "--log.level=warn", "--enable-feature=exemplar-storage"],
        listen, tmp_path / "prometheus.log")
    try:
        prom.start().wait_ready()
        start = time.time() - 60
        now = time.time()
        runs = [{"type": "run_finished", "bot": "invoice-recon", "run_id": "job-0001", "outcome": "success",
                 "started": now - 9, "ended": now - 5},
                {"type": "run_finished", "bot": "invoice-recon", "run_id": "job-0002", "outcome": "failure",
                 "reason": "timeout", "started": now - 4, "ended": now - 1}]
        status, body = http_post_json(agent.url + "/api/v1/events", {"events": runs})
        assert status == 200 and body["accepted"] == 2, body

        def exemplars(metric: str) -> dict:
            query = urllib.parse.urlencode({"query": metric, "start": f"{start:.3f}", "end": f"{time.time() + 60:.3f}"})
            found = prom.get_json(f"/api/v1/query_exemplars?{query}")["data"]
            return {(s["seriesLabels"]["bot"], s["seriesLabels"].get("reason")): [e["labels"]["run_id"] for e in
                                                                                   s["exemplars"]] for s in found}

        runs_total = wait_for(lambda: exemplars("botwatch_runs_total"), timeout=HANG,
                              what="Prometheus to keep an exemplar of botwatch_runs_total")
        assert runs_total == {("invoice-recon", None): ["job-0002"]}
        failures = wait_for(lambda: exemplars("botwatch_run_failures_total"), timeout=HANG,
                            what="Prometheus to keep an exemplar of botwatch_run_failures_total")
        assert failures == {("invoice-recon", "timeout"): ["job-0002"]}
        up = prom.get_json("/api/v1/query?query=" + urllib.parse.quote('up{job="botwatch"}'))["data"]["result"]
        assert [r["value"][1] for r in up] == ["1"]
    finally:
        prom.stop()
