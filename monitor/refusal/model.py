"""The local classifier: a multinomial logistic regression over ``features.extract``, numpy only.

Weights live in ``model.json`` beside this module (regenerate with ``python -m monitor.refusal.train``). The
file stores the dense-feature weights by name and only the hashed buckets that training saw, so it stays small
and a change of cue list is caught at load time instead of silently shifting columns.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from monitor.refusal import features

CLASSES: tuple[str, ...] = ("none", "full", "partial")
MODEL_PATH = Path(__file__).with_name("model.json")


@dataclass(frozen=True, slots=True)
class Probabilities:
    """Class probabilities of one completion: none (complied), full refusal, partial refusal.

    ``label`` calls the completion a refusal when ``refused`` (full + partial) reaches ``threshold`` (chosen by
    cross-validation at training time), then says full unless ``partial`` times ``partial_weight`` (also chosen
    by cross-validation; above 1 because partial refusals are rare and the fit under-calls them) exceeds ``full``.
    """

    none: float
    full: float
    partial: float
    threshold: float = 0.5
    partial_weight: float = 1.0

    @property
    def refused(self) -> float:
        return self.full + self.partial

    @property
    def label(self) -> str:
        """Return none, or the (weighted) likelier refusal class once the refusal probability reaches the threshold."""
        if self.refused < self.threshold:
            return "none"
        return "full" if self.full >= self.partial_weight * self.partial else "partial"


class LocalModel:
    """A fitted weight matrix with its feature layout.

    ``weights`` has one row per feature (``features.N_FEATURES``) and one column per class in ``CLASSES``
    order. Only its non-zero rows are kept (training touches about a tenth of the hashed buckets: 0.4 MB
    instead of 3 MB resident); ``predict`` looks them up by binary search and takes a few hundred microseconds
    at most (text is capped): feature extraction dominates.
    """

    def __init__(self, weights: np.ndarray, meta: dict[str, Any] | None = None) -> None:
        if weights.shape != (features.N_FEATURES, len(CLASSES)):
            raise ValueError(f"weights shape {weights.shape} != {(features.N_FEATURES, len(CLASSES))}")
        rows = np.flatnonzero(np.abs(weights).max(axis=1) > 0)
        self._set(rows, weights[rows], meta)

    @classmethod
    def _sparse(cls, rows: np.ndarray, table: np.ndarray, meta: dict[str, Any] | None) -> LocalModel:
        model = cls.__new__(cls)
        model._set(rows, table, meta)
        return model

    def _set(self, rows: np.ndarray, table: np.ndarray, meta: dict[str, Any] | None) -> None:
        order = np.argsort(rows)
        self._rows = np.append(rows[order], features.N_FEATURES).astype(np.int64)  # a sentinel past every feature
        self._table = np.vstack([table[order], np.zeros((1, len(CLASSES)))]).astype(np.float32)
        self.meta = meta or {}
        self.threshold = float(self.meta.get("params", {}).get("threshold", 0.5))
        self.partial_weight = float(self.meta.get("params", {}).get("partial_weight", 1.0))

    @property
    def weights(self) -> np.ndarray:
        """The full weight matrix (built on demand: for training and its tests, not for predictions)."""
        w = np.zeros((features.N_FEATURES, len(CLASSES)), dtype=np.float32)
        w[self._rows[:-1]] = self._table[:-1]
        return w

    def _lookup(self, idx: list[int]) -> np.ndarray:
        """Weight rows of feature indices; features training never saw weigh zero."""
        pos = np.searchsorted(self._rows, idx)
        pos[self._rows[pos] != idx] = len(self._rows) - 1  # the zero row
        return self._table[pos]

    def predict(self, text: str, prompt: str | None = None) -> Probabilities:
        """Return the class probabilities for one completion (the prompt sharpens premise-rejection cues)."""
        idx, val = features.extract(text, prompt)
        z = np.asarray(val) @ self._lookup(idx)
        z = np.exp(z - z.max())
        p = z / z.sum()
        return Probabilities(float(p[0]), float(p[1]), float(p[2]), self.threshold, self.partial_weight)

    def to_json(self) -> dict[str, Any]:
        """Return the serialisable form: named dense weights plus the non-zero hashed buckets."""
        w = np.round(self.weights, 5)
        dense = {name: w[i].tolist() for i, name in enumerate(features.DENSE_NAMES)}
        hashed_rows = np.flatnonzero(np.abs(w[features.N_DENSE :]).max(axis=1) > 0)
        hashed = {str(int(r)): w[features.N_DENSE + r].tolist() for r in hashed_rows}
        return {
            "format": 1,
            "classes": list(CLASSES),
            "hash_bits": features.HASH_BITS,
            "meta": self.meta,
            "dense": dense,
            "hashed": hashed,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LocalModel:
        """Build a model from ``to_json`` output, checking the feature layout matches this code."""
        if data.get("format") != 1 or tuple(data.get("classes", ())) != CLASSES:
            raise ValueError("unsupported refusal model format")
        if data.get("hash_bits") != features.HASH_BITS:
            raise ValueError(f"model hash_bits {data.get('hash_bits')} != code {features.HASH_BITS}")
        if set(data["dense"]) != set(features.DENSE_NAMES):
            raise ValueError("model dense features do not match monitor.refusal.features.DENSE_NAMES")
        rows = [*range(features.N_DENSE), *(features.N_DENSE + int(r) for r in data["hashed"])]
        table = [*(data["dense"][name] for name in features.DENSE_NAMES), *data["hashed"].values()]
        return cls._sparse(np.array(rows, dtype=np.int64), np.array(table, dtype=np.float32), data.get("meta"))

    def save(self, path: Path = MODEL_PATH) -> None:
        """Write the model as compact JSON."""
        path.write_text(json.dumps(self.to_json(), separators=(",", ":"), sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> LocalModel:
        """Read a model written by ``save``."""
        return cls.from_json(json.loads(path.read_text(encoding="utf-8")))


@lru_cache(maxsize=1)
def shipped_model() -> LocalModel:
    """Return the model shipped in the package, loaded once."""
    return LocalModel.load(MODEL_PATH)
