"""Simulated canary x target streams (`Sim`) and the rate changes the drift benchmarks put to them (`SCEN`).

Not a benchmark itself: `drift_power.py`, `drift_calibration.py`, `drift_cost.py`, `measurement.py` and the tests
(`tests/support/streams.py`) draw their streams from it. Numpy only at import: the comparison worker of
`drift_power.py` runs it under another interpreter.
"""

from __future__ import annotations

import math

import numpy as np

VOCAB = 400
SCEN = {"refusal 2%->10%": (0.02, 0.10), "refusal 5%->20%": (0.05, 0.20), "refusal 0%->5%": (0.0, 0.05)}


def zipf(shift: int = 0, a: float = 1.1) -> np.ndarray:
    """Word probabilities of a model: Zipf over the vocabulary, ranks rotated by shift (a model swap)."""
    p = 1.0 / np.arange(1, VOCAB + 1) ** a
    return np.roll(p / p.sum(), shift)


def completion_tokens(rng: np.random.Generator, probs: np.ndarray, mean_len: float) -> np.ndarray:
    """Sample one completion as word ids with a log-normal length."""
    n = max(3, int(rng.lognormal(math.log(mean_len), 0.3)))
    return rng.choice(VOCAB, size=n, p=probs)


class Sim:
    """A simulated canary x target stream: refusals, lengths, latency, model name, vocabulary."""

    def __init__(self, seed: int, refusal: float = 0.05, mean_len: float = 60, shift: int = 0, model: str = "m-1"):
        self.rng = np.random.default_rng(seed)
        self.refusal, self.mean_len, self.probs, self.model = refusal, mean_len, zipf(shift), model
        self.words = [f"w{i}" for i in range(VOCAB)]
        self.t = 0

    def next(self, canary: str = "c", target: str = "t"):  # noqa: ANN201
        """Return the next Observation."""
        from datetime import UTC, datetime, timedelta

        from monitor.domain import CallResult, ErrorType, FinishReason, Observation, Usage

        self.t += 1
        at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=5 * self.t)
        rng = self.rng
        if rng.random() < 0.01:
            call = CallResult(error_type=ErrorType.TIMEOUT, latency_s=30.0)
            return Observation(canary, target, "sim", "m", at, call, id=f"{canary}-{self.t}")
        refused = rng.random() < self.refusal
        if refused:
            text = "I'm sorry, but I can't help with that request."
        else:
            text = " ".join(self.words[i] for i in completion_tokens(rng, self.probs, self.mean_len))
        fr = FinishReason.LENGTH if rng.random() < 0.02 else FinishReason.STOP
        call = CallResult(text=text, finish_reason=fr, response_model=self.model, system_fingerprint="fp-1",
                          usage=Usage(output_tokens=len(text.split())), latency_s=float(rng.lognormal(0, 0.3)),
                          ttft_s=float(rng.lognormal(-1, 0.3)))
        return Observation(canary, target, "sim", "m", at, call, refusal="full" if refused else "none",
                           id=f"{canary}-{self.t}")
