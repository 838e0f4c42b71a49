"""The composition root: builds every concrete object, owns start-up, reload and shutdown.

What a reload applies is monitor.reload; leading, standing by and taking over, monitor.leadership; the leader's
periodic upkeep beside the schedule, monitor.upkeep.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
import sys
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry
from starlette.routing import Route

from monitor.alerts import AlertEvent, Alerting
from monitor.alerts.sinks import sink_problems
from monitor.analysis import Analysis
from monitor.checks import check_names
from monitor.config.check_order import order_named, renamed_by_order
from monitor.config.digest import config_digest
from monitor.config.loader import Config
from monitor.config.secrets import key_problems
from monitor.configured import Configured
from monitor.domain import utcnow
from monitor.errors import MonitorError, NoSchema, SecretError, StoreError
from monitor.health import HealthWatch
from monitor.http import Server, build_http_app, drift_disabled_routes, drift_routes, listen_socket
from monitor.leadership import LEADER_CHECK_S, LEADER_LEASE_S, LEADER_POLL_S, Succession
from monitor.own_calls import OwnCalls
from monitor.providers import build_providers
from monitor.providers.base import Provider
from monitor.quality import Quality
from monitor.reload import FollowUps, ReplacedProviders, reload_config
from monitor.runner import Annotator, Listener, Runner
from monitor.scheduler import Scheduler, drain
from monitor.store import Store
from monitor.store.engine import Timeouts
from monitor.store.leader import Leadership
from monitor.telemetry.metrics import Metrics, register_runtime
from monitor.telemetry.tracing import get_tracer, make_tracer_provider
from monitor.unsaved import LOST_LEAD_UNSAVED_S, UNSAVED_GRACE_S
from monitor.webconfig.expiry import report as report_expiry
from monitor.webconfig.tls import ListenerTls, ServerTls, build_server_tls

log = logging.getLogger("monitor.app")
SWITCH_INTERVAL_S = 0.001


def store_timeouts(config: Config) -> Timeouts:
    """The daemon's store timeouts, as `storage` configures them. A session of the daemon's idle inside a
    transaction as long as one statement may run is stuck (its transactions are a few statements with a little
    Python between them): a frozen process or a blocked thread, holding its locks; the server ends it then."""
    return Timeouts(connect_s=config.storage.connect_timeout, statement_s=config.storage.statement_timeout,
                    lock_s=config.storage.lock_timeout, idle_s=config.storage.statement_timeout)


class App:
    """A running llm-monitor: store, providers, runner, scheduler, HTTP server; reloadable."""

    def __init__(self, config: Config, *, registry: CollectorRegistry | None = None,
                 environ: Mapping[str, str] | None = None, store: Store | None = None,
                 annotate: Annotator | None = None, listeners: list[Listener] | None = None,
                 extra_routes: list[Route] | None = None, now: Callable[[], datetime] = utcnow,
                 tracer_provider: Any = None, serve_http: bool = True, analyse: bool = True,
                 leader_poll_s: float = LEADER_POLL_S, leader_check_s: float = LEADER_CHECK_S,
                 leader_lease_s: float = LEADER_LEASE_S,
                 interrupted_after_s: float | None = None):
        self.config = config
        self.environ = os.environ if environ is None else environ
        self.registry = registry or CollectorRegistry()
        self.metrics = Metrics(self.registry, now)
        if registry is None:  # the daemon's own registry (an injected one belongs to its caller)
            register_runtime(self.registry)
        self.store = store or Store(config.storage.url, timeouts=store_timeouts(config))
        self.tracer_provider = tracer_provider if tracer_provider is not None else make_tracer_provider(self.environ)
        self.own_calls = OwnCalls(lambda: self.runner, lambda: self.config, self.environ, now)
        self.quality = Quality(lambda: self.runner.providers, lambda: {t.id: t.model for t in self.config.targets},
                               record=self.own_calls.judge_call,
                               over_cap=lambda t: self.runner.spend.over_cap_now(self.config.target(t)),
                               limit=lambda t: self.runner.limit(t), now=now)
        self.runner = Runner(store=self.store, metrics=self.metrics, tracer=get_tracer(self.tracer_provider),
                             providers={}, now=now, annotate=annotate or self.quality,
                             listeners=list(listeners or []))
        self.scheduler = Scheduler(self._run_job, now=now, on_skip=lambda c, t, why, runs:
                                   self.metrics.runs_skipped.inc(c, t, why, amount=runs))
        # the pairs the metrics are declared for are those analysed (a standby, which declares none, analyses none)
        self.analysis = Analysis(self.store, self.metrics, config.drift_settings(),
                                 tags=lambda canary: self._tags.get(canary, ()),
                                 configured=lambda canary, target: self.metrics.scope.now.pair(canary, target),
                                 checked=lambda canary, target, check: self.metrics.scope.now.check(canary, target,
                                                                                                   check),
                                 now=now) \
            if analyse and config.drift.enabled else None
        self.alerting: Alerting | None = None
        self.analyse = analyse  # a replica that leads analyses and alerts (not `probe`)
        self._tags = {c.id: tuple(c.tags) for c in config.canaries}
        self.health = HealthWatch(now=now)
        self.runner.spend.listeners.append(self._on_cap)
        self._serve_http = serve_http
        self._extra_routes = extra_routes or []
        self._server: Server | None = None
        self.tls: ListenerTls | None = None
        self._server_task: asyncio.Task[None] | None = None
        self.replaced = ReplacedProviders()
        self.follow_ups = FollowUps()  # a reload's store-side steps, while the store is away
        self._background: set[asyncio.Task[Any]] = set()
        self.reload_lock = asyncio.Lock()
        self.started = asyncio.Event()  # the start is done: a reload asked before waits for it
        self.draining = False  # the stop has begun: not ready (/readyz 503), so load balancers send nothing more
        self.port: int | None = None
        self.now = now
        self.leadership = Leadership(self.store.engine, lease_s=leader_lease_s,
                                     connect_timeout_s=self.store.timeouts.connect_s)
        self.leading = False
        self.leadership_lost = asyncio.Event()  # the daemon exits 1 on it (its supervisor restarts it, as standby)
        self._lost_at_stop = 0  # writes the analysis and alerting gave up on as they stopped (`writes_lost`)
        self.leader_poll_s = leader_poll_s
        self.leader_check_s = leader_check_s
        self.interrupted_after_s = interrupted_after_s  # None: as long as an old leader may still finish its runs
        self.succession = Succession(self)

    async def _run_job(self, canary: Any, target: Any) -> None:
        if not await self.succession.still_leading():
            log.warning("run of %s@%s not started: this replica no longer holds the leader lock", canary.id, target.id)
            return
        self.runner.track(asyncio.current_task())
        try:
            observations = await self.runner.run(canary, target)
            events = self.health.run_finished(canary.id, target.id, observations, self._tags.get(canary.id, ()))
            for e in events:  # one line each, with or without alert sinks
                log.log(logging.WARNING if e.kind == "canary.down" else logging.INFO, e.kind.replace(".", " "),
                        extra={"canary": e.canary, "target": e.target, "summary": e.summary})
            if events:
                await self._publish(events)
        except asyncio.CancelledError:
            # Shutdown ran out of grace: the runner stored the cancelled calls; end the job quietly.
            log.info("run of %s@%s cancelled at shutdown", canary.id, target.id)
        except Exception:
            log.exception("run of %s@%s failed", canary.id, target.id)

    async def _publish(self, events: list[AlertEvent]) -> None:
        """Write the alerts of health events, on a lock still confirmed: a run in flight as the lock went ends in the
        shutdown, and its canary.down (or recovery) would reach the outbox after the new leader read which pairs are
        down, for its sender to page an outage the new leader pages again (or close a page on an outage going on)."""
        if self.alerting is None:
            return
        if not await self.succession.still_leading():
            log.warning("health alerts not written: this replica lost the leader lock (the leader alerts from its "
                        "own runs)", extra={"alerts": sorted({f"{e.kind} {e.canary}@{e.target}" for e in events})})
            return
        await self.alerting.publish(events)

    def _on_cap(self, target: str, paused: bool, spent: float, cap: float | None) -> None:
        events = self.health.paused(target, paused, spent, cap)
        if events and self.alerting is not None:
            self.spawn(self._publish(events))

    async def page_down_pairs(self) -> None:
        """Tell each sink routed a pair reported down, and never told, that it is: a reload (or a restart) that added
        the sink or changed the routes mid-outage (see Alerting.ensure_firing)."""
        if self.alerting is not None:
            await self.alerting.ensure_firing(self.health.down_events(lambda c: self._tags.get(c, ())),
                                              lambda e: self.health.is_down(e.canary, e.target))

    def spawn(self, coro: Any) -> None:
        """Run a coroutine in the background, keeping a reference until it is done (and logging failures)."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._background.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("background task failed: %r", t.exception())

        task.add_done_callback(done)

    def declare(self) -> None:
        """Declare the series this replica exports (per pair on the leader only) and the config it runs."""
        if self.leading:  # a standby exports no per-pair series (its last-success gauges would go stale)
            pairs = self.config.pairs()
            self.metrics.declare(((c.id, t.id, c.schedule) for c, t in pairs),
                                 {t.id: t.daily_spend_cap_usd for t in self.config.targets}, self.config.service_pairs(),
                                 ((c.id, t.id, name) for c, t in pairs for name in check_names(c.checks)))
            self.runner.spend.show_caps(list(self.config.targets))  # paused as counted: a cap set, raised or kept
        self.metrics.show_config(config_digest(self.config))  # every replica: the one it would lead with
        self.metrics.reload_ok.set(1)
        self.metrics.reload_ts.set(time.time())

    async def start(self, *, schedule: bool = True) -> None:
        """Migrate the store, build providers, start the HTTP server; then lead or stand by.

        With `schedule` (the daemon) the replica that holds the store's leader lock probes, analyses and
        alerts; another waits as a standby, serving /metrics and the API, and takes over when the lock frees.
        Without it (``probe``, tests) the app leads without a lock and schedules nothing.
        """
        self.quality.bind(asyncio.get_running_loop())
        self.own_calls.bind(asyncio.get_running_loop())
        # bound before the store is opened: a busy http.listen leaves no empty SQLite file behind
        try:
            sock = listen_socket(self.config.http.host, self.config.http.port) if self._serve_http else None
        except MonitorError as e:  # named as every config error is: which file and key gave the address
            raise MonitorError(f"{self.config.path}: http.listen: {e}") from e
        try:
            # served from the first moment: a liveness probe is answered through a long migration (or the wait for
            # another replica's), /readyz says 503 "starting" and the API, its store not ready, says so too
            if sock is not None:
                self._serve(sock)
            revision = await self._prepare()
        except BaseException:  # the socket too: a start that failed holds the port no longer
            await self._stop_serving()
            if sock is not None:
                sock.close()
            raise
        await self.succession.start(schedule=schedule)
        self.started.set()  # a reload asked meanwhile applies now, to the app as started
        # Everything built so far (modules, the refusal model, config) lives as long as the process: move it out
        # of the collector's way so a full collection never stalls the event loop (and skews TTFT) for long.
        gc.collect()
        gc.freeze()
        # Analysis threads hold the GIL in slices; shorter slices let the event loop read chunks on time.
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        if schedule:
            host = self.config.http.host
            log.info("started", extra={"jobs": len(self.scheduler.next_runs()), "store": self.store.safe_url,
                                       "schema": revision,
                                       "listen": f"{f'[{host}]' if ':' in host else host}:{self.port}",
                                       "tls": self.tls is not None, "web_config_file": self.config.web_file,
                                       "basic_auth_users": len(self.config.web.basic_auth_users),
                                       "leader": self.leading, "config_digest": config_digest(self.config),
                                       "drift_false_alarms_per_day": round(self.config.false_alarms_per_day(), 4)
                                       if self.analysis is not None else None})

    def _serve(self, sock: socket.socket) -> None:
        """Start the HTTP server on `sock`, with the listener's TLS."""
        self.port = sock.getsockname()[1]
        if self._serve_http:
            tls = self.config.web.tls_server_config
            # the context loading the config built; a Config made without loading it builds one (TlsFilesError)
            served = self.config.listener_tls or (build_server_tls(tls) if tls is not None else None)
            self.tls = ListenerTls(served, on_serve=self._serving_certificate) if served is not None else None
        routes = [*self._extra_routes, *(drift_routes(self.analysis, self._configured) if self.analysis
                                         else drift_disabled_routes())]
        app = build_http_app(self, environ=self.environ, extra_routes=routes,
                             starting=lambda: not self.started.is_set())
        self._server = Server.for_app(app, self.tls.context if self.tls is not None else None)
        self._warn_plain_passwords()
        self._server_task = asyncio.create_task(self._server.serve(sockets=[sock]))

    async def _stop_serving(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            if self._server_task:
                await asyncio.wait([self._server_task], timeout=5)

    async def _prepare(self) -> str:
        """Check the secrets, migrate the store, build the providers and the listener's TLS; return the schema."""
        # before the store is opened: a key's variable unset leaves no empty SQLite file behind
        self.check_secrets(self.config)  # a standby's sinks too, though it builds its alerting only when it leads
        try:
            revision = await asyncio.to_thread(self.store.migrate, in_child=True)
        except NoSchema as e:  # the config's field named, as a check of it would
            raise StoreError(f"{self.config.path}: storage.url: {e.reason}") from None
        await asyncio.to_thread(self.quality.warm_up)
        self.runner.set_providers(build_providers(self.config, self.environ), list(self.config.targets))
        self.declare()
        self.runner.unpriced.config(self.config)  # spend caps that cannot count, as check-config warns
        for warning in self.config.alerts.secret_looking_labels():  # as check-config warns; the value is not shown
            log.warning(warning)
        for warning in order_named(self.config.canaries):  # as check-config warns
            log.warning(warning)
        return revision

    def check_secrets(self, config: Config) -> None:
        """Raise one SecretError naming every secret `config` lacks, each by its entry's file and line and its
        variable or file (never a value): the targets' API keys, which building the providers reads, and the sinks'
        secrets, which building the alerting of `config` reads (the leader builds it at start or reload, a standby
        only when it takes over, which may be at 3am)."""
        problems = key_problems(config.targets, self.environ)
        if self.analyse:
            problems += sink_problems(config.alerts, self.environ)
        if problems:
            raise SecretError.of(problems)

    def ready(self) -> tuple[bool, dict[str, bool]]:
        """Ready: started, the store answers and, on the leader, the scheduler runs (a standby is ready to take over); and
        not draining: from the moment a stop begins (a scheduler paused for the grace period still counts as
        running), so a load balancer stops sending traffic while the daemon drains."""
        if not self.started.is_set():  # migrating, building, taking the lead: its store may not be ready to ping
            return False, {"starting": True, "draining": self.draining}
        parts = {"store": self.store.ping(),
                 "scheduler": self.scheduler.running if self.leading else self.succession.standing_by,
                 "leader": self.leading, "draining": self.draining}
        return parts["store"] and parts["scheduler"] and not self.draining, parts

    def _serving_certificate(self, served: ServerTls) -> None:
        # at start, on every reload and on a renewal from the files: the expiry gauge, and a warning when near
        report_expiry(served.expiry, served.tls.cert_file, self.metrics.tls_expiry.set, self.now())

    def _warn_plain_passwords(self) -> None:
        if self.config.web.basic_auth_users and self.tls is None:
            log.warning("basic auth without TLS: passwords cross the network in the clear (add tls_server_config "
                        "to the web config file)", extra={"web_config_file": self.config.web_file})

    async def take_config(self, config: Config, providers: dict[str, Provider]) -> None:
        """Make a reloaded `config` the running one: its users (from the next request on), providers, judge,
        declared series and tags (reload.py has checked it and built `providers`)."""
        had_users = bool(self.config.web.basic_auth_users)
        changed = {t.id for t in self.config.targets if t not in config.targets}
        # the labels this reload set whose value or name looks like a secret, as the start warns (the value not shown)
        for warning in config.alerts.secret_looking_labels(besides=self.config.alerts.external_labels):
            log.warning(warning)
        for warning in order_named(config.canaries, running=self.config.canaries):  # checks this reload so named
            log.warning(warning)
        for warning in renamed_by_order(config.canaries, self.config.canaries):  # and checks it so renamed
            log.warning(warning)
        self.config = config
        if self._server is not None and not had_users:
            self._warn_plain_passwords()  # basic auth this reload turned on, as at start
        self.runner.unpriced.config(config)  # spend caps this reload set on models without a price
        self.runner.unpriced.forget(changed)  # a target's new server or model is warned of afresh, as at start
        self.runner.doubts.forget(changed)
        self.runner.set_providers(providers, list(config.targets))
        await self.quality.calibrate_judge(config)
        self.declare()  # on the leader: the series of the pairs, checks and targets it removed go, for good
        self._tags = {c.id: tuple(c.tags) for c in config.canaries}

    def configured_checks(self) -> set[tuple[str, str, str]]:
        """The checks of the config in force, per pair: (canary, target, result name), whose drift signal is
        `check:NAME` (a reload or restart that removes one retires its drift alerts: `Alerting.retire`)."""
        return set(self._configured().checks)

    def _configured(self) -> Configured:
        """The canary x target pairs of the config in force and their checks (the drift API marks the events of the
        others)."""
        return Configured.of(self.config.pairs())

    async def reload(self) -> tuple[bool, str]:
        """Load the config file again; on any error keep the running config and say why (see reload.py). Asked while
        the app is still starting (a SIGHUP during a long migration), it waits for the start to be done: applied
        beside it, the reload's config and providers were overwritten by the start's, or half of it ran on each."""
        if not self.started.is_set():
            log.info("reload asked while starting: applied once the start is done")
            await self.started.wait()
        async with self.reload_lock:
            return await reload_config(self)

    @property
    def writes_lost(self) -> int:
        """Writes the stop gave up on, the store not taking them (observations, run records, drift event updates,
        signals, alert messages; each kind logged as it is): `run` then exits 1."""
        return self.runner.unsaved.lost_at_stop + self._lost_at_stop

    async def stop(self, asked: asyncio.Event | None = None) -> tuple[int, int]:
        """Stop scheduling, give in-flight probes the grace period, then close everything. `asked` is set by a
        SIGTERM or SIGINT: it cuts a leader's long wait for a store away to UNSAVED_GRACE_S."""
        self.draining = True
        self.scheduler.pause()
        if self.follow_ups.close():
            log.info("stopping before the store answered a reload's paging and resolving: the next start does them")
        self.runner.stopping = True  # samples still waiting for a concurrency slot are not sent
        finished, cancelled = await drain(self.runner.in_flight, self.config.daemon.grace_period)
        self.scheduler.shutdown()
        # A leader's watch goes on confirming the lock until the analyses are written (they write only on a lock
        # confirmed recently, and stop writing if it is lost meanwhile); a standby stops trying for it at once.
        self.succession.stop_acting()
        # Writes held while the store was down: a last try, before the analysis closes, so the observations it
        # stores now are analysed (they reach it as they are stored; the next start would not: it replays stored
        # observations only into baselines still forming).
        loop = asyncio.get_running_loop()
        unsaved_s = LOST_LEAD_UNSAVED_S if self.leadership_lost.is_set() else UNSAVED_GRACE_S
        until = loop.time() + unsaved_s
        await self.runner.unsaved.close(unsaved_s, hurry=asked, hurried_s=UNSAVED_GRACE_S)
        if self.analysis is not None:
            # finish analyses of the calls that completed
            self._lost_at_stop += await asyncio.to_thread(self.analysis.close)
        await self.own_calls.settled()  # the judges' and embeddings calls those made
        def left() -> float:  # of the held writes' one try, cut by a SIGTERM as `close` cut it (`hurried_until`)
            cut = self.runner.unsaved.hurried_until
            return max(0.0, (until if cut is None else min(until, cut)) - loop.time())

        # the embeddings calls' records the analyses just made, if the store turned them away: what is left of the try
        await self.runner.unsaved.close(left(), hurry=asked, hurried_s=UNSAVED_GRACE_S, final=True)
        if self.alerting is not None:
            # the alert messages held: what is left of the same try, not 10 s more (nor past a SIGTERM's cut)
            self._lost_at_stop += await self.alerting.stop(left())
        await self.succession.release()  # a standby takes over at its next try
        await self._stop_serving()
        for p in [*self.runner.providers.values(), *self.replaced.take()]:
            with contextlib.suppress(Exception):
                await p.aclose()
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()
        await asyncio.to_thread(self.store.close)
        log.info("stopped", extra={"in_flight_finished": finished, "in_flight_cancelled": cancelled,
                                  "calls_not_sent": self.runner.not_sent, "writes_lost": self.writes_lost,
                                  "observations_not_analysed": self.analysis.not_analysed if self.analysis else 0})
        return finished, cancelled
