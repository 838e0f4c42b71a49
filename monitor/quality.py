"""The quality layer: refusal verdict and check results for each observation, before it is stored."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Future
from datetime import datetime

from monitor.checks import evaluate_all
from monitor.checks.llm_judge import JudgeGates
from monitor.concurrency import Limit
from monitor.config.loader import Config
from monitor.config.models import Canary, RefusalConfig
from monitor.domain import CallResult, Observation, utcnow
from monitor.providers.base import ChatRequest, Provider
from monitor.refusal import LLMJudge, RefusalDetector, detect

log = logging.getLogger("monitor.quality")

JUDGE_TIMEOUT_S = 60.0


def last_user_prompt(canary: Canary) -> str | None:
    return next((m.content for m in reversed(canary.messages) if m.role == "user"), None)


class Quality:
    """Annotates observations in a worker thread; llm_judge checks call their pinned judge target."""

    def __init__(self, providers: Callable[[], dict[str, Provider]], models: Callable[[], dict[str, str]],
                 loop: asyncio.AbstractEventLoop | None = None, *,
                 record: Callable[[str, Provider, CallResult, datetime], None] | None = None,
                 over_cap: Callable[[str], bool] = lambda target: False,
                 limit: Callable[[str], Limit] | None = None,
                 now: Callable[[], datetime] = utcnow):
        self._providers = providers
        self._now = now
        self._models = models
        self._loop = loop
        self._record = record  # (target id, provider, result, started), from the worker: stores it, counts its cost
        self._over_cap = over_cap
        self._limit = limit  # the judge target's max_concurrency, shared with its probe calls
        self.detector = RefusalDetector()
        self.gates = JudgeGates()  # llm_judge checks' calibration standing

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    @staticmethod
    def warm_up() -> None:
        """Load the refusal model now (start-up), not on the first probe; a broken install fails here."""
        detect("I can't help with that.")

    def judge(self, target_id: str) -> Callable[[str], str]:
        """Return a blocking `ask(prompt) -> answer` bound to a judge target (called from worker threads)."""

        def ask(prompt: str) -> str:
            provider = self._providers().get(target_id)
            if provider is None or self._loop is None:
                raise RuntimeError(f"judge target {target_id} is not configured")
            if self._over_cap(target_id):
                raise RuntimeError(f"judge target {target_id} is paused: its daily spend cap is reached")
            request = ChatRequest(model=self._models()[target_id], messages=[{"role": "user", "content": prompt}],
                                  stream=False, temperature=0.0, timeout_s=JUDGE_TIMEOUT_S)
            started = self._now()
            future: Future = asyncio.run_coroutine_threadsafe(self._complete(target_id, provider, request),
                                                              self._loop)
            result = future.result(timeout=JUDGE_TIMEOUT_S + 5)
            if self._record is not None:  # stored and counted on the loop; the verdict does not wait for it
                self._record(target_id, provider, result, started)
            if not result.ok:
                raise RuntimeError(f"judge {target_id} failed: {result.error_type}: {result.error_message}")
            return result.text

        return ask

    async def _complete(self, target_id: str, provider: Provider, request: ChatRequest) -> CallResult:
        if self._limit is None:
            return await provider.complete(request)
        async with self._limit(target_id):  # probe runs release it before their checks call a judge: no deadlock
            return await provider.complete(request)

    def use_judge(self, cfg: RefusalConfig, model: str) -> LLMJudge | None:
        """Consult an LLM judge where the local classifier is unsure (only once it passes calibration)."""
        if cfg.judge_target is None:
            self.detector = RefusalDetector()
            return None
        judge = LLMJudge(self.judge(cfg.judge_target), target=cfg.judge_target, model=model,
                         min_agreement=cfg.min_agreement)
        self.detector = RefusalDetector(judge=judge, band=cfg.band)
        return judge

    async def calibrate_judge(self, config: Config) -> None:
        """Pin the refusal judge to its target and run the frozen calibration set; log whether it is trusted.
        The llm_judge checks' judges calibrate again before their next verdict (a reload may change a model)."""
        self.gates.clear()
        target = config.refusal.judge_target
        judge = self.use_judge(config.refusal, config.target(target).model if target else "")
        if judge is None:
            return
        report = await asyncio.to_thread(judge.calibrate)
        level = logging.INFO if report.passed else logging.WARNING
        failed = f"; {report.failed} call(s) failed, first: {report.error}" if report.failed else ""
        log.log(level, "refusal judge %s on %s: agreement %.0f%% on %d calibration items (need %.0f%%)%s: %s",
                target, judge.model, 100 * report.agreement, report.n, 100 * config.refusal.min_agreement, failed,
                "trusted" if report.passed else "NOT trusted, local verdicts stand")

    def __call__(self, obs: Observation, canary: Canary) -> None:
        verdict = self.detector.detect_observation(obs, last_user_prompt(canary))
        if verdict is not None:
            obs.refusal, obs.refusal_score = verdict.label, verdict.score
        if canary.checks:
            judges = {t: self.judge(t) for t in {getattr(c, "judge_target", None) for c in canary.checks} if t}
            obs.checks = evaluate_all(canary.checks, obs, judge=judges or None, canary=canary, gates=self.gates)
