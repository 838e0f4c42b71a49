"""Where a change began: the single change point of a location shift, estimated from the data.

A window test says the latest observations differ from the reference, not since when. The estimate is the split of
the observations held that best separates before from after: for each candidate first changed observation c, the
reference plus the observations before c against those from c on, scored by the standardised Mann-Whitney
statistic (Pettitt's rank change point, with the reference on the before side), in the change's direction. The
pooled sample is the same for every split, so one ranking serves them all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def shift_start(reference: Sequence[float], scores: Sequence[float], up: bool | None) -> int | None:
    """Index into ``scores`` (oldest first) of the first observation after the change, or None without evidence.

    ``up``: the changed observations score higher (True), lower (False), or either (None). None is returned when no
    split shows a shift that way (every value tied, or every split leaning the other way)."""
    x = np.asarray(scores, dtype=float)
    n = len(x)
    pooled = np.concatenate([np.asarray(reference, dtype=float), x])
    big_n = len(pooled)
    if n == 0 or big_n < 2:
        return None
    _, inverse, counts = np.unique(pooled, return_inverse=True, return_counts=True)
    mid = np.cumsum(counts) - (counts - 1) / 2.0  # mid-rank of each distinct value
    ranks = mid[inverse][big_n - n:]
    after = np.arange(n, 0, -1, dtype=float)  # observations from the split on, for splits 0 .. n-1
    before = big_n - after
    u = np.cumsum(ranks[::-1])[::-1] - after * (after + 1) / 2
    ties = float((counts.astype(float) ** 3 - counts).sum()) / (big_n * (big_n - 1))
    var = before * after / 12.0 * (big_n + 1 - ties)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(var > 0, (u - before * after / 2.0) / np.sqrt(np.where(var > 0, var, 1.0)), 0.0)
    if up is None:
        z = np.abs(z)
    elif not up:
        z = -z
    best = int(np.argmax(z))
    if not math.isfinite(float(z[best])) or z[best] <= 0:
        return None
    return best


def witness(kernel: np.ndarray, n_ref: int) -> np.ndarray:
    """The MMD witness of each completion of a pooled sample (reference first, then the current ones), from their
    kernel matrix: its mean similarity to the reference less its mean similarity to the current sample, itself left
    out. Completions of the changed behaviour score low; those of the reference's, high."""
    k = np.array(kernel, dtype=float)
    np.fill_diagonal(k, np.nan)
    n_cur = len(k) - n_ref
    if n_ref < 2 or n_cur < 2:
        return np.zeros(len(k))
    return np.asarray(np.nanmean(k[:, :n_ref], axis=1) - np.nanmean(k[:, n_ref:], axis=1))
