"""The metric catalogue: each metric's Prometheus name, type, help and labels, its OTLP name and unit.

Defined once and read by every exporter: /metrics (prometheus.py, governance.py), the totals a
deliverer pushes from a bot host (totals.py) and OTLP (otlp_metrics.py). Standard library only.
Counter names are without `_total` (prometheus_client adds it); OTLP units follow UCUM.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricSpec:
    name: str
    type: str  # counter | gauge | histogram
    help: str
    labels: tuple[str, ...]
    otlp_name: str
    unit: str
    # the help a bot host's totals carry, where it has said something else all along (a
    # Pushgateway refuses a push whose help differs from the one its groups already hold)
    totals_help: str | None = None


_B = ("bot",)
_S = ("bot", "screen")
_Q = ("platform", "connection", "folder", "queue")

CATALOGUE: tuple[MetricSpec, ...] = (
    MetricSpec("botwatch_bot_info", "gauge", "Ownership and kind of a bot, to join into alerts.",
               ("bot", "team", "bot_owner", "platform", "lifecycle", "criticality"), "botwatch.bot.info", "1"),
    MetricSpec("botwatch_bot_state", "gauge", "Current state of the bot (one-hot).", ("bot", "state"),
               "botwatch.bot.state", "1"),
    MetricSpec("botwatch_runs", "counter", "Finished runs.", _B, "botwatch.runs", "{run}"),
    MetricSpec("botwatch_run_failures", "counter", "Failed runs by reason.", ("bot", "reason"),
               "botwatch.run.failures", "{run}"),
    MetricSpec("botwatch_run_duration_seconds", "histogram", "Run duration.", _B, "botwatch.run.duration", "s"),
    MetricSpec("botwatch_last_run_duration_seconds", "gauge", "Duration of the latest finished run.", _B,
               "botwatch.run.last.duration", "s"),
    MetricSpec("botwatch_last_run_end_timestamp_seconds", "gauge", "End time of the latest finished run.", _B,
               "botwatch.run.last.end_timestamp", "s"),
    MetricSpec("botwatch_last_success_timestamp_seconds", "gauge", "End time of the latest successful run.", _B,
               "botwatch.run.last_success.timestamp", "s"),
    MetricSpec("botwatch_last_failure_timestamp_seconds", "gauge", "End time of the latest failed run.", _B,
               "botwatch.run.last_failure.timestamp", "s"),
    MetricSpec("botwatch_consecutive_failures", "gauge", "Failed runs in a row, up to the latest run.", _B,
               "botwatch.run.consecutive_failures", "{run}"),
    MetricSpec("botwatch_run_in_progress", "gauge", "Runs currently active.", _B, "botwatch.run.in_progress",
               "{run}"),
    MetricSpec("botwatch_run_started_timestamp_seconds", "gauge", "Start of the oldest active run, 0 if none.", _B,
               "botwatch.run.started_timestamp", "s"),
    MetricSpec("botwatch_schedule_next_expected_timestamp_seconds", "gauge", "When the next run is due.", _B,
               "botwatch.schedule.next_expected_timestamp", "s"),
    MetricSpec("botwatch_schedule_grace_seconds", "gauge", "How late a run may be before the bot is down.", _B,
               "botwatch.schedule.grace", "s"),
    MetricSpec("botwatch_bot_items", "counter",
               "Work items the bot's runs reported, by status (processed, failed).", ("bot", "status"),
               "botwatch.bot.items", "{item}"),
    MetricSpec("botwatch_empty_runs", "counter",
               "Successful runs that processed fewer work items than the bot's min_items.", _B,
               "botwatch.run.empty", "{run}"),
    MetricSpec("botwatch_missed_runs", "counter", "Schedule misses (each time the bot went down).", _B,
               "botwatch.schedule.missed_runs", "{run}"),
    MetricSpec("botwatch_bot_cpu_seconds", "counter", "CPU time of the bot's whole process tree.", _B,
               "botwatch.bot.cpu.time", "s"),
    MetricSpec("botwatch_bot_resident_memory_bytes", "gauge", "Resident memory of the bot's running process trees.",
               _B, "botwatch.bot.memory.resident", "By"),
    MetricSpec("botwatch_bot_hung", "gauge", "1 while an active run is older than the bot's max_runtime.", _B,
               "botwatch.bot.hung", "1"),
    MetricSpec("botwatch_bot_processes", "gauge", "Processes in the bot's running process trees.", _B,
               "botwatch.bot.processes", "{process}"),
    MetricSpec("botwatch_bot_stuck_runs", "gauge",
               "Runs waiting to start for longer than their platform's limit "
               "(Orchestrator jobs Pending, Blue Prism sessions on one stage).", _B, "botwatch.bot.stuck_runs", "{run}"),
    MetricSpec("botwatch_queue_info", "gauge",
               "A work queue of an RPA control plane (1), with the team that owns it (the connection's folder_teams).",
               (*_Q, "team"), "botwatch.queue.info", "1"),
    MetricSpec("botwatch_queue_items", "gauge",
               "Open items of a work queue: waiting (new) or being processed (in_progress), at its latest pull.",
               (*_Q, "status"), "botwatch.queue.items", "{item}"),
    MetricSpec("botwatch_queue_oldest_item_age_seconds", "gauge",
               "Age of the oldest item waiting in a work queue, 0 if none waits.", _Q,
               "botwatch.queue.oldest_item.age", "s"),
    MetricSpec("botwatch_queue_items_past_sla", "gauge",
               "Open items of a work queue past their due date or the queue's SLA (breached), "
               "or past their risk SLA only (at_risk).", (*_Q, "sla"), "botwatch.queue.items.past_sla", "{item}"),
    MetricSpec("botwatch_queue_items_processed", "counter",
               "Items of a work queue that ended, by status (successful, failed).", (*_Q, "status"),
               "botwatch.queue.items.processed", "{item}"),
    MetricSpec("botwatch_queue_item_failures", "counter",
               "Items of a work queue that failed, by exception (business, application, unknown).",
               (*_Q, "exception"), "botwatch.queue.item.failures", "{item}"),
    MetricSpec("botwatch_queue_item_retries", "counter", "Items of a work queue that ended and were retries.", _Q,
               "botwatch.queue.item.retries", "{item}"),
    MetricSpec("botwatch_queue_item_processing_seconds", "counter",
               "Time spent processing the items of a work queue that ended (divide by the items processed "
               "for the mean).", _Q, "botwatch.queue.item.processing.time", "s"),
    MetricSpec("botwatch_robot_sessions", "gauge",
               "Robot sessions of a machine by state (available, busy, disconnected, unknown, unresponsive), "
               "as the control plane last reported them.", ("platform", "connection", "machine", "state"),
               "botwatch.robot.sessions", "{session}"),
    MetricSpec("botwatch_robot_unattended_capacity", "gauge",
               "Unattended robot sessions connected to a control plane (available or busy).",
               ("platform", "connection"), "botwatch.robot.unattended.capacity", "{session}"),
    MetricSpec("botwatch_robot_unattended_busy", "gauge",
               "Unattended robot sessions running a job.", ("platform", "connection"),
               "botwatch.robot.unattended.busy", "{session}"),
    MetricSpec("botwatch_ui_lookups", "counter", "UI element look-ups.", _S, "botwatch.ui.lookups", "{lookup}"),
    MetricSpec("botwatch_ui_lookup_failures", "counter", "UI look-ups that failed, by kind.",
               ("bot", "screen", "kind"), "botwatch.ui.lookup.failures", "{lookup}"),
    MetricSpec("botwatch_ui_healed_lookups", "counter",
               "Look-ups whose primary selector missed and a fallback matched.", _S, "botwatch.ui.lookup.healed",
               "{lookup}"),
    MetricSpec("botwatch_ui_lookup_wait_seconds", "histogram", "Time spent waiting for UI elements.", _S,
               "botwatch.ui.lookup.wait", "s"),
    MetricSpec("botwatch_ui_screens_overflow", "counter",
               "Look-ups counted under screen=\"other\" because the bot has too many screens.", _B,
               "botwatch.ui.screens.overflow", "{lookup}"),
    MetricSpec("botwatch_ui_drift_score", "gauge",
               "Drift of the screen's latest snapshot from its baseline, 0 (same) to 1 "
               "(the highest over the kinds of snapshot).", _S, "botwatch.ui.drift.score", "1"),
    MetricSpec("botwatch_ui_baseline_timestamp_seconds", "gauge",
               "When the baseline the latest snapshot was compared with was taken "
               "(the oldest over the kinds of snapshot).", _S, "botwatch.ui.baseline.timestamp", "s"),
    MetricSpec("botwatch_ui_declared_selector_matches", "gauge",
               "Elements each declared selector matched in the screen's latest snapshot (1 is healthy).",
               ("bot", "screen", "selector"), "botwatch.ui.declared_selector.matches", "{element}"),
    MetricSpec("botwatch_unregistered_bot_processes", "gauge",
               "Processes of known bot runtimes that belong to no registered bot (shadow bots).", ("platform",),
               "botwatch.unregistered_bot.processes", "{process}"),
    MetricSpec("botwatch_bot_governance_findings", "gauge", "1 if the bot fails the governance check, 0 if it passes.",
               ("bot", "check"), "botwatch.bot.governance.findings", "1"),
    MetricSpec("botwatch_bot_duplicate_candidates", "gauge",
               "Bots that seem to do the same work as this one, from what their sources share "
               "(botwatch duplicates).", _B, "botwatch.bot.duplicate_candidates", "{bot}"),
    MetricSpec("botwatch_agent_build_info", "gauge", "Version of the running agent.", ("version",),
               "botwatch.agent.build.info", "1"),
    MetricSpec("botwatch_agent_spool_pending_runs", "gauge",
               "Runs waiting in the spools of bot hosts, as their deliverers last reported.", (),
               "botwatch.agent.spool.pending_runs", "{run}"),
    MetricSpec("botwatch_agent_events", "counter", "Events received, by source.", ("source",),
               "botwatch.agent.events", "{event}"),
    MetricSpec("botwatch_agent_events_dropped", "counter",
               "Events dropped (limits, spool overflow, a full span queue), by source.", ("source",),
               "botwatch.agent.events.dropped", "{event}",
               totals_help="Events dropped (limits, spool overflow), by source."),
    MetricSpec("botwatch_agent_events_ignored", "counter",
               "Events of a type this agent does not know (sent by a newer client): taken, not applied, by source.",
               ("source",), "botwatch.agent.events.ignored", "{event}"),
    MetricSpec("botwatch_agent_parse_errors", "counter", "Inputs that could not be parsed, by source.", ("source",),
               "botwatch.agent.parse_errors", "{error}"),
    MetricSpec("botwatch_agent_export_failures", "counter",
               "Pushes to an exporter's endpoint that failed (each is retried with backoff).", ("exporter",),
               "botwatch.agent.export.failures", "{push}"),
    MetricSpec("botwatch_agent_controlplane_up", "gauge",
               "1 if the latest pull of an RPA control-plane connection succeeded, 0 if it failed.",
               ("platform", "connection"), "botwatch.agent.controlplane.up", "1"),
    MetricSpec("botwatch_agent_controlplane_requests", "counter",
               "Requests to an RPA control plane's API, by outcome (ok, throttled, error, auth).",
               ("platform", "connection", "outcome"), "botwatch.agent.controlplane.requests", "{request}"),
    MetricSpec("botwatch_agent_webhooks", "counter",
               "Webhooks an RPA control plane sent to the agent, by outcome (accepted, deferred, ignored: each item "
               "a webhook carries; bad_signature, malformed, unknown: the webhook).",
               ("platform", "connection", "outcome"), "botwatch.agent.webhooks", "{webhook}"),
    MetricSpec("botwatch_agent_controlplane_last_success_timestamp_seconds", "gauge",
               "When a pull of an RPA control-plane connection last succeeded.", ("platform", "connection"),
               "botwatch.agent.controlplane.last_success.timestamp", "s"),
    MetricSpec("botwatch_agent_label_values_shortened", "counter",
               "Label values longer than agent.limits.max_label_length, shortened to a head and a hash.", ("label",),
               "botwatch.agent.label_values.shortened", "{value}"),
)
METRICS: dict[str, MetricSpec] = {m.name: m for m in CATALOGUE}


def cumulative_buckets(bounds: list[str], counts, count: int) -> list[tuple[str, float]]:
    """A histogram's Prometheus buckets: the per-bucket `counts` accumulated under their `le`
    bounds (rendered), then +Inf holding all `count` observations."""
    acc, buckets = 0, []
    for le, n in zip(bounds, counts):
        acc += n
        buckets.append((le, acc))
    buckets.append(("+Inf", count))
    return buckets
