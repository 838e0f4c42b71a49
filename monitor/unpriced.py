"""Calls whose cost is unknown, said out loud: an unknown cost is not a zero.

A billed call has no cost when the model that answered has no price (not in the shipped table, no `prices` on the
target) or when the server reported no token counts (or a placeholder 0 its answer contradicts: providers.doubt).
Its cost is stored as null, it is counted in `llm_monitor_unpriced_calls_total` (telemetry/metrics.py), and
neither today's spend nor the daily cap counts it: nothing is guessed. This module warns of it: of each cap that
cannot count its target's calls as configured (at start and on a reload, as `check-config` does), and once per
target, model and reason of the calls themselves.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from monitor.config.models import Prices, Target
from monitor.domain import UNPRICED_NO_PRICE, Observation
from monitor.pricing import uncounted_caps

if TYPE_CHECKING:
    from monitor.config.loader import Config

log = logging.getLogger("monitor.spend")  # where the cap's own lines are


@dataclass
class UnpricedWarnings:
    """Logs each spend cap that cannot count, and each (target, model, reason) of unpriced calls, once."""

    _said: set[object] = field(default_factory=set)

    def config(self, config: Config) -> None:
        """Warn of the spend caps `config` sets on models without a price (those not warned of before)."""
        for message in uncounted_caps(config):
            if self._first(message):
                log.warning("%s", message)

    def call(self, target: Target, obs: Observation, prices: Prices | None) -> None:
        """Warn, the first time for its target, model and reason, that a billed call's cost is unknown."""
        reason = obs.unpriced
        model = obs.call.response_model or obs.request_model
        if reason is None or not self._first((target.id, model, reason)):
            return
        why = (f"model {model} has no price (the shipped price table does not list it and no prices are set for it)"
               if reason == UNPRICED_NO_PRICE else
               f"model {model} answered without token counts" + (" that can be believed (placeholder zeros)"
                                                                  if obs.call.usage_doubts else "")
               + ("" if prices is not None else ", and has no price")
               + (" (a server that ignores stream_options.include_usage sends none while streaming: if every "
                  "call lacks them, try stream: false; a stream that broke off after the answer loses them too)"
                  if obs.call.stream else ""))
        cap = "" if target.daily_spend_cap_usd is None else \
            f"; its daily spend cap (${target.daily_spend_cap_usd:g}) does not count them either"
        log.warning("target %s: %s: the cost of these calls is unknown; they are counted in "
                    "llm_monitor_unpriced_calls_total (reason %s), not in the target's spend%s", target.id, why, reason, cap,
                    extra={"target": target.id, "canary": obs.canary, "model": model, "reason": reason})

    def forget(self, targets: set[str]) -> None:
        """Say again what calls of `targets` (changed or removed by a reload) cost nothing known: a new server may not
        count tokens either (the spend caps' lines are said again by `config` whenever their text changes)."""
        self._said = {key for key in self._said if not (isinstance(key, tuple) and key[0] in targets)}

    def _first(self, key: object) -> bool:
        if key in self._said:
            return False
        self._said.add(key)
        return True


__all__ = ["UnpricedWarnings"]
