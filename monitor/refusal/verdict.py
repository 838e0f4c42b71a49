"""The answer every refusal layer gives: a label, a score and the layer that decided."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Label = Literal["none", "partial", "full"]
Layer = Literal["provider", "classifier", "judge", "empty"]
LABELS: tuple[Label, ...] = ("none", "partial", "full")


@dataclass(frozen=True, slots=True)
class RefusalVerdict:
    """Whether a completion refused: ``label`` none|partial|full, ``score`` in [0, 1], and ``layer``.

    ``score`` is the probability that the completion is a refusal of some kind (partial or full); provider
    signals score 1.0. ``layer`` names who decided: ``provider`` (finish reason, refusal field, content-policy
    error), ``classifier`` (the local model), ``judge`` (a calibrated LLM judge) or ``empty`` (no text at all).
    """

    label: Label
    score: float
    layer: Layer

    @property
    def refused(self) -> bool:
        return self.label != "none"
