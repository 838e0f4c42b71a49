"""One probe run: a canary's samples against one target, each call turned into a stored observation.

Upstream failures never raise out of here: they are observations with an ``error_type``. Work that may block
(checks that run code, the database) runs in worker threads so the event loop keeps timing other calls.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from opentelemetry.trace import Tracer

from monitor.concurrency import Limit
from monitor.config.models import Canary, Prices, Target
from monitor.domain import RUN_SPEND_CAP, CallResult, ErrorType, Observation, new_id, utcnow
from monitor.doubts import DoubtWarnings
from monitor.pricing import cost_usd, default_prices, prices_for
from monitor.providers.base import ChatRequest, Provider, short
from monitor.providers.partial import interrupted, watching_partial
from monitor.providers.scrub import scrub_text
from monitor.spend import Spend
from monitor.store import Run, Store
from monitor.telemetry.metrics import Metrics
from monitor.telemetry.tracing import end_call_span, start_call_span
from monitor.unpriced import UnpricedWarnings
from monitor.unsaved import Unsaved

log = logging.getLogger("monitor.runner")

Annotator = Callable[[Observation, Canary], None]
Listener = Callable[[Observation], Awaitable[None] | None]


def build_request(canary: Canary, target: Target) -> ChatRequest:
    """Merge target defaults and canary overrides into one chat request."""
    p = target.params.merged(canary.params)
    return ChatRequest(
        model=target.model, messages=[m.model_dump(exclude={"cache"}) for m in canary.messages],
        stream=target.stream, temperature=p.temperature, max_tokens=p.max_tokens, top_p=p.top_p, seed=p.seed,
        tools=canary.tools, cache={i: m.cache for i, m in enumerate(canary.messages) if m.cache is not None},
        timeout_s=target.timeout,
    )


def chat_prices(target: Target) -> Callable[[CallResult], Prices | None]:
    """The prices of a chat call to `target`: its own `prices`, else the table's for the model that answered.

    The requested model only stands in when the server names none: a model the table does not know answered,
    so its cost is unknown, not the requested model's."""
    return lambda call: target.prices or prices_for(call.response_model or target.model, default_prices())


def output_rate(call: CallResult) -> float | None:
    """Server-reported output tokens over the time after the first chunk (a chunk is not a token).

    Output tokens include reasoning tokens. Streamed before the answer, they count from the first chunk of
    reasoning; hidden (OpenAI's o-series), they were written before the first chunk, so only the rest count.
    Reasoning neither streamed nor counted apart (Anthropic's redacted thinking) leaves the rate unknown: its
    tokens would count over the answer's time alone, and from request start the wait for the first token (queue,
    prompt) would count as writing time. A call not streamed has no first chunk: no rate either.
    """
    tokens = call.usage.output_tokens
    first = call.first_output_s if call.first_output_s is not None else call.ttft_s
    if not call.ok or tokens is None or call.usage.estimated or first is None or call.latency_s is None \
            or call.unseen_reasoning:
        return None
    if call.ttft_s is not None and first >= call.ttft_s:  # no reasoning came before the answer
        tokens -= call.usage.reasoning_tokens or 0
    span = call.latency_s - first
    if span <= 0 or tokens < 2:
        return None
    return tokens / span


