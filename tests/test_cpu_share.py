"""The daemon's number crunching gives way to the event loop that times the calls in flight (monitor.cpu_share):
NumPy's BLAS on one thread, and the thread that certifies whole-completion events at a lower priority.

Found by measuring the event loop's wake-ups while a certification ran (`benchmarks/loop_lateness.py`): OpenBLAS
spread each matrix product over both cores of the machine, and the certifying thread, at the loop's own priority,
competed with it for them."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry

from monitor.analysis import Analysis
from monitor.drift.certification import Certification
from monitor.store import Store
from monitor.telemetry.metrics import Metrics
from tests.test_drift_certify_thread import SETTINGS, swapped, until_handed_over

BLAS_THREADS = """
import json, sys
import numpy
from threadpoolctl import threadpool_info, threadpool_limits
threadpool_limits(limits=4, user_api="blas")  # as OpenBLAS on a 4-core machine
from monitor.analysis import Analysis  # noqa: F401  (what the daemon imports)
from monitor.cpu_share import one_blas_thread
did = one_blas_thread()
print(json.dumps([did, sorted({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})]))
"""


def blas_threads(**env: str) -> list:
    clean = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                                              "MKL_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", BLAS_THREADS], capture_output=True, text=True, timeout=120,
                         env=clean | env, check=True)
    import json
    return json.loads(out.stdout)


def test_the_daemon_runs_numpys_blas_on_one_thread() -> None:
    assert blas_threads() == [True, [1]]


def test_a_blas_thread_count_set_in_the_environment_is_left_as_it_is() -> None:
    did, counts = blas_threads(OPENBLAS_NUM_THREADS="3")  # the operator's choice: nothing limited
    assert did is False and 4 in counts and counts != [1]  # 4: the script's own (SciPy loads a BLAS of its own)


def test_building_the_analysis_limits_blas_to_one_thread(sqlite_store: Store, monkeypatch) -> None:
    from threadpoolctl import threadpool_info, threadpool_limits

    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    with threadpool_limits(limits=4, user_api="blas"):  # restored after the test: the limit is the process's
        a = Analysis(sqlite_store, Metrics(CollectorRegistry()), SETTINGS)
        try:
            assert {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"} == {1}
        finally:
            a.close()


@pytest.mark.skipif(sys.platform != "linux", reason="a thread's own priority is Linux's")
async def test_the_certifying_thread_runs_at_a_lower_priority_than_the_loop(sqlite_store: Store) -> None:
    analysis = Analysis(sqlite_store, Metrics(CollectorRegistry()), SETTINGS)
    seen: list[tuple[str, int]] = []

    def run(c: Certification, stop: Callable[[], bool]) -> None:
        seen.append((threading.current_thread().name, os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))
        c.run(stop)

    analysis.certify = run
    try:
        await until_handed_over(analysis, sqlite_store, swapped("a"), 1)
        await analysis.drain()
    finally:
        analysis.close()
    loop_priority = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert [name for name, _ in seen] == ["drift-certify_0"]
    assert seen[0][1] == min(19, loop_priority + 10)
