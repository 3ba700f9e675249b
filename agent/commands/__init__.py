"""The `botwatch` command line: every command, the demo and the local Prometheus stack."""
