"""Config reload (SIGHUP, POST /-/reload): load the file again and apply it to the running app.

On any error the running config stays in force and the reply says why: a leader reads what the switch needs
from the store first, so a store away refuses the reload whole ("store unreachable: ...; the running config is
unchanged"), as Prometheus refuses a config it cannot apply whole. A store that stops answering after that read, once
the config is switched, leaves the reload in force and its store-side steps (`store_steps`) retried until it answers. Settings only a restart applies keep
their running values (`restart_only`), and the reply names them. The providers a reload replaces may still be
in use by runs in flight: they are closed once those runs have ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from monitor.config.digest import config_digest
from monitor.config.loader import Config, load_config, restart_only
from monitor.counted import counted
from monitor.errors import MonitorError, StoreError
from monitor.providers import build_providers
from monitor.providers.base import Provider
from monitor.restore import Pair, show_streaks
from monitor.store import FailingStreak
from monitor.store.repository import driver_message
from monitor.unsaved import FIRST_DELAY_S, MAX_DELAY_S
from monitor.webconfig.tls import build_server_tls

if TYPE_CHECKING:
    from monitor.app import App

log = logging.getLogger("monitor.app")  # a reload's lines are the app's, where operators look for them
STORE_READ_TIMEOUT_S = 30.0  # how long a reload waits for the store's first answer before it is refused


async def reload_config(app: App) -> tuple[bool, str]:
    """Load the config file again and apply it to `app` (holding its reload lock); on any error keep the running
    config and say why."""
    providers: dict[str, Provider] = {}
    try:
        config = await asyncio.to_thread(load_config, app.config.path, app.environ,
                                         web_config_file=app.config.web_flag)
        config, needs_restart = restart_only(app.config, config)
        if app.config.canaries and not config.canaries:
            raise MonitorError(no_canaries(config))
        # For the connections to come: the certificate and key as loading read them again (renewed in place, or
        # new files), in the context it built; built anew only when settings that wait for a restart changed (the
        # loaded files under the running settings: restart_only dropped the loaded context).
        tls = config.web.tls_server_config if app.tls is not None else None
        served = None
        if tls is not None:
            served = config.listener_tls or await asyncio.to_thread(build_server_tls, tls)
        app.check_secrets(config)  # a standby's sinks refused as the leader's, not when it takes over
        providers = build_providers(config, app.environ)
        before = {(c.id, t.id) for c, t in app.config.pairs()}
        pairs = {(c.id, t.id) for c, t in config.pairs()}
        added = (pairs | config.service_pairs()) - (before | app.config.service_pairs())
        # What the switch needs from the store is read before anything switches: a store away refuses the reload.
        # Bounded: a store that accepts connections and never answers (a server stopped) would hold the reply, and
        # every later reload behind the lock, for good (storage.statement_timeout is the server's: a stopped server
        # ends nothing).
        try:
            streaks = await asyncio.wait_for(asyncio.to_thread(_read_store, app, added), STORE_READ_TIMEOUT_S)
        except TimeoutError:
            raise StoreError(f"store unreachable: no answer within {STORE_READ_TIMEOUT_S:g} s; the running config "
                             "is unchanged") from None
        if app.alerting is not None:
            app.alerting.reload(config.alerts, app.environ)
    except (MonitorError, SQLAlchemyError) as e:
        for p in providers.values():  # built for a config not taken: their HTTP clients go
            with contextlib.suppress(Exception):
                await p.aclose()
        why = f"store unreachable: {driver_message(e)}; the running config is unchanged" \
            if isinstance(e, SQLAlchemyError) else str(e)
        app.metrics.reload_ok.set(0)
        log.error("reload failed, keeping the running config: %s", "; ".join(why.splitlines()))
        return False, why
    if app.tls is not None and served is not None:
        app.tls.use(served)
    # The fleet false-alarm budget's split over the streams follows the canaries and schedules; a new split
    # waits for a restart. Said in every reply while it waits, but warned of only by the reload that made it.
    settings = config.drift_settings()
    split_pending = app.analysis is not None and "drift" not in needs_restart \
        and settings != app.analysis.engine.settings
    split_new = split_pending and settings != app.config.drift_settings()
    checks_before = app.configured_checks()
    replaced = list(app.runner.providers.values())
    app.replaced.retire(replaced)
    app.spawn(app.replaced.close_when_done(replaced, app.runner.in_flight))
    app.follow_ups.cancel()  # an earlier reload's store-side steps waiting for the store: this one's cover them
    await app.take_config(config, providers)
    app.health.forget(pairs)
    if app.leading and added:  # their failing streaks from the store, as at start, before their first run
        show_streaks(app.metrics, streaks)
        app.health.seed_streaks(streaks)
        if app.alerting is not None:  # their open events fired again below are held while they fail
            app.alerting.inhibitor.seed_failing(added, streaks)
    if app.analysis is not None and app.leading:
        app.analysis.declare(sorted(pairs))
        await app.analysis.in_worker(app.analysis.engine.set_zero_tolerance,
                                     {c.id: c.zero_tolerance for c in config.canaries})
        await app.analysis.in_worker(app.analysis.show_open, pairs - before, app.configured_checks() - checks_before)
    late = ""
    try:
        await store_steps(app, pairs)
    except SQLAlchemyError as e:
        # The store went away since it was read above: the config is in force (its schedule too, below); what
        # the store has yet to say (which sinks to tell what) is asked again until it answers.
        late = f"; the store stopped answering during it ({driver_message(e)}): sinks are paged and alerts of " \
               "removed pairs resolved once it answers"
        log.warning("config reloaded, but the store stopped answering during the reload (%s): paging the sinks and "
                    "resolving the alerts of removed pairs is tried again until it answers", driver_message(e))
        if app.alerting is not None:  # as `retire` sets it first: the health messages written are those of `pairs`
            app.alerting.monitored = pairs
        app.follow_ups.retry(app, pairs)
    jobs = app.scheduler.apply(config, run_now=False) if app.scheduler.running else 0
    log.info("config reloaded", extra={"jobs": jobs, "canaries": len(config.canaries),
                                       "targets": len(config.targets),
                                       "basic_auth_users": len(config.web.basic_auth_users),
                                       "config_digest": config_digest(config)})
    message = f"reloaded: {counted(len(config.canaries), 'canary')}, {counted(len(config.targets), 'target')}, " \
              f"{counted(jobs, 'job')}"
    if needs_restart:
        message += f"; changed {', '.join(needs_restart)}: takes effect at the next restart"
        log.warning("config reloaded, but %s changed: that takes effect at the next restart (the running "
                    "values stay in force)", ", ".join(needs_restart))
    if split_pending:
        message += "; the drift false-alarm budget's split over the canaries now configured takes effect at " \
                   "the next restart"
        if split_new:
            log.warning("config reloaded: the drift false-alarm budget's split over the canaries now "
                        "configured takes effect at the next restart (the split at start-up stays in force)")
    return True, message + late


def no_canaries(config: Config) -> str:
    """Why a reload that would take every canary away is refused: a probe folder emptied by mistake (files moved
    away, a volume not mounted) would stop all monitoring with no error; on purpose, it takes a restart."""
    where = "; ".join(config.empty_probe_folders) or \
        f"{config.path}: probes: the probe files {', '.join(config.probe_files) or '(none)'} hold no canary"
    return (f"the reloaded config has no canary, which would stop all monitoring: {where}; "
            f"to stop monitoring on purpose, restart with it; the running config is unchanged")


def _read_store(app: App, added: set[Pair]) -> dict[Pair, FailingStreak]:
    """Read what a leader's reload needs from the store before it switches: the failing streaks of the pairs it
    adds; or, adding none, just that the store answers (the steps after the switch read and write it). Raises
    the store's error (SQLAlchemyError)."""
    if not app.leading or not (added or app.alerting is not None or app.analysis is not None):
        return {}  # a standby's reload, or a probing leader's adding no pair, asks the store nothing
    app.store.reach()  # first: a connection the store cut since it was last used is replaced, not taken as its answer
    return app.store.failing_streaks(sorted(added)) if added else {}


