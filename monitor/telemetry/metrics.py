"""Prometheus metrics on an injected registry (never the global one).

Label sets are bounded: canary and target ids come from the config, models and fingerprints from the few the
upstream reports, error types from one enum. Series are pre-initialised so they exist before the first event.

Every series labelled by canary or target exists only for what the last `Metrics.declare` holds configured (its
`Scope`): a reload that removes a pair, a check or a target takes their series with it, and nothing that was
already under way (a call in flight, an analysis queued, a spend count) can bring them back.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterable
from datetime import datetime

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.metrics_core import GaugeMetricFamily
from prometheus_client.registry import Collector

from monitor import __version__
from monitor.config.models import Schedule
from monitor.domain import (
    RUN_MISSED,
    RUN_OVERRUN,
    RUN_SPEND_CAP,
    UNPRICED_NO_PRICE,
    UNPRICED_NO_USAGE,
    ErrorType,
    Observation,
    utcnow,
)
from monitor.telemetry import names as n
from monitor.telemetry.bounded import BoundedLabel
from monitor.telemetry.grid import PairGrid, PairHistogram
from monitor.telemetry.keyed import InFlight, KeyedGauge
from monitor.telemetry.names import EVENT_SIGNALS, WATCHED_SIGNALS, signal_kind
from monitor.telemetry.schedules import ScheduleGauges
from monitor.telemetry.scope import Scope


def register_runtime(registry: CollectorRegistry) -> None:
    """Add the process's own families, as every Prometheus exporter serves them: `process_*` (resident memory,
    CPU seconds, open and max file descriptors, start time; Linux) and `python_info`, `python_gc_*`."""
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)


class UnsetGauge(Collector):
    """A gauge without labels that has no sample until set: prometheus_client's exports 0 from the start, which
    for a timestamp reads as 1970 (a certificate expiry of 0 is one long expired)."""

    def __init__(self, name: str, documentation: str, *, registry: CollectorRegistry):
        self.name, self.documentation = name, documentation
        self.value: float | None = None
        registry.register(self)

    def set(self, value: float | None) -> None:
        """Export `value` from now on; None: no sample."""
        self.value = value

    def collect(self) -> list[GaugeMetricFamily]:
        family = GaugeMetricFamily(self.name, self.documentation)
        if self.value is not None:
            family.add_metric([], self.value)
        return [family]

    describe = collect


class Metrics:
    """Every metric llm-monitor exports, registered on one registry."""

    def __init__(self, registry: CollectorRegistry, now: Callable[[], datetime] = utcnow):
        # No `<counter>_created` series beside every counter and histogram: they double the series count and no
        # rule or dashboard reads them (the compact per-pair families never had them). The switch is the
        # client library's, process-wide; it must be off before any metric is made.
        disable_created_metrics()
        self.registry = registry
        r = registry
        # The one place that says which canaries, targets and checks have series (telemetry/scope.py).
        self.scope = sc = Scope()
        self.response_models = BoundedLabel("gen_ai_response_model")  # the server names them: bounded per target
        # Per-pair families are compact collectors (telemetry/grid.py): ~50 MB less with 1,000 pairs.
        self.duration = PairHistogram(n.OP_DURATION, "GenAI operation duration (client side, whole call).",
                                      n.GENAI_LABELS, n.DURATION_BUCKETS, registry=r, scope=sc)
        self.ttfc = PairHistogram(n.OP_TTFC, "Time from request start to the first chunk with content (streaming).",
                                  n.GENAI_LABELS, n.DURATION_BUCKETS, registry=r, scope=sc)
        self.tokens = PairHistogram(n.TOKEN_USAGE, "Tokens per call as reported by the server.",
                                    (*n.GENAI_LABELS, "gen_ai_token_type"), n.TOKEN_BUCKETS, registry=r, scope=sc)
        self.attempts = PairGrid("llm_monitor_probe_attempts", "Calls made (canaries _judge and _embeddings: the "
                                 "daemon's own calls).", "counter", (), registry=r, scope=sc)
        self.failures = PairGrid("llm_monitor_probe_failures", "Calls that failed, by error type.", "counter",
                                 ("error_type",), [(et.value,) for et in ErrorType], registry=r, scope=sc)
        self.output_rate = PairHistogram("llm_monitor_output_tokens_per_second",
                                         "Server-reported output tokens over the time after the first chunk.",
                                         ("canary", "target"), n.RATE_BUCKETS, registry=r, scope=sc)
        self.runs_skipped = PairGrid("llm_monitor_runs_skipped",
                                     "Scheduled runs that did not happen: the previous run was still going "
                                     "(overrun), the scheduler reached it more than an interval late (missed), or "
                                     "the target's daily spend cap paused it (spend_cap).",
                                     "counter", ("reason",), [(RUN_OVERRUN,), (RUN_MISSED,), (RUN_SPEND_CAP,)],
                                     registry=r, scope=sc)
        self.cost = PairGrid("llm_monitor_cost_usd", "Spend on calls in USD: calls whose cost is known (the others: "
                             "llm_monitor_unpriced_calls_total).", "counter", (), registry=r, scope=sc)
        self.unpriced = PairGrid("llm_monitor_unpriced_calls",
                                 "Billed calls whose cost is unknown, so neither spend nor the daily spend cap counts "
                                 "them: the model that answered has no price (no_price), or the server reported no "
                                 "token counts (no_usage).", "counter", ("reason",),
                                 [(UNPRICED_NO_PRICE,), (UNPRICED_NO_USAGE,)], registry=r, scope=sc)
        self.spend_today = KeyedGauge("llm_monitor_spend_today_usd", "Spend since 00:00 UTC in USD on calls whose "
                                      "cost is known, as the daily spend cap counts it (the others: "
                                      "llm_monitor_unpriced_calls_total).", ("target",), registry=r, scope=sc,
                                      by="target", zero=True)
        self.spend_cap = KeyedGauge("llm_monitor_spend_cap_usd", "Daily spend cap in USD (absent: no cap).",
                                    ("target",), registry=r, scope=sc, by="target")
        self.paused = KeyedGauge("llm_monitor_target_paused", "1 while the daily spend cap pauses the target.",
                                 ("target",), registry=r, scope=sc, by="target", zero=True)
        self.last_success = PairGrid("llm_monitor_last_success_timestamp_seconds",
                                     "Unix time of the last successful call.", "gauge", (), (), registry=r, scope=sc)
        self.last_attempt = PairGrid("llm_monitor_last_attempt_timestamp_seconds", "Unix time of the last call.",
                                     "gauge", (), (), registry=r, scope=sc)
        self.failing_since = PairGrid("llm_monitor_failing_since_timestamp_seconds",
                                      "Unix time of the first call of the current streak of failed runs (runs none "
                                      "of whose calls succeeded; a judge's or embeddings call is a run of its own); "
                                      "absent once a call succeeds.", "gauge", (), (), registry=r, scope=sc)
        self.failing_runs = PairGrid("llm_monitor_failing_runs",
                                     "Failed runs in the current streak (runs none of whose calls succeeded; a judge's "
                                     "or embeddings call is a run of its own); absent once a call succeeds.", "gauge",
                                     (), (), registry=r, scope=sc)
        self.schedules = ScheduleGauges(registry=r, now=now)  # interval and stale cutoff, per canary
        self.model_info = KeyedGauge("llm_monitor_model_info", "Model and system fingerprint the target answers with.",
                                     ("target", "response_model", "system_fingerprint"), registry=r, scope=sc,
                                     by="target")
        self.build_info = Gauge("llm_monitor_build_info", "Build information.", ("version", "python_version"),
                                registry=r)
        self.leader = Gauge("llm_monitor_leader",
                            "1 on the replica that probes, analyses and alerts; 0 on a standby.", registry=r)
        self.reload_ok = Gauge("llm_monitor_config_last_reload_successful",
                               "1 if the last configuration (re)load succeeded.", registry=r)
        self.reload_ts = Gauge("llm_monitor_config_last_reload_success_timestamp_seconds",
                               "Unix time of the last successful configuration load.", registry=r)
        self.config_info = Gauge("llm_monitor_config_info",
                                 "Digest of the configuration in force (what the leader acts on: targets, canaries, "
                                 "daemon, drift, alerts, refusal); replicas of one store should agree.", ("digest",),
                                 registry=r)
        self.refusals = PairGrid("llm_monitor_refusals", "Completions judged refusals.", "counter", ("refusal",),
                                 (("partial",), ("full",)), registry=r, scope=sc)
        self.refusal_ratio = PairGrid("llm_monitor_refusal_ratio",
                                      "Share of the last run's judged samples (answers, and calls refused by a "
                                      "content-policy error) that were refusals (partial or full).",
                                      "gauge", (), (), registry=r, scope=sc)
        self.checks = PairGrid("llm_monitor_check_results", "Check outcomes.", "counter", ("check", "result"), (),
                               registry=r, scope=sc, per_check=True)
        self.check_ratio = PairGrid("llm_monitor_check_pass_ratio", "Share of the last run's samples a check gave a verdict on that passed it.",
                                    "gauge", ("check",), (), registry=r, scope=sc, per_check=True)
        self.drift_active = PairGrid("llm_monitor_drift_active", "1 while a drift event is open.", "gauge",
                                     ("signal",), [(s,) for s in WATCHED_SIGNALS], registry=r, scope=sc,
                                     check_signals=True)
        self.drift_events = PairGrid("llm_monitor_drift_events", "Drift events opened.", "counter",
                                     ("signal", "kind"), [(s, signal_kind(s)) for s in EVENT_SIGNALS], registry=r,
                                     scope=sc, check_signals=True,
                                     check_extras=lambda check: (f"check:{check}", signal_kind(f"check:{check}")))
        self.pending = Gauge("llm_monitor_notifications_pending", "Notifications waiting in the outbox, per sink.",
                             ("sink",), registry=r)
        self.sent = Counter("llm_monitor_notifications_sent", "Notifications delivered.", ("sink",), registry=r)
        self.send_failures = Counter("llm_monitor_notification_failures", "Failed delivery attempts.", ("sink",),
                                     registry=r)
        self.dropped = Counter("llm_monitor_notifications_dropped",
                               "Notifications given up on (dead in the outbox), by reason.", ("sink", "reason"),
                               registry=r)
        self.suppressed = Counter("llm_monitor_notifications_suppressed",
                                  "Notifications not written for a sink because its cooldown was running (a repeated "
                                  "firing message, a model change already told), by reason.", ("sink", "reason"),
                                  registry=r)
        self.held = Counter("llm_monitor_notifications_held",
                            "Drift notifications on a canary's error signals held while it fails every call (sent "
                            "at its next answer or recovery, or never: see ..._inhibited_total).", ("sink",),
                            registry=r)
        self.inhibited = Counter("llm_monitor_notifications_inhibited",
                                 "Held notifications never sent: their drift event ended while held (the opening "
                                 "and its end count one each).", ("sink",), registry=r)
        self.alert_events_superseded = Counter(
            "llm_monitor_alert_events_superseded",
            "Alert events waiting in memory for the store let go as superseded by a later one of the same alert "
            "(kept: each alert's first and, if it says otherwise, last).", registry=r)
        self.sink_disabled = Gauge("llm_monitor_notification_sink_disabled",
                                   "1 while a sink is disabled (its endpoint answered 410 Gone) until a reload.",
                                   ("sink",), registry=r)
        self.store_pending = Gauge("llm_monitor_store_pending_writes",
                                   "Observations and run records waiting in memory for the store to answer.",
                                   registry=r)
        self.store_write_failures = Counter("llm_monitor_store_write_failures",
                                            "Failed attempts to write an observation or run record.", registry=r)
        self.store_dropped = Counter("llm_monitor_store_dropped_writes",
                                     "Observations and run records given up on (too many waiting, or the daemon "
                                     "stopped with the store unavailable).", registry=r)
        self.analysis_delay = Gauge("llm_monitor_drift_analysis_delay_seconds",
                                    "How long the oldest stored observation waiting for drift analysis has waited "
                                    "(0: none waits).", registry=r)
        self.drift_certifications = Gauge("llm_monitor_drift_certifications_waiting",
                                          "Openings of the whole-completion test whose exact permutation test waits, "
                                          "runs or has its decision waiting on its own thread.", registry=r)
        self.in_flight = InFlight("llm_monitor_probes_in_flight", "Probe calls in flight.", registry=r, scope=sc)
        self.tls_expiry = UnsetGauge("llm_monitor_web_tls_certificate_expiry_timestamp_seconds",
                                     "Unix time the listener's TLS certificate expires: the earliest notAfter of the "
                                     "certificates in cert_file (absent without TLS).", registry=r)
        self.build_info.labels(__version__, platform.python_version()).set(1)

    def show_config(self, digest: str) -> None:
        """Export `digest` as the configuration in force, alone (a reload replaces the one before)."""
        self.config_info.clear()
        self.config_info.labels(digest).set(1)

    def declare(self, pairs: Iterable[tuple[str, str, Schedule]], caps: dict[str, float | None],
                services: Iterable[tuple[str, str]] = (), checks: Iterable[tuple[str, str, str]] = ()) -> None:
        """Make these the configured ones, alone: every (canary, target, interval), every target (`caps`: its cap),
        the daemon's own calls (`services`: judges', embeddings') and every (canary, target, check). Drop the series
        of all others (removed by a reload); from now on nothing writes one. Pre-initialise the series of these, so
        they exist before their first event (`increase()` sees a check's first failure)."""
        pairs, services, checks = list(pairs), list(services), list(checks)
        self.scope.declare([*((canary, target) for canary, target, _ in pairs), *services], checks, caps)
        for metric in vars(self).values():  # every scoped collector, so a new family cannot be left out
            if isinstance(metric, PairGrid | PairHistogram | KeyedGauge):
                metric.forget()
        for canary, target, check in checks:
            for result in ("pass", "fail", "error"):
                self.checks.inc(canary, target, check, result, amount=0.0)
        for grid in (self.attempts, self.failures, self.cost, self.unpriced, self.refusals, self.runs_skipped):
            grid.declare((canary, target) for canary, target, _ in pairs)
        for grid in (self.attempts, self.failures, self.cost, self.unpriced):
            grid.declare(services)
        self.schedules.declare((canary, schedule) for canary, _, schedule in pairs)
        self.response_models.keep(caps)
        for target, cap in caps.items():  # paused: kept (Spend.show_caps sets it), 0 without a cap
            if cap is not None:
                self.spend_cap.set(target, value=cap)
            else:
                self.spend_cap.remove(target)
                self.paused.remove(target)

    def declare_drift(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Pre-initialise the drift series, so dashboards show zeros, not "no data", and `increase()` sees each first
        event: the watched signals' open-event gauges, and the event counters of every signal the engine tests,
        each configured check's `check:NAME` included (a check the config no longer has takes its counter along)."""
        pairs = list(pairs)
        self.drift_active.declare(pairs)
        self.drift_events.declare(pairs)

    def observe(self, obs: Observation, provider: str, server: str, operation: str = "chat") -> None:
        """Record one finished call (`operation`: the GenAI operation name, `chat` or `embeddings`)."""
        c = obs.call
        err = c.error_type.value if c.error_type else ""
        served = self.response_models.label(obs.target, c.response_model or "")
        labels = (operation, provider, obs.request_model, served, server, err, obs.canary, obs.target)
        ts = obs.started_at.timestamp()
        self.attempts.inc(obs.canary, obs.target)
        self.last_attempt.set(obs.canary, obs.target, value=ts)
        if c.latency_s is not None:
            self.duration.observe(*labels, value=c.latency_s)
        if c.stream and c.ttft_s is not None:
            self.ttfc.observe(*labels, value=c.ttft_s)
        if c.usage.input_tokens is not None:
            self.tokens.observe(*labels, "input", value=c.usage.input_tokens)
        if c.usage.output_tokens is not None and operation == "chat":  # an embeddings call has none
            self.tokens.observe(*labels, "output", value=c.usage.output_tokens)
        if obs.cost_usd:
            self.cost.inc(obs.canary, obs.target, amount=obs.cost_usd)
        if (unpriced := obs.unpriced) is not None:  # an unknown cost is not a zero: counted apart
            self.unpriced.inc(obs.canary, obs.target, unpriced)
        # a failed call counts its refusal (a content-policy error) and the checks that still judge it
        if obs.refusal in ("partial", "full"):
            self.refusals.inc(obs.canary, obs.target, obs.refusal)
        for r in obs.checks:
            if c.error_type is None or r.passed is not None:
                result = "error" if r.passed is None else ("pass" if r.passed else "fail")
                self.checks.inc(obs.canary, obs.target, r.name, result)
        if c.error_type is not None:
            self.failures.inc(obs.canary, obs.target, err)
            if not obs.run_id:  # a judge's or embeddings call: no run, each call stands alone
                self._failing(obs.canary, obs.target, ts)
            return
        self.last_success.set(obs.canary, obs.target, value=ts)
        self.failing_since.remove(obs.canary, obs.target)  # at the first success, not at the end of its run
        self.failing_runs.remove(obs.canary, obs.target)
        if obs.output_tokens_per_s is not None:
            self.output_rate.observe(obs.canary, obs.target, value=obs.output_tokens_per_s)
        if c.response_model and operation == "chat":  # an embeddings model is not the model the target serves
            self._set_model(obs.target, c.response_model, c.system_fingerprint or "")

    def _failing(self, canary: str, target: str, since: float) -> None:
        """Count one more failed run, starting a streak at `since` unless one is going already (that started
        earlier)."""
        # The earlier of the two: a judge's calls run side by side, and the first to end is not the first to start
        # (the start the store gives back at a restart, Store.failing_streaks)
        going = self.failing_since.get(canary, target)
        if not going or since < going:
            self.failing_since.set(canary, target, value=since)
        self.failing_runs.inc(canary, target)

    def restore_streak(self, canary: str, target: str, since: float, runs: int) -> None:
        """Set a pair's streak as the store has it (at start, take-over, or a reload that adds the pair)."""
        self.failing_since.set(canary, target, value=since)
        self.failing_runs.set(canary, target, value=runs)

    def _set_model(self, target: str, model: str, fingerprint: str) -> None:
        if self.model_info.get(target, model, fingerprint) is None:  # a change (or the first): one series a target
            self.model_info.set_only(target, model, fingerprint, value=1)

    def run_summary(self, canary: str, target: str, observations: list[Observation]) -> None:
        """Set the last-run ratios (refusals, check passes) from one run's samples: the successful ones, and the
        failed ones that still have a verdict (a content-policy error is a refusal). A run of outages only
        changes nothing there; a run none of whose calls succeeded starts (or continues) a failing streak."""
        if observations and not any(o.ok for o in observations):
            self._failing(canary, target, min(o.started_at for o in observations).timestamp())
        judged = [o for o in observations if o.refusal is not None]
        if judged:
            self.refusal_ratio.set(canary, target,
                                   value=sum(o.refusal in ("partial", "full") for o in judged) / len(judged))
        by_check: dict[str, list[bool]] = {}
        for o in observations:
            for r in o.checks:
                if not o.ok and r.passed is None:
                    continue
                verdicts = by_check.setdefault(r.name, [])
                if r.passed is not None:
                    verdicts.append(r.passed)
        for name, results in by_check.items():
            if results:
                self.check_ratio.set(canary, target, name, value=sum(results) / len(results))
            else:  # no verdict in the last run (an untrusted judge, a capped judge target): no share to show
                self.check_ratio.remove(canary, target, name)
