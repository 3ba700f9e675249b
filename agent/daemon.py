"""`botwatch agent`: load the estate, rebuild state from the journal, serve HTTP, sweep flips."""

from __future__ import annotations

import logging
import signal
import sys
import threading

from .config import LoadedEstate
from .journal import Journal, JournalError
from .state import EstateState

log = logging.getLogger("botwatch.agent")


class Sweeper(threading.Thread):
    """Records time-driven state changes (late, down) as flips, every `interval` seconds."""

    def __init__(self, state: EstateState, interval: float):
        super().__init__(name="botwatch-sweeper", daemon=True)
        self.state, self.interval = state, interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                for flip in self.state.sweep():
                    log.info("bot %s: %s -> %s (%s)", flip.bot, flip.old_state, flip.new_state, flip.reason)
            except JournalError as exc:
                log.warning("cannot record state changes: %s", exc)
            except Exception:
                log.exception("sweep failed")


def serve(loaded: LoadedEstate, listen: tuple[str, int] | None = None) -> int:
    import uvicorn

    from botwatch.exporters.prometheus import estate_registry

    from .server import create_app

    host, port = listen or loaded.listen
    journal = Journal(loaded.journal_path)
    state = EstateState(loaded.estate, journal)
    app = create_app(state, estate_registry(state))
    sweeper = Sweeper(state, loaded.estate.agent.sweep_interval)
    sweeper.start()
    print(f"botwatch agent: {len(state.bots)} bot(s), journal {loaded.journal_path}, "
          f"{journal.count_runs()} run(s) on record; listening on http://{host}:{port}", file=sys.stderr, flush=True)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                                           lifespan="off", timeout_graceful_shutdown=5))
    # uvicorn handles SIGINT/SIGTERM (stop accepting, finish requests in flight) and afterwards
    # re-raises the signal into the handler that was installed before it: make that a no-op so
    # the agent can close its journal and exit 0.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    try:
        server.run()
    finally:
        sweeper.stopped.set()
        sweeper.join(timeout=5)
        try:
            state.sweep()
        except Exception:
            pass
        journal.close()
        print("botwatch agent: stopped", file=sys.stderr, flush=True)
    return 0 if server.started else 1
