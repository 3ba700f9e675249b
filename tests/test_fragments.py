"""/metrics from kept per-bot pieces: the bytes prometheus_client writes over the same samples,
a bot encoded again only when it changed or the clock passed a time its samples may change at,
exemplars of the latest runs under OpenMetrics only."""

from __future__ import annotations

import random

import pytest
from prometheus_client import generate_latest
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from botwatch.config.estate import BotConfig, Estate, MaintenanceWindow
from botwatch.core.events import FailureNoted, ResourceSample, RunFinished, RunStarted, UiLookup, UiSnapshot
from botwatch.core.vocabulary import REASONS
from botwatch.exporters.exposition import CachedExposition
from botwatch.exporters.prometheus import estate_registry
from botwatch.state.readmodel import BotView
from botwatch.state.runtime import BotRuntime, EstateState

T0 = 1_790_000_000.0
OM_ACCEPT = "application/openmetrics-text; version=1.0.0"
ODD = ['', '"', "\\", "\n", 'a "quoted"\nteam\\', "ünï ✓", "{x=\"y\"}", "x" * 64]
SCHEDULES = [None, "*/15 * * * *", "0 6 * * 1-5", "30 */2 * * *"]
WINDOWS = [MaintenanceWindow(schedule="0 2 * * *", duration=3600),
           MaintenanceWindow(schedule="*/30 * * * *", duration=600),
           MaintenanceWindow(schedule="15 9 * * 1", duration=7200)]
ZONES = ["UTC", "Europe/Amsterdam", "America/New_York"]


def random_config(rnd: random.Random, i: int) -> BotConfig:
    schedule = rnd.choice(SCHEDULES)
    return BotConfig(
        name=f"bot-{i}", team=rnd.choice([None, *ODD[:6]]), owner=rnd.choice([None, "ops@example.com", *ODD]),
        platform=rnd.choice(["uipath", "python", "other"]), lifecycle=rnd.choice([None, "production"]),
        schedule=schedule, every=None if schedule else rnd.choice([None, 300.0, 3600.0]),
        timezone=rnd.choice(ZONES), grace=rnd.choice([0.0, 60.0, 900.0]),
        max_runtime=rnd.choice([None, 120.0, 3600.0]), paused=rnd.random() < 0.1,
        maintenance=rnd.sample(WINDOWS, rnd.choice([0, 0, 1, 2])), failure_threshold=rnd.choice([1, 2]))


def run_id(rnd: random.Random, n: int) -> str:
    return rnd.choice([f"r{n}", f"job-{n}-" + "x" * 130, f"password=hunter{n}", f'odd "{n}"\n', f"{n:08d}-ab"])


def random_events(rnd: random.Random, names: list[str], now: float) -> list:
    events: list = []
    for n in range(rnd.randint(0, 60) if names else 0):
        bot, t = rnd.choice(names), now - rnd.uniform(0, 5 * 3600)
        kind = rnd.random()
        if kind < 0.5:
            events.append(RunFinished(bot, run_id(rnd, n), t, rnd.choice(["success", "failure"]),
                                      started=t - rnd.uniform(0, 4000), reason=rnd.choice([None, *REASONS]),
                                      cpu_seconds=rnd.choice([None, rnd.uniform(0, 100)]),
                                      items_processed=rnd.choice([None, rnd.randint(0, 50)])))
        elif kind < 0.65:
            events.append(RunStarted(bot, f"a{n}", t))
            events.append(ResourceSample(bot, f"a{n}", t + 1, rnd.uniform(0, 9), rnd.randint(0, 10 ** 9), 3))
        elif kind < 0.8:
            events.append(UiLookup(bot, t, rnd.choice(["login", *ODD[1:]]), rnd.random() < 0.7,
                                   kind=rnd.choice([None, "ambiguous"]), wait=rnd.choice([None, 0.3, 40.0]),
                                   healed=rnd.random() < 0.2))
        elif kind < 0.9:
            events.append(UiSnapshot(bot, t, rnd.choice(["login", ODD[4]]), rnd.choice(["html", "png"]),
                                     rnd.random(), selectors={rnd.choice(ODD[1:]): rnd.randint(0, 3)},
                                     baseline_time=rnd.choice([None, t - 60])))
        else:
            events.append(FailureNoted(bot, f"a{n}", t, "data"))
    return events


