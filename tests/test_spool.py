from botwatch.client.spool import Spool


def test_a_full_spool_drops_progress_events_before_finished_runs(tmp_path):
    spool = Spool(str(tmp_path / "spool.db"), max_events=3)
    spool.add_finished("b", "r1", started=1.0, ended=2.0, outcome="success")
    for i in range(4):
        spool.add_event("ui", "b", "r2", f'{{"type": "ui_lookup", "bot": "b", "time": {i}, "screen": "s", "found": true}}')
    spool.add_finished("b", "r2", started=3.0, ended=4.0, outcome="failure")
    kinds = [k for (k,) in spool.db.execute("SELECT kind FROM outbox ORDER BY seq")]
    assert kinds == ["finish", "ui", "finish"]
    assert spool.dropped("agent")[0] == 3
