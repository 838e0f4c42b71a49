"""`python -m tests.support.cfgfuzz`: run many seeded cases and print what loading made of them."""

from __future__ import annotations

import argparse
import collections
import random
import tempfile
import time
from pathlib import Path

import tests.support.cfgfuzz as cfgfuzz
from monitor.errors import ConfigError
from tests.support.cfgfuzz.mutate import base_files, make_case
from tests.support.cfgfuzz.runner import run_case
from tests.support.cfgfuzz.seeds import write_fixed
from tests.support.fuzzreport import print_summary


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m tests.support.cfgfuzz", description=cfgfuzz.__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--show", type=int, default=3, help="examples shown per kind of problem")
    ap.add_argument("--no-cli", action="store_true", help="load only, without running check-config")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    base = base_files()
    results: collections.Counter[str] = collections.Counter()
    kinds: collections.Counter[str] = collections.Counter()
    shown: dict[str, int] = collections.defaultdict(int)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="cfgfuzz-") as tmp:
        folder = Path(tmp)
        write_fixed(folder)
        for i in range(args.cases):
            case = make_case(rng, i, base)
            o = run_case(case, folder, cli=not args.no_cli)
            loaded = "ok" if not isinstance(o.loaded, BaseException) else \
                "ConfigError" if isinstance(o.loaded, ConfigError) else "RAISED"
            results[f"{case.target.split('/')[0]}: {loaded}, check-config {o.code}"[:70]] += 1
            for p in o.problems:
                key = p[:70].split(": ")[0] if not p.startswith("raised") else p[:70]
                kinds[key] += 1
                if shown[key] < args.show:
                    shown[key] += 1
                    print(f"{case.id} {case.target} {case.mutations}"[:300] + f"\n  -> {p}"[:400])
    print_summary(f"{args.cases} cases, seed {args.seed}, {time.monotonic() - started:.0f} s", results, kinds)


if __name__ == "__main__":
    main()
