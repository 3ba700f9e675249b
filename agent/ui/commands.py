"""`botwatch drift`: set, check and accept the baselines of a bot's screens.

The baselines are in the journal the estate file names (`--config`, else $BOTWATCH_CONFIG,
else ./botwatch.yaml), the same the agent uses; the CLI may run while the agent does.

    botwatch drift baseline BOT SCREEN FILE [--force]   take FILE as the screen's first baseline
    botwatch drift check BOT SCREEN FILE [--json]       score FILE against it (changes nothing)
    botwatch drift accept BOT SCREEN FILE               FILE is the new baseline (a certified change)

Exit status: `check` 0 below the bot's `ui.drift_warning`, 1 at or above it; `baseline` 1 when
the screen already has a baseline (replace it with `accept`, or `--force`); 2 for bad input
(an unreadable snapshot, an unknown bot, no baseline to check against, an unusable journal), and
without the drift extra (`pip install 'botwatch[drift]'`: lxml, cssselect and Pillow).
"""

from __future__ import annotations

import json
import sys
import time

import click

from ..config.estate import ConfigError, config_path, load_estate
from ..core.vocabulary import BOT_NAME
from ..core.vocabulary import SNAPSHOT_KINDS

_config = click.option("--config", type=click.Path(), help="Estate file (default $BOTWATCH_CONFIG or ./botwatch.yaml).")
_kind = click.option("--kind", type=click.Choice(SNAPSHOT_KINDS),
                     help="Kind of snapshot (default: from the file extension, else its content).")
_json = click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
_args = [click.argument("bot"), click.argument("screen"),
         click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))]


def _with_args(fn):
    for deco in reversed([_config, _kind, _json, *_args]):
        fn = deco(fn)
    return fn


def _fail(cmd: str, message: str, code: int = 2):
    click.echo(f"botwatch drift {cmd}: {message}", err=True)
    sys.exit(code)


def _setup(cmd: str, config, bot: str, screen: str, file: str, kind: str | None, readonly: bool):
    from ..core.extras import MissingExtra, require
    from ..state.journal import Journal, JournalError
    from . import SnapshotError
    from .probe import DRIFT, DriftProbe, kind_for

    try:
        require("drift", DRIFT)
    except MissingExtra as exc:
        _fail(cmd, str(exc))
    try:
        loaded = load_estate(config_path(config))
    except ConfigError as exc:
        for line in exc.problems:
            click.echo(line, err=True)
        sys.exit(2)
    if loaded.estate.bot(bot) is None and not (loaded.estate.agent.auto_register and BOT_NAME.match(bot)):
        _fail(cmd, f"unknown bot {bot!r}: not in {loaded.path}")
    if not screen or len(screen) > 64 or "/" in screen:
        _fail(cmd, f"screen name {screen!r} must be 1-64 characters without '/'")
    try:
        data = sys.stdin.buffer.read() if file == "-" else open(file, "rb").read()
    except OSError as exc:
        _fail(cmd, f"cannot read {file}: {exc.strerror or exc}")
    try:
        snap_kind = kind_for(explicit=kind, filename=None if file == "-" else file, data=data)
    except SnapshotError as exc:
        _fail(cmd, f"{file}: {exc}")
    path = loaded.journal_path
    if readonly and not path.exists():
        _fail(cmd, f"no {snap_kind} baseline for bot {bot} screen {screen}: the journal {path} does not exist yet")
    try:
        journal = Journal(path, readonly=readonly)
    except JournalError as exc:
        _fail(cmd, str(exc))
    return DriftProbe(loaded.estate, journal), journal, data, snap_kind


def _iso(ts: float | None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)) if ts else "-"


def _render(report, verdict: str) -> None:
    click.echo(f"bot {report.bot}, screen {report.screen} ({report.kind}): drift {report.score:.2f}, {verdict} "
               f"(warning at {report.drift_warning:.2f})")
    click.echo(f"baseline taken {_iso(report.baseline_time)}")
    if report.selectors:
        click.echo("declared selectors (elements matched):")
        width = max(len(n) for n in report.selectors)
        twidth = max(len(report.selector_text.get(n, "")) for n in report.selectors)
        for name, n in report.selectors.items():
            flag = "" if n == 1 else ("  <- matches nothing" if n == 0 else "  <- matches several")
            click.echo(f"  {name:<{width}}  {report.selector_text.get(name, ''):<{twidth}}  {n}{flag}")
    if report.changes:
        click.echo("changes:")
        for c in report.changes:
            click.echo(f"  - {c}")
    elif not report.baseline:
        click.echo("no change")


@click.group()
def drift() -> None:
    """UI drift: baselines of a bot's screens, and snapshots checked against them."""


@drift.command("check")
@_with_args
def check(config, kind, as_json, bot, screen, file) -> None:
    """Score snapshot FILE of BOT's SCREEN against its baseline; print the score, each declared
    selector's match count and what changed. Exit 0 below the warning score, 1 at or above it,
    2 on bad input or without a baseline."""
    from ..state.journal import JournalError
    from . import SnapshotError
    from .probe import NoBaseline

    probe, journal, data, snap_kind = _setup("check", config, bot, screen, file, kind, readonly=True)
    try:
        report = probe.check(bot, screen, snap_kind, data, bootstrap=False)
    except NoBaseline:
        _fail("check", f"no {snap_kind} baseline for bot {bot} screen {screen}: set one with "
                       f"`botwatch drift baseline {bot} {screen} FILE`")
    except SnapshotError as exc:
        _fail("check", f"{file}: {exc}")
    except JournalError as exc:
        _fail("check", str(exc))
    finally:
        journal.close()
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        _render(report, "DRIFTING" if report.warning else "ok")
    sys.exit(1 if report.warning else 0)


def _set(cmd: str, config, kind, as_json, bot, screen, file, *, force: bool, accept: bool) -> None:
    from ..state.journal import JournalError
    from . import SnapshotError
    from .probe import BaselineExists

    probe, journal, data, snap_kind = _setup(cmd, config, bot, screen, file, kind, readonly=False)
    try:
        report = probe.set_baseline(bot, screen, snap_kind, data, replace=force, accept=accept)
    except BaselineExists as exc:
        _fail(cmd, f"bot {bot} screen {screen} has a {snap_kind} baseline since {_iso(exc.created)}: replace it "
                   f"with `botwatch drift accept {bot} {screen} FILE` after a certified change (or --force)", 1)
    except SnapshotError as exc:
        _fail(cmd, f"{file}: {exc}")
    except JournalError as exc:
        _fail(cmd, str(exc))
    finally:
        journal.close()
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        _render(report, "new baseline" if not accept else "accepted as the new baseline")


@drift.command("baseline")
@click.option("--force", is_flag=True, help="Replace an existing baseline (recorded like `accept`).")
@_with_args
def baseline(force, config, kind, as_json, bot, screen, file) -> None:
    """Take snapshot FILE as the baseline of BOT's SCREEN. Refuses (exit 1) when the screen
    already has a baseline of this kind, unless --force."""
    _set("baseline", config, kind, as_json, bot, screen, file, force=force, accept=False)


@drift.command("accept")
@_with_args
def accept(config, kind, as_json, bot, screen, file) -> None:
    """Accept snapshot FILE as the new baseline of BOT's SCREEN after a certified change. The
    acceptance is recorded in the journal as a flip (kind "ui"; the bot's state is untouched)."""
    _set("accept", config, kind, as_json, bot, screen, file, force=True, accept=True)
