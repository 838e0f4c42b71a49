"""`replay` reads a row's `refusal_text` (OpenAI's `refusal` field, Anthropic's refusal stop) as the daemon does: a
refusal the provider signalled is one, whatever the classifier makes of the row's `text`; `export` writes it.

Found by review: `row_to_observation` dropped it, so a row without a recorded `refusal` was judged on its text
alone, and OpenAI's refusals (empty or harmless content beside the `refusal` field) replayed as answers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from monitor.domain import CallResult, FinishReason, Observation
from monitor.drift.dump import observation_row, row_to_observation
from monitor.refusal import RefusalDetector
from tests.support.daemon import cli

REFUSED = "I can't help with that."


def test_a_rows_refusal_text_is_judged_as_the_daemon_judges_it() -> None:
    row = {"canary": "c", "target": "t", "text": "", "finish_reason": "stop", "refusal_text": REFUSED}
    obs = row_to_observation(row, "dump.jsonl", 1)
    assert obs.call.refusal_text == REFUSED
    live = Observation(canary="c", target="t", provider="openai", request_model="m", started_at=datetime.now(UTC),
                       call=CallResult(text="", finish_reason=FinishReason.STOP, refusal_text=REFUSED))
    detector = RefusalDetector()
    assert (verdict := detector.detect_observation(obs)) is not None and verdict.label == "full"
    assert verdict == detector.detect_observation(live)
    assert observation_row(live)["refusal_text"] == REFUSED  # export writes it, for replay to read


def test_replay_finds_refusals_the_provider_signalled(tmp_path: Path) -> None:
    def dump(name: str, refusal_text: str | None) -> Path:
        row = {"canary": "c", "target": "t", "text": "Use kill -9 PID.", "finish_reason": "stop",
               "refusal_text": refusal_text}
        (path := tmp_path / name).write_text("".join(json.dumps(row) + "\n" for _ in range(30)))
        return path

    out = cli("replay", "--baseline", str(dump("a.jsonl", None)), "--current", str(dump("b.jsonl", REFUSED)),
              "--zero-tolerance", "refused", "--json")
    assert out.returncode == 0, out.stderr
    assert "refused" in {json.loads(line)["signal"] for line in out.stdout.splitlines()}, out.stdout
