"""/metrics bodies are encoded again only when a sample changed, and are never stale."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS

from botwatch.config.estate import parse_estate_text
from botwatch.core.events import RunFinished
from botwatch.exporters.exposition import CachedExposition
from botwatch.exporters.prometheus import estate_registry
from botwatch.state.runtime import EstateState

ESTATE = "bots:\n  - name: hourly\n    every: 1h\n    grace: 15m\n  - name: adhoc\n"


def estate_at(now: list[float]) -> tuple[EstateState, object]:
    state = EstateState(parse_estate_text(ESTATE), None, clock=lambda: now[0])
    state.apply([RunFinished("hourly", "r1", now[0] - 5, "success", started=now[0] - 9)])
    return state, estate_registry(state, clock=lambda: now[0])


def test_two_scrapes_at_rest_serve_the_same_body_encoded_once():
    now = [1_790_000_000.0]
    state, registry = estate_at(now)
    cache = CachedExposition(registry)
    first, content_type = cache.render()
    now[0] += 15  # a scrape interval later, nothing happened
    second, _ = cache.render()
    assert second == first == generate_latest(registry)
    assert (cache.encoded, cache.reused) == (1, 1)
    assert content_type.startswith("text/plain")


def test_a_new_run_is_in_the_very_next_body():
    now = [1_790_000_000.0]
    state, registry = estate_at(now)
    cache = CachedExposition(registry)
    cache.render()
    state.apply([RunFinished("adhoc", "a1", now[0] - 1, "failure", started=now[0] - 3, reason="data")])
    body, _ = cache.render()
    assert b'botwatch_run_failures_total{bot="adhoc",reason="data"} 1.0' in body
    assert body == generate_latest(registry) and cache.encoded == 2


def test_a_change_driven_by_time_alone_is_in_the_very_next_body():
    now = [1_790_000_000.0]
    state, registry = estate_at(now)
    cache = CachedExposition(registry)
    assert b'botwatch_bot_state{bot="hourly",state="up"} 1.0' in cache.render()[0]
    now[0] += 3 * 3600  # no event: the schedule alone makes the bot down
    body, _ = cache.render()
    assert b'botwatch_bot_state{bot="hourly",state="down"} 1.0' in body
    assert body == generate_latest(registry)


def test_each_encoding_keeps_its_own_body():
    now = [1_790_000_000.0]
    _, registry = estate_at(now)
    cache = CachedExposition(registry)
    text, _ = cache.render("text/plain")
    om, content_type = cache.render(OPENMETRICS)
    assert content_type.startswith("application/openmetrics-text") and om.endswith(b"# EOF\n")
    assert cache.render("text/plain")[0] == text and cache.render(OPENMETRICS)[0] == om
    assert (cache.encoded, cache.reused) == (2, 2)
