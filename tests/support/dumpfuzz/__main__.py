"""`python -m tests.support.dumpfuzz`: run many seeded cases and print which promises broke, by kind."""

from __future__ import annotations

import argparse
import collections
import random
import re
import tempfile
import time
from pathlib import Path

import tests.support.dumpfuzz as dumpfuzz
from tests.support.dumpfuzz import Seeds, export_replay, exported_rows, make_case, run_case
from tests.support.fuzzreport import print_summary


def _kind(problem: str) -> str:
    if problem.startswith("raised"):  # raised: Error: message at file:line
        return f"raised {problem.split(':')[1].strip()} at {problem.rsplit(' at ', 1)[-1]}"
    return re.sub(r"\d+", "N", problem.split("(")[0].split(":")[0])[:80]


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m tests.support.dumpfuzz", description=dumpfuzz.__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--show", type=int, default=2, help="examples shown per kind of problem")
    args = ap.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dumpfuzz-") as tmp:
        folder = Path(tmp)
        dump, problems = export_replay(folder / "store", args.seed)
        print(f"export -> replay round trip: {len(problems)} problems")
        for p in problems:
            print("  " + p)
        seeds = Seeds(exported_rows(dump) if dump.exists() else None)
        rng = random.Random(args.seed)
        kinds: collections.Counter[str] = collections.Counter()
        codes: collections.Counter[str] = collections.Counter()
        shown: dict[str, int] = collections.defaultdict(int)
        for i in range(args.cases):
            o = run_case(make_case(rng, i, seeds), folder)
            codes[f"{o.case.command}: exit {o.code}"] += 1
            for p in o.problems:
                key = _kind(p)
                kinds[key] += 1
                if shown[key] < args.show:
                    shown[key] += 1
                    print(f"{o.case.summary()[:400]}\n  -> {p[:500]}")
    print_summary(f"{args.cases} cases, seed {args.seed}, {time.monotonic() - started:.0f} s", codes, kinds)


if __name__ == "__main__":
    main()
