"""The growing reference through an outage: a run of failed calls leaving the entries (older than `reference_lag`)
is not learnt (neither its error rate nor its error types), isolated failures and short runs are, as a forming
baseline does (`Stream._outage`, `monitor.drift.outages`)."""

from __future__ import annotations

import pytest

from monitor.domain import CallResult, ErrorType, Observation
from monitor.drift import DriftEngine, DriftSettings
from tests.support.streams import Sim

KINDS = {"f": ErrorType.SERVER_ERROR, "r": ErrorType.RATE_LIMITED, "c": ErrorType.CONNECT, "t": ErrorType.AUTH,
         "b": ErrorType.BAD_REQUEST, "p": ErrorType.CONTENT_FILTER, "i": ErrorType.INTERNAL}


def feed(eng: DriftEngine, sim: Sim, pattern: str) -> None:
    """Feed `pattern` to the engine: "a" an answer, any other letter a call failed as KINDS says."""
    for c in pattern:
        o = sim.next()
        if c != "a":
            o = Observation("c", "t", "p", "m", o.started_at, id=f"{o.id}-{c}", call=CallResult(error_type=KINDS[c]))
        eng.observe(o)


@pytest.mark.parametrize("seed", [2, 3, 5])
def test_an_outage_after_the_baseline_formed_does_not_enter_the_reference(seed: int) -> None:
    """The provider rate-limits 1 call in 10, then is down for 6 calls in a row: once the outage left the entries,
    its server errors were in the reference's error types (and error rate), so after the recovery the reference
    expected them, an `error_type` event that is the outage paged again. The rate limits before and after it are
    learnt still."""
    eng = DriftEngine()
    sim = Sim(seed, refusal=0.0)
    feed(eng, sim, ("a" * 9 + "r") * 20)
    b = eng.baseline("c", "t")
    assert b.ready
    learnt = b.categories["error_type"]["rate_limited"]
    feed(eng, sim, "ffffff" + ("a" * 9 + "r") * 15)
    types = b.categories["error_type"]
    assert "server_error" not in types, types
    assert types["rate_limited"] > learnt  # the normal error mix goes on being learnt


def test_isolated_failures_and_short_runs_are_learnt_and_runs_of_the_threshold_are_not() -> None:
    """Rate gating aside (its sentinels never block here): a run of 2 is learnt, of 3 is not; a failure of
    llm-monitor's own neither extends nor ends a run; a content-policy error is an answer and ends one."""
    eng = DriftEngine(DriftSettings(sentinel_gate=1e12))
    sim = Sim(2, refusal=0.0)
    gap = "a" * 60
    feed(eng, sim, "a" * 30 + gap + "f" + gap + "ff" + gap + "ccc" + gap + "tt" + "i" + "t" + gap + "bb" + "p" + "b"
         + gap + gap)
    types = eng.baseline("c", "t").categories["error_type"]
    assert types.get("server_error") == 3, types
    assert "connect" not in types and "auth" not in types, types
    assert types.get("bad_request") == 3 and types.get("content_filter") == 1, types


def test_the_run_is_the_baseline_outage_run_setting() -> None:
    eng = DriftEngine(DriftSettings(sentinel_gate=1e12, baseline_outage_run=4))
    sim = Sim(2, refusal=0.0)
    feed(eng, sim, "a" * 90 + "ccc" + "a" * 60 + "tttt" + "a" * 120)
    types = eng.baseline("c", "t").categories["error_type"]
    assert types.get("connect") == 3 and "auth" not in types, types


def test_a_run_filling_the_entries_is_an_outage_whatever_the_threshold() -> None:
    """A run longer than the entries kept after its first failure is not seen to its end when that leaves: it is
    taken as an outage, the threshold above the 50 notwithstanding."""
    eng = DriftEngine(DriftSettings(sentinel_gate=1e12, baseline_outage_run=200))
    sim = Sim(2, refusal=0.0)
    feed(eng, sim, "a" * 90 + "c" * 60 + "a" * 120)
    assert "connect" not in eng.baseline("c", "t").categories.get("error_type", {})
