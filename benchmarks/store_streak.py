"""What a replica reads back when it takes the lead: every pair's failing streak (start, failed runs, failure types).

Run: ``.venv/bin/python benchmarks/store_streak.py [--pairs 1000] [--runs 48] [--url URL]``. Builds a store
(SQLite in a temporary folder unless ``--url`` names an empty database) of ``--pairs`` canary x target pairs
(half as many canaries x 2 targets), each with ``--runs`` runs of 3 samples every 30 minutes (48: a day), their run records too. Of
the pairs, 40% answer in their last run, 30% have failed their last 5 runs, 20% their last 40 and 10% never
answered; one in ten of the failing pairs had a manual run (``llm-monitor probe``) fail in its streak. Times the
read of every pair's streak (``Store.failing_streaks``, as the daemon does at start, take-over and a reload that
adds pairs) and, taking turns with it, two baselines: the same read without the failure types (its first
statement alone, as before 2026-12-02) and one statement a pair (as llm-monitor read only each streak's start
before 2026-11-30); and every pair's last success (``Store.last_success``) against the GROUP BY over every
success it replaced. Prints a table: median and fastest of ``--repeat`` reads each, and the pairs found.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import DateTime, bindparam, exists, func, insert, literal, or_
from sqlmodel import col, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.domain import CallResult, ErrorType, FinishReason, Observation, Usage  # noqa: E402
from monitor.store import Run, Store, streaks  # noqa: E402
from monitor.store.convert import aware, to_values  # noqa: E402
from monitor.store.tables import ObservationRow, RunRow  # noqa: E402

NOW = datetime(2026, 11, 30, tzinfo=UTC)
OK = CallResult(text="The answer is 42.", finish_reason=FinishReason.STOP, response_model="m-1",
                usage=Usage(input_tokens=20, output_tokens=12), latency_s=1.2, ttft_s=0.3)
FAILED = CallResult(error_type=ErrorType.SERVER_ERROR, error_message="500", http_status=500)
TIMED_OUT = CallResult(error_type=ErrorType.TIMEOUT, error_message="timed out")


def failed_runs(pair: int, runs: int) -> int:
    """How many of the pair's last runs failed (all of them: it never answered)."""
    share = pair % 10
    return 0 if share < 4 else 5 if share < 7 else 40 if share < 9 else runs


def fill(store: Store, pairs: int, runs: int) -> list[tuple[str, str]]:
    """Insert every pair's history in batches; return the pairs."""
    table = ObservationRow.__table__  # type: ignore[attr-defined]
    names = [(f"canary-{p // 2:04d}", f"target-{p % 2}") for p in range(pairs)]
    batch: list[dict] = []
    runs_made: list[dict] = []
    manual: list[Run] = []
    with store.engine.begin() as conn:
        for p, (canary, target) in enumerate(names):
            failing = failed_runs(p, runs)
            for r in range(runs):
                started = NOW - timedelta(minutes=30 * (runs - r))
                call = (FAILED if r % 3 else TIMED_OUT) if r >= runs - failing else OK
                run_id = f"run-{p}-{r}"
                runs_made.append({"id": run_id, "canary": canary, "target": target, "trigger": "schedule",
                                  "replica": "", "started_at": started, "finished_at": started, "samples": 3,
                                  "failures": 3 if call is FAILED else 0, "status": "done"})
                for i in range(3):
                    batch.append(to_values(Observation(canary, target, "openai", "m", started + timedelta(seconds=i),
                                                       call, run_id=run_id, sample_index=i)))
            if failing and p % 10 == 5:  # a manual run in the streak: left out
                started = NOW - timedelta(minutes=10)
                manual.append(Run(id=f"manual-{p}", canary=canary, target=target, started_at=started,
                                  trigger="manual"))
                batch.append(to_values(Observation(canary, target, "openai", "m", started, FAILED,
                                                   run_id=f"manual-{p}")))
            if len(batch) >= 5000:
                conn.execute(insert(table), batch)
                conn.execute(insert(RunRow.__table__), runs_made)  # type: ignore[attr-defined]
                batch.clear()
                runs_made.clear()
        if batch:
            conn.execute(insert(table), batch)
            conn.execute(insert(RunRow.__table__), runs_made)  # type: ignore[attr-defined]
    for run in manual:
        store.save_run(run)
    return names


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=48)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--url", help="an empty database to use instead of a temporary SQLite file")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(args.url or f"sqlite:///{tmp}/bench.db")
        store.migrate()
        t0 = time.perf_counter()
        pairs = fill(store, args.pairs, args.runs)
        rows = store.count_observations()
        print(f"{rows:,} observations written in {time.perf_counter() - t0:.0f} s ({store.dialect})")
        reads: dict[str, Callable[[], dict[tuple[str, str], Any]]] = {
            "one statement a pair (before)": lambda: per_pair(store, pairs),
            "streaks without failure types (before)": lambda: untyped(store, pairs),
            "Store.failing_streaks (+ failure types)": lambda: store.failing_streaks(pairs),
            "last success: every success grouped (before)": lambda: grouped_last_success(store),
            "Store.last_success (one statement)": lambda: store.last_success(pairs)}
        found = {name: read() for name, read in reads.items()}  # and warm up
        times: dict[str, list[float]] = {name: [] for name in reads}
        for _ in range(args.repeat):  # taking turns: a machine busy with other work slows both alike
            for name, read in reads.items():
                t0 = time.perf_counter()
                read()
                times[name].append(time.perf_counter() - t0)
        dialect = store.dialect
        store.close()
    table = Table(title=f"Failing streaks and last successes of {args.pairs:,} pairs, {rows:,} observations "
                        f"({dialect}), {args.repeat} reads each")
    for heading in ("read", "median", "fastest", "pairs found"):
        table.add_column(heading, justify="left" if heading == "read" else "right")
    for name in reads:
        table.add_row(name, f"{statistics.median(times[name]) * 1000:.1f} ms", f"{min(times[name]) * 1000:.1f} ms",
                      f"{len(found[name]):,}")
    Console(width=120).print(table)
    streaks = found["Store.failing_streaks (+ failure types)"]
    assert {p: s.since for p, s in streaks.items()} == found["one statement a pair (before)"]
    assert {p: (s.since, s.runs) for p, s in streaks.items()} == found["streaks without failure types (before)"]
    print(f"failed runs in those streaks: {sum(s.runs for s in streaks.values()):,}; failed calls by type: "
          f"{dict(sum((Counter(s.errors) for s in streaks.values()), Counter()))}")
    # the store has no manual success, so the two last-success reads must agree
    assert found["Store.last_success (one statement)"] == found["last success: every success grouped (before)"]


