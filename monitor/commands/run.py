"""`llm-monitor run`: the daemon in the foreground, stopped by SIGTERM/SIGINT, reloaded by SIGHUP."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

from monitor.app import App
from monitor.commands.common import EXIT_CONFIG, EXIT_FAIL, EXIT_OK, load_or_exit
from monitor.config.loader import Config
from monitor.domain import JUDGE_CANARY
from monitor.errors import MonitorError, SecretError
from monitor.exit_watch import STOP_SLACK_S, ExitWatch
from monitor.quality import JUDGE_TIMEOUT_S
from monitor.unsaved import LOST_LEAD_UNSAVED_S, UNSAVED_GRACE_S

log = logging.getLogger("monitor.run")


def own_call_s(config: Config) -> float:
    """The longest of the daemon's own calls a shutdown lets finish (0: none configured): a judge's (an llm_judge
    check's worker thread, the refusal judge on the analysis thread `Analysis.close` waits for), an embeddings
    call's (its target's timeout)."""
    longest = JUDGE_TIMEOUT_S + 5 if any(c == JUDGE_CANARY for c, _ in config.service_pairs()) else 0.0
    if config.drift.enabled and config.drift.embeddings is not None:
        longest = max(longest, config.target(config.drift.embeddings.target).timeout)
    return longest


def shutdown_bound(app: App) -> float:
    """How long a shutdown may take at most: the grace period, the held writes' last try, the longest of the
    daemon's own calls begun as the grace period ended (`own_call_s`), and STOP_SLACK_S."""
    held = LOST_LEAD_UNSAVED_S if app.leadership_lost.is_set() else UNSAVED_GRACE_S
    return app.config.daemon.grace_period + held + own_call_s(app.config) + STOP_SLACK_S


async def serve(app: App, stop: asyncio.Event,
                on_stopping: Callable[[float], Callable[[], None] | None] | None = None) -> int:
    """Start `app`, run until `stop` is set (or a signal sets it), then shut down cleanly; `on_stopping` is told
    as the shutdown begins how long it may take (`shutdown_bound`), and as a `stop` comes while the start still
    waits (what it returns then, if anything, is called once the start is done)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: app.spawn(app.reload()))
    for empty in app.config.empty_probe_folders:  # as check-config warns: a daemon running no canary says why
        log.warning("empty probe folder: %s", empty)
    starting, asked = asyncio.ensure_future(app.start()), asyncio.ensure_future(stop.wait())
    early = None  # a start blocked on a store that stopped answering waits for good: a SIGTERM then begins the watch
    try:
        await asyncio.wait([starting, asked], return_when=asyncio.FIRST_COMPLETED)
        if not starting.done() and on_stopping is not None:
            log.info("asked to stop while starting: stopping once the start is done",
                     extra={"exits_within_s": shutdown_bound(app)})
            early = on_stopping(shutdown_bound(app))
        await starting
    except SecretError as e:
        log.error("%s", e)
        return EXIT_CONFIG
    except MonitorError as e:
        log.error("cannot start: %s", e)
        return EXIT_CONFIG
    finally:
        asked.cancel()
        starting.cancel()  # done, but for a `serve` cancelled meanwhile
        if early is not None:
            early()
    stopped, lost = asyncio.ensure_future(stop.wait()), asyncio.ensure_future(app.leadership_lost.wait())
    await asyncio.wait([stopped, lost], return_when=asyncio.FIRST_COMPLETED)
    for waiter in (stopped, lost):
        waiter.cancel()
    bound = shutdown_bound(app)
    log.info("shutting down", extra={"grace_period_s": app.config.daemon.grace_period,
                                     "in_flight": len(app.runner.in_flight), "exits_within_s": bound})
    if on_stopping is not None:
        on_stopping(bound)
    await app.stop(asked=stop)  # a SIGTERM while it waits for a store away cuts that wait short
    if app.writes_lost:  # not a clean stop: systemd and Kubernetes see it, as a restart loop's count does
        log.error("exiting with status 1: the stop gave up on %d writes the store did not take (each kind logged "
                  "above)", app.writes_lost)
        return EXIT_FAIL
    # A replica that lost the leader lock exits 1: its supervisor restarts it, and it comes back as a standby.
    return EXIT_FAIL if app.leadership_lost.is_set() else EXIT_OK


def _watch(bound_s: float) -> Callable[[], None]:
    watch = ExitWatch(bound_s)
    watch.start()
    return watch.cancel


def main(config_path: str, web_config_file: str | None = None) -> int:
    config = load_or_exit(config_path, web_config_file, listener=True)

    async def _main() -> int:
        try:
            app = App(config)
        except MonitorError as e:  # e.g. an OTEL_* setting this build cannot follow
            log.error("cannot start: %s", e)
            return EXIT_CONFIG
        # past its bound, the process exits even with a thread blocked on a store that never answers
        return await serve(app, asyncio.Event(), on_stopping=_watch)

    return asyncio.run(_main())
