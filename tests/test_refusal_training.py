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
    assert np.allclose(np.round(fresh.weights, 5), shipped.weights, atol=2e-4)
