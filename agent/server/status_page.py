"""The agent's status page at `/`: the estate at a glance for a team without Grafana.

Server-rendered HTML with inline CSS: no scripts, no front-end build, readable on a phone and
reloaded by the browser every `refresh` seconds. Estate traffic lights (a count per state),
then one card per bot, the most urgent first: state (colour *and* word), owner, team, last
success, the latest runs with their failure reasons, UI drift warnings and declared selectors
that no longer match, the runbook link, the count of failed governance checks and the
applications and sites the bot's source uses (each a link to the bots a change there would hit).

Everything shown is escaped. Nothing secret is shown: no run output, no check-in bodies, no
governance details beyond the names of the failed checks (owner and runbook are meant to be seen).
"""

from __future__ import annotations

import html
import re
import time
from typing import TYPE_CHECKING, Callable, Iterable, Mapping, Sequence
from urllib.parse import urlencode

from ..core.durations import format_duration
from ..state.readmodel import BotView

if TYPE_CHECKING:
    from ..deps.applications import Application

REFRESH_SECONDS = 30  # how often the browser reloads the page
MAX_APPLICATIONS = 6  # applications and sites named per bot
MAX_BOTS = 200  # bot cards rendered (the most urgent first); the counts cover every bot
RECENT_RUNS = 5  # runs listed per bot

# The traffic lights. Each state also shows its name: colour is never the only signal.
STATE_COLOURS = {
    "up": "#2e7d32",       # green
    "late": "#e65100",     # orange
    "failing": "#c62828",  # red
    "down": "#b71c1c",     # red
    "paused": "#757575",   # grey
    "new": "#1565c0",      # blue
}
STATE_LABELS = {"up": "up", "late": "late", "failing": "failing", "down": "down", "paused": "paused", "new": "new"}
# Worst first: the order of the cards and of the counts.
URGENCY = ("down", "failing", "late", "new", "up", "paused")

_EMAIL = re.compile(r"^[^@\s<>\"']+@[^@\s<>\"']+\.[^@\s<>\"']+$")
_WEB_URL = re.compile(r"^https?://", re.I)

RecentRuns = Callable[[str], Sequence[Mapping]]  # bot -> its latest runs, newest first


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _ago(ts: float | None, now: float) -> str:
    if not ts:
        return "never"
    d = now - ts
    return f"{format_duration(d)} ago" if d >= 0 else f"in {format_duration(-d)}"


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def _owner(owner: str | None) -> str:
    if not owner:
        return "<span class='missing'>no owner</span>"
    if _EMAIL.match(owner):
        return f"<a href='mailto:{_e(owner)}'>{_e(owner)}</a>"
    return _e(owner)


def _runbook(url: str | None) -> str:
    if not url:
        return "<span class='missing'>no runbook</span>"
    if _WEB_URL.match(url):  # never a javascript: or data: link
        return f"<a href='{_e(url)}' rel='noopener noreferrer'>runbook</a>"
    return f"runbook: {_e(url)}"


def _badge(state: str) -> str:
    return f"<span class='state s-{_e(state)}'>{_e(STATE_LABELS.get(state, state))}</span>"


def _runs(runs: Sequence[Mapping] | None, now: float) -> str:
    if runs is None:
        return ""
    if not runs:
        return "<p class='muted'>no runs recorded</p>"
    items = []
    for r in runs:
        outcome = r.get("outcome") or "unknown"
        cls = {"success": "ok", "failure": "bad"}.get(outcome, "unk")
        text = outcome if outcome != "failure" else f"failure: {r.get('reason') or 'unknown'}"
        if r.get("empty"):  # a success that processed fewer items than min_items
            cls, text = "empty", "success, empty"
        dur = ""
        if r.get("started") is not None and r.get("ended") is not None and r["ended"] >= r["started"]:
            dur = f", took {format_duration(r['ended'] - r['started'])}"
        exit_status = f", exit {int(r['exit_status'])}" if r.get("exit_status") is not None else ""
        work = _items(r.get("items_processed"), r.get("items_failed"))
        items.append(f"<li class='run {cls}'><span class='outcome'>{_e(text)}</span> "
                     f"<span class='muted' title='{_e(_iso(r['ended']))}'>{_e(_ago(r['ended'], now))}"
                     f"{_e(dur)}{_e(exit_status)}{_e(work)}</span></li>")
    return "<h3>recent runs</h3><ul class='runs'>" + "".join(items) + "</ul>"


