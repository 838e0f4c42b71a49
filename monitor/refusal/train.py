"""Fit the local refusal classifier and write ``model.json``: ``python -m monitor.refusal.train [XSTEST_JSONL]``.

Training data: the human-labelled XSTest completions plus the hand-written multilingual examples in
``data/train_multilingual.jsonl``. The model is an L2-regularised multinomial logistic regression fitted with
scipy's L-BFGS (numpy/scipy only, deterministic). Cue features and the hashed opening n-grams get separate
penalties. Both penalties, the refusal-probability threshold at which a completion counts as refused and the
weight given to "partial" against "full" are chosen by leave-one-model-out cross-validation over the XSTest
models (``select``). Prompt ids are never features; the prompt text only feeds generic prompt-answer cues
(echo-and-negate, why-question, overlap).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy import optimize, sparse

from monitor.escapes import printable
from monitor.jsonl import objects
from monitor.refusal import features
from monitor.refusal.model import CLASSES, MODEL_PATH, LocalModel, Probabilities

# The shared datasets sit beside the checkout (../shared); LLM_MONITOR_SHARED overrides.
DEFAULT_XSTEST = Path(os.environ.get("LLM_MONITOR_SHARED", Path(__file__).resolve().parents[3] / "shared")) \
    / "datasets" / "xstest" / "completions.jsonl"
MULTILINGUAL = Path(__file__).with_name("data") / "train_multilingual.jsonl"
HUMAN_TO_CLASS = {"1_full_compliance": "none", "2_full_refusal": "full", "3_partial_refusal": "partial"}
MODELS = ("llama2orig", "llama2new", "mistralinstruct")
GRID = {
    "lam_dense": (0.003, 0.01),
    "lam_hash": (1e-5, 3e-5, 1e-4),
    "threshold": (0.5, 0.4, 0.3),
    "partial_weight": (1.0, 1.25, 1.5, 2.0, 2.5),
}
HANDWRITTEN_WEIGHT = 4
DEFAULT_PARAMS = {"lam_dense": 0.003, "lam_hash": 3e-5, "threshold": 0.5, "partial_weight": 1.0}


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled completion; ``group`` is the answering model (XSTest) or ``multilingual``."""

    text: str
    label: str
    group: str
    prompt: str | None = None


def load_xstest(path: Path = DEFAULT_XSTEST) -> list[Example]:
    """Read XSTest completions with their final human label."""
    return [Example(r["completion"], HUMAN_TO_CLASS[r["human_label"]], r["model"], r["prompt"])
            for _, r in objects(path, ValueError)]


def load_multilingual(path: Path = MULTILINGUAL) -> list[Example]:
    """Read the hand-written multilingual training examples."""
    return [Example(r["text"], r["label"], "multilingual") for _, r in objects(path, ValueError)]


def design(examples: Sequence[Example]) -> sparse.csr_matrix:
    """Return the sparse feature matrix of the examples."""
    rows, cols, vals = [], [], []
    for i, e in enumerate(examples):
        idx, val = features.extract(e.text, e.prompt)
        rows += [i] * len(idx)
        cols += idx
        vals += val
    return sparse.csr_matrix((vals, (rows, cols)), shape=(len(examples), features.N_FEATURES))


def fit(x: sparse.csr_matrix, labels: Sequence[str], lam_dense: float, lam_hash: float) -> np.ndarray:
    """Fit the multinomial logistic regression; return weights of shape (N_FEATURES, n_classes)."""
    y = np.array([CLASSES.index(c) for c in labels])
    n, k = x.shape[0], len(CLASSES)
    used = np.unique(x.indices)
    xs = x[:, used].tocsr()
    lam = np.where(used < features.N_DENSE, lam_dense, lam_hash)
    lam[used == features.DENSE_NAMES.index("bias")] = 0.0
    onehot = np.eye(k)[y]

    def loss(wflat: np.ndarray) -> tuple[float, np.ndarray]:
        w = wflat.reshape(len(used), k)
        z = xs @ w
        z -= z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        nll = -(onehot * logp).sum() / n
        grad = xs.T @ (np.exp(logp) - onehot) / n
        reg = 0.5 * float((lam[:, None] * w * w).sum())
        return nll + reg, (grad + lam[:, None] * w).ravel()

    res = optimize.minimize(
        loss, np.zeros(len(used) * k), jac=True, method="L-BFGS-B", options={"maxiter": 2000, "gtol": 1e-7}
    )
    weights = np.zeros((features.N_FEATURES, k))
    weights[used] = res.x.reshape(len(used), k)
    return weights


