"""Drift signal names and their test families: what probe YAML and `drift.disabled_signals` may name.

Kept apart from the signals' computation (NumPy, rapidfuzz) and the tests (SciPy), so validating a configuration
loads neither.
"""

from __future__ import annotations

from collections.abc import Iterable

RATE = "rate"
CONTINUOUS = "continuous"
CATEGORY = "category"
IDENTITY = "identity"

_CONTINUOUS = ("output_tokens", "output_chars", "similarity", "latency_s", "ttft_s")
_CATEGORY = ("finish_reason", "error_type")
_IDENTITY = ("response_model", "system_fingerprint")
_RATE = ("refused", "exact_match", "error")
TRUE_IS_BAD = frozenset({"refused", "error"})  # for checks and exact_match, False is the violation


def check_of(signal: str) -> str | None:
    """Return the check (its result name) whose drift signal `signal` is (`check:NAME`), or None for another."""
    return signal.removeprefix("check:") if signal.startswith("check:") else None


def signal_type(name: str) -> str:
    """Return the test family of a signal name (rate, continuous, category, identity)."""
    if name.startswith("check:") or name in _RATE:
        return RATE
    if name in _CONTINUOUS or name == "semantic_similarity":
        return CONTINUOUS
    if name in _CATEGORY:
        return CATEGORY
    if name in _IDENTITY:
        return IDENTITY
    raise KeyError(f"unknown signal {name!r}")


def disableable() -> list[str]:
    """Return the names `drift.disabled_signals` may list: every signal, the whole-completion MMD
    (``completion``), and ``check`` for every check (``check:NAME`` for one)."""
    return [*_RATE, *_CONTINUOUS, "semantic_similarity", *_CATEGORY, *_IDENTITY, "completion", "check",
            "check:NAME"]


def declarable(check_names: Iterable[str]) -> list[str]:
    """The signals a canary with these checks may declare zero-tolerance."""
    return ["refused", "error", "exact_match", *(f"check:{n}" for n in check_names)]
