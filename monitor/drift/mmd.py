"""Whole-completion two-sample test: MMD with a string kernel and a permutation null.

Follows Gao, Liang & Guestrin (ICLR 2025, "Model Equality Testing"): compare two samples of completions with
the maximum mean discrepancy under a string kernel, calibrated by permuting the pooled sample. Kernels: a
character n-gram spectrum kernel (cosine-normalised hashed counts) and the paper's Hamming kernel over token
positions. A few hundred permutations and a moment-matched Gamma tail screen; decisions at a small level are
confirmed by a permutation test large enough for that level (the Gamma tail alone was anti-conservative), which
stops early once it can no longer reject (Besag & Clifford 1991, "Sequential Monte Carlo p-values"): the usual
outcome without a change, so a large test costs little on average. With a change it draws them all (seconds):
``mmd_screen`` leaves that test as an ``Exact`` that ``certify`` runs later, on another thread if need be, with the
same generator, so it decides as ``mmd_test`` inline (the daemon does, ``monitor.drift.certification``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from monitor.drift import pvalues
from monitor.drift._lean_scipy import sparse
from monitor.drift.relabellings import exact_relabellings, reachable

DIM = 4096
HAMMING_LEN = 64
_TOKEN = re.compile(r"\w+|[^\w\s]")
_MIX = np.uint64(0x9E3779B97F4A7C15)
BATCH = 4096  # relabellings drawn at a time


@dataclass(frozen=True, slots=True)
class TextFeature:
    """Kernel features of one completion: sparse hashed n-gram counts (unit norm) and token ids."""

    idx: np.ndarray
    val: np.ndarray
    tokens: np.ndarray


def _hash(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return ((x.astype(np.uint64) * _MIX) >> np.uint64(40)).astype(np.int64)


def features(text: str, n: int = 3) -> TextFeature:
    """Compute the kernel features of one (normalised, bounded) completion."""
    b = np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.uint64)
    if len(b) >= n:
        code = np.zeros(len(b) - n + 1, dtype=np.uint64)
        for i in range(n):
            code = code * np.uint64(257) + b[i : len(b) - n + 1 + i]
        idx, cnt = np.unique(_hash(code + np.uint64(1)) % DIM, return_counts=True)
        val = cnt.astype(np.float64)
        val /= np.linalg.norm(val)
    else:
        idx, val = np.zeros(1, dtype=np.int64), np.ones(1)
    words = _TOKEN.findall(text)[:HAMMING_LEN]
    tok = np.full(HAMMING_LEN, -1, dtype=np.int64)
    if words:
        h = np.array([_stable(w) for w in words], dtype=np.uint64)
        tok[: len(words)] = _hash(h)
    return TextFeature(idx.astype(np.int64), val, tok)


def _stable(word: str) -> int:
    h = 1469598103934665603
    for ch in word.encode("utf-8"):
        h = ((h ^ ch) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


def gram(feats: Sequence[TextFeature], kernel: str) -> np.ndarray:
    """Return the kernel matrix of a pooled sample."""
    if kernel == "hamming":
        t = np.stack([f.tokens for f in feats])
        return (t[:, None, :] == t[None, :, :]).mean(axis=2)
    indptr = np.cumsum([0] + [len(f.idx) for f in feats])
    x = sparse.csr_matrix(
        (np.concatenate([f.val for f in feats]), np.concatenate([f.idx for f in feats]), indptr),
        shape=(len(feats), DIM),
    )
    return np.asarray((x @ x.T).toarray())


@dataclass(frozen=True, slots=True)
class MmdResult:
    """MMD^2 of two samples with its permutation p-value."""

    mmd2: float
    p_value: float
    p_permutation: float
    n0: int
    n1: int
    relabellings: int = 0  # drawn in all: the screening ones and the exact test's (which may stop early)


def _null(k: np.ndarray, w: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Return MMD^2 of ``count`` random relabellings of the pooled sample (vectorised)."""
    out = []
    for start in range(0, count, BATCH):
        b = min(BATCH, count - start)
        a = w[rng.random((b, len(w))).argsort(axis=1)]
        out.append(((a @ k) * a).sum(axis=1))
    return np.concatenate(out) if out else np.zeros(0)


class Stopped(Exception):
    """An exact test given up on before its decision (``stop`` said so: the daemon is shutting down)."""


def _exact(k: np.ndarray, w: np.ndarray, observed: float, alpha: float, rng: np.random.Generator,
           stop: Callable[[], bool] | None = None) -> tuple[float, int]:
    """Permutation p-value of ``observed`` for a decision at ``alpha``, and the relabellings it drew.

    Up to B = ``exact_relabellings(alpha)`` relabellings, p = (1 + E) / (1 + B) with E those at least as extreme.
    It stops as soon as E is so large that p cannot fall to ``alpha`` any more: the decision is the full test's
    (only an acceptance comes early), so the level holds exactly. The p-value then is Besag-Clifford's E / L, L the
    relabellings drawn, raised to (1 + E) / (1 + B) if below it: valid, and above ``alpha`` as the decision is.
    ``stop``, asked before each batch, gives the test up (raises ``Stopped``); it draws nothing, so a test it never
    stops decides as one without it.
    """
    total, exceed, seen = exact_relabellings(alpha), 0, 0
    while seen < total:
        if stop is not None and stop():
            raise Stopped
        b = min(BATCH, total - seen)
        for i in np.flatnonzero(_null(k, w, b, rng) >= observed - 1e-12):
            exceed += 1
            if (1.0 + exceed) / (total + 1.0) > alpha:
                drawn = seen + int(i) + 1
                return max(exceed / drawn, (1.0 + exceed) / (total + 1.0)), drawn
        seen += b
    return (1.0 + exceed) / (total + 1.0), total


