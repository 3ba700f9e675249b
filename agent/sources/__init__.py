"""Sources observe bots and emit events into the estate state; they know nothing of exporters.

Each source has `start()` and `stop()`, runs in its own thread, counts what it cannot read in
`botwatch_agent_parse_errors_total{source}`, and never raises into the agent.
"""
