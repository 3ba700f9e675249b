"""`botwatch deps BOT` and `botwatch impact TEXT`: what a bot depends on, read from its source,
and which bots a change to an application, screen, URL, selector, queue or asset would hit."""

from __future__ import annotations

import json

import click

from ..core.safe_output import for_terminal


def deps_command(loaded, bot_name: str, as_json: bool) -> int:
    from ..deps.estate import bot_dependencies

    bot = next((b for b in loaded.estate.bots if b.name == bot_name), None)
    if bot is None:
        click.echo(for_terminal(f"botwatch deps: no bot {bot_name!r} in {loaded.path}"), err=True)
        return 2
    found = bot_dependencies(loaded, bot)
    if as_json:
        click.echo(json.dumps(found.to_json(), indent=2))
        return 0
    data = found.to_json()
    if not found.sources:
        click.echo(for_terminal(f"{bot_name}: no `source:` in the estate file, nothing to read"))
        return 0
    click.echo(for_terminal(f"{bot_name}: {len(data['dependencies'])} dependencies in {data['files_read']} file(s) "
                            f"of {', '.join(found.sources)}"))
    for d in data["dependencies"]:
        where = f"{d['file']}:{d['line']}" if d["line"] else d["file"]
        extra = "".join(f" {k}={d[k]!r}" for k in ("app", "screen", "context") if k in d)
        click.echo(for_terminal(f"  {d['kind']:<11} {d['value']}  ({where}{extra})"))
    for p in data["problems"]:
        click.echo(for_terminal(f"  not read: {p['file']}:{p['line']}: {p['message']}"), err=True)
    return 0


def impact_command(loaded, text: str, kinds: tuple[str, ...], as_json: bool) -> int:
    from ..deps.estate import bot_dependencies, impact_answer

    estate_deps = [bot_dependencies(loaded, b) for b in loaded.estate.bots if b.source]
    answer = impact_answer(loaded.estate.bots, estate_deps, text, kinds)
    rows = answer["bots"]
    if as_json:
        click.echo(json.dumps(answer, indent=2))
    elif not rows:
        click.echo(for_terminal(f"no bot of the {len(estate_deps)} with a source depends on {text!r}"))
    else:
        click.echo(for_terminal(f"{len(rows)} bot(s) depend on {text!r}:"))
        for r in rows:
            click.echo(for_terminal(f"  {r['bot']} (criticality {r['criticality']}, team {r['team'] or '-'}, "
                                    f"owner {r['owner'] or '-'})"))
            for d in r["dependencies"]:
                click.echo(for_terminal(f"    {d['kind']:<11} {d['value']}  ({d['file']}:{d['line']})"))
    return 0 if rows else 1