@dataclass(eq=False, slots=True)
class Exact:
    """A screened test whose decision waits for its exact permutation test: everything ``certify`` needs (the
    pooled sample's kernel matrix, its weights, the statistic, the level and the generator where the screening left
    it), nothing of the stream it came from, so it can run later and on another thread and decide as inline.

    The matrix (n x n floats: ~135 KB at 130 completions) can be let go while the test waits (``shed``) when the
    test knows how to build it again (``rebuild``: from the texts, the same features and code, so the same matrix
    and the same decision): many tests waiting (a model swap over a fleet) then hold no matrix each."""

    k: np.ndarray | None  # None: shed, built again by `matrix`
    w: np.ndarray
    observed: float
    alpha: float
    rng: np.random.Generator
    n0: int
    n1: int
    screened: MmdResult  # the screening's figures (its p-value is the Gamma tail's estimate)
    rebuild: Callable[[], np.ndarray] | None = None  # builds `k` again (None: it is kept)

    def shed(self) -> None:
        """Let the kernel matrix go until the test runs, if `rebuild` can build it again."""
        if self.rebuild is not None:
            self.k = None

    def matrix(self) -> np.ndarray:
        """The pooled sample's kernel matrix: kept, or built again."""
        if self.k is not None:
            return self.k
        assert self.rebuild is not None, "a shed matrix is built again by `rebuild`"
        return self.rebuild()


def certify(test: Exact, stop: Callable[[], bool] | None = None) -> MmdResult:
    """Run the exact permutation test a screening left (``mmd_screen``): the result ``mmd_test`` returns inline.
    Raises ``Stopped`` if ``stop`` gives it up."""
    p, more = _exact(test.matrix(), test.w, test.observed, test.alpha, test.rng, stop)
    return MmdResult(test.observed, p, p, test.n0, test.n1, test.screened.relabellings + more)


@dataclass(frozen=True, slots=True)
class MmdOptions:
    """How one whole-completion test runs: its kernel (``spectrum`` or ``hamming``), the screening's relabellings,
    the generator's seed and the level its exact permutation test must reach (None: the screening decides)."""

    kernel: str
    permutations: int
    seed: int
    alpha: float | None


def mmd_test(
    ref: Sequence[TextFeature],
    cur: Sequence[TextFeature],
    *,
    kernel: str = "spectrum",
    permutations: int = 200,
    seed: int = 0,
    alpha: float | None = None,
) -> MmdResult | None:
    """Permutation MMD two-sample test of two samples of completions.

    ``permutations`` relabellings give a screening p-value; below 0.05 a moment-matched Gamma tail estimates
    it. The Gamma tail is an approximation that can be anti-conservative far out, so when it says the result
    is near or below ``alpha`` (within 20x) the decision is made by a plain permutation test with enough
    relabellings to reach that level (``_exact``: 2/alpha, at least 1,000, at most
    ``relabellings.MAX_RELABELLINGS``; it stops early once it cannot reject): the p-value returned is then exact
    (valid at any level) and the approximation only decides when to spend the extra work. At a level out of the
    exact test's reach (``reachable``) the screening's permutation p-value is returned: the test cannot reject
    there (the daemon and ``check-config`` say so).
    """
    r = mmd_screen(ref, cur, MmdOptions(kernel, permutations, seed, alpha))
    return certify(r) if isinstance(r, Exact) else r


def mmd_screen(ref: Sequence[TextFeature], cur: Sequence[TextFeature], options: MmdOptions) -> MmdResult | Exact | None:
    """``mmd_test``'s screening: its result, or, where the exact permutation test decides, that test still to run
    (``certify``), which costs up to seconds when a change is there (the daemon runs it on a thread of its own)."""
    n0, n1 = len(ref), len(cur)
    if n0 < 5 or n1 < 5:
        return None
    k = gram(list(ref) + list(cur), options.kernel)
    w = np.concatenate([np.full(n0, 1.0 / n0), np.full(n1, -1.0 / n1)])
    observed = float(w @ k @ w)
    rng = np.random.default_rng(options.seed)
    null = _null(k, w, options.permutations, rng)
    p_perm = (1.0 + float((null >= observed - 1e-12).sum())) / (options.permutations + 1.0)
    p = p_perm
    mean, var = float(null.mean()), float(null.var())
    if p_perm < 0.05 and mean > 0 and var > 0:
        shape, scale = mean * mean / var, var / mean
        p = pvalues.gamma_sf(observed, shape, scale)
    screened = MmdResult(observed, p, p_perm, n0, n1, options.permutations)
    alpha = options.alpha
    if alpha is not None and p < 20 * alpha and p_perm < 0.05:
        if reachable(alpha):
            return Exact(k, w, observed, alpha, rng, n0, n1, screened)
        # no exact test can reject at alpha: the screening's permutation p-value (valid, above it) stands
        return MmdResult(observed, p_perm, p_perm, n0, n1, options.permutations)
    return screened