def _items(processed: int | None, failed: int | None) -> str:
    """A run's work items as listed: ", 120 items, 3 failed"; nothing when it reported none."""
    if processed is None and failed is None:
        return ""
    return f", {int(processed or 0)} item{'s' if processed != 1 else ''}" + (f", {int(failed)} failed" if failed else "")


def _ui_warnings(v: BotView) -> list[str]:
    """Screens at or above their drift warning, declared selectors that match nothing or more than
    one element, and the screen of the latest UI failure."""
    out = []
    threshold = v.cfg.ui.drift_warning
    for name in sorted(v.ui):
        screen = v.ui[name]
        score = screen.drift_score
        if score is not None and score >= threshold:
            out.append(f"screen <b>{_e(name)}</b> drifted: score {score:.2f} (warning at {threshold:.2f})")
        for sel, n in sorted(screen.declared_matches.items()):
            if n == 0:
                out.append(f"screen <b>{_e(name)}</b>: selector <code>{_e(sel)}</code> matches nothing")
            elif n > 1:
                out.append(f"screen <b>{_e(name)}</b>: selector <code>{_e(sel)}</code> matches {n} elements")
    if v.last_ui_failure and any(v.last_ui_failure):
        screen, selector = v.last_ui_failure
        where = f" on screen <b>{_e(screen)}</b>" if screen else ""
        what = f": <code>{_e(selector)}</code>" if selector else ""
        out.append(f"last run failed on the UI{where}{what}")
    return out


def _depends_on(apps: Sequence[Application] | None) -> str:
    """`depends on: chrome.exe (6 screens), rbcroyalbank.com`, each linked to the impact of a
    change there; nothing when the bot's source names none (or was not read)."""
    if not apps:
        return ""
    named = []
    for a in apps[:MAX_APPLICATIONS]:
        screens = f" ({len(a.screens)} screen{'s' if len(a.screens) != 1 else ''})" if a.screens else ""
        link = "/api/v1/impact?" + urlencode({"q": a.name})
        named.append(f"<a href='{_e(link)}' title='bots a change to {_e(a.name)} would hit'>{_e(a.name)}</a>"
                     f"{_e(screens)}")
    more = len(apps) - len(named)
    return (f"<p class='deps'>depends on: {', '.join(named)}" + (f" and {more} more" if more > 0 else "") + "</p>")


def _card(v: BotView, now: float, runs: Sequence[Mapping] | None, failed_checks: list[str] | None,
          apps: Sequence[Application] | None = None) -> str:
    c = v.cfg
    facts = [f"<dt>owner</dt><dd>{_owner(c.owner)}</dd>",
             f"<dt>team</dt><dd>{_e(c.team) if c.team else '<span class=missing>none</span>'}</dd>",
             f"<dt>last success</dt><dd>{_e(_ago(v.last_success, now))}</dd>"]
    if v.next_due is not None:
        due = (f"overdue {format_duration(now - v.next_due)}" if v.next_due < now else _ago(v.next_due, now))
        facts.append(f"<dt>next due</dt><dd>{_e(due)}</dd>")
    if v.consecutive_failures:
        facts.append(f"<dt>failures in a row</dt><dd>{v.consecutive_failures}</dd>")
    if v.empty_runs_total:  # successes that processed fewer items than min_items
        under = f" (fewer than {c.min_items} items)" if c.min_items else ""
        facts.append(f"<dt>empty runs</dt><dd class='warn'>{v.empty_runs_total}{_e(under)}</dd>")
    if v.runs_in_progress:
        facts.append(f"<dt>running</dt><dd>{v.runs_in_progress} run(s)"
                     f"{' <b class=hung>hung</b>' if v.hung else ''}</dd>")
    if failed_checks is not None:
        n = len(failed_checks)
        gov = "none" if not n else f"{n} finding{'s' if n != 1 else ''} ({_e(', '.join(failed_checks))})"
        facts.append(f"<dt>governance</dt><dd class='{'warn' if n else ''}'>{gov}</dd>")
    warnings = _ui_warnings(v)
    ui = ("<ul class='warnings'>" + "".join(f"<li>{w}</li>" for w in warnings) + "</ul>") if warnings else ""
    meta = " · ".join(_e(x) for x in (c.platform, c.lifecycle, c.criticality and f"{c.criticality} criticality") if x)
    return (f"<article class='bot b-{_e(v.state)}' id='bot-{_e(v.name)}' data-bot='{_e(v.name)}' "
            f"data-state='{_e(v.state)}'>"
            f"<header><h2>{_e(v.name)}</h2>{_badge(v.state)}</header>"
            f"<p class='why'>{_e(v.state_why)} <span class='muted'>(since {_e(_ago(v.state_since, now))})</span></p>"
            + (f"<p class='muted meta'>{meta}</p>" if meta else "")
            + (f"<p class='desc'>{_e(c.description)}</p>" if c.description else "")
            + ui
            + f"<dl>{''.join(facts)}</dl>"
            + _depends_on(apps)
            + _runs(runs, now)
            + f"<p class='links'>{_runbook(c.runbook)}</p></article>")