async def store_steps(app: App, pairs: set[Pair]) -> None:
    """A reload's steps that read and write the store once the config is switched (raise SQLAlchemyError while
    it is away; each may be taken again: what they find already done they leave)."""
    if app.leading:
        await app.page_down_pairs()  # a sink now routed a pair down is told it is
    if app.analysis is not None and app.leading:
        await app.analysis.in_worker(app.analysis.refresh_baselines)
        if app.alerting is not None:
            await app.alerting.ensure_firing(
                await app.analysis.in_worker(app.analysis.open_alert_events, pairs))
    if app.alerting is not None:
        # After the analysis thread's calls above, which waited for the analyses queued before them: those of a
        # removed pair are dropped now, but one that began before the declaration may have opened an event
        # (drift on, leading): its notifications are written by now, and this ends them.
        await app.alerting.retire(pairs, app.configured_checks())  # and the drift alerts of the checks it removed


class FollowUps:
    """A reload's store-side steps (`store_steps`) the store stopped answering during: tried again with backoff,
    under the reload lock, until it answers; ended by a later reload (which takes them itself) and at stop (the
    next start takes them: it pages and resolves as a reload does)."""

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self._closed = False  # the app is stopping: a reload still in flight starts no retries

    def retry(self, app: App, pairs: set[Pair]) -> None:
        self.cancel()
        if self._closed:  # they would page and resolve after the stop, past the lock given up
            log.info("stopping before the store answered a reload's paging and resolving: the next start does them")
            return
        self._task = asyncio.create_task(self._retry(app, pairs), name="reload-follow-ups")

    async def _retry(self, app: App, pairs: set[Pair]) -> None:
        delay = FIRST_DELAY_S
        while True:
            await asyncio.sleep(delay)
            async with app.reload_lock:
                if not app.leading:  # lost the lead (also while a reload held the lock): the next leader takes them
                    return
                try:
                    await store_steps(app, pairs)
                except SQLAlchemyError:
                    delay = min(delay * 2, MAX_DELAY_S)
                    continue
            log.info("the store answers again: the reload's paging and resolving are done")
            return

    def close(self) -> bool:
        """At stop: end the retries, and start none for a reload still in flight; return whether some were still
        to be made."""
        self._closed = True
        return self.cancel()

    def cancel(self) -> bool:
        """End the retries; return whether some were still to be made."""
        waiting = self._task is not None and not self._task.done()
        if self._task is not None:
            self._task.cancel()
            self._task = None
        return waiting


class ReplacedProviders:
    """Providers a reload replaced and has not closed yet."""

    def __init__(self) -> None:
        self.waiting: list[Provider] = []

    def retire(self, providers: list[Provider]) -> None:
        self.waiting += providers

    async def close_when_done(self, providers: list[Provider], runs: set[asyncio.Task[object]]) -> None:
        """Close providers a reload replaced once the runs in flight at the reload, which may still be using them,
        have ended (the runs started since use the new ones; each provider holds an HTTP client and its pool of
        keep-alive connections). `take` hands those still waiting to the app's stop, which closes them."""
        if runs:
            await asyncio.wait(runs)
        for p in providers:
            if p in self.waiting:
                self.waiting.remove(p)
                try:
                    await p.aclose()
                except Exception as e:
                    log.warning("closing a provider replaced by a reload failed: %r", e)

    def take(self) -> list[Provider]:
        """Hand over the providers not closed yet (at stop)."""
        taken, self.waiting = self.waiting, []
        return taken
