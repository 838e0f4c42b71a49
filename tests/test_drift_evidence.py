"""A drift event's evidence and the word diff `diff` prints: what they leave out of a long text they say."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from monitor.domain import utcnow
from monitor.drift.events import evidence, word_diff
from monitor.sim import scenario_from_dict
from monitor.store import Store
from tests.support.drift_app import stored_runs
from tests.support.inprocess import Cli
from tests.test_store_contract import obs

LONG = "word " * 1000  # 5,000 characters


def test_a_cut_text_says_so_in_the_evidence_and_its_diff() -> None:
    # Found by QA: evidence and diff cut texts at 2,000 characters without a word; a changed ending read as no change
    shown = evidence(LONG, LONG + "END")
    assert shown["baseline_completion"].endswith("… (cut: 2,000 of 5,000 characters shown)")
    assert shown["current_completion"].endswith("… (cut: 2,000 of 5,003 characters shown)")
    assert shown["diff"].endswith("… (cut: 2,000 of 5,000 baseline characters and 2,000 of 5,003 current characters "
                                  "compared)"), shown["diff"][-200:]
    short = evidence("a b c", "a b d")
    assert short == {"baseline_completion": "a b c", "current_completion": "a b d", "diff": "a b [-c-] {+d+}"}
    assert word_diff("a b", LONG).endswith("(cut: 2,000 of 5,000 current characters compared)")


@pytest.fixture
async def long_latest(tmp_path: Path) -> Path:
    scenario = scenario_from_dict({"name": "cut", "seed": 4, "defaults": {"ttft": 5, "output_tps": 5000},
                                   "models": {"m": {"phases": [{"name": "a"}]}}})
    cfg, observed = await stored_runs(tmp_path, scenario, 5, "{baseline_size: 5}", 2)
    store = Store(f"sqlite:///{tmp_path / 'm.db'}")
    store.save_observation(dataclasses.replace(obs(0, canary="c1"), started_at=utcnow(),
                                               call=dataclasses.replace(observed[-1].call, text=LONG)))
    store.close()
    return cfg


def test_the_diff_command_says_when_it_cut_a_completion(long_latest: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = Cli(capsys)("diff", "c1", "-n", "1", "-c", str(long_latest))
    assert code == 0 and "(cut: 2,000 of 5,000 current characters compared)" in out, out[-400:] + err


def test_a_text_without_spaces_is_compared_per_character() -> None:
    # Found by QA: Chinese and Japanese answers (no spaces) were one word each: one character changed showed the
    # whole sentence removed and another added, in `diff` and in the stored evidence
    assert word_diff("今天天气很好，我们去公园吧。", "今天天气不好，我们去公园吧。") == "今天天气[-很-] {+不+}好，我们去公园吧。"
    assert word_diff("東京は晴れです", "東京は雨です") == "東京は[-晴れ-] {+雨+}です"
    assert evidence("答案是42。", "答案是43。")["diff"] == "答案是[-42-] {+43+}。"  # a number is a word still
    # spaced text as before, mixed text word by word around each character
    assert word_diff("Use kill -9 PID.", "I can't help with that.") == "[-Use kill -9 PID.-] {+I can't help with that.+}"
    assert word_diff("Run 命令 now", "Run 指令 now") == "Run [-命-] {+指+}令 now"
