"""The shipped price table: which listed model prices a model that answered."""

from __future__ import annotations

import pytest

from monitor.pricing import default_prices, prices_for


@pytest.mark.parametrize(("model", "listed"), [
    ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"), ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
    ("claude-sonnet-4-20250514", "claude-sonnet-4"), ("gpt-3.5-turbo-0125", "gpt-3.5-turbo"),
    ("gpt-5", "gpt-5"), ("o3-2025-04-16", "o3"),
    ("gpt-5-pro-2025-10-06", None), ("o3-pro", None), ("gpt-4o-audio-preview", None), ("claude-opus-4-1x", None),
])
def test_a_model_is_priced_as_a_listed_one_only_when_it_is_a_snapshot_of_it(model: str, listed: str | None) -> None:
    table = default_prices()
    assert prices_for(model, table) == (table[listed] if listed else None)
