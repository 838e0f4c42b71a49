"""The health watch: three failed runs make a canary down, three good runs recover it, removal forgets it."""

from __future__ import annotations

from monitor.domain import CallResult, ErrorType, Observation, utcnow
from monitor.health import HealthWatch

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
    watch.seed_failed_runs({PAIR: 2, ("other", "gpt"): 5})
    assert kinds(watch, False) == ["canary.down"]
    fresh = HealthWatch()
    fresh.seed_failed_runs({PAIR: 2})
    assert [kinds(fresh, ok) for ok in (True, False, False)] == [[], [], []]  # a success ends the streak read back