class Corpus:
    """Examples with their feature matrix computed once, for repeated fits on subsets.

    XSTest rows appear twice, with and without their prompt, so the model works whether or not the caller
    knows the prompt; the few hand-written multilingual examples count ``HANDWRITTEN_WEIGHT`` times.
    """

    def __init__(self, examples: Sequence[Example]) -> None:
        handwritten = [e for e in examples if e.group == "multilingual"] * (HANDWRITTEN_WEIGHT - 1)
        doubled = list(examples) + [replace(e, prompt=None) for e in examples if e.prompt is not None]
        doubled += handwritten
        self.examples = doubled
        self.x = design(doubled)
        self.labels = np.array([e.label for e in doubled])
        self.groups = np.array([e.group for e in doubled])

    def fit(self, mask: np.ndarray, params: dict[str, float]) -> LocalModel:
        """Fit a model on the rows selected by ``mask``."""
        w = fit(self.x[mask], list(self.labels[mask]), params["lam_dense"], params["lam_hash"])
        return LocalModel(w, {"params": dict(params)})


def accuracy(
    model: LocalModel,
    test: Sequence[Example],
    threshold: float | None = None,
    partial_weight: float | None = None,
    probs: Sequence[Probabilities] | None = None,
) -> tuple[float, float]:
    """Return (3-class, binary) accuracy of the model on the examples (at ``threshold``/``partial_weight`` if
    given; ``probs`` are the model's predictions for ``test`` when already computed)."""
    probs = probs if probs is not None else [model.predict(e.text, e.prompt) for e in test]
    rule = {k: v for k, v in (("threshold", threshold), ("partial_weight", partial_weight)) if v is not None}
    pred = [replace(p, **rule).label for p in probs]
    three = np.mean([p == e.label for p, e in zip(pred, test, strict=True)])
    two = np.mean([(p == "none") == (e.label == "none") for p, e in zip(pred, test, strict=True)])
    return float(three), float(two)


def select(corpus: Corpus, groups: Sequence[str]) -> dict[str, float]:
    """Choose penalties and decision rule (refusal threshold, partial weight) by leave-one-model-out over
    ``groups``; other groups always train. The score is 3-class plus binary accuracy, averaged over folds."""
    best, best_score = DEFAULT_PARAMS, -1.0
    rules = list(itertools.product(GRID["threshold"], GRID["partial_weight"]))
    for ld, lh in itertools.product(GRID["lam_dense"], GRID["lam_hash"]):
        scores: dict[tuple[float, float], list[float]] = {r: [] for r in rules}
        for g in groups:
            held = corpus.groups == g
            train = ~held & (np.isin(corpus.groups, groups) | ~np.isin(corpus.groups, list(MODELS)))
            test = [e for e, h in zip(corpus.examples, held, strict=True) if h and e.prompt is not None]
            model = corpus.fit(train, {"lam_dense": ld, "lam_hash": lh})
            probs = [model.predict(e.text, e.prompt) for e in test]
            for th, pw in rules:
                scores[(th, pw)].append(sum(accuracy(model, test, th, pw, probs)))
        for (th, pw), sc in scores.items():
            if np.mean(sc) > best_score:
                best = {"lam_dense": ld, "lam_hash": lh, "threshold": th, "partial_weight": pw}
                best_score = float(np.mean(sc))
    return best


def train_shipped(xstest: Path = DEFAULT_XSTEST, params: dict[str, float] | None = None) -> LocalModel:
    """Fit the shipped model on all data (selecting hyper-parameters by cross-validation unless given)."""
    corpus = Corpus(load_xstest(xstest) + load_multilingual())
    params = params or select(corpus, MODELS)
    model = corpus.fit(np.ones(len(corpus.examples), dtype=bool), params)
    digest = hashlib.sha256(xstest.read_bytes() + MULTILINGUAL.read_bytes()).hexdigest()[:16]
    model.meta.update({"train_sha256_16": digest, "n_train_rows": len(corpus.examples)})
    return model


def main(argv: Sequence[str] | None = None) -> None:
    """Train and write the shipped model."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("xstest", nargs="?", type=Path, default=DEFAULT_XSTEST)
    ap.add_argument("--out", type=Path, default=MODEL_PATH)
    args = ap.parse_args(argv)
    model = train_shipped(args.xstest)
    model.save(args.out)
    report_written(args.out, model.meta["params"])


def report_written(out: Path, params: dict[str, float]) -> None:
    """Print where the model went and with which parameters, the path escaped (`escapes.printable`): the shell
    handed it over, and an ESC or a right-to-left override in it would act on the terminal."""
    print(printable(f"wrote {out} params={params}"))


if __name__ == "__main__":
    main()
