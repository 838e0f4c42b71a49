"""The health watch: three failed runs make a canary down, three good runs recover it, removal forgets it."""

from __future__ import annotations

from monitor.domain import CallResult, ErrorType, Observation, utcnow
from monitor.health import HealthWatch
from monitor.store import FailingStreak

PAIR = ("hello", "gpt")


def run(ok: bool) -> list[Observation]:
    call = CallResult(text="hi") if ok else CallResult(error_type=ErrorType.CONNECT, error_message="refused")
    return [Observation(canary="hello", target="gpt", provider="openai", request_model="m", started_at=utcnow(),
                        call=call)]


def kinds(watch: HealthWatch, ok: bool) -> list[str]:
    return [e.kind for e in watch.run_finished(*PAIR, run(ok))]


def test_down_after_three_failed_runs_and_recovered_after_three_good_runs() -> None:
    watch = HealthWatch()
    assert [kinds(watch, False) for _ in range(4)] == [[], [], ["canary.down"], []]
    assert [kinds(watch, True) for _ in range(4)] == [[], [], ["canary.recovered"], []]


def test_a_canary_failing_most_of_its_runs_stays_down_instead_of_flapping() -> None:
    """Found by a soak: during an error burst a canary answered now and then, and each answer sent
    canary.recovered, three failures later canary.down again (256 of each in six minutes)."""
    watch = HealthWatch()
    told = [k for ok in [False] * 3 + [True, False, False, True, True, False, True, False] * 5
            for k in kinds(watch, ok)]
    assert told == ["canary.down"]
    assert [kinds(watch, True) for _ in range(3)] == [[], [], ["canary.recovered"]]


def test_a_removed_pair_that_comes_back_failing_is_reported_down_again() -> None:
    """The reload that removed it resolved its down alert; remembering it as down would keep the new outage
    silent."""
    watch = HealthWatch()
    for _ in range(3):
        kinds(watch, False)
    watch.forget({("other", "gpt")})
    assert [kinds(watch, False) for _ in range(3)] == [[], [], ["canary.down"]]


def test_forget_keeps_pairs_still_configured() -> None:
    watch = HealthWatch()
    for _ in range(3):
        kinds(watch, False)
    watch.forget({PAIR})
    assert [kinds(watch, True) for _ in range(3)] == [[], [], ["canary.recovered"]]


def test_failed_runs_read_back_at_a_restart_count_towards_down() -> None:
    """A canary that failed 2 runs before a restart is down at its next failed run, not 3 runs later."""
    watch = HealthWatch()
    watch.seed_streaks({PAIR: FailingStreak(utcnow(), 2, {"timeout": 3}), ("other", "gpt"): FailingStreak(utcnow(), 5)})
    [down] = watch.run_finished(*PAIR, run(False))
    assert down.evidence["error_counts"] == {"connect": 1, "timeout": 3}  # the streak's failures read back too
    fresh = HealthWatch()
    fresh.seed_streaks({PAIR: FailingStreak(utcnow(), 2)})
    assert [kinds(fresh, ok) for ok in (True, False, False)] == [[], [], []]  # a success ends the streak read back


def failed(*types: ErrorType) -> list[Observation]:
    """A run whose calls all failed, one call of each type."""
    return [Observation(canary="hello", target="gpt", provider="openai", request_model="m", started_at=utcnow(),
                        call=CallResult(error_type=t, error_message=t.value)) for t in types]


def test_canary_down_names_the_failures_of_its_whole_streak_not_only_its_last_run() -> None:
    """It named the types of the run that made it down: an outage of timeouts whose third run was rate limited was
    paged as `rate_limited` alone."""
    watch = HealthWatch()
    assert watch.run_finished(*PAIR, failed(ErrorType.TIMEOUT, ErrorType.TIMEOUT)) == []
    assert watch.run_finished(*PAIR, failed(ErrorType.TIMEOUT)) == []
    [down] = watch.run_finished(*PAIR, failed(ErrorType.RATE_LIMITED))
    assert down.evidence["error_types"] == ["rate_limited", "timeout"]
    assert down.evidence["error_counts"] == {"rate_limited": 1, "timeout": 3}
    assert "every call failed in 3 consecutive runs (rate_limited x1, timeout x3)" in down.summary


def test_an_answered_run_before_the_page_starts_the_mix_afresh() -> None:
    watch = HealthWatch()
    watch.run_finished(*PAIR, failed(ErrorType.TIMEOUT))
    watch.run_finished(*PAIR, run(True))
    for _ in range(2):
        assert watch.run_finished(*PAIR, failed(ErrorType.SERVER_ERROR)) == []
    [down] = watch.run_finished(*PAIR, failed(ErrorType.SERVER_ERROR))
    assert down.evidence["error_counts"] == {"server_error": 3}


def test_canary_recovered_names_the_failures_of_the_whole_outage() -> None:
    """A failure type that began after the page was named nowhere: the recovery names the outage's mix, answered
    runs during it (not all calls failed) adding nothing and not ending it."""
    watch = HealthWatch()
    for _ in range(3):
        watch.run_finished(*PAIR, failed(ErrorType.TIMEOUT))
    watch.run_finished(*PAIR, failed(ErrorType.SERVER_ERROR, ErrorType.SERVER_ERROR))
    half = [*failed(ErrorType.CONNECT), *run(True)]
    assert [e.kind for e in watch.run_finished(*PAIR, half)] == []
    assert [e.kind for e in watch.run_finished(*PAIR, run(True))] == []
    [recovered] = watch.run_finished(*PAIR, run(True))
    assert recovered.kind == "canary.recovered"
    assert recovered.evidence["error_counts"] == {"server_error": 2, "timeout": 3}
    assert recovered.summary.endswith("; the outage's failures: server_error x2, timeout x3")
    for _ in range(3):  # the next outage's mix is its own
        watch.run_finished(*PAIR, failed(ErrorType.CONNECT))
    assert watch.down_events(lambda _: ())[0].evidence["error_counts"] == {"connect": 3}


def test_a_down_pair_fired_again_by_a_reload_carries_its_mix_and_one_read_back_none() -> None:
    """`down_events` (a sink newly routed the pair): the failures this process saw; a pair only read back from the
    outbox at a start has none to name."""
    watch = HealthWatch()
    for _ in range(3):
        watch.run_finished(*PAIR, failed(ErrorType.TIMEOUT))
    watch.seed_down([("other", "gpt")])
    by_pair = {(e.canary, e.target): e.evidence for e in watch.down_events(lambda _: ())}
    assert by_pair == {PAIR: {"signal": "health", "error_types": ["timeout"], "error_counts": {"timeout": 3}},
                       ("other", "gpt"): {"signal": "health"}}
