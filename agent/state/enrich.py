"""Enrichment: what the agent adds to a finished run or step before the state aggregates it.

Each step is a small function `(event, context) -> event`; the lists below are the order they run
in. A run is failed when it finished too fast, flagged empty when it processed too few items, redacted, given its reason (the one the bot noted,
else the failure taxonomy's) and, for a UI failure, the screen and selector that failed. The
journal never holds a secret: clients redact too, the agent redacts again.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from ..core.classify import Classifier, clip
from ..config.estate import BotConfig
from ..core.events import RunFinished, StepFinished
from ..core.redact import redact
from ..ui.selectors import LOCATOR_PREFIX

# "locator 'id:submit'", "selector: #send": a selector named in a Selenium or Robot Framework failure
_LOCATOR = re.compile(r"""(?:locator|selector)[:\s]+['"]?(?P<sel>[^'"\n]{1,300})""", re.I)


@dataclass(frozen=True, slots=True)
class BotContext:
    """What the enrichment steps read of the event's bot (as staged in the batch)."""

    cfg: BotConfig
    classifier: Classifier
    noted_reasons: Mapping[str, str]  # run id -> reason the bot declared (failure_noted)
    ui_misses: Mapping[str, tuple[str, str | None]]  # run id -> (screen, selector) of its last failed look-up


E = TypeVar("E", RunFinished, StepFinished)
Step = Callable[[E, BotContext], E]


def fail_too_fast(run: RunFinished, ctx: BotContext) -> RunFinished:
    """A successful run shorter than `min_runtime` did nothing: it is recorded as failed."""
    min_runtime = ctx.cfg.min_runtime
    dur = run.duration
    if min_runtime is None or run.outcome != "success" or dur is None or dur >= min_runtime:
        return run
    note = f"finished in {dur:.1f}s, under min_runtime {min_runtime:g}s: did it do anything?"
    return replace(run, outcome="failure", reason="unknown",
                   output_tail=(run.output_tail + "\n" if run.output_tail else "") + note)


def flag_empty(run: RunFinished, ctx: BotContext) -> RunFinished:
    """A success that processed fewer items than `min_items` is an empty run: still a success,
    flagged. A run that reported no items at all processed none."""
    min_items = ctx.cfg.min_items
    if min_items is None or run.outcome != "success" or (run.items_processed or 0) >= min_items:
        return run
    return replace(run, empty=True)


def redact_output(run: RunFinished, ctx: BotContext) -> RunFinished:
    if not run.output_tail:
        return run
    return replace(run, output_tail=redact(run.output_tail))


def reason_noted(run: RunFinished, ctx: BotContext) -> RunFinished:
    """A failure without a reason takes the one the bot noted during the run."""
    if run.outcome == "failure" and not run.reason and run.run_id in ctx.noted_reasons:
        return replace(run, reason=ctx.noted_reasons[run.run_id])
    return run


def reason_classified(run: RunFinished, ctx: BotContext) -> RunFinished:
    """A failure still without a reason gets the failure taxonomy's, from its output and exit."""
    if run.outcome != "failure" or run.reason:
        return run
    c = ctx.classifier.classify(exit_status=run.exit_status, signal=run.signal, timed_out=run.timed_out,
                                output=run.output_tail or "")
    return replace(run, reason=c.reason)


def ui_culprit(run: RunFinished, ctx: BotContext) -> RunFinished:
    """A ui_drift failure's screen and selector, when known: the run's last failed look-up, else a
    declared selector named in its output (the screen it is declared under), else a selector its
    output names."""
    if run.outcome != "failure" or run.reason != "ui_drift" or run.screen is not None:
        return run
    miss = ctx.ui_misses.get(run.run_id)
    if miss is not None:
        return replace(run, screen=miss[0], selector=run.selector or miss[1])
    text = run.output_tail or ""
    if not text:
        return run
    for screen, sc in ctx.cfg.ui.screens.items():
        for sel in sc.selectors.values():
            body = LOCATOR_PREFIX.sub("", sel, count=1).strip()
            if sel in text or (len(body) >= 3 and body in text):
                return replace(run, screen=screen, selector=run.selector or sel)
    from ..parsers.uipath import selector_in  # on the first such failure: not at the agent's start

    text = clip(text)
    found = selector_in(text)
    if found is None and (m := _LOCATOR.search(text)) is not None:
        found = m.group("sel")
    if found and run.selector is None:
        return replace(run, selector=found.strip()[:300])
    return run


def redact_selector(run: RunFinished, ctx: BotContext) -> RunFinished:
    """As the output: a selector can hold a URL with credentials."""
    if not run.selector:
        return run
    return replace(run, selector=redact(run.selector))


def redact_message(step: StepFinished, ctx: BotContext) -> StepFinished:
    """A step's message is exported with the run's trace."""
    if not step.message:
        return step
    return replace(step, message=redact(step.message))


RUN_FINISHED: tuple[Step[RunFinished], ...] = (
    fail_too_fast, flag_empty, redact_output, reason_noted, reason_classified, ui_culprit, redact_selector,
)
STEP_FINISHED: tuple[Step[StepFinished], ...] = (redact_message,)


def enriched(event: E, steps: Sequence[Step[E]], ctx: BotContext) -> E:
    """`event` passed through `steps`, in order."""
    for step in steps:
        event = step(event, ctx)
    return event
