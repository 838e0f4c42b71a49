"""The training script reproduces the shipped model (needs the XSTest dataset; skipped without it)."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.refusal import train
from monitor.refusal.model import shipped_model
from tests.support.data import require


@pytest.fixture(autouse=True)
def _data() -> None:
    require(train.DEFAULT_XSTEST)


@pytest.mark.slow
def test_training_reproduces_shipped_model() -> None:
    shipped = shipped_model()
    fresh = train.train_shipped(params=shipped.meta["params"])  # skip the grid search; same data, same params
    assert fresh.meta["train_sha256_16"] == shipped.meta["train_sha256_16"]
    # L-BFGS stops at a tolerance, and another numpy/scipy/BLAS build takes another path to it: the weights agree
    # to a few 1e-3 (2.4e-3 seen), not to the last digit. What must not move is what the model decides.
    assert np.abs(np.round(fresh.weights, 5) - shipped.weights).max() < 1e-2
    rows = train.load_xstest(train.DEFAULT_XSTEST)
    same = [fresh.predict(e.text, e.prompt).label == shipped.predict(e.text, e.prompt).label for e in rows]
    assert np.mean(same) >= 0.998, f"{len(same) - sum(same)} of {len(same)} verdicts changed"