def render_status_page(views: Iterable[BotView], *, now: float | None = None,
                       recent_runs: RecentRuns | None = None,
                       findings: Mapping[str, Iterable] | None = None,
                       applications: Mapping[str, Sequence[Application]] | None = None,
                       refresh: int = REFRESH_SECONDS, max_bots: int = MAX_BOTS, version: str = "") -> str:
    """The page. `recent_runs(bot)`: its latest runs (dicts with outcome, reason, started, ended,
    exit_status, items_processed, items_failed, empty), asked for the cards shown only; `findings`: governance findings per bot (objects
    with `check` and `ok`), None when not computed yet; `applications`: per bot, the applications
    and sites its source uses (botwatch.deps.applications), None when not read yet; `refresh`:
    seconds, 0 for none."""
    now = time.time() if now is None else now
    views = sorted(views, key=lambda v: (URGENCY.index(v.state) if v.state in URGENCY else 0, v.cfg.team or "", v.name))
    counts = dict.fromkeys(URGENCY, 0)
    for v in views:
        counts[v.state] = counts.get(v.state, 0) + 1
    lights = "".join(
        f"<li class='light s-{_e(s)}{' zero' if not n else ''}' data-state='{_e(s)}'>"
        f"<span class='n'>{n}</span> <span class='label'>{_e(STATE_LABELS.get(s, s))}</span></li>"
        for s, n in counts.items())
    shown = views[:max_bots]
    cards = []
    for v in shown:
        runs = None
        if recent_runs is not None:
            try:
                runs = list(recent_runs(v.name))[:RECENT_RUNS]
            except Exception:  # a journal busy for a moment: the page still renders
                runs = None
        failed = None
        if findings is not None:
            failed = sorted({f.check for f in findings.get(v.name, ()) if not f.ok})
        cards.append(_card(v, now, runs, failed, (applications or {}).get(v.name)))
    note = ""
    if len(views) > len(shown):
        note = (f"<p class='note'>Showing the {len(shown)} most urgent of {len(views)} bots. Every bot: "
                "<a href='/api/v1/status'>/api/v1/status</a> or <code>botwatch status</code>.</p>")
    if not views:
        note = "<p class='note'>No bots yet: describe them in the estate file.</p>"
    head_refresh = f"<meta http-equiv='refresh' content='{int(refresh)}'>" if refresh and refresh > 0 else ""
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no bots"
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"{head_refresh}<title>botwatch: {_e(summary)}</title><style>{_CSS}</style></head><body>"
        f"<header class='top'><h1>botwatch</h1><p class='muted'>agent {_e(version)} · {_e(_iso(now))}"
        + (f" · refreshes every {int(refresh)}s" if head_refresh else "") + "</p></header>"
        f"<ul class='lights' aria-label='bots per state'>{lights}</ul>{note}"
        f"<main class='bots'>{''.join(cards)}</main>"
        "<footer class='muted'><a href='/metrics'>metrics</a> · <a href='/api/v1/status'>status API</a> · "
        "<a href='/api/v1/dependencies'>dependencies API</a> · "
        "<a href='/api/v1/openapi.json'>API description</a></footer></body></html>")


