"""`botwatch duplicates`: pairs of bots that seem to do the same work, read from their sources
(botwatch.deps.duplicates), each with its evidence."""

from __future__ import annotations

import json

import click

from ..core.safe_output import for_terminal


def duplicates_command(loaded, min_score: float, as_json: bool) -> int:
    from ..deps.duplicates import estate_duplicates

    pairs, read = estate_duplicates(loaded, min_score)
    if as_json:
        click.echo(json.dumps({"bots_read": read, "min_score": min_score,
                               "pairs": [p.to_json() for p in pairs]}, indent=2))
        return 0
    if not pairs:
        click.echo(for_terminal(f"no duplicate candidates among the {read} bot(s) with a source "
                                f"(score at least {min_score:g})"))
        return 0
    click.echo(for_terminal(f"{len(pairs)} duplicate candidate(s) among the {read} bot(s) with a source:"))
    for p in pairs:
        click.echo(for_terminal(f"  {p.bot_a} and {p.bot_b}: score {p.score:.2f} (dependencies "
                                f"{p.dependency_similarity:.0%} alike, steps {p.step_similarity:.0%}, "
                                f"schedules overlap {p.schedule_overlap:.0%})"))
        for s in p.shared:
            click.echo(for_terminal(f"    {s.kind:<11} {s.value}  ({p.bot_a} {s.where_a}; {p.bot_b} {s.where_b})"))
        click.echo(for_terminal(f"    schedules: {p.schedules[0]}; {p.schedules[1]}"))
    return 0
