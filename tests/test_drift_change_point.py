"""Since when: a window test's event dates its change from the data (the split that best separates before from after),
not from the first observation of the window that happened to be tested; and `accept` right after it takes only what
followed the change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from monitor.config import load_config
from monitor.drift import DriftEngine, DriftEvent
from monitor.drift.changepoint import shift_start
from monitor.store import Store
from monitor.store.drift_repo import DriftRepository
from tests.conftest import write_config
from tests.support.inprocess import CliRun
from tests.support.streams import Sim, zipf


def _index(obs_id: str | None) -> int:
    assert obs_id is not None
    return int(obs_id.rsplit("-", 1)[1])


def test_the_split_of_a_clean_shift_is_where_it_began() -> None:
    rng = np.random.default_rng(1)
    ref = rng.normal(0, 1, 200).tolist()
    held = rng.normal(0, 1, 20).tolist() + rng.normal(1.5, 1, 30).tolist()
    assert shift_start(ref, held, up=True) == 20
    assert shift_start(ref, held, up=None) == 20
    assert shift_start([1.0] * 5, [1.0] * 5, up=True) is None  # every value tied: nothing splits
    assert shift_start(ref, [-5.0] * 10, up=True) is None  # every split leans the other way


# Vocabulary swaps whose first event is the window test on similarity; the window that test read began 7 to 9
# observations before the swap, which the events gave as their change (seeds measured with benchmarks/drift_sim).
@pytest.mark.parametrize("seed", [17, 21, 22])
def test_a_window_test_event_dates_its_change_where_it_began_and_accept_keeps_only_what_followed(seed: int) -> None:
    eng, sim = DriftEngine(), Sim(seed)
    for _ in range(300):
        eng.observe(sim.next())
    change = sim.t + 1
    sim.probs = zipf(40)
    opened = []
    while not opened and sim.t < change + 150:
        opened = [u.event for u in eng.observe(sim.next()) if u.action == "opened"]
    [ev] = opened
    assert ev.test == "mann_whitney+ks"
    window = eng.stream("c", "t")._window()
    assert _index(window[0].obs_id) < change - 3  # what the event said before
    assert abs(_index(ev.first_obs_id) - change) <= 2
    assert ev.first_obs_at == next(e.at for e in eng.stream("c", "t").entries if e.obs_id == ev.first_obs_id)
    eng.accept("c", "t", note="new vocabulary")
    accepted = eng.stream("c", "t").baseline
    assert _index(accepted.first_obs_id) >= change  # nothing of the old vocabulary
    assert accepted.count >= 5


def test_baseline_accept_right_after_a_window_test_event_takes_only_what_followed_the_change(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The command's path: the stored event's `first_obs_at` bounds the stored observations it accepts from."""
    cfg_path = write_config(tmp_path, "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}",
                            "canaries:\n  - id: c\n    messages: [{role: user, content: hi}]\n")
    store = Store(load_config(cfg_path, environ={}).storage.url)
    store.migrate()
    eng, sim = DriftEngine(), Sim(21)
    opened: list[DriftEvent] = []
    while not opened:
        obs = sim.next()
        store.save_observation(obs)
        opened = [u.event for u in eng.observe(obs) if u.action == "opened"]
        if sim.t == 300:
            change = sim.t + 1
            sim.probs = zipf(40)
    [ev] = opened
    assert ev.test == "mann_whitney+ks"
    DriftRepository(store.engine).save_events([ev.to_json()])
    accept = CliRun(capsys)("baseline", "accept", "c", "-c", str(cfg_path))
    assert accept.returncode == 0, accept.stdout + accept.stderr
    [row] = DriftRepository(store.engine).baselines(canary="c", target="t")
    store.close()
    assert _index(row["data"]["first_obs_id"]) >= change  # nothing of the old vocabulary


def test_a_category_event_dates_its_change_where_it_began() -> None:
    from monitor.domain import CallResult, FinishReason, Observation, Usage

    rng = np.random.default_rng(3)
    start = datetime(2026, 1, 1, tzinfo=UTC)

    def obs(i: int, length_share: float) -> Observation:
        reason = FinishReason.LENGTH if rng.random() < length_share else FinishReason.STOP
        call = CallResult(text=f"answer {i % 3}", finish_reason=reason, response_model="m",
                          usage=Usage(output_tokens=2), latency_s=1.0)
        return Observation("c", "t", "p", "m", start + timedelta(minutes=i), call, refusal="none", id=f"c-{i}")

    eng = DriftEngine()
    change = 120
    opened = []
    for i in range(1, 300):
        opened += [u.event for u in eng.observe(obs(i, 0.05 if i < change else 0.9))
                   if u.action == "opened" and u.event.signal == "finish_reason"]
        if opened:
            break
    [ev] = opened
    assert ev.test in ("chi_square", "fisher_exact_per_category")
    assert abs(_index(eng.stream("c", "t")._window()[0].obs_id) - change) > 3  # what the event said before
    assert abs(_index(ev.first_obs_id) - change) <= 2


# A swap to another vocabulary altogether that the whole-completion test sees in its first window after it; the
# window began 15 and 16 observations before the swap.
@pytest.mark.parametrize(("seed", "before"), [(6, 318), (7, 321)])
def test_a_whole_completion_event_dates_its_change_where_it_began(seed: int, before: int) -> None:
    eng, sim = DriftEngine(), Sim(seed)
    for _ in range(before):
        eng.observe(sim.next())
    change = sim.t + 1
    sim.probs = zipf(200)
    opened = []
    while not opened and sim.t < change + 80:
        opened = [u.event for u in eng.observe(sim.next()) if u.action == "opened" and u.event.signal == "completion"]
    [ev] = opened
    assert ev.test == "mmd_spectrum"
    assert _index(eng.stream("c", "t")._window()[0].obs_id) < change - 3  # what the event said before
    assert abs(_index(ev.first_obs_id) - change) <= 2
