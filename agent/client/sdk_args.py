"""The SDK's arguments, as the bot gave them or as the environment sets them: each checked and
bounded, a wrong one taken as the nearest usable value (or dropped) with a warning, never an
exception into the bot. Values are typed `Any`: a bot may pass anything."""

from __future__ import annotations

import math
import os
import re
from typing import Any

from . import runrecord
from .sdk_log import warn
from ..core.items import MAX_ITEMS
from ..core.vocabulary import BOT_NAME, LOOKUP_KINDS, REASONS, RUN_ID

MAX_STEP_NAME = 200
MAX_SCREEN = 64
MAX_SELECTOR = 1024
MAX_MESSAGE = 4096


def bot_name(name: Any) -> str | None:
    """The bot name to record: `name`, or its nearest bot name ([a-z0-9_-], 1-64 characters)
    with a warning; None (nothing of the run is recorded) when nothing of it is usable."""
    if isinstance(name, str) and BOT_NAME.match(name):
        return name
    coerced = re.sub(r"[^a-z0-9_-]+", "-", str(name).strip().lower()).strip("-")[:64] if name is not None else ""
    if not coerced:
        warn(("bot-name", repr(name)[:80]), "botwatch: %r is not a bot name ([a-z0-9_-], 1-64 characters); "
             "this run is not recorded", name)
        return None
    warn(("bot-name", repr(name)[:80]), "botwatch: %r is not a bot name ([a-z0-9_-], 1-64 characters); "
         "recorded as %r", name, coerced)
    return coerced


def run_id(value: Any) -> str | None:
    """A run id the bot gave (1-128 of A-Z a-z 0-9 . _ : -); None, with a warning, when it is not one."""
    if value is not None and not (isinstance(value, str) and RUN_ID.match(value)):
        warn(("run-id", str(value)[:50]), "botwatch.run(run_id=%r): a run id is 1-128 of A-Z a-z 0-9 . _ : -; "
             "using a generated one", value)
        return None
    return value


def reason(value: Any) -> str:
    """A failure reason of the taxonomy (any case, `-` for `_`); else `unknown`, with a warning."""
    if isinstance(value, str) and value in REASONS:
        return value
    if isinstance(value, str) and value.strip().lower().replace("-", "_") in REASONS:
        return value.strip().lower().replace("-", "_")
    warn(("reason", repr(value)[:80]), "botwatch.fail(reason=%r): not one of %s; recorded as unknown",
         value, ", ".join(REASONS))
    return "unknown"


def text(value: Any, limit: int, *, redacted: bool = False) -> str:
    """`value` as text (redacted first when it may hold a secret), at most `limit` characters."""
    result = value if isinstance(value, str) else str(value)
    if redacted:
        from ..core.redact import redact

        result = redact(result)
    return result[:limit]


def message(value: Any) -> str | None:
    if value is None:
        return None
    return text(value, MAX_MESSAGE, redacted=True) or None


def screen(value: Any) -> str:
    if value is None or value == "":
        warn("lookup-screen", "botwatch.ui_lookup() without a screen: recorded as screen 'unknown'")
        return "unknown"
    return text(value, MAX_SCREEN)


def step_name(value: Any) -> str:
    if value is None or value == "":
        warn("step-name", "botwatch.step() without a name: recorded as 'step'")
        return "step"
    return text(value, MAX_STEP_NAME)


def flag(what: str, value: Any, default: bool) -> bool:
    if isinstance(value, bool):
        return value
    if value is None:
        return default
    warn(("flag", what), "botwatch.ui_lookup(%s=%r): not True or False; taken as %s", what, value, bool(value))
    return bool(value)


def lookup_kind(kind: Any, found: bool) -> str | None:
    """The kind of a failed look-up (not_found, the default, ambiguous or wrong_app); None for
    an element found, where a kind is ignored with a warning."""
    if found:
        if kind is not None:
            warn("lookup-kind-found", "botwatch.ui_lookup(kind=...) is for elements not found; ignored "
                 "with found=True")
        return None
    if kind is not None and kind not in LOOKUP_KINDS:
        warn(("lookup-kind", str(kind)[:50]), "botwatch.ui_lookup(kind=%r): not one of %s; recorded as "
             "not_found", kind, ", ".join(LOOKUP_KINDS))
        kind = None
    return kind or "not_found"


def seconds(wait: Any) -> float | None:
    """A wait in seconds (a number or a timedelta), finite and >= 0; else dropped with a warning."""
    if wait is None:
        return None
    try:
        result = float(wait.total_seconds() if hasattr(wait, "total_seconds") else wait)
    except (TypeError, ValueError):
        result = math.nan
    if not math.isfinite(result) or result < 0:
        warn(("wait", repr(wait)[:50]), "botwatch.ui_lookup(wait=%r): not a number of seconds >= 0; dropped", wait)
        return None
    return result


def count(what: str, value: Any) -> int:
    """A number of work items (botwatch.items()): an integer >= 0, at most MAX_ITEMS; else 0
    (dropped) with a warning."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value:
        if value > MAX_ITEMS:
            warn(("items-bound", what), "botwatch.items(%s=%r): more than %d; recorded as %d", what, value,
                 MAX_ITEMS, MAX_ITEMS)
            return MAX_ITEMS
        return value
    warn(("items", what, repr(value)[:50]), "botwatch.items(%s=%r): not a whole number >= 0; dropped", what, value)
    return 0


def ignore_unknown(where: str, unknown: dict[str, Any]) -> None:
    if unknown:
        warn(("unknown-args", where, tuple(sorted(unknown))), "botwatch.%s(): unknown argument(s) %s ignored",
             where, ", ".join(sorted(unknown)))


def agent_url(explicit: Any) -> str | None:
    """The agent URL given (a string), else the environment's (runrecord.agent_url)."""
    if explicit is not None and not isinstance(explicit, str):
        warn(("agent-url", type(explicit).__name__), "botwatch: agent_url=%r is not a URL; ignored", explicit)
        explicit = None
    return runrecord.agent_url(explicit)


def outside_bot(explicit: Any) -> str | None:
    """The bot an event outside any run belongs to: `explicit`, else $BOTWATCH_BOT."""
    name = explicit if explicit is not None else os.environ.get("BOTWATCH_BOT")
    return bot_name(name) if name else None


def outside_run_id() -> str | None:
    """The run an event outside any run belongs to: $BOTWATCH_RUN_ID, when it is a run id."""
    value = os.environ.get("BOTWATCH_RUN_ID")
    return value if value and RUN_ID.match(value) else None
