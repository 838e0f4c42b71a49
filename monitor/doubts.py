"""Token counts a target's answers contradict, said out loud once per target and field.

`providers.doubt` makes such a count unknown (a cache count beyond the prompt, a 0 for an answer with output): the
call is kept, the count is not believed. This logs it, the first time for each target and field, naming the field
and the values, and what becomes of the call's cost.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from monitor.config.models import Target
from monitor.domain import UNPRICED_NO_USAGE, Observation

log = logging.getLogger("monitor.usage")


@dataclass
class DoubtWarnings:
    """Logs, once per (target, field), a token count a call's answer contradicts."""

    _said: set[tuple[str, str]] = field(default_factory=set)

    def call(self, target: Target, obs: Observation) -> None:
        """Warn of each doubted count of `obs` whose field was not warned of before for its target."""
        for name, what in obs.call.usage_doubts:
            if (target.id, name) in self._said:
                continue
            self._said.add((target.id, name))
            model = obs.call.response_model or obs.request_model
            placeholder = "placeholder" in what
            # a model declared free (prices 0) costs nothing whatever its counts: its cost stands, not unpriced
            cost = ("the call's cost stands: its model is priced at nothing" if obs.cost_usd is not None else
                    "the call's cost is unknown" + (" (llm_monitor_unpriced_calls_total, reason no_usage)"
                                                    if obs.unpriced == UNPRICED_NO_USAGE else ""))
            then = (f"the count is recorded as unknown, as if the server had sent none: {cost}" if placeholder else
                    "it is recorded as unknown and the call is priced without it")
            log.warning("target %s: model %s answered %s; %s; the call is kept (said once per target and field)",
                        target.id, model, what, then,
                        extra={"target": target.id, "canary": obs.canary, "model": model, "field": name})

    def forget(self, targets: set[str]) -> None:
        """Say again what `targets` (changed or removed by a reload) are doubted of: a new server or model may not."""
        self._said = {key for key in self._said if key[0] not in targets}


__all__ = ["DoubtWarnings"]
