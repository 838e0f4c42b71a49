"""Reads by time on a large store, with the schema's time index (0004) and without it, in one run.

Run: ``.venv/bin/python benchmarks/store_reads.py [--rows 200000] [--url URL]``. Builds a store of ``--rows``
observations (SQLite in a temporary folder unless ``--url`` names an empty database), 100 canaries x 2 targets
spread over 30 days, then times the reads the daemon and the commands make by time alone -- the newest 50
observations of every canary (``/api/observations`` without a filter), one canary's newest 50, the page of 50
that a cursor 15 days back continues with (the ``Link`` of a page of ``/api/observations``), an export of the
last day, and retention finding nothing older than its cut-off -- first with ``ix_obs_time``, then after
dropping it. Prints a table: median of ``--repeat`` runs per query and the ratio without / with the index.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import insert, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.domain import CallResult, FinishReason, Observation, Usage  # noqa: E402
from monitor.store import ObservationKey, Store  # noqa: E402
from monitor.store.convert import to_values  # noqa: E402
from monitor.store.tables import ObservationRow  # noqa: E402

CANARIES, TARGETS, DAYS = 100, 2, 30


def fill(store: Store, rows: int) -> datetime:
    """Insert ``rows`` observations in batches; return the newest start time."""
    now = datetime(2026, 11, 1, tzinfo=UTC)
    step = timedelta(days=DAYS) / rows
    call = CallResult(text="The answer is 42. " * 20, finish_reason=FinishReason.STOP, response_model="m-1",
                      usage=Usage(input_tokens=20, output_tokens=120), latency_s=1.2, ttft_s=0.3)
    table = ObservationRow.__table__  # type: ignore[attr-defined]
    batch: list[dict] = []
    with store.engine.begin() as conn:
        for i in range(rows):
            obs = Observation(f"canary-{i % CANARIES:03d}", f"target-{i // CANARIES % TARGETS}", "openai", "m",
                              now - step * (rows - i), call, run_id=f"run-{i // 3}", sample_index=i % 3,
                              cost_usd=0.0001)
            batch.append(to_values(obs))
            if len(batch) == 5000:
                conn.execute(insert(table), batch)
                batch.clear()
        if batch:
            conn.execute(insert(table), batch)
    return now


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``fn`` in ms over ``repeat`` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def queries(store: Store, newest: datetime) -> dict[str, Callable[[], object]]:
    day_ago = newest - timedelta(days=1)
    cutoff = newest - timedelta(days=DAYS + 1)  # retention with nothing to delete still has to look
    key = ObservationKey.of(store.observations(limit=1, before=newest - timedelta(days=15))[0])
    return {
        "newest 50, every canary": lambda: store.observations(limit=50),
        "newest 50, one canary": lambda: store.observations(canary="canary-007", limit=50),
        "cursor page, every canary": lambda: store.observations(limit=50, after=key),
        "export: last day": lambda: sum(1 for _ in store.iter_observations(since=day_ago)),
        "retention: nothing to prune": lambda: store.prune(cutoff),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--url", help="an empty database to use instead of a temporary SQLite file")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(args.url or f"sqlite:///{tmp}/bench.db")
        store.migrate()
        t0 = time.perf_counter()
        newest = fill(store, args.rows)
        print(f"{args.rows:,} observations written in {time.perf_counter() - t0:.0f} s ({store.dialect})")
        qs = queries(store, newest)
        with_index = {name: timed(fn, args.repeat) for name, fn in qs.items()}
        with store.engine.begin() as conn:
            conn.execute(text("DROP INDEX ix_obs_time"))
        without = {name: timed(fn, args.repeat) for name, fn in qs.items()}
        with store.engine.begin() as conn:  # leave a --url database as the schema expects it
            conn.execute(text("CREATE INDEX ix_obs_time ON observations (started_at)"))
        store.close()
    table = Table(title=f"Reads by time, {args.rows:,} observations ({store.dialect}), median of {args.repeat}")
    for col in ("query", "with ix_obs_time", "without (baseline)", "ratio"):
        table.add_column(col, justify="left" if col == "query" else "right")
    for name in qs:
        ratio = without[name] / max(with_index[name], 1e-6)
        table.add_row(name, f"{with_index[name]:.1f} ms", f"{without[name]:.1f} ms",
                      f"{ratio:.0f}x" if ratio >= 10 else f"{ratio:.2f}x")
    Console().print(table)


if __name__ == "__main__":
    main()
