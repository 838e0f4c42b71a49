"""Embeddings for the optional semantic-similarity drift signal, from any OpenAI-compatible endpoint."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import openai

from monitor.providers.scrub import MIN_SECRET, scrub_text

log = logging.getLogger("monitor.embeddings")
WARN_EVERY_S = 300.0
PAUSE_S = 60.0  # after a failed call, embeddings are skipped this long (the analysis thread must not wait on it)


class Embedder:
    """Calls `/embeddings` synchronously (from the analysis thread); on failure returns NaN vectors.

    A NaN similarity is dropped by the drift tests, so an embeddings outage costs the semantic signal only,
    never the other signals of the observation. The calls run on the single analysis thread, so after a failure
    (an endpoint that drops packets costs a whole timeout) no call is made for `pause_s`: every other signal's
    analysis goes on meanwhile instead of queueing behind timeouts.
    """

    def __init__(self, base_url: str, api_key: str | None, model: str, *, timeout: float = 30.0,
                 headers: Mapping[str, str] | None = None, pause_s: float = PAUSE_S,
                 clock: Callable[[], float] = time.monotonic):
        self.model = model
        self._client = openai.OpenAI(base_url=base_url, api_key=api_key or "not-needed", max_retries=0,
                                     timeout=timeout, default_headers=dict(headers or {}))
        self._dim: int | None = None
        self._warned = 0.0
        self._secrets = tuple(k for k in (api_key,) if k and len(k) >= MIN_SECRET)
        self._pause_s = pause_s
        self._clock = clock
        self._paused_until = float("-inf")

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        if self._clock() < self._paused_until:
            return np.full((len(texts), self._dim or 1), np.nan)
        try:
            response = self._client.embeddings.create(model=self.model, input=list(texts))
            vectors = np.asarray([d.embedding for d in sorted(response.data, key=lambda d: d.index)], dtype=float)
            self._dim = vectors.shape[1]
            return vectors
        except (openai.OpenAIError, ValueError, KeyError) as e:
            now = self._clock()
            self._paused_until = now + self._pause_s
            if now - self._warned > WARN_EVERY_S:
                self._warned = now
                log.warning("embeddings failed (%s: %s); the semantic signal is skipped meanwhile (no call for "
                            f"{self._pause_s:g} s after a failure)",
                            type(e).__name__, scrub_text(str(e), self._secrets)[:200])
            return np.full((len(texts), self._dim or 1), np.nan)

    def close(self) -> None:
        self._client.close()
