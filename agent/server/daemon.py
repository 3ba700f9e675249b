"""`botwatch agent`: load the estate, rebuild state from the journal, serve HTTP, sweep flips."""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from .._platform.interrupts import stop_signals
from ..config.estate import ConfigError, LoadedEstate
from ..core.extras import MissingExtra, capabilities_off
from ..state.journal import Journal, JournalError
from ..sources.base import PeriodicTask
from ..state.runtime import EstateState

if TYPE_CHECKING:  # loaded only when the agent starts them
    from botwatch.exporters.otlp_settings import OtlpSettings

    from ..ui.probe import DriftProbe

log = logging.getLogger("botwatch.agent")


class Sweeper(PeriodicTask):
    """Records time-driven state changes (late, down) as flips, every `interval` seconds."""

    thread_name = "botwatch-sweeper"
    poll_first = False

    def __init__(self, state: EstateState, interval: float) -> None:
        super().__init__(interval)
        self.state = state

    def poll_once(self) -> None:
        try:
            for flip in self.state.sweep():
                log.info("bot %s: %s -> %s (%s)", flip.bot, flip.old_state, flip.new_state, flip.reason)
        except JournalError as exc:
            log.warning("cannot record state changes: %s", exc)


def build_sources(loaded: LoadedEstate, state: EstateState, journal: Journal,
                  probe: DriftProbe | None = None) -> list[PeriodicTask]:
    """The sources this estate asks for (see sources/registry.py): process watching always (it
    also finds the shadow bots nobody registered), log watching when a bot has `watch.logs`, the
    snapshot folder when `agent.snapshots` is set (checked with `probe`, the DriftProbe the API
    uses), and those of the modules named in `agent.source_modules`."""
    from ..sources import registry

    load_source_modules(loaded)
    sources: list[PeriodicTask] = []
    for cls in registry.wanted(loaded):
        try:
            sources.append(cls.from_estate(loaded, state, journal, probe=probe))
        except MissingExtra as exc:  # said in one line: the others start
            log.warning("source %s is off: %s", cls.name, exc)
        except Exception:  # one source that cannot be built must not keep the others from starting
            log.exception("source %s cannot be started", cls.name)
    return sources


def load_source_modules(loaded: LoadedEstate) -> None:
    """Imports the modules of `agent.source_modules` (their sources register themselves)."""
    from ..sources import registry

    try:
        registry.load_modules(loaded.estate.agent.source_modules)
    except Exception as exc:  # not found, or failing on import
        raise ConfigError([f"agent.source_modules: {type(exc).__name__}: {exc}"]) from None


def otlp_settings(loaded: LoadedEstate) -> OtlpSettings:
    """The OTLP exports the estate file and the OTEL_* environment ask for (none by default)."""
    from botwatch.exporters.otlp_settings import resolve

    try:
        return resolve(loaded.estate)
    except ValueError as exc:  # a malformed OTEL_* variable
        raise ConfigError([f"environment: {exc}"]) from None


def refuse_network_journal(loaded: LoadedEstate, network_path: Callable[[str], str | None] | None = None) -> None:
    """ConfigError when the journal is on a network share (see _platform/netpaths.py): SQLite's
    write-ahead log needs a local disk, and a journal that loses runs is worse than none.
    `network_path` tells what makes a path a network one (default: this host's answer)."""
    from .._platform import netpaths

    path = str(loaded.journal_path)
    why = (network_path or netpaths.network_path_here)(path)
    if why:
        where = f"{loaded.path}: " if loaded.path else ""
        raise ConfigError([f"{where}agent.journal: {path} is {why}; the journal is SQLite in WAL mode, which "
                           "does not work on a network share (runs would be lost or the file corrupted): "
                           "put it on a local disk"])