def random_state(seed: int, now: list[float]) -> EstateState:
    rnd = random.Random(seed)
    bots = [random_config(rnd, i) for i in range(rnd.randint(0, 12))]
    state = EstateState(Estate(bots=bots), None, clock=lambda: now[0])
    state.apply(random_events(rnd, [b.name for b in bots], now[0]))
    if rnd.random() < 0.5:
        state.note_connection("uipath", "tenant-a", True)
        state.count_request("uipath", "tenant-a", "ok")
        state.note_spool("host-1", rnd.randint(0, 5))
    return state


def scrape(cache: CachedExposition, accept: str = "") -> bytes:
    return cache.render(accept)[0]


@pytest.mark.parametrize("seed", range(40))
def test_the_bodies_equal_prometheus_clients_over_the_same_samples_as_the_state_and_clock_move(seed):
    now = [T0 + seed * 7919.0]
    state = random_state(seed, now)
    registry = estate_registry(state, clock=lambda: now[0])
    cache = CachedExposition(registry)
    rnd = random.Random(-seed)
    for step in range(4):
        assert scrape(cache) == generate_latest(registry)
        assert scrape(cache, OM_ACCEPT) == openmetrics_latest(registry)
        now[0] += rnd.choice([15.0, 600.0, 3 * 3600.0])  # sometimes past a due time, a window, a runtime
        if step % 2 and state.bots:
            state.apply(random_events(rnd, list(state.bots), now[0]))
            state.sweep()


def test_a_bot_is_encoded_again_only_when_it_changed():
    now = [T0]
    state = EstateState(Estate(bots=[BotConfig(name=n) for n in ("alpha", "beta", "gamma")]), None,
                        clock=lambda: now[0])
    cache = CachedExposition(estate_registry(state, clock=lambda: now[0]))
    bots = cache.sections[0].bots
    first = scrape(cache)
    assert bots.encoded == 3
    now[0] += 15
    assert scrape(cache) == first and bots.encoded == 3 and cache.reused == 1
    state.apply([RunFinished("beta", "b1", now[0], "failure", started=now[0] - 5, reason="data")])
    body = scrape(cache)
    assert bots.encoded == 4  # beta alone
    assert b'botwatch_run_failures_total{bot="beta",reason="data"} 1.0' in body
    assert scrape(cache, OM_ACCEPT).count(b"# {run_id=") == 2 and bots.encoded == 4  # both formats kept


def test_a_bot_turns_late_then_down_in_the_first_scrape_after_its_due_time_without_any_event():
    now = [T0]
    state = EstateState(Estate(bots=[BotConfig(name="hourly", every=3600, grace=900)]), None, clock=lambda: now[0])
    state.apply([RunFinished("hourly", "r1", now[0], "success", started=now[0] - 10)])
    registry = estate_registry(state, clock=lambda: now[0])
    cache = CachedExposition(registry)
    due = state.bots["hourly"].next_due()
    assert b'botwatch_bot_state{bot="hourly",state="up"} 1.0' in scrape(cache)
    now[0] = due  # at the due time itself: not yet late
    assert b'botwatch_bot_state{bot="hourly",state="up"} 1.0' in scrape(cache)
    now[0] = due + 0.001
    body = scrape(cache)
    assert b'botwatch_bot_state{bot="hourly",state="late"} 1.0' in body and body == generate_latest(registry)
    now[0] = due + 900.5
    assert b'botwatch_bot_state{bot="hourly",state="down"} 1.0' in scrape(cache)
    assert cache.sections[0].bots.encoded == 4  # once at start, then at each time it could change


@pytest.mark.parametrize("seed", range(60))
def test_what_a_bot_exports_holds_until_its_next_change(seed):
    """BotRuntime.next_change is never late: every time-driven value a bot exports at `now`
    holds at every moment before the time it names."""
    rnd = random.Random(seed)
    now = T0 + rnd.uniform(0, 30 * 86400)
    bot = BotRuntime(cfg=random_config(rnd, seed), first_seen=now - rnd.uniform(0, 86400))
    for n in range(rnd.randint(0, 3)):
        t = now - rnd.uniform(0, 8 * 3600)
        bot.observe_finished(RunFinished(bot.cfg.name, f"r{n}", t, "success", started=t - 30))
    if rnd.random() < 0.3:
        bot.observe_started("active", now - rnd.uniform(0, 7200))

    def exported(t: float) -> tuple:
        v = BotView.of(bot, t)
        return v.state, v.next_due, v.hung

    for _ in range(6):
        until = bot.next_change(now)
        assert until >= now
        horizon = min(until, now + 3 * 86400)
        for t in [now, *(rnd.uniform(now, horizon) for _ in range(25)), horizon - 0.001]:
            if now <= t < until:
                assert exported(t) == exported(now), (now, t, until)
        now = min(until, now + 86400) + rnd.choice([0.0, 0.001, 1.0])


