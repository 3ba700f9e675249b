"""The click command group: every command except the hot path of `botwatch run`."""

from __future__ import annotations

import sys

import click

from .. import __version__
from ..config.estate import ConfigError, config_path, load_estate, parse_listen
from ..core.redact import redact_url
from ..core.safe_output import for_terminal


def _echo(message, err: bool = False) -> None:
    """A line that holds outside data (names, paths, an answer, an error message): printed
    without control characters, and URLs without their user:password@."""
    click.echo(for_terminal(redact_url(message)), err=err)


def _problems(exc: ConfigError) -> None:
    """An estate file's problems (FILE:LINE: message), as they are but for control characters."""
    for line in exc.problems:
        click.echo(for_terminal(line), err=True)


def _load_or_exit(path):
    try:
        return load_estate(path)
    except ConfigError as exc:
        _problems(exc)
        sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="botwatch")
def cli() -> None:
    """botwatch: runtime monitoring for bot estates (RPA bots and scheduled scripts)."""


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--bot", required=True, help="Bot name as in the estate file (the `bot` label).")
@click.option("--config", type=click.Path(), help="Estate file (default $BOTWATCH_CONFIG or ./botwatch.yaml).")
@click.option("--timeout", help="End the bot's whole process tree after this long (e.g. 30m); exit status 124.")
@click.option("--kill-grace", help="Time between TERM and KILL on timeout (default 10s).")
@click.option("--agent", help="Agent URL to deliver to (default $BOTWATCH_AGENT_URL, else the estate's agent.listen).")
@click.option("--pushgateway", metavar="URL",
              help="No agent: push the bot's totals to this Prometheus Pushgateway instead "
                   "(group job=botwatch, bot, instance). Excludes --agent and --textfile-dir.")