def page_for_state(state, governance=None, *, refresh: int = REFRESH_SECONDS, version: str = "",
                   dependencies=None) -> str:
    """The page of a running agent: its state, the journal's latest runs, the governance findings
    and the dependencies (a botwatch.deps.index.DependencyIndex) the agent last computed (never
    computed here: the page must stay fast)."""
    journal = state.journal
    recent = (lambda bot: journal.recent_runs(bot, RECENT_RUNS)) if journal is not None else None
    findings = governance.latest if governance is not None else None
    now = state.clock()
    applications = dependencies.latest_applications if dependencies is not None else None
    return render_status_page(state.views(now), now=now, recent_runs=recent, findings=findings,
                              applications=applications, refresh=refresh, version=version)


_CSS = "".join(f".s-{s}{{background:{c};color:#fff}}" for s, c in STATE_COLOURS.items()) + """
*{box-sizing:border-box}
body{margin:0;padding:0 .75rem 1rem;font:15px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
 color:#1b1f24;background:#f4f5f7}
a{color:#0b57d0}
h1{margin:.6rem 0 0;font-size:1.4rem}
h2{margin:0;font-size:1.05rem;overflow-wrap:anywhere}
h3{margin:.6rem 0 .2rem;font-size:.85rem;text-transform:uppercase;letter-spacing:.04em;color:#57606a}
.muted{color:#57606a}
.top p{margin:.1rem 0 .6rem}
.lights{display:flex;flex-wrap:wrap;gap:.4rem;list-style:none;margin:0 0 .8rem;padding:0}
.light{padding:.35rem .7rem;border-radius:999px;font-weight:600}
.light.zero{opacity:.35}
.light .n{font-size:1.1rem}
.bots{display:grid;gap:.75rem;grid-template-columns:repeat(auto-fill,minmax(min(100%,21rem),1fr))}
.bot{background:#fff;border-radius:8px;padding:.7rem .8rem;border-left:6px solid #999;min-width:0;
 box-shadow:0 1px 2px rgba(0,0,0,.08);overflow-wrap:anywhere}
""" + "".join(f".b-{s}{{border-left-color:{c}}}" for s, c in STATE_COLOURS.items()) + """
.bot header{display:flex;justify-content:space-between;align-items:center;gap:.5rem}
.state{padding:.15rem .55rem;border-radius:4px;font-weight:700;font-size:.85rem;text-transform:uppercase;
 white-space:nowrap}
.why{margin:.35rem 0 .2rem}
.meta,.desc{margin:.2rem 0;font-size:.9rem}
dl{display:grid;grid-template-columns:auto 1fr;gap:.1rem .6rem;margin:.5rem 0 0;font-size:.9rem}
dt{color:#57606a}
dd{margin:0;min-width:0}
.runs{list-style:none;margin:0;padding:0;font-size:.9rem}
.run::before{content:"";display:inline-block;width:.6rem;height:.6rem;border-radius:50%;margin-right:.4rem;
 background:#757575}
.run.ok::before{background:#2e7d32}
.run.bad::before{background:#c62828}
.run.bad .outcome{color:#b71c1c;font-weight:600}
.run.empty::before{background:#f9a825}
.run.empty .outcome{color:#7a3300;font-weight:600}
.warnings{margin:.5rem 0 0;padding:.4rem .6rem .4rem 1.4rem;background:#fff4e5;border-radius:4px;
 font-size:.9rem;color:#7a3300}
.warn,.hung{color:#b71c1c}
.missing{color:#b71c1c;font-style:italic}
.links{margin:.5rem 0 0}
.deps{margin:.5rem 0 0;font-size:.9rem}
.note{background:#e8f0fe;padding:.4rem .6rem;border-radius:4px}
code{font-size:.85em;overflow-wrap:anywhere}
footer{margin-top:1rem;font-size:.85rem}
@media (prefers-color-scheme:dark){
 body{background:#16181c;color:#e6e6e6}.bot{background:#23262b}a{color:#8ab4f8}
 .muted,dt,h3{color:#9aa0a6}.warnings{background:#3a2a12;color:#ffcc80}.note{background:#1f2a3d}
 .warn,.hung,.missing,.run.bad .outcome{color:#ff8a80}}
"""
