"""The state machine, with a controlled clock: no sleeps."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from botwatch.config.estate import BotConfig, Estate
from botwatch.core.events import ResourceSample, RunFinished, RunStarted
from botwatch.state.journal import Journal
from botwatch.state.runtime import EstateState

T0 = 1_800_000_000.0  # a fixed "now"


class Clock:
    def __init__(self, t=T0):
        self.t = t

    def __call__(self):
        return self.t


def make(tmp_path=None, clock=None, **bot):
    clock = clock or Clock()
    estate = Estate(bots=[BotConfig(name="b", **bot)])
    journal = Journal(tmp_path / "j.db") if tmp_path else None
    return EstateState(estate, journal, clock=clock), clock


def finished(run_id, ended, ok=True, started=None, **kw):
    return RunFinished(bot="b", run_id=run_id, ended=ended, started=started if started is not None else ended - 10,
                       outcome="success" if ok else "failure", exit_status=0 if ok else 1, **kw)


def state_of(st, now=None):
    return st.views(now)[0].state


def test_a_bot_is_new_until_its_first_run():
    st, _ = make()
    assert state_of(st) == "new"


def test_it_goes_up_after_a_successful_run():
    st, clock = make()
    st.apply([finished("r1", T0)])
    assert state_of(st) == "up"


def test_it_goes_late_after_the_interval_and_down_after_grace():
    st, clock = make(every=600, grace=60)
    st.apply([finished("r1", T0, started=T0 - 5)])
    assert state_of(st, T0 - 5 + 600) == "up"
    assert state_of(st, T0 - 5 + 601) == "late"
    assert state_of(st, T0 - 5 + 660) == "late"
    assert state_of(st, T0 - 5 + 661) == "down"


def test_a_running_bot_is_not_late():
    st, clock = make(every=600, grace=60)
    st.apply([finished("r1", T0)])
    st.apply([RunStarted(bot="b", run_id="r2", time=T0 + 700)])
    assert state_of(st, T0 + 900) == "up"
    view = st.views(T0 + 900)[0]
    assert view.runs_in_progress == 1 and view.oldest_active_start == T0 + 700


def test_a_never_seen_scheduled_bot_goes_down_after_its_first_missed_slot():
    st, clock = make(every=300, grace=60)
    assert state_of(st, T0 + 299) == "new"
    assert state_of(st, T0 + 301) == "late"
    assert state_of(st, T0 + 361) == "down"


def test_it_goes_failing_at_the_failure_threshold_and_recovers_on_success():
    st, clock = make(failure_threshold=2)
    st.apply([finished("r1", T0, ok=False, reason="ui_drift")])
    assert state_of(st) == "up"
    st.apply([finished("r2", T0 + 1, ok=False, reason="ui_drift")])
    assert state_of(st) == "failing"
    assert st.views()[0].consecutive_failures == 2
    st.apply([finished("r3", T0 + 2)])
    assert state_of(st) == "up" and st.views()[0].consecutive_failures == 0


def test_down_wins_over_failing_and_paused_wins_over_everything():
    st, _ = make(every=60, grace=10)
    st.apply([finished("r1", T0, ok=False, reason="crash")])
    assert state_of(st, T0 + 1) == "failing"
    assert state_of(st, T0 + 100) == "down"
    st, _ = make(every=60, grace=10, paused=True)
    st.apply([finished("r1", T0, ok=False, reason="crash")])
    assert state_of(st, T0 + 100) == "paused"


def test_cron_schedules_use_the_bots_timezone_across_dst():
    ams = ZoneInfo("Europe/Amsterdam")
    # the night clocks go forward (29 March 2026): 02:30 does not exist that day
    last = datetime(2026, 3, 28, 2, 30, tzinfo=ams).timestamp()
    st, _ = make(schedule="30 2 * * *", timezone="Europe/Amsterdam", grace=600)
    st.apply([finished("r1", last + 60, started=last)])
    due = st.views(last + 120)[0].next_due
    assert datetime.fromtimestamp(due, ams) == datetime(2026, 3, 29, 3, 0, tzinfo=ams)
    # the night clocks go back (25 October 2026): 02:30 happens twice; the run is due once
    last = datetime(2026, 10, 24, 2, 30, tzinfo=ams).timestamp()
    st, _ = make(schedule="30 2 * * *", timezone="Europe/Amsterdam", grace=600)
    st.apply([finished("r1", last + 60, started=last)])
    due = st.views(last + 120)[0].next_due
    assert due - last == 24 * 3600  # the first 02:30 of the night (still summer time)
    assert state_of(st, due + 599) == "late" and state_of(st, due + 601) == "down"
    st.apply([finished("r2", due + 60, started=due)])
    assert st.views(due + 120)[0].next_due - due == 25 * 3600  # not again at the second 02:30


def test_counters_histogram_and_reasons_accumulate():
    st, _ = make()
    st.apply([finished("r1", T0, started=T0 - 0.5), finished("r2", T0 + 100, ok=False, started=T0 + 40, reason="credentials"),
              finished("r3", T0 + 200, ok=False, started=T0 + 199, reason="no-such-reason")])
    v = st.views()[0]
    assert v.runs_total == 3
    assert v.failures["credentials"] == 1 and v.failures["unknown"] == 1 and v.failures["ui_drift"] == 0
    assert v.bucket_counts[0] == 2 and v.bucket_counts[4] == 1  # <=1 s twice, <=60 s once
    assert v.duration_sum == pytest.approx(61.5)
    assert v.last_success == T0 and v.last_failure == T0 + 200 and v.last_run_duration == 1


def test_failed_runs_without_a_reason_are_classified_from_their_output():
    st, _ = make()
    st.apply([finished("r1", T0, ok=False, output_tail="Logon failed for user 'x'")])
    assert st.views()[0].failures["credentials"] == 1


def test_a_replayed_older_run_counts_but_does_not_rewrite_the_latest_run():
    st, _ = make()
    st.apply([finished("new", T0)])
    st.apply([finished("old", T0 - 3600, ok=False, reason="crash")])
    v = st.views()[0]
    assert v.runs_total == 2 and v.last_run_end == T0 and v.consecutive_failures == 0 and v.state == "up"


def test_duplicate_runs_are_recorded_once(tmp_path):
    st, _ = make(tmp_path)
    r1 = st.apply([finished("r1", T0), finished("r1", T0)])
    r2 = st.apply([finished("r1", T0)])
    assert (r1.accepted, r1.duplicates, r2.accepted, r2.duplicates) == (1, 1, 0, 1)
    assert st.views()[0].runs_total == 1


def test_unknown_bots_are_rejected_with_a_clear_error():
    st, _ = make()
    res = st.apply([RunFinished(bot="ghost", run_id="x", ended=T0, outcome="success")])
    assert res.accepted == 0 and "unknown bot 'ghost'" in res.rejected[0]["error"]


def test_a_start_delivered_after_its_finish_does_not_resurrect_the_run():
    st, _ = make()
    st.apply([finished("r1", T0)])
    st.apply([RunStarted(bot="b", run_id="r1", time=T0 - 10)])
    assert st.views()[0].runs_in_progress == 0


def test_resource_samples_feed_cpu_and_memory_of_running_bots():
    st, _ = make()
    st.apply([RunStarted(bot="b", run_id="r1", time=T0),
              ResourceSample(bot="b", run_id="r1", time=T0 + 15, cpu_seconds=2.5, rss_bytes=50_000_000)])
    v = st.views()[0]
    assert v.cpu_seconds_total == 2.5 and v.resident_memory_bytes == 50_000_000
    st.apply([finished("r1", T0 + 20, cpu_seconds=3.0)])
    v = st.views()[0]
    assert v.cpu_seconds_total == 3.0 and v.resident_memory_bytes == 0


def test_every_state_change_is_a_flip_in_the_journal(tmp_path):
    clock = Clock()
    st, _ = make(tmp_path, clock, every=600, grace=60)
    st.apply([finished("r1", T0, started=T0)])
    clock.t = T0 + 630
    st.sweep()
    clock.t = T0 + 700
    st.sweep()
    st.sweep()  # nothing changed: no new flip
    st.apply([finished("r2", T0 + 710, ok=False, reason="ui_drift", started=T0 + 705)])
    flips = st.journal.flips("b")
    assert [(f.old_state, f.new_state) for f in flips] == [
        ("new", "up"), ("up", "late"), ("late", "down"), ("down", "failing")]
    assert flips[1].at == T0 + 600 and flips[2].at == T0 + 660  # when it happened, not when seen
    assert st.views()[0].missed_runs_total == 1


def test_state_is_rebuilt_from_the_journal_with_counters_intact(tmp_path):
    clock = Clock()
    st, _ = make(tmp_path, clock, every=600, grace=60)
    st.apply([finished("r1", T0), finished("r2", T0 + 5, ok=False, reason="business")])
    clock.t = T0 + 5000
    st.sweep()
    st.journal.close()
    again = EstateState(st.estate, Journal(tmp_path / "j.db"), clock=clock)
    v = again.views()[0]
    assert (v.runs_total, v.failures["business"], v.missed_runs_total, v.state) == (2, 1, 1, "down")
    assert again.sweep() == []  # the recorded state is known: no duplicate flip after a restart
