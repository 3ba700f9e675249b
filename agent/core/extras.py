"""Optional capabilities and the extras that install them.

`pip install botwatch` is the core: the wrapper, the SDK, the deliverer, the agent with /metrics,
check-ins, the status page, process and log watching, and the CLI. Heavier capabilities come
with an extra (`pip install 'botwatch[drift]'`); whatever needs one calls `require`, whose
MissingExtra says in one line what is off and how to install it. The agent starts without
them and says which capabilities are off.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True)
class Extra:
    name: str
    capability: str  # what it adds, as messages name it
    modules: tuple[str, ...]  # importable when it is installed


EXTRAS: dict[str, Extra] = {e.name: e for e in (
    Extra("drift", "UI drift comparison (pages and screenshots)", ("lxml", "cssselect", "PIL")),
    Extra("otlp", "OTLP export", ("opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.http")),
    Extra("governance", "secret scanning", ("detect_secrets",)),
    Extra("grafana", "pushing dashboards to Grafana", ("grafana_client",)),
)}


class MissingExtra(RuntimeError):
    """A capability whose extra is not installed: the message names the extra and its install command."""

    def __init__(self, extra: str, what: str | None = None) -> None:
        self.extra = extra
        self.what = what or EXTRAS[extra].capability
        super().__init__(f"{self.what} needs the {extra} extra: {install_hint(extra)}")


def install_hint(extra: str) -> str:
    return f"pip install 'botwatch[{extra}]'"


@cache
def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a parent package missing
        return False


def available(extra: str) -> bool:
    """Whether the extra's packages can be imported (looked up, not imported)."""
    return all(_importable(m) for m in EXTRAS[extra].modules)


def require(extra: str, what: str | None = None) -> None:
    """MissingExtra when `extra` is not installed; `what` names the capability that needs it."""
    if not available(extra):
        raise MissingExtra(extra, what)


def missing() -> list[Extra]:
    """The extras not installed, in the order of EXTRAS."""
    return [e for e in EXTRAS.values() if not available(e.name)]


def capabilities_off() -> str:
    """One line naming the capabilities off and how to switch them on ('' when none is)."""
    return "; ".join(f"{e.capability} ({install_hint(e.name)})" for e in missing())
