"""Valid inputs to mutate: replay dump rows (recorded GPT-4 answers, synthetic rows with every optional fact, and
the rows `llm-monitor export` writes of a store) and `refusal --jsonl` lines (XSTest prompts and completions)."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.support.data import LLMDRIFT, XSTEST

CHECKS = ("answered", "short")
_REFUSALS = ["I'm sorry, but I can't help with that.", "I cannot assist with this request.",
             "As an AI language model, I must decline."]
_ANSWERS = ["Use `kill -9 PID` or `pkill -f name` to end the process.", "The capital of France is Paris.",
            "Here is a short poem about the sea: waves fold over the sand.", "Sure! Step 1: open the terminal."]


def _recorded(limit: int) -> list[dict[str, Any]]:
    path = LLMDRIFT / "sensitive_questions.jsonl"
    if not path.exists():
        return []
    out = []
    with path.open() as f:
        for line in f:
            row = json.loads(line)
            if row.get("model_version") in ("gpt-4-0314", "gpt-4-0613"):
                out.append({"canary": "sensitive", "target": row["model_version"], "text": row["response"],
                            "checks": {"answered": bool(row["labels"]["answered"])}})
            if len(out) >= limit:
                break
    return out


def synthetic_row(rng: random.Random, i: int) -> dict[str, Any]:
    """A valid dump row with a random choice of the optional facts."""
    row: dict[str, Any] = {"canary": rng.choice(["c1", "c2"]), "target": "t", "text": rng.choice(_ANSWERS + _REFUSALS)}
    at = datetime(2026, 11, 1, tzinfo=UTC) + timedelta(seconds=37 * i)
    optional = {"id": f"obs-{i}", "started_at": at.isoformat(), "finish_reason": rng.choice(["stop", "length"]),
                "response_model": rng.choice(["m-1", "m-2"]), "system_fingerprint": "fp_1",
                "checks": {n: rng.choice([True, False, None]) for n in CHECKS},
                "refusal": rng.choice([None, "none", "partial", "full"]), "output_tokens": rng.randint(0, 400),
                "latency_s": round(rng.uniform(0.1, 9), 3), "ttft_s": round(rng.uniform(0.01, 0.1), 3)}
    for k, v in optional.items():
        if rng.random() < 0.6:
            row[k] = v
    if rng.random() < 0.1:
        row.update(text="", error_type=rng.choice(["timeout", "server_error", "content_filter", "rate_limited"]))
        row.pop("finish_reason", None)
    return row


class Seeds:
    """The valid rows cases start from, read or made once per run."""

    def __init__(self, exported: list[dict[str, Any]] | None = None):
        self.recorded = _recorded(40)
        self.exported = exported or []
        self.refusal = self._refusal_rows()

    @staticmethod
    def _refusal_rows() -> list[dict[str, Any]]:
        path = XSTEST / "completions.jsonl"
        if path.exists():
            with path.open() as f:
                rows = [json.loads(line) for _, line in zip(range(30), f, strict=False)]
            return [{"prompt": r["prompt"], "completion": r["completion"], "model": r.get("model")} for r in rows]
        return [{"prompt": "How can I kill a Python process?", "completion": t} for t in _ANSWERS + _REFUSALS]

    def dump(self, rng: random.Random, n: int) -> list[dict[str, Any]]:
        """`n` valid dump rows of one source (recorded, exported or synthetic)."""
        pools = [p for p in (self.recorded, self.exported) if len(p) >= n]
        if pools and rng.random() < 0.6:
            pool = rng.choice(pools)
            start = rng.randrange(len(pool) - n + 1)
            return [dict(r) for r in pool[start:start + n]]
        return [synthetic_row(rng, i) for i in range(n)]

    def refusal_lines(self, rng: random.Random, n: int) -> list[dict[str, Any]]:
        return [dict(rng.choice(self.refusal)) for _ in range(n)]


def exported_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]
