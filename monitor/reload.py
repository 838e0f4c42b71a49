"""Config reload (SIGHUP, POST /-/reload): load the file again and apply it to the running app.

On any error the running config stays in force and the reply says why. Settings only a restart applies keep
their running values (`restart_only`), and the reply names them. The providers a reload replaces may still be
in use by runs in flight: they are closed once those runs have ended.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from monitor.config.digest import config_digest
from monitor.config.loader import load_config, restart_only
from monitor.errors import MonitorError
from monitor.providers import build_providers
from monitor.providers.base import Provider
from monitor.restore import restore_streaks
from monitor.webconfig.tls import build_server_tls

if TYPE_CHECKING:
    from monitor.app import App

log = logging.getLogger("monitor.app")  # a reload's lines are the app's, where operators look for them


async def reload_config(app: App) -> tuple[bool, str]:
    """Load the config file again and apply it to `app` (holding its reload lock); on any error keep the running
    config and say why."""
    try:
        config = await asyncio.to_thread(load_config, app.config.path, app.environ,
                                         web_config_file=app.config.web_flag)
        config, needs_restart = restart_only(app.config, config)
        # For the connections to come: the certificate and key as loading read them again (renewed in place, or
        # new files), in the context it built; built anew only when settings that wait for a restart changed (the
        # loaded files under the running settings: restart_only dropped the loaded context).
        tls = config.web.tls_server_config if app.tls is not None else None
        served = None
        if tls is not None:
            served = config.listener_tls or await asyncio.to_thread(build_server_tls, tls)
        providers = build_providers(config, app.environ)
        if app.alerting is not None:
            app.alerting.reload(config.alerts, app.environ)
        else:  # a standby: refused as on the leader, not when it takes over
            app.check_sinks(config)
    except MonitorError as e:
        app.metrics.reload_ok.set(0)
        log.error("reload failed, keeping the running config: %s", "; ".join(str(e).splitlines()))
        return False, str(e)
    if app.tls is not None and served is not None:
        app.tls.use(served)
    # The fleet false-alarm budget's split over the streams follows the canaries and schedules; a new split
    # waits for a restart. Said in every reply while it waits, but warned of only by the reload that made it.
    settings = config.drift_settings()
    split_pending = app.analysis is not None and "drift" not in needs_restart \
        and settings != app.analysis.engine.settings
    split_new = split_pending and settings != app.config.drift_settings()
    before = {(c.id, t.id) for c, t in app.config.pairs()}
    watched_before = before | app.config.service_pairs()
    replaced = list(app.runner.providers.values())
    app.replaced.retire(replaced)
    app.spawn(app.replaced.close_when_done(replaced, app.runner.in_flight))
    await app.take_config(config, providers)
    pairs = {(c.id, t.id) for c, t in config.pairs()}
    app.health.forget(pairs)
    added = (pairs | config.service_pairs()) - watched_before
    if app.leading and added:  # their failing streaks from the store, as at start, before their first run
        streaks = await asyncio.to_thread(restore_streaks, app.store, app.metrics, added)
        app.health.seed_failed_runs({pair: streak.runs for pair, streak in streaks.items()})
        if app.alerting is not None:  # their open events fired again below are held while they fail
            app.alerting.inhibitor.seed_failing(added, streaks)
    if app.leading:
        await app.page_down_pairs()  # a sink now routed a pair down is told it is
    if app.analysis is not None and app.leading:
        app.analysis.declare(sorted(pairs))
        await app.analysis.in_worker(app.analysis.engine.set_zero_tolerance,
                                     {c.id: c.zero_tolerance for c in config.canaries})
        await app.analysis.in_worker(app.analysis.refresh_baselines)
        await app.analysis.in_worker(app.analysis.show_open, pairs - before)
        if app.alerting is not None:
            await app.alerting.ensure_firing(
                await app.analysis.in_worker(app.analysis.open_alert_events, pairs))
    if app.alerting is not None:
        # After the analysis thread's calls above, which waited for the analyses queued before them: those of a
        # removed pair are dropped now, but one that began before the declaration may have opened an event
        # (drift on, leading): its notifications are written by now, and this ends them.
        await app.alerting.retire(pairs)
    jobs = app.scheduler.apply(config, run_now=False) if app.scheduler.running else 0
    log.info("config reloaded", extra={"jobs": jobs, "canaries": len(config.canaries),
                                       "targets": len(config.targets),
                                       "basic_auth_users": len(config.web.basic_auth_users),
                                       "config_digest": config_digest(config)})
    message = f"reloaded: {len(config.canaries)} canaries, {len(config.targets)} targets, {jobs} jobs"
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
    return True, message


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
