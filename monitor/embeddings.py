"""Embeddings for the optional semantic-similarity drift signal, from any OpenAI-compatible endpoint."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import openai

from monitor.domain import CallResult, ErrorType, Usage, utcnow
from monitor.literal_secrets import header_secrets
from monitor.min_secret import MIN_SECRET
from monitor.providers import sdk_http
from monitor.providers.arrival import KEEPALIVE_EXPIRY_S
from monitor.providers.base import broken_connection, short, too_large, undecodable
from monitor.providers.capped import MIB, ReplyTooLarge, reply_cap_sync
from monitor.providers.connecting import Connecting, never_connected, watch_connecting_sync, watching
from monitor.providers.deadline import deadline_hook, within
from monitor.providers.doubt import OPENAI_NAMES, doubt
from monitor.providers.errorbody import hearing, keep_status_sync
from monitor.providers.openai_compat import note_status, status_failure
from monitor.providers.scrub import scrub_call, scrub_text
from monitor.providers.sse import UNDECODABLE, broken
from monitor.providers.vet import vet
from monitor.tls import default_context

log = logging.getLogger("monitor.embeddings")
WARN_EVERY_S = 300.0
PAUSE_S = 60.0  # after a failed call, embeddings are skipped this long (the analysis thread must not wait on it)


class Embedder:
    """Calls `/embeddings` synchronously (from the analysis thread, or a worker restoring baselines); on failure
    returns NaN vectors.

    A NaN similarity is dropped by the drift tests, so an embeddings outage costs the semantic signal only,
    never the other signals of the observation. The calls run on the single analysis thread, so after a failure
    (an endpoint that drops packets costs a whole timeout) no call is made for `pause_s`: every other signal's
    analysis goes on meanwhile instead of queueing behind timeouts.

    Every call made is passed to `record` (its `CallResult` and start time) so its cost counts in the target's
    spend; while `paused()` says the target's spend cap is reached no call is made (NaN vectors).
    """

    def __init__(self, base_url: str, api_key: str | None, model: str, *, timeout: float = 30.0,
                 headers: Mapping[str, str] | None = None, max_reply_bytes: int = 64 * MIB, pause_s: float = PAUSE_S,
                 clock: Callable[[], float] = time.monotonic,
                 record: Callable[[CallResult, datetime], None] | None = None,
                 paused: Callable[[], bool] = lambda: False, now: Callable[[], datetime] = utcnow):
        self.model = model
        sdk_httpx = sdk_http()[0]
        # the hook that keeps the status of a reply whose body cannot be read, as the providers' (providers.errorbody)
        # and one that ends a reply still trickling in at `timeout` (the library's timeout bounds each read only); the
        # connection steps are noted (providers.connecting): a host never reached is a `connect` failure. No redirect
        # is followed (the SDK's client does): the target's headers stay with it (providers.base.redirect_note)
        http = watch_connecting_sync(keep_status_sync(openai.DefaultHttpxClient(
            timeout=timeout, verify=default_context(sdk_httpx), follow_redirects=False,
            # its calls are made one at a time (the analysis thread); idle ones closed as the providers' are
            limits=sdk_httpx.Limits(max_connections=10, max_keepalive_connections=2, keepalive_expiry=KEEPALIVE_EXPIRY_S),
            event_hooks={"response": [reply_cap_sync(sdk_httpx, max_reply_bytes), deadline_hook(sdk_httpx)]})))
        self._timeout = timeout
        self._client = openai.OpenAI(base_url=base_url, api_key=api_key or "not-needed", max_retries=0,
                                     timeout=timeout, default_headers=dict(headers or {}), http_client=http)
        self._dim: int | None = None
        self._warned: dict[str, float] = {}
        self._secrets = tuple(k for k in (api_key, *header_secrets(headers or {})) if k and len(k) >= MIN_SECRET)
        self._pause_s = pause_s
        self._clock = clock
        self._paused_until = float("-inf")
        self._record = record
        self._capped = paused
        self._now = now

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        if self._clock() < self._paused_until:
            return self._missing(len(texts))
        if self._capped():
            self._warn("the embeddings target's daily spend cap is reached; the semantic signal is skipped until "
                       "00:00 UTC", kind="capped")
            return self._missing(len(texts))
        started, start = self._now(), self._clock()
        try:
            with hearing() as heard, watching() as connecting, within(self._timeout):
                response = self._client.embeddings.create(model=self.model, input=list(texts))
            vectors = np.asarray([d.embedding for d in sorted(response.data, key=lambda d: d.index)], dtype=float)
            if vectors.ndim != 2 or len(vectors) != len(texts):
                raise ValueError(f"{len(vectors)} vectors for {len(texts)} texts")
        except (openai.OpenAIError, ReplyTooLarge, ValueError, KeyError, TypeError) + broken() as e:
            call = failed_call(e, heard.response, connecting, self._timeout)
            said = f"{call.error_type}: {scrub_text(call.error_message or str(e), self._secrets)}"  # typed, as recorded
            self._recorded(call, started, start)
            now = self._clock()
            self._paused_until = now + self._pause_s
            self._warn(f"embeddings failed ({said[:200]}); the semantic signal is skipped meanwhile (no call for "
                       f"{self._pause_s:g} s after a failure)")
            return self._missing(len(texts))
        usage = getattr(response, "usage", None)
        # a prompt_tokens of 0 for texts that are not empty is a placeholder, not a count (providers.doubt)
        call = vet(CallResult(response_model=response.model or None, http_status=200,
                              usage=Usage(input_tokens=getattr(usage, "prompt_tokens", None), output_tokens=0)))
        self._recorded(doubt(call, OPENAI_NAMES, prompt=any(texts)), started, start)
        self._dim = vectors.shape[1]
        return vectors

    def _missing(self, n: int) -> np.ndarray:
        return np.full((n, self._dim or 1), np.nan)

    def _warn(self, message: str, kind: str = "failed") -> None:
        now = self._clock()
        if now - self._warned.get(kind, float("-inf")) > WARN_EVERY_S:  # each kind at most every WARN_EVERY_S
            self._warned[kind] = now
            log.warning("%s", message)

    def _recorded(self, call: CallResult, started: datetime, start: float) -> None:
        call.latency_s = self._clock() - start
        if self._record is None:
            return
        try:
            self._record(scrub_call(call, self._secrets), started)  # some upstreams echo the key in errors
        except Exception:  # counting a call must never cost the analysis
            log.exception("recording an embeddings call failed")

    def close(self) -> None:
        self._client.close()


def failed_call(e: BaseException, heard: Any = None, connecting: Connecting | None = None,
                timeout_s: float = 0.0) -> CallResult:
    """Type a failed embeddings call with the probe calls' error taxonomy; `heard` is the response the call got (its
    status and headers), when the SDK never handed it back: its body broke off, did not decode or stalled;
    `connecting`, the connection step its `timeout_s` ran out in (a `connect` failure, not a `timeout`)."""
    result = CallResult()
    if isinstance(e, openai.APIStatusError):
        heard = e.response
    if heard is not None:
        note_status(result, heard)
    if isinstance(e, ReplyTooLarge):
        too_large(result, e)  # as the providers note it
    elif isinstance(e, openai.APIStatusError):
        result.error_type, result.error_message = status_failure(e)
    elif isinstance(e, openai.APITimeoutError) and result.http_status is None and connecting is not None \
            and (unmade := never_connected(connecting, timeout_s)):
        result.error_type, result.error_message = ErrorType.CONNECT, unmade
    elif isinstance(e, openai.APITimeoutError):
        came = "" if result.http_status is None else f": HTTP {result.http_status} came, its body did not end"
        result.error_type, result.error_message = ErrorType.TIMEOUT, f"request timed out{came}"
    elif isinstance(e, openai.APIConnectionError) and isinstance(e.__cause__, UNDECODABLE):
        # a 200's body (an error status's is an `UnreadStatus`), read by the SDK inside the request it wraps
        result.error_type, result.error_message = undecodable(e.__cause__, result.http_status)
    elif isinstance(e, (openai.APIConnectionError, *broken())):  # a SOCKS handshake broken too (socksio's)
        result.error_type, message = broken_connection(e, result.http_status)
        result.error_message = short(message)
    else:
        result.error_type, result.error_message = ErrorType.BAD_RESPONSE, short(f"malformed response: {e}")
    return result