@dataclass
class Runner:
    """Runs canaries against targets; owns the per-target concurrency limits; counts spend (`Spend`)."""

    store: Store
    metrics: Metrics
    tracer: Tracer
    providers: dict[str, Provider]
    now: Callable[[], datetime] = utcnow
    annotate: Annotator | None = None
    listeners: list[Listener] = field(default_factory=list)
    replica: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    _limits: dict[str, Limit] = field(default_factory=dict)
    _tasks: set[asyncio.Task[object]] = field(default_factory=set)
    stopping: bool = False  # set by shutdown: calls not sent yet are not sent (those on the wire get the grace)
    not_sent: int = 0  # samples a shutdown kept from being sent
    spend: Spend = field(init=False)  # today's spend per target and the daily cap
    unsaved: Unsaved = field(init=False)
    unpriced: UnpricedWarnings = field(default_factory=UnpricedWarnings)  # calls whose cost is unknown, said once
    doubts: DoubtWarnings = field(default_factory=DoubtWarnings)  # token counts an answer contradicts, said once

    def __post_init__(self) -> None:
        self.spend = Spend(self.store, self.metrics, self.now)
        self.unsaved = Unsaved(self.spend.save, self.store.save_run, self._notify, self.metrics)

    def set_providers(self, providers: dict[str, Provider], targets: list[Target]) -> None:
        """Swap in the providers of a (re)loaded config; limits follow each target's max_concurrency. A target's
        limit is kept and resized, not built afresh: the calls in flight at a reload still hold their slots."""
        self.providers = providers
        kept = self._limits  # a removed target's limit goes (a call of it still in flight releases its own)
        for t in targets:
            if t.id in kept:
                kept[t.id].resize(t.max_concurrency)
        self._limits = {t.id: kept.get(t.id) or Limit(t.max_concurrency) for t in targets}

    def limit(self, target_id: str) -> Limit:
        """The target's concurrency limit (max_concurrency), shared by its probe calls and its judge calls."""
        return self._limits.setdefault(target_id, Limit(1))

    @property
    def in_flight(self) -> set[asyncio.Task[object]]:
        """Scheduled runs still going (registered with `track`)."""
        return {t for t in self._tasks if not t.done()}

    def track(self, task: asyncio.Task[object] | None) -> None:
        """Remember a scheduled run's task so shutdown can wait for it."""
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def run(self, canary: Canary, target: Target, *, trigger: str = "schedule") -> list[Observation]:
        """Run all samples of `canary` against `target`; return the observations (stored already).

        A run whose target a reload removed is cancelled: one queued before the reload (a scheduled job holds the
        canary and target it was given) starts nothing, one under way sends no call that had not begun."""
        if target.id not in self.providers:
            log.info("run of %s@%s cancelled: a reload removed the target", canary.id, target.id)
            return []
        if await self.spend.over_cap(target):
            if trigger == "schedule":  # counted like the scheduler's own skips; the pause itself is logged once
                self.metrics.runs_skipped.inc(canary.id, target.id, RUN_SPEND_CAP)
            return []
        run = Run(id=new_id(), canary=canary.id, target=target.id, started_at=self.now(), trigger=trigger,
                  replica=self.replica, samples=canary.samples)
        await self.unsaved.put(run)  # stored as running first: a crash mid-run leaves it so, not missing
        try:
            results = await asyncio.gather(*(self._sample(canary, target, run, i) for i in range(canary.samples)),
                                           return_exceptions=True)
        except asyncio.CancelledError:
            run.finished_at, run.status = self.now(), "cancelled"
            self.unsaved.put_now(run)  # without awaiting: we are being cancelled (stored from a worker thread)
            raise
        observations = [r for r in results if isinstance(r, Observation)]
        if run.status == "cancelled" and target.id not in self.providers:  # `_sample` sent nothing more to it
            log.info("run of %s@%s cancelled: a reload removed the target", canary.id, target.id)
        for r in results:
            if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError):
                log.error("probe %s@%s crashed: %r", canary.id, target.id, r, exc_info=r)
        run.finished_at = self.now()
        run.failures = sum(not o.ok for o in observations)
        cancelled = any(isinstance(r, asyncio.CancelledError) for r in results)
        run.status = "cancelled" if cancelled or run.status == "cancelled" else "done"
        await self.unsaved.put(run)  # finished: each observation is already stored (or waits)
        self.metrics.run_summary(canary.id, target.id, observations)
        if cancelled:
            raise asyncio.CancelledError
        return observations

    async def _sample(self, canary: Canary, target: Target, run: Run, index: int) -> Observation | None:
        provider = self.providers.get(target.id)
        if provider is None:  # a reload removed the target while the run began (it waited for the store)
            run.status = "cancelled"
            return None
        request = build_request(canary, target)
        async with self._limits.setdefault(target.id, Limit(target.max_concurrency)):
            if target.id not in self.providers:  # removed by a reload while this one waited its turn: not sent
                run.status = "cancelled"
                return None
            if self.spend.over_cap_now(target):  # earlier samples' costs reached the cap while this one waited its turn
                return None
            if self.stopping:  # shutdown began while this one waited its turn: the grace is for calls on the wire
                self.not_sent += 1
                run.status = "cancelled"
                return None
            started = self.now()
            self.metrics.in_flight.enter(target.id)
            span = start_call_span(self.tracer, provider.name, provider.server_address, request, canary.id,
                                   target.id)
            try:
                with watching_partial() as partial:
                    call = await provider.complete(request)
            except asyncio.CancelledError:
                # the grace period ran out: stored as cancelled, with what a streamed answer had said so far
                call = interrupted(partial, request.stream, provider.secrets)
                obs = self._observation(canary.id, target, run.id, index, started, call, provider.name,
                                        chat_prices(target)(call))
                end_call_span(span, call)
                self.unsaved.put_now(obs)  # without awaiting: we are being cancelled (stored from a worker thread)
                self.metrics.observe(obs, provider.name, provider.server_address)
                raise
            except Exception as e:  # a bug in a provider must not kill the daemon
                # its traceback scrubbed as the observation is: what a bug raised may carry the request's key
                log.error("provider %s raised instead of returning an observation\n%s", target.provider,
                          scrub_text("".join(traceback.format_exception(e)).rstrip(), provider.secrets))
                call = CallResult(error_type=ErrorType.INTERNAL, error_message=short(scrub_text(
                    f"internal: {e!r}", provider.secrets)), stream=request.stream)
            finally:
                self.metrics.in_flight.leave(target.id)
            end_call_span(span, call)
        prices = chat_prices(target)(call)
        obs = self._observation(canary.id, target, run.id, index, started, call, provider.name, prices)
        self.doubts.call(target, obs)
        self.unpriced.call(target, obs, prices)
        self.spend.expect(target, obs)  # before the next await: the next sample checks the cap with this cost in
        if self.annotate is not None:  # failed calls too: a content-policy 400 is a refusal
            try:
                await asyncio.to_thread(self.annotate, obs, canary)
            except asyncio.CancelledError:
                # shutdown ran out of grace while the checks ran (code_runs takes seconds): the call was made and paid
                # for, so it is stored and counted as it is, without the checks that had not finished
                self.unsaved.put_now(obs)  # without awaiting: we are being cancelled (stored from a worker thread)
                self.metrics.observe(obs, provider.name, provider.server_address)
                raise
            except Exception:
                log.exception("quality checks failed on %s@%s", canary.id, target.id)
        try:
            stored = await self.unsaved.put(obs)  # or held until the store answers, then passed to the listeners
        except asyncio.CancelledError:  # the grace ran out as it was written: the write goes on (see `put`)
            self.metrics.observe(obs, provider.name, provider.server_address)
            raise
        self.metrics.observe(obs, provider.name, provider.server_address)
        self.spend.check_now(target, obs)  # paused (and alerted) now, not at the next run
        if stored:
            await self._notify(obs)
        return obs

    async def record_call(self, canary_id: str, target: Target, provider: Provider, call: CallResult,
                          started: datetime, *, operation: str = "chat",
                          prices: Callable[[CallResult], Prices | None] | None = None,
                          request_model: str | None = None) -> Observation:
        """Store, price and measure a call made outside a canary run (a judge's, an embeddings call): its cost counts
        in the target's spend and cap like a probe call's. No run record, no checks, no drift analysis.

        `prices` and `request_model` are for a call not to the target's chat model (an embeddings model)."""
        priced = (prices or chat_prices(target))(call)
        obs = self._observation(canary_id, target, "", 0, started, call, provider.name, priced,  # no run: run_id ""
                                request_model)
        self.doubts.call(target, obs)
        self.unpriced.call(target, obs, priced)
        await self.unsaved.put(obs)
        self.metrics.observe(obs, provider.name, provider.server_address, operation)
        self.spend.check_now(target, obs)
        return obs

    async def _notify(self, obs: Observation) -> None:
        """Pass a stored observation of a canary run to the listeners (drift analysis)."""
        if not obs.run_id:  # a judge's call (record_call): no analysis
            return
        for listener in self.listeners:
            try:
                maybe = listener(obs)
                if maybe is not None:
                    await maybe
            except Exception:
                log.exception("observation listener failed")

    def _observation(self, canary_id: str, target: Target, run_id: str, index: int, started: datetime,
                     call: CallResult, provider: str, prices: Prices | None,
                     request_model: str | None = None) -> Observation:
        return Observation(
            canary=canary_id, target=target.id, provider=provider,
            request_model=request_model or target.model, started_at=started, call=call, run_id=run_id, sample_index=index,
            cost_usd=cost_usd(call.usage, prices), output_tokens_per_s=output_rate(call),
        )