def untyped(store: Store, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], tuple[datetime, int]]:
    """The streaks baseline: their start and failed runs without the failure types (`read_streaks`' first
    statement alone, what it ran before 2026-12-02)."""
    with store.engine.connect() as conn:
        return {(c, t): (aware(since) or since, int(runs)) for c, t, since, runs in
                conn.execute(streaks._statement(conn.dialect.name, False), streaks._bound(conn, pairs))}


def grouped_last_success(store: Store) -> dict[tuple[str, str], datetime]:
    """The last-success baseline: the GROUP BY over every successful call that Store.last_success ran before
    2026-11-30 (manual runs included; there are none in this store)."""
    o = ObservationRow
    q = select(o.canary, o.target, func.max(o.started_at)).where(col(o.error_type).is_(None)) \
        .group_by(o.canary, o.target)
    with store.engine.connect() as conn:
        return {(c, t): aware(ts) for c, t, ts in conn.execute(q).all() if ts is not None}


def per_pair(store: Store, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], datetime]:
    """The baseline: each pair's streak start by one statement a pair."""
    found = {}
    with store.engine.connect() as conn:
        for canary, target in pairs:
            since = conn.execute(_first_failed(), {"canary": canary, "target": target}).scalar()
            if since is not None:
                found[(canary, target)] = aware(since)
    return found


@functools.cache
def _first_failed() -> Any:
    """The statement llm-monitor ran for each pair before (monitor/store/repository.py at d28961e)."""
    o = ObservationRow
    pair = (col(o.canary) == bindparam("canary"), col(o.target) == bindparam("target"))
    last_ok = select(o.started_at, o.run_id).where(*pair, col(o.error_type).is_(None)) \
        .order_by(col(o.started_at).desc()).limit(1)
    ok_at = last_ok.with_only_columns(col(o.started_at)).scalar_subquery()
    ok_run = last_ok.with_only_columns(col(o.run_id)).scalar_subquery()
    never = literal(datetime(1970, 1, 1, tzinfo=UTC), DateTime(timezone=True))
    return select(o.started_at).where(
        *pair, col(o.error_type).is_not(None), col(o.error_type) != ErrorType.CANCELLED.value,
        col(o.started_at) > func.coalesce(ok_at, never),
        or_(col(o.run_id) == "", func.coalesce(ok_run, "") != col(o.run_id)),
        ~exists().where(col(RunRow.id) == col(o.run_id), col(RunRow.trigger) == "manual"),
    ).order_by(col(o.started_at)).limit(1)


if __name__ == "__main__":
    main()
