"""Integrations that run inside a bot's own runtime (e.g. the Robot Framework listener)."""
