"""How the daemon's number crunching shares the CPU with the event loop that times the calls in flight.

The event loop measures TTFT and latency: a wake-up that comes late is a latency measured long. Two things took its
core while a whole-completion certification ran (an exact permutation test: seconds of matrix products on its own
thread), measured by `benchmarks/loop_lateness.py` on a 2-core machine, the 99th percentile of a 5 ms sleep's
lateness: 1.3 ms without a certification, 7-8 ms with one.
- NumPy's OpenBLAS spreads every product above a small size over all cores, so the certifying thread used both:
  `one_blas_thread` keeps it to one (the products are small; one thread was even faster, 166k relabellings a second
  against 115k, since the two no longer fought the analysis thread for the cores).
- The certifying thread then competed with the event loop for a core at the same priority: `lower_this_thread`
  (nice +10, that thread only, on Linux) lets the loop and the analysis thread go first; the test no one waits on
  gives way. Together: 4.7 ms. (Lowered alone, with BLAS still on every core, it was worse, 9.9 ms, and the test
  four times slower: its BLAS threads kept the old priority while it held what they waited for.)
A BLAS thread count set in the environment (OPENBLAS_NUM_THREADS, OMP_NUM_THREADS, MKL_NUM_THREADS) is the
operator's choice and left as it is.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

log = logging.getLogger(__name__)

CHOSEN_BY = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
LOWER_BY = 10  # nice steps: the certifying thread keeps about a tenth of a core's share against a busy one


def one_blas_thread() -> bool:
    """Limit the BLAS library NumPy loaded to one thread, unless the environment sets a count; return whether it did."""
    if any(os.environ.get(name) for name in CHOSEN_BY):
        return False
    import numpy  # noqa: F401  (loads the BLAS library to limit)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
    return True


def lower_this_thread(by: int = LOWER_BY) -> bool:
    """Lower the scheduling priority of the calling thread alone (Linux: a thread's nice value is its own); return
    whether it did. Elsewhere, or where it is refused, the thread keeps the process's priority."""
    if sys.platform != "linux":
        return False
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + by))
    except OSError as e:  # a container's seccomp profile may refuse it: the thread runs, at the usual priority
        log.debug("could not lower the priority of thread %s: %s", threading.current_thread().name, e)
        return False
    return True
