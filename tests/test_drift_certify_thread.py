"""The exact permutation test that certifies a whole-completion opening (seconds when a change is there) runs on a
thread of its own, `drift-certify`: a provider-wide model swap queued hundreds of them on the one analysis thread,
and every other stream's analysis waited behind them. Its decision is the inline test's, applied back on the
analysis thread through the same writes; a shutdown does not wait for the ones queued; a stale one opens nothing."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator

import pytest
from prometheus_client import CollectorRegistry

from monitor.analysis import Analysis
from monitor.domain import Observation
from monitor.drift import DriftEngine, DriftSettings, budget
from monitor.drift.certification import Certification
from monitor.operator_baselines import reset
from monitor.store import Store
from monitor.store.drift_repo import DriftRepository
from monitor.telemetry.metrics import Metrics
from tests.support.metric import sample
from tests.support.streams import Sim

SETTINGS = DriftSettings()
WAITING = "llm_monitor_drift_certifications_waiting"


def swapped(canary: str, seed: int = 5) -> Iterator[Observation]:
    """A stream whose completions change after 40 observations (another model's vocabulary)."""
    sim = Sim(seed, refusal=0.0)
    for _ in range(40):
        yield sim.next(canary)
    sim.probs = Sim(seed, shift=7).probs
    while True:
        yield sim.next(canary)


class Gate:
    """Holds the certifying thread: each certification waits until `go` is set (`started` once one waits)."""

    def __init__(self) -> None:
        self.go, self.started = threading.Event(), threading.Event()
        self.calls: list[tuple[str, str, bool]] = []  # canary, thread, whether its test rejected
        self.cert: Certification | None = None  # the last one it let through

    def __call__(self, c: Certification, stop: Callable[[], bool]) -> None:
        self.started.set()
        assert self.go.wait(60), "the test never released the gate"
        self.cert = c
        try:
            c.run(stop)
        finally:
            self.calls.append((c.canary, threading.current_thread().name, c.rejects))


def completion_events(analysis: Analysis, canary: str | None = None) -> list[dict]:
    return [e for e in analysis.repo.events(canary=canary, limit=None) if e["signal"] == "completion"]


async def analysed(analysis: Analysis, store: Store, obs: Observation) -> None:
    """Store an observation, queue it and wait for its analysis (not for any certification it hands over)."""
    store.save_observation(obs)
    await analysis.on_observation(obs)
    await analysis.in_worker(lambda: None)


async def until_handed_over(analysis: Analysis, store: Store, stream: Iterator[Observation], count: int) -> None:
    """Feed a stream until `count` certifications are handed over in all (the change's first certified round)."""
    for _ in range(400):
        await analysed(analysis, store, next(stream))
        if analysis.certifications >= count:
            return
    raise AssertionError("no whole-completion certification was handed over")


@pytest.fixture
def analysis(sqlite_store: Store) -> Iterator[Analysis]:
    a = Analysis(sqlite_store, Metrics(CollectorRegistry()), SETTINGS)
    yield a
    a.close()


async def test_the_deferred_certification_opens_the_event_the_inline_test_opens(
        analysis: Analysis, sqlite_store: Store) -> None:
    inline = DriftEngine(SETTINGS)  # the engine's default: the exact test inside `observe`
    threads: list[str] = []
    told: list[tuple[str, str, str]] = []  # what the listeners heard, and on which thread
    analysis.listeners.append(lambda u: told.append((u.action, u.event.signal, threading.current_thread().name)))

    def run(c: Certification, stop: Callable[[], bool]) -> None:
        threads.append(threading.current_thread().name)
        c.run(stop)

    analysis.certify = run
    expected = None
    stream = swapped("a")
    for _ in range(400):
        obs = next(stream)
        opened = [u.event for u in inline.observe(obs) if u.action == "opened" and u.event.signal == "completion"]
        sqlite_store.save_observation(obs)
        await analysis.on_observation(obs)
        await analysis.drain()  # its certification too: the next round is the inline engine's next round
        if opened:
            expected = opened[0].to_json()
            break
    assert expected is not None and expected["p_value"] <= budget.mmd_alpha(SETTINGS)
    [stored] = completion_events(analysis)
    for key in ("id", "p_value", "statistic", "first_obs_id", "first_obs_at", "opened_at", "evidence", "detail",
                "current_n", "baseline_n"):
        assert stored[key] == expected[key], key
    assert threads and set(threads) == {"drift-certify_0"}  # off the analysis thread
    # applied on the analysis thread, through the writes and listeners an observation's updates go through
    assert [t for t in told if t[1] == "completion"] == [("opened", "completion", "drift_0")]


async def test_other_streams_are_analysed_while_a_certification_runs(
        analysis: Analysis, sqlite_store: Store) -> None:
    gate = Gate()
    analysis.certify = gate
    other = Sim(9, refusal=0.0)
    for _ in range(40):  # another pair's baseline forms
        await analysed(analysis, sqlite_store, other.next("b"))
    a = swapped("a")
    await until_handed_over(analysis, sqlite_store, a, 1)
    assert await asyncio.to_thread(gate.started.wait, 60)  # the certifying thread holds it
    for _ in range(40):  # the stream goes on; its later rounds start no second certification meanwhile
        await analysed(analysis, sqlite_store, next(a))
    assert analysis.certifications == 1 and sample(analysis.metrics.registry, WAITING) == 1
    other.model = "m-2"  # the other pair's provider swaps its model: analysed while the certification is held
    await analysed(analysis, sqlite_store, other.next("b"))
    assert [e["signal"] for e in analysis.repo.events(canary="b") if e["kind"] == "model"] == ["response_model"]
    assert completion_events(analysis, "a") == []  # not decided yet
    gate.go.set()
    await analysis.drain()
    [opened] = completion_events(analysis, "a")
    assert opened["state"] == "open" and opened["p_value"] <= budget.mmd_alpha(SETTINGS)
    assert gate.calls == [("a", "drift-certify_0", True)]
    assert analysis.certifications == 0 and sample(analysis.metrics.registry, WAITING) == 0


async def test_a_shutdown_drops_the_queued_certifications_without_running_them(
        sqlite_store: Store, caplog: pytest.LogCaptureFixture) -> None:
    analysis = Analysis(sqlite_store, Metrics(CollectorRegistry()), SETTINGS)
    gate = Gate()
    analysis.certify = gate
    for i, canary in enumerate(("a1", "a2", "a3")):  # a model swap over three canaries
        await until_handed_over(analysis, sqlite_store, swapped(canary, seed=5 + i), i + 1)
    assert await asyncio.to_thread(gate.started.wait, 60)  # the first runs (held), two wait
    with caplog.at_level(logging.WARNING, logger="monitor.analysis"):
        analysis.close()  # returns with the gate still shut: it waits for none of them
    assert [r.getMessage() for r in caplog.records if "not certified" in r.getMessage()] == [
        "stopping with 3 whole-completion tests not certified: their events are not opened (a change still there "
        "opens its event at the stream's first whole-completion round after a restart)"]
    gate.go.set()
    analysis._certifier.shutdown(wait=True)  # the held one sees the shutdown at its first batch
    assert [canary for canary, _, _ in gate.calls] == ["a1"]  # the two queued never ran
    assert completion_events(analysis) == []


async def test_a_certification_a_baseline_reset_made_stale_opens_no_event(
        analysis: Analysis, sqlite_store: Store) -> None:
    gate = Gate()
    analysis.certify = gate
    await until_handed_over(analysis, sqlite_store, swapped("a"), 1)
    assert await asyncio.to_thread(gate.started.wait, 60)
    await analysis.in_worker(reset, analysis, "a", "t", "new model, new baseline")  # as `baseline reset` does
    gate.go.set()
    await analysis.drain()
    # given up at its first batch (it would have rejected, against the reference dropped: seconds for nothing)
    assert gate.calls == [("a", "drift-certify_0", False)] and gate.cert is not None and gate.cert.result is None
    assert completion_events(analysis) == [] and analysis.certifications == 0
    assert analysis.engine.stream("a", "t").certifying is None


async def test_a_certification_decided_after_a_baseline_accepted_from_the_cli_opens_no_event(
        analysis: Analysis, sqlite_store: Store) -> None:
    """`baseline accept` from the CLI (another process) stores the new baseline while the test runs: the daemon's
    30-second poll has not installed it yet when the test rejects, and the event would page for the change the
    operator just accepted (inline, it opened before the accept, which accepted it)."""
    gate = Gate()
    analysis.certify = gate
    await until_handed_over(analysis, sqlite_store, swapped("a"), 1)
    assert await asyncio.to_thread(gate.started.wait, 60)
    accepted = analysis.engine.baseline("a", "t").to_json()  # (its data does not matter here: a new row)
    bid = DriftRepository(sqlite_store.engine).save_baseline("a", "t", accepted, source="accepted", note="intended")
    gate.go.set()
    await analysis.drain()
    assert gate.calls == [("a", "drift-certify_0", True)]
    assert completion_events(analysis) == [] and analysis.certifications == 0
    assert analysis.baselines._installed[("a", "t")] == bid  # installed then, not at the next poll
    assert analysis.engine.stream("a", "t").certifying is None


async def test_a_certification_made_stale_while_it_waited_is_never_run(
        analysis: Analysis, sqlite_store: Store) -> None:
    """A fleet's baselines reset after a model swap: the tests still queued for the old references are not run
    (each would take seconds of the one certifying thread, and the new references' tests would wait behind them)."""
    gate = Gate()
    analysis.certify = gate
    await until_handed_over(analysis, sqlite_store, swapped("a1"), 1)
    assert await asyncio.to_thread(gate.started.wait, 60)  # a1's runs (held)
    await until_handed_over(analysis, sqlite_store, swapped("a2", seed=6), 2)  # a2's waits behind it
    await analysis.in_worker(reset, analysis, "a2", "t", "new model, new baseline")
    gate.go.set()
    await analysis.drain()
    assert [canary for canary, _, _ in gate.calls] == ["a1"]
    assert [e["canary"] for e in completion_events(analysis)] == ["a1"] and analysis.certifications == 0


async def test_a_certification_whose_apply_failed_leaves_its_stream_testing_again(
        analysis: Analysis, sqlite_store: Store, caplog: pytest.LogCaptureFixture) -> None:
    gate = Gate()
    analysis.certify = gate
    await until_handed_over(analysis, sqlite_store, swapped("a"), 1)

    def broken(canary: str, target: str) -> bool:
        raise RuntimeError("the config read failed")

    analysis.configured = broken
    gate.go.set()
    with caplog.at_level(logging.ERROR, logger="monitor.analysis"):
        await analysis.drain()
    assert any("applying the whole-completion certification of a@t failed" in r.getMessage() for r in caplog.records)
    assert analysis.certifications == 0
    assert analysis.engine.stream("a", "t").certifying is None  # not waiting for ever for a decision already lost


def test_the_engine_defers_only_when_asked_and_then_decides_as_inline() -> None:
    """Engine level, the same seeded stream: inline (the default: replay, benchmarks) no certification is handed
    out; deferred, each one run and applied before the next observation gives the inline engine's events."""
    inline, deferred = DriftEngine(SETTINGS), DriftEngine(SETTINGS, defer_certification=True)
    streams = swapped("a"), swapped("a")
    want, got, handed = [], [], 0
    for _ in range(200):
        want += [u.event.to_json() for u in inline.observe(next(streams[0])) if u.event.signal == "completion"]
        assert inline.take_certifications() == []
        ups = deferred.observe(next(streams[1]))
        for c in deferred.take_certifications():
            handed += 1
            c.run()
            ups += deferred.certified(c)
        got += [u.event.to_json() for u in ups if u.event.signal == "completion"]
    assert handed >= 1 and any(e["state"] == "open" for e in want) and got == want


async def test_a_certification_of_a_pair_a_reload_removed_meanwhile_opens_no_event(
        analysis: Analysis, sqlite_store: Store) -> None:
    gate = Gate()
    analysis.certify = gate
    await until_handed_over(analysis, sqlite_store, swapped("a"), 1)
    assert await asyncio.to_thread(gate.started.wait, 60)  # the test runs (held at the gate) ...
    analysis.configured = lambda canary, target: canary != "a"  # ... when a reload removes the pair
    gate.go.set()
    await analysis.drain()
    # it stopped at its first batch (seconds for a pair no one watches any longer) and opened nothing
    assert gate.calls == [("a", "drift-certify_0", False)]
    assert completion_events(analysis) == [] and analysis.engine.stream("a", "t").certifying is None


async def test_a_queued_certification_of_a_pair_a_reload_removed_is_never_run(
        analysis: Analysis, sqlite_store: Store) -> None:
    """Found in review: the apply skipped it, but the test itself still ran, seconds ahead of the others queued."""
    gate = Gate()
    analysis.certify = gate
    await until_handed_over(analysis, sqlite_store, swapped("a"), 1)
    await until_handed_over(analysis, sqlite_store, swapped("b", seed=6), 2)  # queued behind a's
    analysis.configured = lambda canary, target: canary != "b"
    gate.go.set()
    await analysis.drain()
    assert [call[0] for call in gate.calls] == ["a"]  # b's never started
    assert analysis.engine.stream("b", "t").certifying is None


async def test_a_drain_cancelled_while_a_certification_runs_leaves_it_to_settle(
        sqlite_store: Store, caplog: pytest.LogCaptureFixture) -> None:
    analysis = Analysis(sqlite_store, Metrics(CollectorRegistry()), SETTINGS)
    gate = Gate()
    analysis.certify = gate
    await until_handed_over(analysis, sqlite_store, swapped("a"), 1)
    [waiting] = analysis._certifying.values()
    try:
        drain = asyncio.create_task(analysis.drain())
        while not waiting._done_callbacks:  # type: ignore[attr-defined]  # the drain waits for it
            await asyncio.sleep(0.01)
        drain.cancel()  # as a caller's timeout does
        with pytest.raises(asyncio.CancelledError):
            await drain
        for _ in range(3):
            await asyncio.sleep(0)
        assert not waiting.cancelled()
        with caplog.at_level(logging.WARNING, logger="monitor.analysis"):
            analysis.close()  # settles it, as given up on: no InvalidStateError
        assert any("stopping with 1 whole-completion tests not certified" in r.getMessage() for r in caplog.records)
    finally:
        gate.go.set()


async def test_certifications_waiting_their_turn_hold_no_kernel_matrix(
        analysis: Analysis, sqlite_store: Store) -> None:
    """Found by review: each certification waiting for the certifying thread held its pooled sample's kernel matrix
    (~135 KB at 130 completions), so a model swap over a large fleet queued one per canary and memory grew with the
    fleet. Waiting ones now hold references to the pooled sample's texts (the baseline's and the window's own) and
    the matrix is built when a certification's turn comes: at most the running one holds one. None is lost: each
    decides as the inline test would and opens its event."""
    gate = Gate()
    analysis.certify = gate
    canaries = ("a1", "a2", "a3", "a4")
    for i, canary in enumerate(canaries):  # a model swap over four canaries
        await until_handed_over(analysis, sqlite_store, swapped(canary, seed=5 + i), i + 1)
    assert await asyncio.to_thread(gate.started.wait, 60)  # the first runs (held), three wait
    held = [c for c in list(analysis._certifying) if c.test.k is not None]
    assert len(analysis._certifying) == 4 and len(held) <= 1
    gate.go.set()
    await analysis.drain()
    assert sorted(canary for canary, _, rejected in gate.calls if rejected) == list(canaries)
    assert sorted(e["canary"] for e in completion_events(analysis)) == list(canaries)
    assert gate.cert is not None and gate.cert.test.k is None  # let go once decided, too
