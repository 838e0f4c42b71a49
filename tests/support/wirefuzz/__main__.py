"""`python -m tests.support.wirefuzz`: run many seeded cases and print what the providers made of them."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import tests.support.wirefuzz as wirefuzz
from monitor.domain import CallResult
from tests.support.fuzzreport import print_summary
from tests.support.wirefuzz.mutate import make_case
from tests.support.wirefuzz.runner import daemon_provider, run_cases, store_cases


def main() -> None:
    import argparse
    import collections

    ap = argparse.ArgumentParser(prog="python -m tests.support.wirefuzz", description=wirefuzz.__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--show", type=int, default=3, help="examples shown per kind of problem")
    ap.add_argument("--store", type=int, default=0, help="also run this many cases through the daemon's runner "
                                                          "into a SQLite store (in a temporary folder)")
    ap.add_argument("--store-url", help="with --store: an empty PostgreSQL database to store them in instead "
                                        "(postgresql+psycopg://...)")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    cases = [make_case(rng, i) for i in range(args.cases)]
    outcomes = asyncio.run(run_cases(cases, daemon_provider))
    kinds: collections.Counter[str] = collections.Counter()
    errors: collections.Counter[str] = collections.Counter()
    shown: dict[str, int] = collections.defaultdict(int)
    for o in outcomes:
        r = o.result
        errors[f"{o.case.kind}/{'stream' if o.case.stream else 'whole'}: "
               f"{getattr(getattr(r, 'error_type', None), 'value', 'ok') if isinstance(r, CallResult) else 'RAISED'}"] += 1
        for p in o.problems:
            key = p.split(":")[0][:60]
            kinds[key] += 1
            if shown[key] < args.show:
                shown[key] += 1
                print(f"{o.case.id} {o.case.kind} stream={o.case.stream} {o.case.mutations}\n  -> {p}\n"
                      f"  result: {getattr(r, 'error_type', None)} {getattr(r, 'error_message', r)!r}"[:600])
    if args.store:
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            problems = asyncio.run(store_cases(cases[:args.store], Path(folder), args.store_url))
        print(f"\nstored through the runner: {args.store} cases, {len(problems)} problems")
        for p in problems[:20]:
            print("  " + p)
    print_summary(f"{len(outcomes)} cases, seed {args.seed}", errors, kinds)


if __name__ == "__main__":
    main()
