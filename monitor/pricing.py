"""What a call cost: shipped default prices, per-target overrides, priced by the model that answered."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING

import yaml

from monitor.config.models import EmbeddingsConfig, Prices
from monitor.domain import CallResult, Usage

if TYPE_CHECKING:
    from monitor.config.loader import Config


@lru_cache(maxsize=1)
def default_prices() -> dict[str, Prices]:
    """Return the shipped price table (USD per million tokens), keyed by model name or prefix."""
    raw = yaml.safe_load(resources.files("monitor").joinpath("pricing.yaml").read_text(encoding="utf-8"))
    return {name: Prices(**p) for name, p in raw["models"].items()}


# What may follow a listed name and still be the same model: a dated or numbered snapshot, or `-latest`
# (gpt-4o-mini-2024-07-18, claude-sonnet-4-5-20250929, gpt-3.5-turbo-0125). Anything else is another model:
# gpt-5-pro is not gpt-5 at a tenth of its price.
_SNAPSHOT = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8}|\d{4}|latest)")


def prices_for(model: str | None, table: dict[str, Prices]) -> Prices | None:
    """Return the prices of `model`: an exact entry, else the longest entry it is a snapshot of; else None."""
    if not model:
        return None
    if model in table:
        return table[model]
    best = max((k for k in table if model.startswith(k) and _SNAPSHOT.fullmatch(model[len(k):])), key=len,
               default=None)
    return table[best] if best else None


def cost_usd(usage: Usage, prices: Prices | None) -> float | None:
    """Return the cost of one call, or None when the prices or the token counts are unknown (a model priced at
    zero costs nothing however many tokens it used)."""
    if prices is None:
        return None
    if usage.input_tokens is None or usage.output_tokens is None:
        return 0.0 if _free(prices) else None
    read = usage.cached_input_tokens or 0
    written = usage.cache_write_input_tokens or 0
    hour = min(usage.cache_write_1h_input_tokens or 0, written)  # writes not broken down by TTL are 5-minute ones
    plain = max(usage.input_tokens - read - written, 0)
    return (plain * prices.input + read * _or_input(prices.cached_input, prices)
            + (written - hour) * _or_input(prices.cache_write_input, prices)
            + hour * _or_input(prices.cache_write_1h_input, prices) + usage.output_tokens * prices.output) / 1e6


def _free(prices: Prices) -> bool:
    """Whether every kind of token is priced at zero (a local model declared free with `prices`)."""
    return not any((prices.input, prices.output, prices.cached_input, prices.cache_write_input,
                    prices.cache_write_1h_input))


def _or_input(price: float | None, prices: Prices) -> float:
    """A special input price, or the plain input price where the table leaves it unset."""
    return prices.input if price is None else price


def embeddings_prices(emb: EmbeddingsConfig) -> Callable[[CallResult], Prices | None]:
    """The prices of an embeddings call: the configured ones, else the table's for the model that answered."""
    own = Prices(input=emb.prices.input, output=0.0) if emb.prices is not None else None
    return lambda call: own or prices_for(call.response_model or emb.model, default_prices())


def uncounted_caps(config: Config) -> list[str]:
    """Say which daily spend caps cannot count their target's calls as configured: the target has no `prices` and
    the shipped table none for its model (nor, for the embeddings target, for the embeddings model)."""
    out = [f"{t.where or config.path}: target {t.id}: daily_spend_cap_usd is set, but model {t.model} has no price "
           "(the shipped price table does not list it and the target sets no prices): the cap counts only calls whose "
           "cost is known, so it pauses nothing unless the model that answers is one the table prices; set "
           "prices (a model that costs nothing: prices: {input: 0, output: 0})"
           for t in config.targets
           if t.daily_spend_cap_usd is not None and t.prices is None and prices_for(t.model, default_prices()) is None]
    emb = config.drift.embeddings
    # a reload keeps the running drift settings (a restart applies them): their target may be gone from `targets`
    capped = {t.id for t in config.targets if t.daily_spend_cap_usd is not None}
    if emb is not None and emb.target in capped and emb.prices is None \
            and prices_for(emb.model, default_prices()) is None:
        out.append(f"{emb.where or config.path}: drift.embeddings: model {emb.model} has no price (the shipped "
                   f"price table does not list it and drift.embeddings sets no prices): target {emb.target}'s "
                   "daily_spend_cap_usd does not count its embeddings calls; set drift.embeddings.prices")
    return out
