"""Sources observe bots and emit events into the estate state; they know nothing of exporters.

Each source subclasses `base.Source` (its thread, `start()` and `stop()`, counting what it
cannot read in `botwatch_agent_parse_errors_total{source}`, never raising into the agent,
checkpoints in the journal) and registers itself in `registry` (docs/architecture.md).
"""
