"""What a call cost: shipped default prices, per-target overrides, priced by the model that answered."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import yaml

from monitor.config.models import Prices
from monitor.domain import Usage


@lru_cache(maxsize=1)
def default_prices() -> dict[str, Prices]:
    """Return the shipped price table (USD per million tokens), keyed by model name or prefix."""
    raw = yaml.safe_load(resources.files("monitor").joinpath("pricing.yaml").read_text(encoding="utf-8"))
    return {name: Prices(**p) for name, p in raw["models"].items()}


def prices_for(model: str | None, table: dict[str, Prices]) -> Prices | None:
    """Return the prices of `model`: an exact entry, else the longest entry that prefixes it."""
    if not model:
        return None
    if model in table:
        return table[model]
    best = max((k for k in table if model.startswith(k)), key=len, default=None)
    return table[best] if best else None


def cost_usd(usage: Usage, prices: Prices | None) -> float | None:
    """Return the cost of one call, or None when the prices or the token counts are unknown."""
    if prices is None or usage.input_tokens is None or usage.output_tokens is None:
        return None
    cached = usage.cached_input_tokens or 0
    cached_price = prices.cached_input if prices.cached_input is not None else prices.input
    uncached = max(usage.input_tokens - cached, 0)
    return (uncached * prices.input + cached * cached_price + usage.output_tokens * prices.output) / 1e6
