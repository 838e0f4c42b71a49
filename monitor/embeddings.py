"""Embeddings for the optional semantic-similarity drift signal, from any OpenAI-compatible endpoint."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np
import openai

from monitor.providers.scrub import MIN_SECRET, scrub_text

log = logging.getLogger("monitor.embeddings")
WARN_EVERY_S = 300.0


class Embedder:
    """Calls `/embeddings` synchronously (from the analysis thread); on failure returns NaN vectors.

    A NaN similarity is dropped by the drift tests, so an embeddings outage costs the semantic signal only,
    never the other signals of the observation.
    """

    def __init__(self, base_url: str, api_key: str | None, model: str, *, timeout: float = 30.0):
        self.model = model
        self._client = openai.OpenAI(base_url=base_url, api_key=api_key or "not-needed", max_retries=1,
                                     timeout=timeout)
        self._dim: int | None = None
        self._warned = 0.0
        self._secrets = tuple(k for k in (api_key,) if k and len(k) >= MIN_SECRET)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        try:
            response = self._client.embeddings.create(model=self.model, input=list(texts))
            vectors = np.asarray([d.embedding for d in sorted(response.data, key=lambda d: d.index)], dtype=float)
            self._dim = vectors.shape[1]
            return vectors
        except (openai.OpenAIError, ValueError, KeyError) as e:
            now = time.monotonic()
            if now - self._warned > WARN_EVERY_S:
                self._warned = now
                log.warning("embeddings failed (%s: %s); the semantic signal is skipped meanwhile",
                            type(e).__name__, scrub_text(str(e), self._secrets)[:200])
            return np.full((len(texts), self._dim or 1), np.nan)

    def close(self) -> None:
        self._client.close()
