"""CLI start-up: wall time of the commands that only read the configuration, before/after side by side.

`llm-monitor check-config` runs in CI jobs and pre-commit hooks of configuration repositories, once per change;
`drift` and `export` open the store. Each command runs as a fresh process (`python -m monitor.cli ...`), as a user
runs it, on a monitor.yaml with two targets, the whole canary library of `probes/` and a webhook sink. With
`--baseline DIR` (another checkout, e.g. `git worktree add /tmp/base <commit>`) the same commands run with that
checkout's `monitor` package, alternating with this one's run by run, so both see the same machine load.

Usage: python benchmarks/cli_start.py [--runs 15] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
COMMANDS = {
    "check-config": ["check-config", "-c", "{cfg}"],
    "drift --json (empty store)": ["drift", "--json", "-c", "{cfg}"],
    "--help": ["--help"],
}
HEAVY = ("scipy", "numpy", "sqlalchemy", "openai", "httpx")


def write_config(folder: Path) -> Path:
    cfg = folder / "monitor.yaml"
    cfg.write_text(
        "targets:\n"
        "  - {id: gpt, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: gpt-4o-mini, api_key_env: K}\n"
        "  - {id: claude, provider: anthropic, base_url: 'http://127.0.0.1:9', model: claude-3-5-haiku-latest,"
        " api_key_env: K}\n"
        f"probes: ['{HERE / 'probes'}']\n"
        f"storage: {{url: 'sqlite:///{folder / 'm.db'}'}}\n"
        "alerts:\n  sinks:\n    - {name: hook, type: webhook, url: 'http://127.0.0.1:9/h', secret_env: S}\n")
    return cfg


def run_once(code: str, argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "monitor.cli", *argv], capture_output=True, text=True,
                          env={**env, "PYTHONPATH": code}, cwd=code, check=False)
    took = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{argv} with {code} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return took


def loaded_heavy(code: str, cfg: Path, env: dict[str, str]) -> str:
    """Which of the heavy modules `check-config` loads with this checkout."""
    probe = (f"import sys; from monitor.cli import main; main(['check-config', '-c', {str(cfg)!r}]); "
             f"print(','.join(m for m in {HEAVY!r} if m in sys.modules) or 'none', file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env={**env, "PYTHONPATH": code}, cwd=code, check=False)
    return done.stderr.strip().splitlines()[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15, help="runs of each command per checkout (default 15)")
    ap.add_argument("--baseline", type=Path, help="a checkout whose monitor package is the 'before'")
    args = ap.parse_args()
    codes = {"after": str(HERE)}
    if args.baseline:
        codes = {"before": str(args.baseline.resolve()), **codes}
    env = {**os.environ, "K": "k", "S": "whsec_" + "A" * 32}
    with tempfile.TemporaryDirectory(prefix="cli-start-") as tmp:
        cfg = write_config(Path(tmp))
        subprocess.run([sys.executable, "-c", "import sys; from monitor.store import Store; Store(sys.argv[1]).migrate()",
                        f"sqlite:///{Path(tmp) / 'm.db'}"], env={**env, "PYTHONPATH": str(HERE)}, check=True)
        times: dict[tuple[str, str], list[float]] = {}
        for name, argv in COMMANDS.items():
            argv = [a.format(cfg=cfg) for a in argv]
            for code in codes.values():  # warm the file cache and .pyc files, untimed
                run_once(code, argv, env)
            for _ in range(args.runs):
                for label, code in codes.items():
                    times.setdefault((name, label), []).append(run_once(code, argv, env))
        heavy = {label: loaded_heavy(code, cfg, env) for label, code in codes.items()}
    labels = list(codes)
    print(f"median wall time of {args.runs} runs, seconds (python -m monitor.cli; {os.cpu_count()} cores)")
    head = "| command | " + " | ".join(labels) + (" | after / before |" if len(labels) > 1 else " |")
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for name in COMMANDS:
        meds = [statistics.median(times[(name, label)]) for label in labels]
        ratio = f" | {meds[-1] / meds[0]:.2f}" if len(meds) > 1 else ""
        print(f"| {name} | " + " | ".join(f"{m:.3f}" for m in meds) + ratio + " |")
    print("| heavy modules check-config loads | " + " | ".join(heavy[label] for label in labels)
          + (" | |" if len(labels) > 1 else " |"))


if __name__ == "__main__":
    main()
