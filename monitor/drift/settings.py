"""Tunable knobs of the drift engine, with defaults that meet the false-alarm budget on stationary streams."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass(frozen=True, slots=True)
class DriftSettings:
    """Settings of the drift engine.

    The false-alarm budget is stated per stream (canary x target) as expected false alarms per 10,000
    evaluations (one evaluation = one observation analysed across every signal). ``monitor.drift.budget``
    splits it between the sequential rate tests (each CUSUM direction gets an equal share of the ARL budget)
    and the window tests (each test of a round a Bonferroni share, the MMD its own), so the expected false
    events add up to the budget. Because the budget is per evaluation, adding canaries or signals does not
    raise the false-alarm rate per observation analysed.
    """

    baseline_size: int = 30  # first N successful observations form the baseline
    baseline_outage_run: int = 3  # while it forms, this many failed calls in a row or more are an outage: left out
    text_sample: int = 30  # baseline completions kept for MMD and evidence (bounded)
    similarity_sample: int = 15  # baseline completions used by the similarity signal (bounded)
    grow_reference: bool = True  # in-control observations older than reference_lag join the reference
    reference_lag: int = 50
    sentinel_gate: float = 3.0  # rates learn only while point-estimate CUSUMs are below this LLR (+ one event)
    reference_learn: int = 300  # continuous references smaller than this are gated at half the threshold...
    absorb_below: float = 0.1  # ...larger ones only while both rank CUSUMs are below this share of it
    reference_cap: int = 400  # bounded reference sample for continuous values / categories
    rate_reference_cap: int = 5000  # rate counts stop growing here
    window: int = 30  # sliding window of the latest observations for window tests
    eval_every: int = 10  # run window tests every k observations of a stream
    false_alarms_per_10k: float = 0.5
    sequential_share: float = 0.7  # share of the budget spent by the CUSUMs (rest: window tests)
    mmd_share: float = 0.5  # share of the window-test budget spent by the whole-completion MMD
    rate_odds_ratio: float = 4.0  # CUSUM design shift on the odds scale
    rate_min_shift: float = 0.02  # ...and at least this much on the probability scale
    # A second CUSUM per rate direction, tuned to a large shift (a canary that starts failing every time), which
    # the chart above, tuned to a moderate one, is slow to see: this odds ratio, at least this much up, with this
    # share of the direction's false-alarm budget (the first chart keeps the rest; 0: no second chart).
    rate_large_odds_ratio: float = 100.0
    rate_large_min_shift: float = 0.5
    rate_large_share: float = 0.1
    rate_quantiles: tuple[float, ...] = (0.7, 0.85, 0.93, 0.97, 0.99, 0.999)  # candidate chart references (posterior quantiles)
    rate_credibility: float = 0.9  # normal-score CUSUM: allowance for the reference's uncertainty
    rank_k: float = 0.5  # normal-score CUSUM reference value: tuned to a shift of 2k standard deviations
    exact_match_min_share: float = 0.5  # watch exact repeats only if the baseline mode is this common
    mmd_kernel: str = "spectrum"  # spectrum (character n-grams) | hamming (token positions)
    mmd_ngram: int = 3
    mmd_permutations: int = 200
    mmd_every: int = 30  # MMD runs on every k-th evaluation-worthy observation (costlier)
    resolve_alpha: float = 0.01  # window events resolve when the window differs from the opening sample at this level
    identity_signals: tuple[str, ...] = ("response_model", "system_fingerprint")
    disabled_signals: tuple[str, ...] = ()
    replay_alpha: float = 0.01  # BH level over every hypothesis of one offline replay
    replay_max_texts: int = 120  # texts per side in the replay MMD
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Return the settings as a JSON-ready dict."""
        d = asdict(self)
        d["identity_signals"] = list(self.identity_signals)
        d["disabled_signals"] = list(self.disabled_signals)
        d["rate_quantiles"] = list(self.rate_quantiles)
        return d

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DriftSettings:
        """Build settings from a dict, rejecting unknown keys."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown drift settings: {', '.join(unknown)}")
        d = dict(data)
        for key in ("identity_signals", "disabled_signals", "rate_quantiles"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)

    def enabled(self, signal: str) -> bool:
        """Tell whether a signal is tested."""
        return signal not in self.disabled_signals and signal.split(":", 1)[0] not in self.disabled_signals
