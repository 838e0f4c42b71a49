"""Offline comparison of two dumps of completions (``llm-monitor replay --baseline A --current B``).

Each stream (canary x target) present in both dumps is compared as two samples: Fisher's exact test for
rates, Mann-Whitney/KS for continuous values, chi-square for categories, MMD for whole completions, and
first-seen identity values. Benjamini-Hochberg at ``replay_alpha`` runs over every hypothesis of the replay,
across signals and canaries, so adding canaries does not multiply false alarms.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np
from rapidfuzz import fuzz, process

from monitor.domain import Observation
from monitor.drift.baseline import Baseline
from monitor.drift.dump import DumpError, load_dump, row_to_observation
from monitor.drift.events import BEHAVIOUR, MODEL, DriftEvent, evidence
from monitor.drift.mmd import features, mmd_test
from monitor.drift.names import RATE, TRUE_IS_BAD, signal_type
from monitor.drift.settings import DriftSettings
from monitor.drift.signals import EmbedFn, RefusalFn, compute_signals, finite, normalise
from monitor.drift.stream import COMPLETION
from monitor.drift.twosample import TestResult, benjamini_hochberg, category_test, continuous_test, rate_test
from monitor.drift.zero import ZERO_TOLERANCE, baseline_violations, violates

__all__ = ["DumpError", "load_dump", "replay", "replay_observations"]


def replay(
    baseline_rows: Iterable[Mapping[str, Any]],
    current_rows: Iterable[Mapping[str, Any]],
    settings: DriftSettings | None = None,
    *,
    refusal: RefusalFn | None = None,
    embed: EmbedFn | None = None,
    now: datetime | None = None,
    zero_tolerance: Iterable[str] = (),
) -> list[DriftEvent]:
    """Compare current rows with baseline rows (dump lines as dicts) and return the drift events found."""
    base = [row_to_observation(r, "baseline", i + 1) for i, r in enumerate(baseline_rows)]
    cur = [row_to_observation(r, "current", i + 1) for i, r in enumerate(current_rows)]
    return replay_observations(base, cur, settings, refusal=refusal, embed=embed, now=now,
                               zero_tolerance=zero_tolerance)


def replay_observations(
    baseline: list[Observation],
    current: list[Observation],
    settings: DriftSettings | None = None,
    *,
    refusal: RefusalFn | None = None,
    embed: EmbedFn | None = None,
    now: datetime | None = None,
    zero_tolerance: Iterable[str] = (),
) -> list[DriftEvent]:
    """Compare two lists of observations stream by stream and return the drift events found.

    `zero_tolerance` names rate signals (refused, error, exact_match, check:NAME) declared to be zero in every
    stream: any violation in the current rows is an event (test ``zero_tolerance``), as in the daemon, and
    those signals leave the statistical tests (and their false-alarm control).
    """
    zero = frozenset(zero_tolerance)
    s = settings or DriftSettings()
    s = dataclasses.replace(s, text_sample=max(s.text_sample, s.replay_max_texts))
    now_s = (now or datetime.now(UTC)).isoformat()
    groups: dict[tuple[str, str], tuple[list[Observation], list[Observation]]] = {}
    for o in baseline:
        groups.setdefault((o.canary, o.target), ([], []))[0].append(o)
    for o in current:
        groups.setdefault((o.canary, o.target), ([], []))[1].append(o)
    hyps: list[tuple[tuple[str, str], str, TestResult, Baseline, list[Observation], list[dict[str, Any]]]] = []
    events: list[DriftEvent] = []
    for key, (b_obs, c_obs) in sorted(groups.items()):
        if not b_obs or not c_obs:
            continue
        b = Baseline.build(
            key[0], key[1], [(o, compute_signals(o, None, refusal=refusal)) for o in b_obs], s,
            source="replay", created_at=None, embed=embed,
        )
        c_sig = [compute_signals(o, b, refusal=refusal, embed=embed) for o in c_obs]
        for name, res in _tests(b, c_obs, c_sig, s).items():
            if name not in zero:
                hyps.append((key, name, res, b, c_obs, c_sig))
        events += [e for name in sorted(zero) if (e := _zero_event(name, b, c_obs, c_sig, now_s)) is not None]
        events += _identity_events(b, c_obs, c_sig, s, now_s)
    rejected = benjamini_hochberg([h[2].p_value for h in hyps], s.replay_alpha)
    for (key, name, res, b, c_obs, c_sig), rej in zip(hyps, rejected, strict=True):
        if not rej:
            continue
        first = c_obs[0]
        events.append(
            DriftEvent(
                canary=key[0], target=key[1], signal=name, kind=BEHAVIOUR, test=res.test,
                baseline_value=res.baseline_value, current_value=res.current_value, effect_size=res.effect,
                statistic=res.statistic, p_value=res.p_value, threshold=s.replay_alpha,
                baseline_n=int(res.detail.get("n0", b.count)), current_n=int(res.detail.get("n1", len(c_obs))),
                first_obs_id=first.id, first_obs_at=first.started_at.isoformat(), opened_at=now_s,
                evidence=evidence(b.representative_text(), _medoid(_showing(name, res, c_obs, c_sig))),
                detail={k: v for k, v in res.detail.items() if k not in ("n0", "n1")},
            )
        )
    return events


def _zero_event(name: str, b: Baseline, c_obs: list[Observation], c_sig: list[dict[str, Any]],
                now_s: str) -> DriftEvent | None:
    """The zero-tolerance event of a declared signal, if any current row violates it."""
    rows = [(o, sig[name]) for o, sig in zip(c_obs, c_sig, strict=True)
            if sig.get(name) is not None]  # a failed call carries only the signals that apply to it
    bad = [o for o, value in rows if violates(name, value)]
    if not bad:
        return None
    bad_in_baseline, n = baseline_violations(b, name)
    first = bad[0]
    return DriftEvent(
        canary=b.canary, target=b.target, signal=name, kind=BEHAVIOUR, test=ZERO_TOLERANCE,
        baseline_value=bad_in_baseline / n if n else 0.0, current_value=len(bad) / len(rows), effect_size=None,
        statistic=float(len(bad)), p_value=None, threshold=1.0, baseline_n=n, current_n=len(rows),
        first_obs_id=first.id, first_obs_at=first.started_at.isoformat(), opened_at=now_s,
        evidence=evidence(b.representative_text(), first.text) if first.ok else {},
        detail={"declared": "zero", "violations": len(bad), "observations": len(rows),
                "bad_value": name in TRUE_IS_BAD, "baseline_violations": bad_in_baseline},
    )


def _tests(b: Baseline, c_obs: list[Observation], c_sig: list[dict[str, Any]], s: DriftSettings) -> dict[str, TestResult]:
    out: dict[str, TestResult] = {}
    ok_sig = [sig for o, sig in zip(c_obs, c_sig, strict=True) if o.ok]
    for name, (k0, n0) in b.rates.items():
        if not s.enabled(name):
            continue
        flags = [bool(sig[name]) for sig in c_sig if sig.get(name) is not None]  # failed calls: where they apply
        res = rate_test(k0, n0, sum(flags), len(flags))
        if res is not None:
            res.detail.update(n0=n0, n1=len(flags))
            out[name] = res
    for name, ref in b.values.items():
        if not s.enabled(name):
            continue
        vals = [v for sig in ok_sig if (v := finite(sig.get(name))) is not None]
        res = continuous_test(ref, vals)
        if res is not None:
            res.detail.update(n0=len(ref), n1=len(vals))
            out[name] = res
    for name, ref_counts in b.categories.items():
        if not s.enabled(name):
            continue
        counts: dict[str, int] = {}
        for sig in c_sig:
            if sig.get(name) is not None:
                counts[str(sig[name])] = counts.get(str(sig[name]), 0) + 1
        res = category_test(ref_counts, counts)
        if res is not None:
            out[name] = res
    if s.enabled(COMPLETION):
        rng = random.Random(s.seed)
        cur_texts = [normalise(o.text) for o in c_obs if o.ok]
        if len(cur_texts) > s.replay_max_texts:
            cur_texts = rng.sample(cur_texts, s.replay_max_texts)
        ref_feats = [features(t, s.mmd_ngram) for t in b.normalised_texts()]
        r = mmd_test(ref_feats, [features(t, s.mmd_ngram) for t in cur_texts], kernel=s.mmd_kernel,
                     permutations=s.mmd_permutations, seed=s.seed, alpha=s.replay_alpha / 20)
        if r is not None:
            out[COMPLETION] = TestResult(r.p_value, r.mmd2, r.mmd2, None, None, f"mmd_{s.mmd_kernel}",
                                         {"p_permutation": r.p_permutation, "n0": r.n0, "n1": r.n1})
    return out


def _identity_events(
    b: Baseline, c_obs: list[Observation], c_sig: list[dict[str, Any]], s: DriftSettings, now: str
) -> list[DriftEvent]:
    out = []
    for name in s.identity_signals:
        known = b.identity.get(name, [])
        if not known or not s.enabled(name):
            continue
        new = [(o, str(sig[name])) for o, sig in zip(c_obs, c_sig, strict=True)
               if sig.get(name) is not None and str(sig[name]) not in known]
        if not new:
            continue
        first, value = new[0]
        out.append(DriftEvent(
            canary=b.canary, target=b.target, signal=name, kind=MODEL, test="first_seen",
            baseline_value=", ".join(known), current_value=value, effect_size=None, statistic=None,
            p_value=None, threshold=None, baseline_n=b.count, current_n=len(new),
            first_obs_id=first.id, first_obs_at=first.started_at.isoformat(), opened_at=now,
            detail={"values": sorted({v for _, v in new})},
        ))
    return out


def _showing(name: str, res: TestResult, c_obs: list[Observation], c_sig: list[dict[str, Any]]) -> list[str]:
    """The current completions to pick the evidence from: for a rate, those that show the change (the refused
    ones when the refusal rate rose), as the daemon picks them; a rise from 3% to 20% would else be shown by an
    ordinary answer. Every successful completion otherwise, or when none shows it."""
    texts = [o.text for o in c_obs if o.ok]
    if _family(name) != RATE or not isinstance(res.current_value, float) \
            or not isinstance(res.baseline_value, float):
        return texts
    up = res.current_value > res.baseline_value
    showing = [o.text for o, sig in zip(c_obs, c_sig, strict=True)
               if o.ok and sig.get(name) is not None and bool(sig[name]) == up]
    return showing or texts


def _medoid(texts: list[str], limit: int = 60) -> str:
    texts = texts[:limit]
    if not texts:
        return ""
    norm = [normalise(t) for t in texts]
    scores = process.cdist(norm, norm, scorer=fuzz.ratio, dtype=np.float32).mean(axis=1)
    return texts[int(np.argmax(scores))]


def _family(name: str) -> str | None:
    try:
        return signal_type(name)
    except KeyError:  # "completion"
        return None
