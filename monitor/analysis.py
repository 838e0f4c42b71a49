"""Drift analysis inside the daemon: signals, drift events, baselines and their notifications.

Analysis runs on one dedicated worker thread, in the order observations finish, so it never delays the event
loop (and so never skews the latency of calls in flight). The exact permutation test that certifies an opening of
the whole-completion test (seconds of CPU when a change is there) runs on a second one, `drift-certify`
(monitor.drift.certification): a provider-wide model swap queues hundreds of them, and every other stream's analysis
waited behind them on the first. Its decision is applied back on the analysis thread, through the same writes.

Only the pairs configured now are analysed (`configured`): an observation of a pair a reload removed while it
waited is stored, but opens no event and sends no notification for a pair no one watches any longer.

How event updates are written with their notifications, and only by the leader, is monitor.drift_writes; how the
engine follows what other processes ended or hold open, monitor.drift_takeover; what an event update tells the
alert receivers, monitor.drift_alerts; how the stored baselines are kept current as they complete and learn,
monitor.stored_baselines.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any

from monitor.alerts import AlertEvent, Alerting
from monitor.alerts.inhibit import HELD_SIGNALS
from monitor.cpu_share import lower_this_thread, one_blas_thread
from monitor.domain import Observation, utcnow
from monitor.drift import DriftEngine, DriftEvent, DriftSettings, EventUpdate, budget
from monitor.drift.certification import Certification
from monitor.drift.mmd import Stopped
from monitor.drift.names import check_of
from monitor.drift_alerts import alert_event, notifies
from monitor.drift_writes import CONFIRM_WAIT_S, DriftWrites, failed
from monitor.signal_writes import SignalWrites
from monitor.store import Store
from monitor.store.drift_repo import DriftRepository
from monitor.stored_baselines import StoredBaselines
from monitor.telemetry.metrics import Metrics

log = logging.getLogger("monitor.analysis")

MAX_LAG_S = 5.0  # once the oldest observation waiting for analysis has waited this long, a run waits for its own
MAX_BACKLOG = 1000  # or once this many wait (memory stays bounded whatever analyses cost)


class Analysis(DriftWrites):
    """Feeds finished observations to the drift engine and persists what it learns."""

    def __init__(self, store: Store, metrics: Metrics, settings: DriftSettings, *, alerting: Alerting | None = None,
                 tags: Callable[[str], tuple[str, ...]] = lambda canary: (),
                 listeners: list[Callable[[EventUpdate], None]] | None = None,
                 configured: Callable[[str, str], bool] = lambda canary, target: True,
                 checked: Callable[[str, str, str], bool] = lambda canary, target, check: True,
                 routed: Callable[[str, str, str], bool] = lambda canary, target, signal: True,
                 now: Callable[[], datetime] = utcnow, monotonic: Callable[[], float] = time.monotonic):
        self.store = store
        self.now = now
        self.repo = DriftRepository(store.engine)
        self.metrics = metrics
        self.engine = DriftEngine(settings, clock=now, defer_certification=True)
        one_blas_thread()  # the engine's matrix products must not take the event loop's core (monitor.cpu_share)
        if (why := budget.mmd_out_of_reach(settings)) is not None:  # settings change only with a restart: said once
            log.warning(why)
        self.alerting = alerting
        self.tags = tags
        self.listeners = listeners or []
        self.configured = configured  # whether (canary, target) is configured now (read on the analysis thread)
        # whether the pair is configured with a check (by its result name): the drift signal `check:NAME` of one a
        # reload removed is not analysed, nor its open event fired again (read on the analysis thread)
        self.checked = checked
        self.routed = routed  # the CLI's: whether its config has the pair and the signal's check (an end of a
        # removed one: `told_only`)
        self.unconfigured = 0  # observations not analysed: a reload removed their pair while they waited
        self.late = 0  # observations stored after `close` (the store came back as the daemon stopped): not analysed
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="drift")
        # the whole-completion openings' exact tests (`_certify`); one thread: their NumPy work releases the GIL, so
        # the analysis thread goes on, and a second would only compete with it for the cores
        self._certifier = ThreadPoolExecutor(max_workers=1, thread_name_prefix="drift-certify",
                                             initializer=lower_this_thread)  # gives way to the event loop
        self._certifying: dict[Certification, Future[None]] = {}  # handed over, not applied yet: done once applied
        self._certifying_lock = threading.Lock()
        self._stopping = threading.Event()  # `close` began: certifications not run yet never will be
        self.certify: Callable[[Certification, Callable[[], bool]], None] = Certification.run  # (tests hold it)
        self._loop: asyncio.AbstractEventLoop | None = None  # the event loop observations come from (for `_wake`)
        self.baselines = StoredBaselines(self.engine, self.repo)
        self._unwritten: list[EventUpdate] = []  # event updates the store did not take yet, oldest first
        self.signal_writes = SignalWrites(store.save_signals)  # and signals, written before the next ones
        self._monotonic = monotonic
        self._queued: deque[float] = deque()  # when each observation not analysed yet was handed over, oldest first
        self.max_lag_s, self.max_backlog = MAX_LAG_S, MAX_BACKLOG
        self.confirmed: Callable[[], bool] = lambda: True  # the leader lock confirmed recently: writes may go
        self.fenced = False  # the leader lock is lost: nothing more is written (set once, from the event loop)
        self.confirm_wait_s = CONFIRM_WAIT_S
        self._ended_seen: set[str] = set()  # open events here the store had ended at the latest `close_ended`
        metrics.analysis_delay.set_function(self.delay)
        metrics.drift_certifications.set_function(lambda: len(self._certifying))

    # -- start-up ----------------------------------------------------------------------------------------
    def restore(self, pairs: list[tuple[str, str]]) -> int:
        """Rebuild engine state from the store: baselines and open events; finish incomplete baselines.

        Sequential statistics and windows start afresh after a restart (no replay of old history: its cost
        would grow with history, and re-analysing it could reopen settled events).
        """
        collecting = self.baselines.load()  # pair -> when its baseline (being collected) began
        # every open event, however many a fleet-wide change opened: one left out would be opened again
        self.engine.restore_events(DriftEvent.from_json(d) for d in self.repo.events(state="open", limit=None))
        fed = 0
        limit = self.engine.settings.baseline_size * 3
        for canary, target in pairs:
            if (canary, target) in self.baselines.ready:
                continue
            # a reset baseline forms from what came after the reset, never from the history before it
            for obs in self.store.observations(canary=canary, target=target, limit=limit, oldest_first=True,
                                               since=collecting.get((canary, target))):
                self.engine.observe(obs)
                fed += 1
                if self.engine.baseline(canary, target).ready:
                    self.baselines.progress(canary, target)
                    break
        self._hand_over()  # (a forming baseline runs no window test: none, as a rule)
        self.show_open(None)
        return fed

    def declare(self, pairs: list[tuple[str, str]]) -> None:
        """Pre-initialise drift series for the commonly watched signals so dashboards have data."""
        self.metrics.declare_drift(pairs)

    def show_open(self, pairs: set[tuple[str, str]] | None,
                  checks: set[tuple[str, str, str]] | None = None) -> None:
        """Set the gauge of the open events of `pairs` (all with None: at start-up; after a reload, the pairs back
        in the configuration, whose series the removal dropped) and of the signals `check:NAME` of `checks` (canary,
        target, NAME: the checks a reload added back). Run on the analysis thread."""
        checks = checks or set()
        for e in self.engine.events(state="open"):
            if pairs is None or (e.canary, e.target) in pairs or (e.canary, e.target, check_of(e.signal)) in checks:
                self.metrics.drift_active.set(e.canary, e.target, e.signal, value=1)

    def watched(self, canary: str, target: str, signal: str) -> bool:
        """Whether a drift signal of a configured pair is still computed: not `check:NAME` of a check removed."""
        check = check_of(signal)
        return check is None or self.checked(canary, target, check)

    def open_alert_events(self, pairs: set[tuple[str, str]]) -> list[AlertEvent]:
        """Return the alert events of the open behaviour events of `pairs` (a model change is told once, never
        resolved, so it is left out; an event of a check the pair no longer has stays open, not fired: its alerts
        were retired), for `Alerting.ensure_firing`. Run on the analysis thread."""
        return [alert_event(EventUpdate("opened", e), self.tags(e.canary)) for e in self.engine.events(state="open")
                if (e.canary, e.target) in pairs and e.kind != "model" and self.watched(e.canary, e.target, e.signal)]

    # -- the hot path (off the event loop) --------------------------------------------------------------
    async def in_worker(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run `fn` on the analysis thread (serialised with the analyses)."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def on_observation(self, obs: Observation) -> None:
        """Queue a stored observation for analysis. The run that made it goes on at once: a burst of slow analyses
        (an event storm writing evidence, an exact permutation test) must not hold runs up until they overrun their
        interval. Once analysis lags `max_lag_s` behind (or `max_backlog` wait), the run waits for its own: that
        bounds how late a change is seen, the memory the queue takes and how long a shutdown spends on it.
        Once analysis has closed (an observation held while the store was away, stored late in the shutdown), it is
        left in the store unanalysed, said in one line."""
        self._loop = loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(self._pool, self._analyse, obs)
        except RuntimeError:  # the analysis thread has ended: `close` ran
            self.late += 1
            if self.late == 1:
                log.info("observations stored after drift analysis stopped are not analysed (they are in the store; "
                         "a start replays stored observations only into baselines still forming)",
                         extra={"observation": obs.id, "canary": obs.canary, "target": obs.target})
            return
        self._queued.append(self._monotonic())
        future.add_done_callback(self._analysed)
        if self.delay() > self.max_lag_s or len(self._queued) > self.max_backlog:
            await asyncio.shield(future)  # shielded: a run cancelled meanwhile must not cancel the analysis

    def _analysed(self, future: asyncio.Future[list[EventUpdate]]) -> None:
        self._queued.popleft()  # the thread takes them in order
        if not future.cancelled() and future.exception() is not None:
            log.error("drift analysis failed", exc_info=future.exception())
        elif not future.cancelled() and self.alerting is not None and notifies(future.result()):
            # only when notifications were written: every wake is a round of outbox reads on the store
            self.alerting.sender.wake()

    def delay(self) -> float:
        """How long the oldest observation waiting for analysis has waited (0 when none waits)."""
        try:
            return max(0.0, self._monotonic() - self._queued[0])
        except IndexError:  # none waits (or, read from a scrape's thread, the last one just finished)
            return 0.0

    async def drain(self) -> None:
        """Wait until the observations queued so far are analysed (the thread takes them in order), and the
        certifications they handed over are run and applied (and those their analyses handed over meanwhile)."""
        while True:
            await self.in_worker(lambda: None)
            with self._certifying_lock:
                waiting = list(self._certifying.values())
            if not waiting:
                return
            # shielded: a drain cancelled (a caller's timeout) must not cancel them, else settling one raised
            # InvalidStateError (`close` then stopped there, its count of what it gave up on lost)
            await asyncio.gather(*(asyncio.shield(asyncio.wrap_future(f)) for f in waiting))

    @property
    def certifications(self) -> int:
        """Certifications handed over and not applied yet (waiting, running, or their decision queued)."""
        return len(self._certifying)

    def _analyse(self, obs: Observation) -> list[EventUpdate]:
        if not self.configured(obs.canary, obs.target):  # not even its signals: an embeddings call costs
            self.unconfigured += 1
            log.debug("observation not analysed: %s@%s is no longer configured", obs.canary, obs.target,
                      extra={"observation": obs.id})
            return []
        try:
            signals = self.engine.compute_signals(obs)
            # a check's result in a call made before the reload that removed it: stored, not analysed (no event
            # opens, updates or ends on a signal no longer monitored: its alerts were retired)
            analysed = {k: v for k, v in signals.items() if self.watched(obs.canary, obs.target, k)}
            updates = self.engine.observe(obs, analysed)
        except Exception:
            log.exception("drift analysis failed for %s@%s", obs.canary, obs.target)
            return []
        finally:
            self._hand_over()
        # Each write below is tried on its own: a failed one must not cost the others (the updates above are
        # already the engine's state; dropped here they would never be stored or told).
        self.signal_writes.write(obs.id, signals)
        if self.fenced:
            self._drop(updates)
            return []
        # before its updates are written: an error event this failed call opens is held as a suspected outage
        answered = self.alerting is not None and self.alerting.inhibitor.saw(obs.canary, obs.target, obs.ok)
        try:
            updates = self.persist(updates)
        except Exception as e:
            failed(e, "storing drift events failed; %d updates wait in memory and are written with the next "
                    "analysis", len(self._unwritten))
            updates = []
        if answered and self.alerting is not None and not self.fenced:
            try:  # what the pair's failed calls held, sent now, or once its events outlive a recovered outage
                self.alerting.release_answered(obs.canary, obs.target, self.engine.answers_to_resolve(
                    obs.canary, obs.target, HELD_SIGNALS))
            except Exception as e:
                failed(e, "releasing the held notifications of %s@%s failed; tried again at its next answer",
                        obs.canary, obs.target)
        try:
            self.baselines.progress(obs.canary, obs.target)
        except Exception as e:
            failed(e, "storing the baseline of %s@%s failed; tried again with its next observation", obs.canary,
                    obs.target)
        return updates

    # -- certifications (off the analysis thread) ----------------------------------------------------------------
    def _hand_over(self) -> None:
        """Give the certifications the engine's rounds left to the certifying thread (on the analysis thread)."""
        for c in self.engine.take_certifications():
            with self._certifying_lock:
                self._certifying[c] = Future()
            if self._stopping.is_set():
                continue  # `close` counts it as not run
            with contextlib.suppress(RuntimeError):  # `close` shut the thread down meanwhile: counted there
                self._certifier.submit(self._certify, c)

    def _certify(self, c: Certification) -> None:
        """Run one certification (on the certifying thread), then queue its decision onto the analysis thread."""
        if self._stopping.is_set():
            return

        def stale() -> bool:  # its stream no longer waits for it (a new baseline), or a reload removed its pair
            # (`configured` reads the config in force, swapped whole by a reload: safe from this thread)
            return not self.engine.awaits(c) or not self.configured(c.canary, c.target)

        def stop() -> bool:  # `close`, or stale: seconds for nothing
            return self._stopping.is_set() or stale()

        try:
            if not stale():  # one made stale while it waited is not run (`_apply` lets it go)
                self.certify(c, stop)
        except Stopped:
            if self._stopping.is_set():  # `close`: not applied, counted there
                return
        except Exception:  # applied as not rejecting: its stream tests again at its next round
            log.exception("certifying the whole-completion test of %s@%s failed", c.canary, c.target)
        with contextlib.suppress(RuntimeError):  # `close` ended the analysis thread meanwhile: counted there
            self._pool.submit(self._apply, c)

    def _apply(self, c: Certification) -> None:
        """Apply a certification's decision (on the analysis thread): an event it opens is written and told as an
        observation's updates are (`persist`: fencing, the updates the store did not take, the alert outbox)."""
        try:
            if not self.configured(c.canary, c.target):  # a reload removed the pair while it ran: no event
                return
            self._install_newer(c)
            updates = self.engine.certified(c)
            if self.fenced:
                self._drop(updates)
                return
            try:
                updates = self.persist(updates)
            except Exception as e:
                failed(e, "storing drift events failed; %d updates wait in memory and are written with the next "
                        "analysis", len(self._unwritten))
                return
            if self.alerting is not None and notifies(updates):
                self._wake()
        except Exception:
            log.exception("applying the whole-completion certification of %s@%s failed", c.canary, c.target)
        finally:
            # not applied (its pair removed, or a failure before `certified`): its stream tests again (applied: nothing)
            self.engine.forget_certification(c)
            self._settle(c)

    def _install_newer(self, c: Certification) -> None:
        """Before an opening is applied, install a baseline another process stored for its pair meanwhile (`baseline
        accept`, `reset`, `pin` from the CLI), which voids it: its test was of the reference the operator replaced,
        and decided seconds to minutes after its round (a model swap queues hundreds), it would open and page the
        change just accepted; the 30-second poll (`refresh_baselines`) installs the baseline too late for it. One
        read of an id, and only for a test that rejected."""
        if not (c.rejects and self.engine.awaits(c)):
            return
        try:
            if self.baselines.superseded(c.canary, c.target):
                self.refresh_baselines()
        except Exception as e:
            failed(e, "reading the stored baseline of %s@%s failed; its whole-completion opening is applied as "
                    "decided", c.canary, c.target)

    def _settle(self, c: Certification) -> None:
        with self._certifying_lock:
            done = self._certifying.pop(c, None)
        if done is not None:
            done.set_result(None)

    def _wake(self) -> None:
        """Wake the alert sender (its events belong to the event loop) from the analysis thread."""
        loop, alerting = self._loop, self.alerting
        if alerting is None:
            return
        if loop is None:  # analyses run without an event loop (a test): no sender waits on one
            alerting.sender.wake()
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed: no sender to wake
            loop.call_soon_threadsafe(alerting.sender.wake)

    def retry_unwritten(self) -> bool:
        """Write what the store did not take: event updates (see `DriftWrites`) and signals; return whether that
        wrote notifications (the caller wakes the sender). Run on the analysis thread, by the 30-second upkeep."""
        self.signal_writes.retry()
        return super().retry_unwritten()

    def save_learned(self) -> None:
        """Store every reference that learned anything since it was stored (at shutdown; on the analysis thread)."""
        if self.fenced:
            return
        for key in list(self.baselines.ready):
            try:
                self.baselines.save_learned(key, 0.0)
            except Exception as e:
                failed(e, "storing the learned reference of %s@%s failed", *key)

    @property
    def not_analysed(self) -> int:
        """Observations handed over but not analysed: their pair removed by a reload, or stored after `close`."""
        return self.unconfigured + self.late

    def close(self) -> int:
        """Finish the analyses queued, give the updates the store did not take a last try, store what the
        references learned; observations handed over after this are not analysed (`on_observation`). Return how
        many writes the store still did not take (event updates, observations' signals): given up on.
        Certifications are not waited for (each may take seconds, and a model swap queues hundreds): those not
        started are cancelled, the running one stops at its next batch of relabellings, and the decisions already
        made are applied. Nothing is lost for good: windows start afresh after a restart, and a change still there
        opens its event at the stream's first whole-completion round then."""
        self._stopping.set()
        self._certifier.shutdown(wait=False, cancel_futures=True)
        self._pool.submit(self.retry_unwritten)  # a last try, after the analyses still queued
        self._pool.submit(self.save_learned)
        self._pool.shutdown(wait=True)
        with self._certifying_lock:
            dropped, self._certifying = list(self._certifying.values()), {}
        for done in dropped:
            done.set_result(None)  # a `drain` waiting for them returns
        if dropped:
            log.warning("stopping with %d whole-completion tests not certified: their events are not opened (a "
                        "change still there opens its event at the stream's first whole-completion round after a "
                        "restart)", len(dropped))
        if self._unwritten:
            log.error("stopping with %d drift event updates the store did not take: not stored",
                      len(self._unwritten))
        if self.signal_writes.waiting:
            log.error("stopping with the signals of %d observations the store did not take: not stored (the "
                      "observations are)", len(self.signal_writes.waiting))
        return len(self._unwritten) + len(self.signal_writes.waiting)
