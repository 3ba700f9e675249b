"""Schedules as Healthchecks users ask for them, on a controlled clock (no sleeps)."""

from datetime import datetime
from zoneinfo import ZoneInfo

from botwatch.config.estate import BotConfig, Estate, MaintenanceWindow
from botwatch.core.events import RunFinished
from botwatch.state.runtime import EstateState

AMS = ZoneInfo("Europe/Amsterdam")
NYC = ZoneInfo("America/New_York")


def make(**bot):
    return EstateState(Estate(bots=[BotConfig(name="b", **bot)]), None, clock=lambda: 0.0)


def run(st, run_id, started, ended, ok=True):
    return st.apply([RunFinished(bot="b", run_id=run_id, started=started, ended=ended,
                                 outcome="success" if ok else "failure", exit_status=0 if ok else 1)])


def state_at(st, t):
    return st.views(t)[0].state


def ts(tz, *args):
    return datetime(*args, tzinfo=tz).timestamp()


def test_a_run_that_finishes_suspiciously_fast_is_a_failure():
    st = make(min_runtime=10)
    run(st, "r1", 100.0, 102.0)
    v = st.views(200.0)[0]
    assert (v.last_outcome, v.failures["unknown"], v.state) == ("failure", 1, "failing")
    run(st, "r2", 300.0, 320.0)
    assert st.views(400.0)[0].state == "up"


def test_one_blip_does_not_page_and_recovery_needs_its_threshold():
    st = make(failure_threshold=2, recovery_threshold=2)
    run(st, "r1", 0.0, 1.0, ok=False)
    assert state_at(st, 2.0) == "up"  # one blip
    run(st, "r2", 10.0, 11.0, ok=False)
    assert state_at(st, 12.0) == "failing"
    run(st, "r3", 20.0, 21.0)
    assert state_at(st, 22.0) == "failing"  # one success is not yet a recovery
    assert "recovering: 1 of 2" in st.views(22.0)[0].state_why
    run(st, "r4", 30.0, 31.0)
    assert state_at(st, 32.0) == "up"


def test_no_late_or_down_inside_a_maintenance_window_and_the_schedule_restarts_after_it():
    # Saturday 22:00 for 4 hours, in the night the clocks go back in Amsterdam
    st = make(every=3600, grace=600, timezone="Europe/Amsterdam",
              maintenance=[MaintenanceWindow(schedule="0 22 * * 6", duration=4 * 3600)])
    last = ts(AMS, 2026, 10, 24, 21, 30)
    run(st, "r1", last, last + 60)
    assert state_at(st, ts(AMS, 2026, 10, 24, 21, 59)) == "up"
    assert state_at(st, ts(AMS, 2026, 10, 24, 22, 31)) == "paused"  # due 22:30 falls in the window
    window_end = ts(AMS, 2026, 10, 24, 22, 0) + 4 * 3600  # 4 real hours: 01:00 after the clocks went back
    assert state_at(st, window_end - 1) == "paused"
    assert state_at(st, window_end + 60) == "up"  # the slots inside the window are not missed
    assert state_at(st, window_end + 3600 + 599) == "late"
    assert state_at(st, window_end + 3600 + 601) == "down"


def test_a_paused_bot_is_never_late_or_down():
    st = make(every=60, grace=10, paused=True)
    assert state_at(st, 10_000.0) == "paused"


def test_cron_in_new_york_across_spring_forward_and_fall_back():
    st = make(schedule="30 2 * * *", timezone="America/New_York", grace=900)
    last = ts(NYC, 2026, 3, 7, 2, 30)
    run(st, "r1", last, last + 60)
    due = st.views(last + 120)[0].next_due
    # 02:30 does not exist on 8 March 2026: the run is due at 03:00 EDT, 23.5 hours later
    assert datetime.fromtimestamp(due, NYC) == datetime(2026, 3, 8, 3, 0, tzinfo=NYC)
    assert due - last == 23.5 * 3600
    assert state_at(st, due + 899) == "late" and state_at(st, due + 901) == "down"

    st = make(schedule="30 1 * * *", timezone="America/New_York", grace=900)
    last = ts(NYC, 2026, 10, 31, 1, 30)
    run(st, "r1", last, last + 60)
    due = st.views(last + 120)[0].next_due
    assert due - last == 24 * 3600  # the first 01:30 of 1 November (still EDT)
    run(st, "r2", due, due + 60)
    nxt = st.views(due + 120)[0].next_due
    assert nxt - due == 25 * 3600  # not again at the second 01:30: next day, EST


def test_missed_runs_are_counted_once_per_outage():
    clock = [0.0]
    st = EstateState(Estate(bots=[BotConfig(name="b", every=60, grace=10)]), None, clock=lambda: clock[0])
    run(st, "r1", 0.0, 1.0)
    for t in (50.0, 65.0, 75.0, 200.0, 500.0):
        clock[0] = t
        st.sweep()
    assert st.views(500.0)[0].missed_runs_total == 1
    run(st, "r2", 510.0, 511.0)
    clock[0] = 520.0
    st.sweep()
    clock[0] = 600.0
    st.sweep()
    assert st.views(600.0)[0].missed_runs_total == 2
