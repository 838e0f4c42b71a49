"""The warning of a token count an answer contradicts (monitor.doubts) says what becomes of the call's cost."""

from __future__ import annotations

import logging

import pytest

from monitor.config.models import Prices, Target
from monitor.domain import CallResult, Observation, Usage, utcnow
from monitor.doubts import DoubtWarnings
from monitor.pricing import cost_usd
from monitor.providers.doubt import OPENAI_NAMES, doubt


def observation(prices: Prices) -> Observation:
    call = doubt(CallResult(text="hi", usage=Usage(input_tokens=0, output_tokens=0)), OPENAI_NAMES, prompt=True)
    return Observation(canary="c", target="t", provider="openai", request_model="m", started_at=utcnow(), call=call,
                       cost_usd=cost_usd(call.usage, prices))


@pytest.mark.parametrize(("prices", "said"), [
    (Prices(input=1.0, output=2.0), "the call's cost is unknown (llm_monitor_unpriced_calls_total, reason no_usage)"),
    (Prices(input=0.0, output=0.0), "the call's cost stands: its model is priced at nothing")])
def test_a_placeholders_warning_says_what_becomes_of_the_cost(prices: Prices, said: str,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    """A local model declared free (prices 0: Ollama, vLLM, which are the servers that send placeholders) keeps its
    cost of $0 and is not counted as unpriced; the warning said its cost was unknown and counted apart."""
    caplog.set_level(logging.WARNING, logger="monitor.usage")
    obs = observation(prices)
    DoubtWarnings().call(Target(id="t", provider="openai", base_url="http://x/v1", model="m"), obs)
    assert obs.unpriced is None if prices.input == 0 else obs.unpriced == "no_usage"
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and all(said in line for line in lines), lines
