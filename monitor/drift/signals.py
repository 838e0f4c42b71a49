"""Per-observation signals: the numbers, flags and labels the drift tests watch, computed once per observation.

Failed calls (error_type set) only feed ``error`` and ``error_type``: an outage is not a behaviour change. A
content-policy error also feeds ``refused`` and the checks that judge it (the provider refusing is behaviour);
an ``internal`` error (llm-monitor's own failure) feeds nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from rapidfuzz import fuzz, process

from monitor.domain import ErrorType, Observation

if TYPE_CHECKING:
    from monitor.drift.baseline import Baseline

SignalValue = float | str | bool | None
RefusalFn = Callable[[Observation], bool | None]
EmbedFn = Callable[[Sequence[str]], Any]  # texts -> array-like (n, d)

MAX_TEXT_CHARS = 4000  # similarity and kernels look at a bounded prefix: cost does not grow with length
_WS = re.compile(r"\s+")


def default_refusal(obs: Observation) -> bool | None:
    """Label an observation refused when the refusal detector said partial or full."""
    if obs.refusal is None:
        return None
    return obs.refusal in ("partial", "full")


def normalise(text: str) -> str:
    """Normalise a completion for comparison: lower case, collapsed whitespace, bounded length."""
    return _WS.sub(" ", text.strip().lower())[:MAX_TEXT_CHARS]


def text_similarity(text: str, others: Sequence[str]) -> float | None:
    """Mean normalised Indel similarity (0..1) of one normalised text to others."""
    if not others:
        return None
    scores = process.cdist([text], list(others), scorer=fuzz.ratio, dtype=np.float32)
    return float(scores.mean()) / 100.0


def embed_texts(embed: EmbedFn, texts: Sequence[str]) -> list[list[float]] | None:
    """Embed texts as plain lists; None when the endpoint failed (its NaN vectors must not become a baseline)."""
    vectors = np.asarray(embed(list(texts)), dtype=float)
    if vectors.ndim != 2 or not vectors.size or not np.isfinite(vectors).all():
        return None
    return vectors.tolist()


def usable_embeddings(rows: Sequence[Sequence[float]] | None) -> bool:
    """True when a baseline's embeddings are real vectors (not missing, not an outage's NaN from before)."""
    return bool(rows) and bool(np.isfinite(np.asarray(rows, dtype=float)).all())


def cosine_mean(vec: np.ndarray, others: np.ndarray) -> float:
    """Mean cosine similarity of one vector to the rows of a matrix."""
    v = vec / (np.linalg.norm(vec) or 1.0)
    o = others / np.maximum(np.linalg.norm(others, axis=1, keepdims=True), 1e-12)
    return float((o @ v).mean())


def compute_signals(
    obs: Observation,
    baseline: Baseline | None = None,
    *,
    refusal: RefusalFn | None = None,
    embed: EmbedFn | None = None,
) -> dict[str, SignalValue]:
    """Compute every signal of one observation against a (possibly unfinished or absent) baseline."""
    c = obs.call
    if c.error_type == ErrorType.INTERNAL:
        return {}  # llm-monitor's own failure says nothing about the upstream
    out: dict[str, SignalValue] = {"error": c.error_type is not None}
    refused = (refusal or default_refusal)(obs)
    if c.error_type is not None:
        # A failed call carries only the signals that say something about it: the error, and for a
        # content-policy error (a refusal by the provider) the refusal and the checks that still judge it.
        out["error_type"] = str(c.error_type)
        if c.error_type == ErrorType.CONTENT_FILTER:
            out["refused"] = None if refused is None else bool(refused)
            out.update({f"check:{r.name}": r.passed for r in obs.checks if r.passed is not None})
        return out
    out["refused"] = None if refused is None else bool(refused)
    for check in obs.checks:
        out[f"check:{check.name}"] = check.passed
    out["output_tokens"] = None if c.usage.output_tokens is None else float(c.usage.output_tokens)
    out["output_chars"] = float(len(c.text))
    out["latency_s"] = c.latency_s
    out["ttft_s"] = c.ttft_s
    out["finish_reason"] = str(c.finish_reason) if c.finish_reason is not None else None
    out["response_model"] = c.response_model
    out["system_fingerprint"] = c.system_fingerprint
    out["similarity"] = None
    out["exact_match"] = None
    if baseline is not None and baseline.ready:
        norm = normalise(c.text)
        out["similarity"] = text_similarity(norm, baseline.similarity_texts())
        if baseline.mode_text is not None:
            out["exact_match"] = norm == baseline.mode_text
        if embed is not None and usable_embeddings(baseline.embeddings):
            vec = np.asarray(embed([c.text]), dtype=float)[0]
            others = np.asarray(baseline.embeddings, dtype=float)
            if vec.shape == others.shape[1:] and np.isfinite(vec).all():  # else an outage, or another model
                out["semantic_similarity"] = cosine_mean(vec, others)
    return out


def finite(value: SignalValue) -> float | None:
    """Return a numeric signal value as a finite float, or None."""
    if value is None or isinstance(value, str):
        return None
    x = float(value)
    return x if np.isfinite(x) else None
