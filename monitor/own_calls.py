"""The daemon's own calls: the judges' and the semantic signal's embeddings calls.

They are made on worker threads (checks, the analysis thread) and recorded on the event loop like probe calls,
under canaries `_judge` and `_embeddings` (see `domain.JUDGE_CANARY`): stored, priced, counted in the target's
spend and cap, measured. `settled` waits for the recordings scheduled so far; the app waits for them at shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import Future
from datetime import datetime
from typing import Any

from monitor.config.loader import Config
from monitor.config.models import Prices, Target
from monitor.config.secrets import resolve_api_key
from monitor.domain import EMBEDDINGS_CANARY, JUDGE_CANARY, CallResult
from monitor.embeddings import Embedder
from monitor.pricing import embeddings_prices
from monitor.providers.base import Provider
from monitor.runner import Runner

log = logging.getLogger("monitor.own_calls")


class OwnCalls:
    """Records the daemon's own calls from the threads that make them; builds the embedder."""

    def __init__(self, runner: Callable[[], Runner], config: Callable[[], Config], environ: Mapping[str, str],
                 now: Callable[[], datetime]):
        self._runner, self._config, self._environ, self._now = runner, config, environ, now
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: set[Future[None]] = set()
        self._lock = threading.Lock()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def judge_call(self, target_id: str, provider: Provider, call: CallResult, started: datetime) -> None:
        """Record a judge's call (from a worker thread; the verdict does not wait for it)."""
        self._later(self._record(JUDGE_CANARY, target_id, call, started, provider=provider))

    def embedder(self, config: Config) -> Embedder | None:
        """The embedder of `config.drift.embeddings` (None without one); raises SecretError for a missing key."""
        emb = config.drift.embeddings
        if emb is None:
            return None
        target, priced = config.target(emb.target), embeddings_prices(emb)

        def record(call: CallResult, started: datetime) -> None:  # from the analysis thread
            self._later(self._record(EMBEDDINGS_CANARY, emb.target, call, started, operation="embeddings",
                                     prices=priced, request_model=emb.model))

        def capped() -> bool:  # the target as configured now (a reload may change its cap, or remove it)
            now = next((t for t in self._config().targets if t.id == emb.target), target)
            return self._runner().spend.over_cap_now(now)

        return Embedder(target.base_url, resolve_api_key(target, self._environ), emb.model, timeout=target.timeout,
                        headers=target.headers, max_reply_bytes=target.max_reply_bytes, record=record, paused=capped,
                        now=self._now)

    async def settled(self) -> None:
        """Wait until every call recorded so far is stored and counted."""
        while True:
            with self._lock:
                pending = list(self._pending)
            if not pending:
                return
            await asyncio.gather(*(asyncio.wrap_future(f) for f in pending), return_exceptions=True)

    def _later(self, coro: Coroutine[Any, Any, None]) -> None:
        if self._loop is None or self._loop.is_closed():
            coro.close()
            log.warning("a call could not be recorded: the daemon is not running")
            return
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)

    async def _record(self, canary_id: str, target_id: str, call: CallResult, started: datetime, *,
                      provider: Provider | None = None, operation: str = "chat",
                      prices: Callable[[CallResult], Prices | None] | None = None,
                      request_model: str | None = None) -> None:
        try:
            runner = self._runner()
            target: Target = self._config().target(target_id)
            await runner.record_call(canary_id, target, provider or runner.providers[target_id], call, started,
                                     operation=operation, prices=prices, request_model=request_model)
        except Exception:  # the call's result is used already; a failure to count it is logged, not raised
            log.exception("recording a %s call to %s failed", canary_id, target_id)


__all__ = ["OwnCalls"]
