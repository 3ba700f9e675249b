"""The report's "Applications and their bots": per application or site, the bots whose sources
(the estate file's `source:`) depend on it, most depended-on first (botwatch.deps)."""

from __future__ import annotations

import logging

from .model import ApplicationRow

log = logging.getLogger("botwatch.report")
NONE = "(none)"  # as gather.NONE: a bot without a team


def applications_of_estate(loaded) -> list[ApplicationRow]:
    """Every application and site the estate's bots depend on; a bot whose sources cannot be
    read is logged and left out, never fatal to the report."""
    from ..deps.applications import applications
    from ..deps.estate import bot_dependencies, criticality_rank

    rows: dict[tuple[str, str], ApplicationRow] = {}
    for bot in loaded.estate.bots:
        if not bot.source:
            continue
        try:
            found = bot_dependencies(loaded, bot)
        except Exception:
            log.exception("reading the dependencies of bot %s failed", bot.name)
            continue
        for app in applications(found.extraction.dependencies):
            row = rows.setdefault((app.kind, app.name), ApplicationRow(app.name, app.kind))
            row.bots.append((bot.name, bot.team or NONE, bot.criticality))
    for row in rows.values():
        row.bots.sort(key=lambda b: (criticality_rank(b[2]), b[0]))
    return sorted(rows.values(), key=lambda r: (-len(r.bots), r.kind, r.name.casefold(), r.name))
