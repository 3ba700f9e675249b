"""Prometheus rules and Alertmanager examples, shipped as package data."""