def test_next_change_is_the_due_time_then_due_plus_grace_then_never():
    bot = BotRuntime(cfg=BotConfig(name="hourly", every=3600, grace=900), first_seen=T0)
    assert bot.next_change(T0 + 10) == T0 + 3600
    assert bot.next_change(T0 + 3601) == T0 + 4500
    assert bot.next_change(T0 + 4501) == float("inf")


def test_exemplars_of_the_latest_runs_are_served_under_openmetrics_only():
    now = [T0]
    state = EstateState(Estate(bots=[BotConfig(name=n) for n in ("alpha", "beta", "gamma", "delta")]), None,
                        clock=lambda: now[0])
    state.apply([
        RunFinished("alpha", "a-1", T0 - 50, "failure", started=T0 - 60, reason="credentials"),
        RunFinished("alpha", "a-2", T0 - 5, "success", started=T0 - 9),
        RunFinished("beta", "b-" + "9" * 130, T0 - 5, "failure", started=T0 - 9, reason="data"),  # too long
        RunFinished("gamma", "token=ghp_abcdefghijklmnopqrstuvwxyz0123456789", T0 - 5, "success", started=T0 - 9),
    ])
    registry = estate_registry(state, clock=lambda: now[0])
    cache = CachedExposition(registry)
    text, text_type = cache.render("text/plain")
    om, om_type = cache.render(OM_ACCEPT)
    assert text_type.startswith("text/plain; version=0.0.4") and b"# {" not in text
    assert om_type.startswith("application/openmetrics-text; version=1.0.0") and om == openmetrics_latest(registry)

    exemplars = {}
    for fam in text_string_to_metric_families(om.decode()):  # a strict OpenMetrics parser
        for s in fam.samples:
            if s.exemplar is not None:
                exemplars[(s.name, s.labels["bot"], s.labels.get("reason"))] = s.exemplar
    assert set(exemplars) == {("botwatch_runs_total", "alpha", None),
                              ("botwatch_run_failures_total", "alpha", "credentials")}
    assert exemplars[("botwatch_runs_total", "alpha", None)].labels == {"run_id": "a-2"}
    assert float(exemplars[("botwatch_runs_total", "alpha", None)].timestamp) == T0 - 5
    assert exemplars[("botwatch_run_failures_total", "alpha", "credentials")].labels == {"run_id": "a-1"}
    assert b"ghp_" not in om and b"9" * 130 not in om


def test_the_accept_header_chooses_the_format_as_prometheus_client_does():
    now = [T0]
    state = EstateState(Estate(bots=[BotConfig(name="alpha")]), None, clock=lambda: now[0])
    state.apply([RunFinished("alpha", "a-1", T0 - 5, "success", started=T0 - 9)])
    registry = estate_registry(state, clock=lambda: now[0])
    cache = CachedExposition(registry)
    prometheus_accept = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
                         "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
    assert scrape(cache, prometheus_accept) == openmetrics_latest(registry)
    assert scrape(cache, OPENMETRICS).endswith(b"# EOF\n")
    assert scrape(cache, "*/*") == scrape(cache) == generate_latest(registry)
    # names escaped with dots: prometheus_client's own encoder writes that body
    dots = "application/openmetrics-text; version=1.0.0; escaping=dots"
    assert b"botwatch__runs__total" in scrape(cache, dots)


def test_governance_findings_are_encoded_once_per_refresh():
    from botwatch.governance import governance_for_state

    now = [T0]
    state = EstateState(Estate(bots=[BotConfig(name="alpha"), BotConfig(name="beta", owner="a@example.com")]),
                        None, clock=lambda: now[0])
    governance = governance_for_state(state)
    registry = estate_registry(state, clock=lambda: now[0], governance=governance)
    cache = CachedExposition(registry)
    first = scrape(cache)
    assert b'botwatch_bot_governance_findings{bot="alpha",check="owner"} 1.0' in first
    assert first == generate_latest(registry) and scrape(cache) == first and cache.reused == 1
    governance.refresh()  # a new set of findings: encoded again, and served
    assert scrape(cache) == first and cache.encoded == 2
