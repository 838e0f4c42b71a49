"""Prometheus metrics on an injected registry (never the global one).

Label sets are bounded: canary and target ids come from the config, models and fingerprints from the few the
upstream reports, error types from one enum. Series are pre-initialised so they exist before the first event.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from monitor import __version__
from monitor.domain import ErrorType, Observation
from monitor.telemetry import names as n


class Metrics:
    """Every metric llm-monitor exports, registered on one registry."""

    def __init__(self, registry: CollectorRegistry):
        self.registry = registry
        r = registry
        self.duration = Histogram(n.OP_DURATION, "GenAI operation duration (client side, whole call).",
                                  n.GENAI_LABELS, buckets=n.DURATION_BUCKETS, registry=r)
        self.ttfc = Histogram(n.OP_TTFC, "Time from request start to the first chunk with content (streaming).",
                              n.GENAI_LABELS, buckets=n.DURATION_BUCKETS, registry=r)
        self.tokens = Histogram(n.TOKEN_USAGE, "Tokens per call as reported by the server.",
                                (*n.GENAI_LABELS, "gen_ai_token_type"), buckets=n.TOKEN_BUCKETS, registry=r)
        pair = ("canary", "target")
        self.attempts = Counter("llm_monitor_probe_attempts", "Probe calls made.", pair, registry=r)
        self.failures = Counter("llm_monitor_probe_failures", "Probe calls that failed, by error type.",
                                (*pair, "error_type"), registry=r)
        self.output_rate = Histogram("llm_monitor_output_tokens_per_second",
                                     "Server-reported output tokens over the time after the first chunk.",
                                     pair, buckets=n.RATE_BUCKETS, registry=r)
        self.cost = Counter("llm_monitor_cost_usd", "Spend on probe calls in USD (known prices only).", pair,
                            registry=r)
        self.spend_today = Gauge("llm_monitor_spend_today_usd", "Spend since 00:00 UTC in USD.", ("target",),
                                 registry=r)
        self.spend_cap = Gauge("llm_monitor_spend_cap_usd", "Daily spend cap in USD (absent: no cap).",
                               ("target",), registry=r)
        self.paused = Gauge("llm_monitor_target_paused", "1 while the daily spend cap pauses the target.",
                            ("target",), registry=r)
        self.last_success = Gauge("llm_monitor_last_success_timestamp_seconds",
                                  "Unix time of the last successful call.", pair, registry=r)
        self.last_attempt = Gauge("llm_monitor_last_attempt_timestamp_seconds", "Unix time of the last call.",
                                  pair, registry=r)
        self.interval = Gauge("llm_monitor_canary_interval_seconds", "Scheduled period of the canary.",
                              ("canary",), registry=r)
        self.model_info = Gauge("llm_monitor_model_info", "Model and system fingerprint the target answers with.",
                                ("target", "response_model", "system_fingerprint"), registry=r)
        self.build_info = Gauge("llm_monitor_build_info", "Build information.", ("version", "python_version"),
                                registry=r)
        self.reload_ok = Gauge("llm_monitor_config_last_reload_successful",
                               "1 if the last configuration (re)load succeeded.", registry=r)
        self.reload_ts = Gauge("llm_monitor_config_last_reload_success_timestamp_seconds",
                               "Unix time of the last successful configuration load.", registry=r)
        self.refusals = Counter("llm_monitor_refusals", "Completions judged refusals.", (*pair, "refusal"),
                                registry=r)
        self.refusal_ratio = Gauge("llm_monitor_refusal_ratio",
                                   "Share of the last run's answered samples that were refusals (partial or full).",
                                   pair, registry=r)
        self.checks = Counter("llm_monitor_check_results", "Check outcomes.", (*pair, "check", "result"),
                              registry=r)
        self.check_ratio = Gauge("llm_monitor_check_pass_ratio", "Share of the last run's samples passing a check.",
                                 (*pair, "check"), registry=r)
        self.drift_active = Gauge("llm_monitor_drift_active", "1 while a drift event is open.",
                                  (*pair, "signal"), registry=r)
        self.drift_events = Counter("llm_monitor_drift_events", "Drift events opened.",
                                    (*pair, "signal", "kind"), registry=r)
        self.pending = Gauge("llm_monitor_notifications_pending", "Notifications waiting in the outbox.",
                             registry=r)
        self.sent = Counter("llm_monitor_notifications_sent", "Notifications delivered.", ("sink",), registry=r)
        self.send_failures = Counter("llm_monitor_notification_failures", "Failed delivery attempts.", ("sink",),
                                     registry=r)
        self.in_flight = Gauge("llm_monitor_probes_in_flight", "Probe calls in flight.", ("target",), registry=r)
        self.build_info.labels(__version__, platform.python_version()).set(1)
        self._models: dict[str, tuple[str, str]] = {}

    def declare(self, pairs: Iterable[tuple[str, str, float]], caps: dict[str, float | None]) -> None:
        """Pre-initialise the series of every (canary, target, interval) and every target's cap."""
        for canary, target, interval in pairs:
            self.attempts.labels(canary, target)
            for et in ErrorType:
                self.failures.labels(canary, target, et.value)
            self.cost.labels(canary, target)
            self.interval.labels(canary).set(interval)
        for target, cap in caps.items():
            self.paused.labels(target).set(0)
            self.spend_today.labels(target)
            self.in_flight.labels(target)
            if cap is not None:
                self.spend_cap.labels(target).set(cap)
            else:
                self.spend_cap.remove(target) if (target,) in self._label_keys(self.spend_cap) else None

    @staticmethod
    def _label_keys(metric: Gauge) -> set[tuple[str, ...]]:
        return set(metric._metrics.keys())  # prometheus_client keeps children here

    def forget_pairs(self, keep: set[tuple[str, str]]) -> None:
        """Drop per-pair series of canaries or targets removed by a reload."""
        for metric in (self.attempts, self.cost, self.last_success, self.last_attempt, self.output_rate,
                       self.refusal_ratio):
            for key in self._label_keys(metric):
                if key[:2] not in keep:
                    metric.remove(*key)
        for key in self._label_keys(self.failures):
            if key[:2] not in keep:
                self.failures.remove(*key)

    def observe(self, obs: Observation, provider: str, server: str) -> None:
        """Record one finished call."""
        c = obs.call
        err = c.error_type.value if c.error_type else ""
        labels = ("chat", provider, obs.request_model, c.response_model or "", server, err, obs.canary, obs.target)
        ts = obs.started_at.timestamp()
        self.attempts.labels(obs.canary, obs.target).inc()
        self.last_attempt.labels(obs.canary, obs.target).set(ts)
        if c.latency_s is not None:
            self.duration.labels(*labels).observe(c.latency_s)
        if c.stream and c.ttft_s is not None:
            self.ttfc.labels(*labels).observe(c.ttft_s)
        if c.usage.input_tokens is not None:
            self.tokens.labels(*labels, "input").observe(c.usage.input_tokens)
        if c.usage.output_tokens is not None:
            self.tokens.labels(*labels, "output").observe(c.usage.output_tokens)
        if obs.cost_usd:
            self.cost.labels(obs.canary, obs.target).inc(obs.cost_usd)
        if c.error_type is not None:
            self.failures.labels(obs.canary, obs.target, err).inc()
            return
        self.last_success.labels(obs.canary, obs.target).set(ts)
        if obs.output_tokens_per_s is not None:
            self.output_rate.labels(obs.canary, obs.target).observe(obs.output_tokens_per_s)
        if obs.refusal in ("partial", "full"):
            self.refusals.labels(obs.canary, obs.target, obs.refusal).inc()
        for r in obs.checks:
            result = "error" if r.passed is None else ("pass" if r.passed else "fail")
            self.checks.labels(obs.canary, obs.target, r.name, result).inc()
        if c.response_model:
            self._set_model(obs.target, c.response_model, c.system_fingerprint or "")

    def _set_model(self, target: str, model: str, fingerprint: str) -> None:
        current = self._models.get(target)
        if current == (model, fingerprint):
            return
        if current is not None:
            self.model_info.remove(target, *current)
        self._models[target] = (model, fingerprint)
        self.model_info.labels(target, model, fingerprint).set(1)

    def run_summary(self, canary: str, target: str, observations: list[Observation]) -> None:
        """Set the last-run ratios (refusals, check passes) from one run's samples."""
        ok = [o for o in observations if o.ok]
        if not ok:
            return
        judged = [o for o in ok if o.refusal is not None]
        if judged:
            self.refusal_ratio.labels(canary, target).set(
                sum(o.refusal in ("partial", "full") for o in judged) / len(judged))
        by_check: dict[str, list[bool]] = {}
        for o in ok:
            for r in o.checks:
                if r.passed is not None:
                    by_check.setdefault(r.name, []).append(r.passed)
        for name, results in by_check.items():
            self.check_ratio.labels(canary, target, name).set(sum(results) / len(results))
