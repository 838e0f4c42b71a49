"""`export` then `replay`: a store of observations of every shape the daemon keeps, exported and replayed back."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.domain import CallResult, CheckResult, ErrorType, FinishReason, Observation, Usage
from monitor.store import Store
from tests.conftest import write_config
from tests.support.dumpfuzz.mutate import ODD_TEXT
from tests.support.dumpfuzz.runner import run_cli

TARGETS = "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}"
PROBES = "canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n"


def observation(rng: random.Random, i: int, start: datetime) -> Observation:
    """A stored observation: an answer with random facts, or a failed call of any error type."""
    text = rng.choice(["Paris.", "I'm sorry, I can't help with that.", "word " * rng.randint(1, 300),
                       *(t for t in ODD_TEXT if not any("\ud800" <= c <= "\udfff" for c in t))])
    failed = rng.random() < 0.2
    call = CallResult(
        text="" if failed else text,
        finish_reason=None if failed else rng.choice([None, *FinishReason]),
        response_model=rng.choice([None, "m-1", "m-2", "[/]", "\u202em"]),
        system_fingerprint=rng.choice([None, "fp_1", ""]),
        usage=Usage(output_tokens=rng.choice([None, 0, rng.randint(1, 10**6)])),
        latency_s=rng.choice([None, 0.0, rng.uniform(0, 600)]),
        ttft_s=rng.choice([None, 0.0, rng.uniform(0, 1)]),
        error_type=rng.choice(list(ErrorType)) if failed else None,
        error_message="failed" if failed else None,
    )
    checks = [CheckResult(name, "length", rng.choice([True, False, None]))
              for name in rng.sample(["short", "schema", "[b]", "ü"], rng.randint(0, 3))]
    return Observation(
        canary=rng.choice(["c1", "c2"]), target=rng.choice(["t", "u"]), provider="openai", request_model="m",
        started_at=start + timedelta(seconds=i, microseconds=rng.randrange(10**6)), call=call, checks=checks,
        refusal=None if failed else rng.choice([None, "none", "partial", "full"]),
        refusal_score=None if failed else rng.random(),
    )


def export_replay(folder: Path, seed: int = 1, n: int = 60) -> tuple[Path, list[str]]:
    """Store `n` observations, export them (to a file and to standard output) and replay the export against
    itself; return the exported file and the problems found (empty: it round-trips)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = write_config(folder, TARGETS, PROBES)
    store = Store(f"sqlite:///{folder / 'm.db'}")
    try:
        store.migrate()
        start = datetime(2026, 11, 1, tzinfo=UTC) - timedelta(days=rng.randint(0, 400))
        for i in range(n):
            store.save_observation(observation(rng, i, start))
    finally:
        store.close()
    dump = folder / "export.jsonl"
    problems = []
    code, _, err = run_cli(["export", "-c", str(cfg), "-o", str(dump)])
    if code != 0:
        return dump, [f"export: exit {code}: {err[-300:]}"]
    code, out, err = run_cli(["export", "-c", str(cfg)])
    if code != 0 or out.encode() != dump.read_bytes():
        problems.append(f"export to standard output: exit {code}, {'same' if out.encode() == dump.read_bytes() else 'differs'}")
    for extra in ([], ["--json"]):
        code, out, err = run_cli(["replay", "--baseline", str(dump), "--current", str(dump), *extra])
        if code != 0:
            problems.append(f"replay {' '.join(extra)} of the export: exit {code}: {err.strip()[-300:]}")
    return dump, problems
