"""Store contract, on SQLite and PostgreSQL: the failing streak a restart or take-over reads back."""

from __future__ import annotations

from datetime import timedelta

from monitor.domain import ErrorType
from monitor.store import Store
from monitor.store.repository import Run
from tests.test_store_contract import T0, obs


def test_failing_since_is_the_first_call_of_the_failed_runs_since_the_last_success(store: Store) -> None:
    def call(i: int, canary: str, run: str, error: ErrorType | None = ErrorType.TIMEOUT) -> None:
        o = obs(i, canary=canary, error=error)
        o.run_id = run
        store.save_observation(o)

    call(0, "c", "r0")  # an earlier streak, ended by the success in r1
    call(1, "c", "r1", None)
    call(2, "c", "r1")  # a run with a success is not a failed run, whatever came after it in that run
    call(4, "c", "r2", ErrorType.CANCELLED)  # cut by a shutdown: says nothing of the upstream
    call(5, "c", "r2")
    call(6, "c", "r3")
    call(0, "never", "n0")  # no success stored: from the first failed call
    call(1, "never", "n1", ErrorType.SERVER_ERROR)
    call(0, "ok", "k0")
    call(1, "ok", "k1", None)
    call(2, "ok", "k1")  # its last run had a success
    call(3, "cut", "x1", None)
    call(4, "cut", "x2", ErrorType.CANCELLED)  # only a cancelled call since the success: no streak
    for i, error in enumerate([ErrorType.TIMEOUT, None, ErrorType.AUTH, ErrorType.AUTH]):
        call(i, "_judge", "", error)  # a judge's call, each a run of its own
    call(9, "other", "o1")  # failing, but not asked about
    store.save_run(Run(id="m1", canary="probed", target="t", started_at=T0, trigger="manual"))
    call(0, "probed", "d0", None)
    call(1, "probed", "m1")  # `llm-monitor probe` with an operator's bad key: not the daemon's streak (review2)
    call(2, "probed", "d1", None)
    call(3, "probed", "m1")
    pairs = [(c, "t") for c in ("c", "never", "ok", "cut", "_judge", "unknown", "probed")]
    assert store.failing_since(pairs) == {("c", "t"): T0 + timedelta(minutes=5), ("never", "t"): T0,
                                          ("_judge", "t"): T0 + timedelta(minutes=2)}
    assert store.failing_since([]) == {}
