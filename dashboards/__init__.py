"""Grafana dashboards, shipped as package data."""
