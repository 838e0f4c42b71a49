"""Combine the three layers: provider signals, then the local classifier, then (if unsure) a calibrated judge."""

from __future__ import annotations

from dataclasses import dataclass

from monitor.domain import ErrorType, FinishReason, Observation
from monitor.refusal.judge import LLMJudge
from monitor.refusal.model import LocalModel, shipped_model
from monitor.refusal.signals import provider_verdict
from monitor.refusal.verdict import RefusalVerdict


@dataclass
class RefusalDetector:
    """Decide whether a completion refused, layer by layer.

    Provider signals win outright. Otherwise the local model labels the text; when its refusal score falls in
    ``band`` (inclusive) and a ``judge`` is configured and currently trusted, the judge's verdict replaces
    the local one. Without a judge, or with an untrusted one, the local verdict stands.
    """

    model: LocalModel | None = None
    judge: LLMJudge | None = None
    band: tuple[float, float] = (0.3, 0.7)

    def _local(self, text: str, prompt: str | None) -> RefusalVerdict:
        if not text.strip():
            return RefusalVerdict("none", 0.0, "empty")
        p = (self.model or shipped_model()).predict(text, prompt)
        return RefusalVerdict(p.label, round(p.refused, 4), "classifier")  # type: ignore[arg-type]

    def _unsure(self, v: RefusalVerdict) -> bool:
        return self.judge is not None and v.layer == "classifier" and self.band[0] <= v.score <= self.band[1]

    def _without_judge(self, text: str, prompt: str | None, finish_reason: FinishReason | str | None,
                       refusal_text: str | None, error_type: ErrorType | str | None) -> tuple[RefusalVerdict, bool]:
        """Return the provider-signal or local verdict, and whether the judge should be asked."""
        signal = provider_verdict(text, finish_reason=finish_reason, refusal_text=refusal_text, error_type=error_type)
        if signal is not None:
            return signal, False
        local = self._local(text, prompt)
        return local, self._unsure(local)

    def detect(
        self,
        text: str,
        *,
        prompt: str | None = None,
        finish_reason: FinishReason | str | None = None,
        refusal_text: str | None = None,
        error_type: ErrorType | str | None = None,
    ) -> RefusalVerdict:
        """Return the verdict for one completion (a sync judge is asked if the classifier is unsure)."""
        verdict, ask = self._without_judge(text, prompt, finish_reason, refusal_text, error_type)
        if ask:
            assert self.judge is not None
            return self.judge.judge(text, prompt) or verdict
        return verdict

    async def adetect(
        self,
        text: str,
        *,
        prompt: str | None = None,
        finish_reason: FinishReason | str | None = None,
        refusal_text: str | None = None,
        error_type: ErrorType | str | None = None,
    ) -> RefusalVerdict:
        """Async ``detect``: the judge (sync or async ``ask``) is awaited when the classifier is unsure."""
        verdict, ask = self._without_judge(text, prompt, finish_reason, refusal_text, error_type)
        if ask:
            assert self.judge is not None
            return await self.judge.ajudge(text, prompt) or verdict
        return verdict

    def detect_observation(self, obs: Observation, prompt: str | None = None) -> RefusalVerdict | None:
        """Return the verdict for an observation, or None for a failed call that is not a content refusal."""
        c = obs.call
        if c.error_type is not None and c.error_type != ErrorType.CONTENT_FILTER:
            return None  # outages are not refusals
        return self.detect(
            c.text,
            prompt=prompt,
            finish_reason=c.finish_reason,
            refusal_text=c.refusal_text,
            error_type=c.error_type,
        )