def serve(loaded: LoadedEstate, listen: tuple[str, int] | None = None, *,
          network_path: Callable[[str], str | None] | None = None) -> int:
    """Run the agent until it is stopped; `network_path` as refuse_network_journal takes it."""
    refuse_network_journal(loaded, network_path)  # before anything starts
    import uvicorn

    from botwatch.exporters.prometheus import estate_registry

    from .app import create_app

    from ..config.estate import resolve_secret
    from .app import Security
    from .webhooks import Receivers
    from ..config.web import BasicAuth, load_web_config

    host, port = listen or loaded.listen
    otlp_wanted = otlp_settings(loaded)
    load_source_modules(loaded)
    web = load_web_config(loaded.resolve(loaded.estate.agent.web_config)) if loaded.estate.agent.web_config else None
    security = Security(
        estate_key=resolve_secret(loaded.estate.agent.ping_key),
        bot_keys={b.name: k for b in loaded.estate.bots if (k := resolve_secret(b.ping_key))},
        basic_auth=BasicAuth(web.basic_auth_users) if web and web.basic_auth_users else None,
    )
    if loaded.estate.agent.ping_key is not None and security.estate_key is None:
        log.warning("agent.ping_key is set but resolves to nothing (unset variable or unreadable file): "
                    "check-ins are refused")
    journal = Journal(loaded.journal_path)
    state = EstateState(loaded.estate, journal)
    from ..governance import GovernanceRefresher, governance_for_state

    governance = governance_for_state(state, loaded)  # checked in the background, off the scrape path
    refresher = GovernanceRefresher(governance, loaded.estate.agent.governance_interval)
    refresher.start()
    from ..deps.index import DependencyIndex, DependencyRefresher

    dependencies = DependencyIndex(loaded, clock=state.clock)  # each bot's sources, read in the background too
    dependencies_refresher = DependencyRefresher(dependencies, loaded.estate.agent.governance_interval)
    dependencies_refresher.start()
    from ..ui.probe import DriftProbe

    # UI snapshots: the API and the snapshot folder share it; it checks the selectors the index reads too
    probe = DriftProbe(loaded.estate, journal, dependencies=dependencies)
    registry = estate_registry(state, governance=governance, dependencies=dependencies)
    receivers = Receivers()  # the sources that take webhooks, handed over once built
    app = create_app(state, registry, security, probe=probe, governance=governance, receivers=receivers,
                     dependencies=dependencies)
    from botwatch.exporters import otlp as otlp_exports

    otlp: otlp_exports.OtlpExports = otlp_exports.start(otlp_wanted, state, registry)
    tls = web.tls_server_config if web else None
    scheme = "https" if tls else "http"
    sweeper = Sweeper(state, loaded.estate.agent.sweep_interval)
    sweeper.start()
    sources = build_sources(loaded, state, journal, probe)
    for source in sources:
        source.start()
    receivers.attach(sources)
    print(f"botwatch agent: {len(state.bots)} bot(s), journal {loaded.journal_path}, "
          f"{journal.count_runs()} run(s) on record; listening on {scheme}://{host}:{port}", file=sys.stderr, flush=True)
    off = capabilities_off()
    if off:
        print(f"botwatch agent: capabilities off (extras not installed): {off}", file=sys.stderr, flush=True)
    # access_log stays off: check-in URLs carry the ping key, which is never logged
    # h11 and asyncio named, websockets off: uvicorn's "auto" would load httptools, uvloop and a
    # websocket stack where installed, memory an agent that serves no websocket keeps for nothing
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                                           lifespan="off", timeout_graceful_shutdown=5, http="h11", ws="none",
                                           loop="asyncio",
                                           ssl_certfile=tls.cert_file if tls else None,
                                           ssl_keyfile=tls.key_file if tls else None))
    # uvicorn handles the stop signals (stop accepting, finish requests in flight) and afterwards
    # re-raises the signal into the handler that was installed before it: make that a no-op so
    # the agent can close its journal and exit 0.
    for sig in stop_signals():  # SIGINT, SIGTERM and, on Windows, SIGBREAK (a service's Ctrl-Break)
        signal.signal(sig, lambda *_: None)
    try:
        server.run()
    finally:
        for source in sources:
            try:
                source.stop()
            except Exception:
                log.exception("stopping %s failed", type(source).__name__)
        otlp.stop(state)  # after the sources: their last runs go out in the final push
        refresher.stopped.set()
        dependencies_refresher.stopped.set()
        sweeper.stop(timeout=5)
        try:
            state.sweep()
        except Exception:
            pass
        journal.close()
        print("botwatch agent: stopped", file=sys.stderr, flush=True)
    return 0 if server.started else 1
