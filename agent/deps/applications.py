"""The applications a bot's dependencies name, for people rather than tools: each application
with the screens of it the bot uses, and each site (a URL's host) it visits.

An application is named by an `application` dependency or by the `app` of a screen or selector;
a site is the host of an absolute http(s) URL, without a leading `www.`. Relative URLs name no site.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .model import Dependency


@dataclass(frozen=True)
class Application:
    name: str
    kind: str  # application | site
    screens: frozenset[str] = field(default_factory=frozenset)


def site_of(url: str) -> str | None:
    """The host of an absolute http(s) URL, lower-case and without `www.`; None for anything else."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    return host.removeprefix("www.")


def applications(dependencies: list[Dependency]) -> list[Application]:
    """The applications (with their screens), then the sites, each by name."""
    screens: dict[str, set[str]] = {}
    sites: set[str] = set()
    for d in dependencies:
        if d.kind == "application":
            screens.setdefault(d.value, set())
        elif d.app:
            screens.setdefault(d.app, set())
            if d.kind == "screen":
                screens[d.app].add(d.value)
            elif d.screen:
                screens[d.app].add(d.screen)
        if d.kind == "url" and (site := site_of(d.value)):
            sites.add(site)
    return ([Application(name, "application", frozenset(s))
             for name, s in sorted(screens.items(), key=lambda kv: (kv[0].casefold(), kv[0]))]
            + [Application(name, "site") for name in sorted(sites)])

