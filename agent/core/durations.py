"""Durations as the estate file writes them: `90s`, `15m`, `2h`, `1d`, or combined `1h30m`."""

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(text: str | int | float) -> float:
    """Seconds in `text`; a bare number means seconds. Raises ValueError with a readable message."""
    if isinstance(text, bool):
        raise ValueError(f"invalid duration {text!r}")
    if isinstance(text, (int, float)):
        if text != text or text in (float("inf"), float("-inf")):  # YAML's .nan and .inf
            raise ValueError(f"invalid duration {text!r}: not a finite number of seconds")
        if text < 0:
            raise ValueError(f"duration must not be negative: {text!r}")
        return float(text)
    s = str(text).strip()
    if not s:
        raise ValueError("empty duration")
    if s.replace(".", "", 1).isdigit():
        return float(s)
    pos, total = 0, 0.0
    for m in _PART.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s) or pos == 0:
        raise ValueError(f"invalid duration {text!r} (use e.g. 90s, 15m, 2h, 1h30m)")
    return total


def format_duration(seconds: float) -> str:
    """Short human form for tables: 45s, 12m, 3h05m, 2d4h."""
    s = int(round(seconds))
    if s < 120:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 120:
        return f"{m}m"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h}h{m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d{h}h"
