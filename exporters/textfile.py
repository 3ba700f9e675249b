"""Delivery to node_exporter's textfile collector, for hosts where no agent runs
(`botwatch run --textfile-dir DIR`).

Each bot's totals are written to DIR/botwatch_<bot>.prom, the spool's own counter (events it
dropped) to DIR/botwatch.prom. Files are written under a temporary name in DIR and renamed into
place, so the collector never reads half a file. node_exporter adds its own instance label.
"""

from __future__ import annotations

import os

from prometheus_client.exposition import write_to_textfile

from .totals import totals_registry


def path_for(directory: str, bot: str) -> str:
    return os.path.join(directory, f"botwatch_{bot}.prom" if bot else "botwatch.prom")


def write_totals(directory: str, totals: dict) -> str:
    """Write one bot's file (or the spool's); raises OSError when DIR is not writable."""
    path = path_for(directory, totals["bot"])
    write_to_textfile(path, totals_registry(totals))
    return path