@click.option("--textfile-dir", metavar="DIR",
              help="No agent: write the bot's totals to DIR/botwatch_<bot>.prom for node_exporter's textfile "
                   "collector. Excludes --agent and --pushgateway.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(bot, config, timeout, kill_grace, agent, pushgateway, textfile_dir, command) -> None:
    """Run a bot's COMMAND, pass its output and exit status through, and record the run.

    \b
    Example (crontab):
      0 7 * * 1-5  botwatch run --bot invoice-recon --timeout 30m -- python recon.py
      0 7 * * 1-5  botwatch run --bot invoice-recon --pushgateway http://pgw:9091 -- python recon.py
    """
    from ..client.wrapper import main as run_main

    argv = ["--bot", bot]
    for flag, value in (("--config", config), ("--timeout", timeout), ("--kill-grace", kill_grace), ("--agent", agent),
                        ("--pushgateway", pushgateway), ("--textfile-dir", textfile_dir)):
        if value is not None:
            argv += [flag, value]
    sys.exit(run_main([*argv, "--", *command]))


@cli.command("check-config")
@click.argument("file", type=click.Path(), required=False)
def check_config(file) -> None:
    """Validate an estate FILE: prints FILE:LINE: message for every problem, exit 2 if any."""
    from ..core.extras import MissingExtra, available

    loaded = _load_or_exit(config_path(file))
    click.echo(for_terminal(f"{loaded.path}: OK ({len(loaded.estate.bots)} bot(s))"))
    declared = any(s.selectors for b in loaded.estate.bots if b.ui is not None for s in b.ui.screens.values())
    if declared and not available("drift"):
        click.echo(for_terminal(f"{loaded.path}: the ui selectors are not checked: "
                                f"{MissingExtra('drift', 'checking them')}"))


@cli.command()
@click.option("--config", type=click.Path(), help="Estate file (default $BOTWATCH_CONFIG or ./botwatch.yaml).")
@click.option("--listen", help="HOST:PORT to bind (default agent.listen, 127.0.0.1:9464).")
def agent(config, listen) -> None:
    """Run the agent: /metrics, /healthz and the events API, with the journal."""
    import logging

    from ..server.daemon import serve
    from ..state.journal import JournalError

    logging.basicConfig(level=logging.INFO, format="botwatch agent: %(levelname)s %(message)s")
    loaded = _load_or_exit(config_path(config))
    try:
        addr = parse_listen(listen) if listen else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--listen")
    try:
        sys.exit(serve(loaded, addr))
    except ConfigError as exc:
        _problems(exc)
        sys.exit(2)
    except JournalError as exc:
        _echo(f"botwatch agent: {exc}", err=True)
        sys.exit(1)


@cli.command()
@click.option("--agent", "agent_url", help="Agent URL (default $BOTWATCH_AGENT_URL, else the estate's agent.listen).")
@click.option("--config", type=click.Path(), help="Estate file, to find the agent or, if it is down, its journal.")
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON instead of a table.")
@click.option("--unregistered", is_flag=True,
              help="List shadow bots instead: processes of known bot runtimes that no registered bot claims.")
def status(agent_url, config, as_json, unregistered) -> None:
    """Show the estate: bot, team, state, last run, last success, failures in a row, next due."""
    from .status import fetch_status, fetch_unregistered, render_status, render_unregistered

    fetch, render = (fetch_unregistered, render_unregistered) if unregistered else (fetch_status, render_status)
    data, source = fetch(agent_url, config)
    if as_json:
        import json

        click.echo(json.dumps(data, indent=2))
    else:
        render(data, source)


@cli.command()
@click.option("--config", type=click.Path(), help="Estate file (default $BOTWATCH_CONFIG or ./botwatch.yaml).")
@click.option("--json", "as_json", is_flag=True, help="Print every check of every bot as JSON.")
def governance(config, as_json) -> None:
    """Check every bot: owner, runbook, lifecycle, certification, alert routing, plaintext secrets.

    Prints the failed checks per bot with FILE:LINE (never a secret itself). Exit 1 if any
    check fails, 0 if none, 2 if the estate file or its alert routing file is invalid.
    """
    from ..governance import CHECKS, Governance, RoutingError, routing_for

    loaded = _load_or_exit(config_path(config))
    try:
        routing_for(loaded)
    except RoutingError as exc:
        _echo(str(exc), err=True)
        sys.exit(2)
    found = Governance(loaded).refresh()
    failed = {b: [f for f in fs if not f.ok] for b, fs in found.items()}
    if as_json:
        import json

        click.echo(json.dumps({"bots": {b: [f.to_json() for f in fs] for b, fs in found.items()}}, indent=2))
    else:
        for bot, fs in found.items():
            if not failed[bot]:
                click.echo(for_terminal(f"{bot}: all {len(CHECKS)} checks pass"))
                continue
            click.echo(for_terminal(f"{bot}: {len({f.check for f in failed[bot]})} of {len(CHECKS)} checks fail"))
            for f in failed[bot]:
                click.echo(for_terminal(f"  {f.check}: {f.detail}" + (f" ({f.where})" if f.where else "")))
    sys.exit(1 if any(failed.values()) else 0)


@cli.command()
@click.argument("bot")
@click.option("--config", type=click.Path(), help="Estate file (default $BOTWATCH_CONFIG or ./botwatch.yaml).")
@click.option("--json", "as_json", is_flag=True, help="Print the dependencies as JSON.")
def deps(bot, config, as_json) -> None:
    """What BOT depends on, read from its `source:`: applications, screens, selectors, URLs,
    queues, assets and credentials (names only), files, mailboxes, workflows, libraries.

    Each with FILE:LINE. Exit 0, or 2 for an unknown bot or an invalid estate file.
    """
    from .deps import deps_command

    sys.exit(deps_command(_load_or_exit(config_path(config)), bot, as_json))


@cli.command()
@click.argument("text")
@click.option("--kind", "kinds", multiple=True, type=click.Choice(
    ["application", "screen", "selector", "url", "queue", "asset", "credential", "file", "mailbox", "workflow",
     "library"]), help="Only dependencies of this kind (repeatable).")
@click.option("--config", type=click.Path(), help="Estate file (default $BOTWATCH_CONFIG or ./botwatch.yaml).")
@click.option("--json", "as_json", is_flag=True, help="Print the bots hit as JSON.")
def impact(text, kinds, config, as_json) -> None:
    """Which bots a change to TEXT would hit: an application, URL, screen, selector text, queue or
    asset, matched case-insensitively in what each bot's source depends on.

    Lists the bots (most critical first) with owner, team and the dependencies that match.
    Exit 0 when some bot is hit, 1 when none is, 2 for an invalid estate file.
    """
    from .deps import impact_command

    sys.exit(impact_command(_load_or_exit(config_path(config)), text, tuple(kinds), as_json))


@cli.command()
@click.option("--config", type=click.Path(), help="Estate file (default $BOTWATCH_CONFIG or ./botwatch.yaml).")
@click.option("--min-score", type=click.FloatRange(0, 1), default=0.6, show_default=True,
              help="The lowest score (0..1) a pair must reach.")
@click.option("--json", "as_json", is_flag=True, help="Print the pairs as JSON.")
def duplicates(config, min_score, as_json) -> None:
    """Pairs of bots that seem to do the same work: scored from the dependencies their sources
    share (selectors, screens, URLs, queues, assets, files, mailboxes; not libraries, and never
    an application alone), their steps and their schedules. Each pair with its evidence.

    Only bots with a `source:` are read. Precision over recall: a pair needs at least three
    shared distinctive dependencies and the score. Exit 0 whether or not pairs are found,
    2 for an invalid estate file.
    """
    from .duplicates import duplicates_command

    sys.exit(duplicates_command(_load_or_exit(config_path(config)), min_score, as_json))


@cli.command()
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
@click.option("--config", type=click.Path(), help="Estate file (default $BOTWATCH_CONFIG or ./botwatch.yaml).")
@click.option("--agent", "agent_url", help="Agent URL (default $BOTWATCH_AGENT_URL, else the estate's agent.listen).")
def inventory(fmt, config, agent_url) -> None:
    """List every registered and every discovered (unregistered) bot, with owner, team, platform,
    lifecycle, criticality, state, last success, fragility and governance findings.

    State comes from the agent, or from its journal when the agent is down; unregistered
    processes only from a running agent. Where the data came from is said on stderr.
    """
    from .inventory import build_inventory, to_csv, to_json
    from .status import _agent_url

    path = config_path(config)
    loaded = _load_or_exit(path)
    inv = build_inventory(loaded, _agent_url(agent_url, str(path)))
    for note in inv.notes:
        _echo(f"botwatch inventory: {note}", err=True)
    # CSV cells are escaped one by one (botwatch.core.safe_output.csv_cell); JSON escapes control characters
    click.echo(to_csv(inv.rows) if fmt == "csv" else to_json(inv.rows), nl=fmt == "json")


@cli.command()
@click.option("--since", default="30d", show_default=True, help="Length of the window, e.g. 30d, 7d, 12h.")
@click.option("--until", "until", metavar="TIME",
              help="End of the window: ISO 8601 UTC (2026-11-01 or 2026-11-01T00:00:00) or Unix seconds; default now.")
@click.option("--journal", type=click.Path(dir_okay=False), help="Journal to read (default the estate's agent.journal).")
@click.option("--prometheus", metavar="URL", help="Read the whole estate from Prometheus' HTTP API instead of a journal.")
@click.option("--config", type=click.Path(), help="Estate file (default $BOTWATCH_CONFIG or ./botwatch.yaml): "
              "teams, platforms, lifecycles, schedules and governance.")
@click.option("--agent", "agent_url", metavar="URL", help="Running agent to list unregistered bots from.")
@click.option("--slo", type=click.FloatRange(0.0, 1.0, max_open=True), default=0.95, show_default=True,
              help="Target share of successful runs.")
@click.option("--period", type=click.Choice(["week", "month"]),
              help="Trends per ISO week or calendar month (UTC); default week for a window up to 13 weeks, "
              "month beyond.")
@click.option("--format", "fmt", type=click.Choice(["html", "md", "csv"]), required=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="File to write ('-' for stdout).")
def report(since, until, journal, prometheus, config, agent_url, slo, period, fmt, out) -> None:
    """Write the estate reliability report: per team, platform and lifecycle, runs, success ratio
    against the SLO, error budget, failures by reason, MTTR, MTBF, missed runs, drift warnings,
    fragile bots, prototypes on schedules, unregistered bots and governance findings; and the
    trends: those figures, the estate's size and the work items per week or month.

    \b
    Example:
      botwatch report --since 30d --config botwatch.yaml --format html --out estate.html
    """
    from pathlib import Path

    from ..core.durations import parse_duration
    from ..state.journal import JournalError
    from ..report import gather

    if prometheus and journal:
        raise click.BadParameter("give either --prometheus or --journal, not both", param_hint="--prometheus")
    try:
        window = parse_duration(since)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since")
    if window <= 0:
        raise click.BadParameter("the window must be longer than 0", param_hint="--since")
    try:
        end = _parse_until(until)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--until")
    path = config_path(config)
    loaded = _load_or_exit(path) if config or path.exists() else None
    if prometheus:
        from ..report.prom import PrometheusError, gather_prometheus

        try:
            rep = gather_prometheus(prometheus, window, end, slo, loaded=loaded, agent_url=agent_url,
                                    period=period)
        except PrometheusError as exc:
            _echo(f"botwatch report: {exc}", err=True)
            sys.exit(2)
        _write_report(rep, fmt, out)
        return
    journal_path = journal or (loaded.journal_path if loaded is not None else None)
    if journal_path is None:
        _echo(f"botwatch report: no journal: give --journal F or --config F ({path} does not exist)", err=True)
        sys.exit(2)
    if not Path(journal_path).exists():
        _echo(f"botwatch report: {journal_path}: no such journal", err=True)
        sys.exit(2)
    try:
        rep = gather(journal_path, loaded, since=window, slo=slo, end=end, agent_url=agent_url, period=period)
    except JournalError as exc:
        _echo(f"botwatch report: {exc}", err=True)
        sys.exit(1)
    _write_report(rep, fmt, out)


def _write_report(rep, fmt: str, out: str) -> None:
    from pathlib import Path

    from ..report import render

    text = render(rep, fmt)  # the renderers escape what they take from outside
    if out == "-":
        click.echo(text, nl=False)
    else:
        Path(out).write_text(text, encoding="utf-8", newline="" if fmt == "csv" else None)
        _echo(f"botwatch report: wrote {out} ({len(rep.bots)} bots)", err=True)
    for note in rep.notes:
        _echo(f"botwatch report: {note}", err=True)


def _parse_until(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    from datetime import datetime, timezone

    t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).timestamp()


@cli.command()
@click.option("--listen", default="127.0.0.1:9464", show_default=True, help="Where the demo agent listens.")
@click.option("--state-dir", type=click.Path(), default="botwatch-demo", show_default=True,
              help="Folder for the demo's journal, spool and logs.")
@click.option("--duration", help="Stop after this long (e.g. 60s); default: until Ctrl-C.")
@click.option("--prometheus-listen", default="127.0.0.1:9090", show_default=True, metavar="HOST:PORT",
              help="Where the demo's Prometheus listens, if Prometheus is installed; a free port when taken.")
@click.option("--alertmanager-listen", default="127.0.0.1:9093", show_default=True, metavar="HOST:PORT",
              help="Where the demo's Alertmanager listens, if it is installed; a free port when taken.")
def demo(listen, state_dir, duration, prometheus_listen, alertmanager_listen) -> None:
    """Run the agent on the bundled demo estate, with sample bots on short schedules.

    When they are installed (on PATH or in /usr/bin), Prometheus runs beside it with botwatch's
    alert rules, and Alertmanager with its example routing (receivers that send nothing).
    """
    from .demo import run_demo
    from ..core.durations import parse_duration

    try:
        seconds = parse_duration(duration) if duration else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--duration")
    for value, hint in ((prometheus_listen, "--prometheus-listen"), (alertmanager_listen, "--alertmanager-listen")):
        try:
            parse_listen(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint=hint)
    sys.exit(run_demo(listen, state_dir, seconds, prometheus_listen, alertmanager_listen))


@cli.group()
def grafana() -> None:
    """Grafana: upload the bundled dashboards."""


@grafana.command("push")
@click.option("--url", required=True, metavar="URL", help="Grafana's base URL, e.g. https://grafana.example.com.")
@click.option("--token-file", required=True, type=click.Path(dir_okay=False), metavar="FILE",
              help="File holding a Grafana service account token (Editor role); it is never printed.")
@click.option("--folder", default="botwatch", show_default=True, metavar="NAME",
              help="Folder to put the dashboards in; created when missing.")
@click.option("--insecure", is_flag=True, help="Do not verify Grafana's TLS certificate.")
def grafana_push(url, token_file, folder, insecure) -> None:
    """Upload the botwatch dashboards to Grafana, replacing earlier versions.

    \b
    Example:
      botwatch grafana push --url https://grafana.example.com --token-file ~/.config/botwatch/grafana-token
    """
    from ..core.extras import MissingExtra, require
    from .grafana import PUSHING, PushError, push, read_token

    try:
        require("grafana", PUSHING)
    except MissingExtra as exc:
        _echo(f"botwatch grafana push: {exc} (or import the dashboards by hand, see dashboards/README.md)", err=True)
        sys.exit(2)
    try:
        token = read_token(token_file, url)
        pushed = push(url, token, folder, insecure=insecure)
    except PushError as exc:
        _echo(f"botwatch grafana push: {exc}", err=True)
        sys.exit(1)
    for p in pushed:  # titles and URLs as Grafana answered them
        _echo(f"{p.title}: {p.url}")


def _drift_group():
    from ..ui.commands import drift

    return drift


cli.add_command(_drift_group(), "drift")


if __name__ == "__main__":  # pragma: no cover
    cli()
