"""The shipped price table: which listed model prices a model that answered."""

from __future__ import annotations

import pytest

from monitor.config.models import Prices
from monitor.domain import Usage
from monitor.pricing import cost_usd, default_prices, prices_for


@pytest.mark.parametrize(("model", "listed"), [
    ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"), ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
    ("claude-sonnet-4-20250514", "claude-sonnet-4"), ("gpt-3.5-turbo-0125", "gpt-3.5-turbo"),
    ("gpt-5", "gpt-5"), ("o3-2025-04-16", "o3"),
    ("gpt-5-pro-2025-10-06", None), ("o3-pro", None), ("gpt-4o-audio-preview", None), ("claude-opus-4-1x", None),
])
def test_a_model_is_priced_as_a_listed_one_only_when_it_is_a_snapshot_of_it(model: str, listed: str | None) -> None:
    table = default_prices()
    assert prices_for(model, table) == (table[listed] if listed else None)


def test_claude_models_price_cache_writes_at_their_ttls_multiple_and_openai_models_leave_them_unset() -> None:
    """Anthropic bills a cache write at 1.25x the input price (5-minute TTL) or 2x (1-hour); OpenAI bills none,
    and a price left unset prices those tokens as input."""
    table = default_prices()
    claude = {name: p for name, p in table.items() if "claude" in name}
    assert len(claude) >= 5
    for name, p in claude.items():
        assert p.cache_write_input == pytest.approx(p.input * 1.25), name
        assert p.cache_write_1h_input == pytest.approx(p.input * 2), name
    for name, p in table.items():
        if name not in claude:
            assert p.cache_write_input is None and p.cache_write_1h_input is None, name


def test_a_model_priced_at_zero_costs_nothing_with_or_without_token_counts() -> None:
    """A local model declared free (`prices: {input: 0, output: 0}`) needs no token counts to cost $0; any other
    price does, and without them the cost is unknown, not zero."""
    free, paid = Prices(input=0, output=0), Prices(input=0, output=1)
    assert cost_usd(Usage(), free) == 0.0 and cost_usd(Usage(input_tokens=5), free) == 0.0
    assert cost_usd(Usage(input_tokens=5, output_tokens=7), free) == 0.0
    assert cost_usd(Usage(), paid) is None and cost_usd(Usage(), Prices(input=0, output=0, cached_input=1)) is None
    assert cost_usd(Usage(input_tokens=5, output_tokens=7), None) is None
