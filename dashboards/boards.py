"""The llm-monitor dashboards: overview, latency, cost and tokens, quality and drift, per canary."""

from __future__ import annotations

from typing import Any

from builder import CANARY, JOB, TARGET, Panel, annotation, dashboard, quantiles, query

DURATION = "gen_ai_client_operation_duration_seconds"
TTFC = "gen_ai_client_operation_time_to_first_chunk_seconds"
TOKENS = "gen_ai_client_token_usage"
RATE = "$__rate_interval"
OK = f'{CANARY}, error_type="", gen_ai_operation_name="chat"'  # successful chat calls (not embeddings)


def drift_annotations() -> list[dict[str, Any]]:
    """Return the drift-event, open-drift and model-change annotations."""
    return [
        annotation(
            "Drift events",
            f"sum by (target, canary, signal, kind) "
            f"(increase(llm_monitor_drift_events_total{{{CANARY}}}[{RATE}])) > bool 0",
            "Drift ({{kind}}): {{signal}}",
            "{{canary}} on {{target}}",
            "target,canary,signal,kind",
            "red",
        ),
        annotation(
            "Open drift",
            f"max by (target, canary, signal) (llm_monitor_drift_active{{{CANARY}}})",
            "Drift open: {{signal}}",
            "{{canary}} on {{target}}",
            "target,canary,signal",
            "orange",
        ),
        annotation(
            "Model changes",
            f"count by (target) (max_over_time(llm_monitor_model_info{{{TARGET}}}[{RATE}])) > bool 1",
            "Model or fingerprint changed",
            "{{target}} reports a new response_model or system_fingerprint",
            "target",
            "purple",
        ),
    ]


def success_ratio(by: str) -> str:
    """Return the probe success ratio over the rate interval, grouped by `by`."""
    return (
        f"1 - (sum by ({by}) (rate(llm_monitor_probe_failures_total{{{CANARY}}}[{RATE}]))"
        f" / sum by ({by}) (rate(llm_monitor_probe_attempts_total{{{CANARY}}}[{RATE}])))"
    )


def overview() -> dict[str, Any]:
    """Return the overview dashboard: health, ratios, open drift and spend across targets."""
    panels = [
        Panel("stat", "Daemons up", "Scrape health of llm-monitor daemons (1 per healthy instance).", "none",
              [query(f"sum(up{{{JOB}}})", "up")], width=4, height=4),
        Panel("stat", "Open drift", "Number of canary/target/signal combinations with drift open now.", "none",
              [query(f"sum(llm_monitor_drift_active{{{CANARY}}})", "open")], width=4, height=4),
        Panel("stat", "Paused targets", "Targets paused because today's spend reached the cap.", "none",
              [query(f"sum(llm_monitor_target_paused{{{TARGET}}})", "paused")], width=4, height=4),
        Panel("stat", "Spend today", "Spend since 00:00 UTC over the selected targets, on calls whose cost is known "
              "(calls that could not be priced: the cost dashboard).", "currencyUSD",
              [query(f"sum(llm_monitor_spend_today_usd{{{TARGET}}})", "spend")], width=4, height=4),
        Panel("stat", "Config reload", "1 if the last configuration (re)load succeeded on every instance.",
              "bool_yes_no", [query(f"min(llm_monitor_config_last_reload_successful{{{JOB}}})", "ok")],
              width=4, height=4),
        Panel("stat", "Notifications pending",
              "Alert notifications waiting in the outbox, all sinks together (0 where no sink is configured).",
              "none", [query(f"sum(llm_monitor_notifications_pending{{{JOB}}}) or vector(0)", "pending")],
              width=4, height=4),
        Panel("timeseries", "Probe success ratio by target",
              "Share of probe attempts that got an answer (no timeout, HTTP or protocol error).",
              "percentunit", [query(success_ratio("target"), "{{target}}")], minimum=0, maximum=1),
        Panel("timeseries", "Probe failures by error type",
              "Failed probe attempts per rate interval by error type.", "short",
              [query(f"sum by (target, error_type) (increase(llm_monitor_probe_failures_total{{{CANARY}}}"
                     f"[{RATE}]))", "{{target}} {{error_type}}")]),
        Panel("timeseries", "Refusal ratio by target",
              "Share of samples refused (partial or full) in each canary's last run, averaged per target.",
              "percentunit", [query(f"avg by (target) (llm_monitor_refusal_ratio{{{CANARY}}})", "{{target}}")],
              minimum=0, maximum=1),
        Panel("timeseries", "Check pass ratio by target",
              "Share of checks passed in each canary's last run, averaged per target.", "percentunit",
              [query(f"avg by (target) (llm_monitor_check_pass_ratio{{{CANARY}}})", "{{target}}")],
              minimum=0, maximum=1),
        Panel("table", "Open drift by target", "Open drift signals per target and canary (1 = open).",
              "none", [query(f"max by (target, canary, signal) (llm_monitor_drift_active{{{CANARY}}})",
                             instant=True)]),
        Panel("bargauge", "Spend today vs cap",
              "Spend since 00:00 UTC on calls whose cost is known, and the daily cap per target.",
              "currencyUSD",
              [query(f"sum by (target) (llm_monitor_spend_today_usd{{{TARGET}}})", "{{target}} spent"),
               query(f"max by (target) (llm_monitor_spend_cap_usd{{{TARGET}}})", "{{target}} cap", "B")]),
        Panel("table", "Time since last success",
              "Seconds since each canary last succeeded on each target; compare with its interval.", "s",
              [query(f"time() - max by (target, canary) (llm_monitor_last_success_timestamp_seconds{{{CANARY}}})",
                     instant=True)]),
        Panel("timeseries", "Notification delivery",
              "Failed deliveries, deliveries and dropped (dead) notifications to alert sinks per rate interval; "
              "notifications a webhook or Slack sink's alert cooldown kept back (a repeated drift.opened or "
              "canary.down, a model change already told; not failures, nothing is lost); how many sinks a 410 Gone "
              "disabled; and drift notifications on a failing canary's error signals held during its outage (one "
              "page per outage) and those never sent because their event ended held.",
              "short", [query(f"sum(increase(llm_monitor_notification_failures_total{{{JOB}}}[{RATE}]))"
                              f" or vector(0)", "failures"),
                        query(f"sum(increase(llm_monitor_notifications_sent_total{{{JOB}}}[{RATE}]))"
                              f" or vector(0)", "sent", "B"),
                        query(f"sum(increase(llm_monitor_notifications_dropped_total{{{JOB}}}[{RATE}]))"
                              f" or vector(0)", "dropped", "C"),
                        query(f"sum(increase(llm_monitor_notifications_suppressed_total{{{JOB}}}[{RATE}]))"
                              f" or vector(0)", "suppressed (cooldown)", "D"),
                        query(f"sum(llm_monitor_notification_sink_disabled{{{JOB}}}) or vector(0)",
                              "disabled sinks", "E"),
                        query(f"sum(increase(llm_monitor_notifications_held_total{{{JOB}}}[{RATE}]))"
                              f" or vector(0)", "held (outage)", "F"),
                        query(f"sum(increase(llm_monitor_notifications_inhibited_total{{{JOB}}}[{RATE}]))"
                              f" or vector(0)", "never sent (ended held)", "G")]),
        Panel("timeseries", "Store writes waiting",
              "Observations and run records waiting in memory because the store did not answer, failed write "
              "attempts and writes given up on per rate interval, and alert events waiting for the store let go as "
              "superseded by a later one of the same alert (all 0 while the store is healthy).", "short",
              [query(f"sum by (instance) (llm_monitor_store_pending_writes{{{JOB}}})", "{{instance}} waiting"),
               query(f"sum(increase(llm_monitor_store_write_failures_total{{{JOB}}}[{RATE}]))", "failed writes",
                     "B"),
               query(f"sum(increase(llm_monitor_store_dropped_writes_total{{{JOB}}}[{RATE}]))", "given up",
                     "C"),
               query(f"sum(increase(llm_monitor_alert_events_superseded_total{{{JOB}}}[{RATE}])) or vector(0)",
                     "alert events superseded", "D")]),
        Panel("timeseries", "Drift analysis delay",
              "How long the oldest stored observation waiting for drift analysis has waited: near 0 on a healthy "
              "daemon; past 5 s runs wait for their analysis (and may overrun their interval).", "s",
              [query(f"max by (instance) (llm_monitor_drift_analysis_delay_seconds{{{JOB}}})", "{{instance}}")]),
        Panel("timeseries", "Whole-completion certifications waiting",
              "Whole-completion drift tests waiting for, or running, the exact permutation test that decides "
              "whether their event opens (llm_monitor_drift_certifications_waiting), on a thread of their own: 0 "
              "as a rule; hundreds after a provider-wide model swap, drained one test (seconds) at a time, their "
              "events opening as they drain. The rest of the analysis does not wait for them.", "short",
              [query(f"max by (instance) (llm_monitor_drift_certifications_waiting{{{JOB}}})", "{{instance}}")],
              width=8),
        Panel("timeseries", "Daemon memory",
              "Resident memory of each daemon (process_resident_memory_bytes). Flat once every canary has run and "
              "the baselines are full; a steady climb is a leak worth reporting.", "bytes",
              [query(f"max by (instance) (process_resident_memory_bytes{{{JOB}}})", "{{instance}}")], width=8),
        Panel("timeseries", "Daemon CPU",
              "CPU used by each daemon, in cores (rate of process_cpu_seconds_total).", "short",
              [query(f"sum by (instance) (rate(process_cpu_seconds_total{{{JOB}}}[{RATE}]))", "{{instance}}")],
              width=8),
        Panel("timeseries", "Daemon restarts",
              "Starts of each daemon per rate interval (changes of process_start_time_seconds); rule "
              "LLMMonitorRestarting fires at 3 in 30 minutes.", "short",
              [query(f"sum by (instance) (changes(process_start_time_seconds{{{JOB}}}[{RATE}]))",
                     "{{instance}}")], width=8),
        Panel("table", "Daemon versions", "Version and Python version of every scraped daemon.", "none",
              [query(f"max by (instance, version, python_version) (llm_monitor_build_info{{{JOB}}})",
                     instant=True)], width=8, height=5),
        Panel("table", "Configuration digests",
              "Digest of the configuration each daemon would lead with (llm_monitor_config_info): replicas of one "
              "store should show one digest; rule LLMMonitorConfigMismatch fires when they differ for 15 minutes.",
              "none", [query(f"max by (instance, digest) (llm_monitor_config_info{{{JOB}}})", instant=True)],
              width=8, height=5),
        Panel("stat", "Leader", "1 on the replica that probes, analyses and alerts; 0 on a standby. Exactly "
              "one replica per store should read 1.", "none",
              [query(f"max by (instance) (llm_monitor_leader{{{JOB}}})", "{{instance}}")], width=8, height=5),
        Panel("stat", "Since last good config load",
              "Time since each daemon last loaded its configuration successfully.", "s",
              [query(f"time() - max by (instance) "
                     f"(llm_monitor_config_last_reload_success_timestamp_seconds{{{JOB}}})", "{{instance}}")],
              width=8, height=5),
        Panel("stat", "Listener certificate expires in",
              "Time left before the TLS certificate of each daemon's HTTP listener expires (the earliest notAfter "
              "in cert_file); rule LLMMonitorTlsCertificateExpiring fires under 14 days. No data: the listener "
              "serves plain HTTP.", "s",
              [query(f"min by (instance) (llm_monitor_web_tls_certificate_expiry_timestamp_seconds{{{JOB}}}) "
                     f"- time()", "{{instance}}")], width=8, height=5),
    ]
    return dashboard("llm-monitor-overview", "LLM Monitor / Overview",
                     "Health, refusals, checks, drift and spend across all targets.", panels, drift_annotations())


def latency() -> dict[str, Any]:
    """Return the latency dashboard: duration and TTFT quantiles, output rate, in-flight probes."""
    panels = [
        Panel("timeseries", "Call duration p50/p95/p99",
              "Client-measured total duration of successful calls, quantiles per target.", "s",
              quantiles(DURATION, OK, "target")),
        Panel("timeseries", "Time to first chunk p50/p95/p99",
              "Client-measured time until the first chunk with content (streaming calls only).", "s",
              quantiles(TTFC, OK, "target")),
        Panel("timeseries", "Output rate p50/p95",
              "Server-reported output tokens (reasoning included) per second after the first chunk of output; streaming "
              "calls only, none from calls with reasoning that cannot be timed (Anthropic's redacted thinking).",
              "suffix: tok/s",
              quantiles("llm_monitor_output_tokens_per_second", CANARY, "target", (0.5, 0.95))),
        Panel("timeseries", "Mean call duration by canary",
              "Average duration of successful calls per canary and target.", "s",
              [query(f"sum by (target, canary) (rate({DURATION}_sum{{{OK}}}[{RATE}]))"
                     f" / sum by (target, canary) (rate({DURATION}_count{{{OK}}}[{RATE}]))",
                     "{{target}} {{canary}}")]),
        Panel("timeseries", "Call duration p95 by model",
              "95th percentile duration by the model that answered.", "s",
              quantiles(DURATION, OK, "gen_ai_response_model", (0.95,))),
        Panel("timeseries", "Probes in flight", "Probe calls currently running per target.", "short",
              [query(f"sum by (target) (llm_monitor_probes_in_flight{{{TARGET}}})", "{{target}}")]),
    ]
    return dashboard("llm-monitor-latency", "LLM Monitor / Latency",
                     "Call duration, time to first chunk and output rate per target.", panels, drift_annotations())


def cost() -> dict[str, Any]:
    """Return the cost and tokens dashboard."""
    panels = [
        Panel("timeseries", "Spend today and cap",
              "Spend since 00:00 UTC on calls whose cost is known (what the daily cap counts) and the cap per "
              "target; calls that could not be priced are beside it.", "currencyUSD",
              [query(f"sum by (target) (llm_monitor_spend_today_usd{{{TARGET}}})", "{{target}} spent"),
               query(f"max by (target) (llm_monitor_spend_cap_usd{{{TARGET}}})", "{{target}} cap", "B")]),
        Panel("timeseries", "Unpriced calls",
              "Calls per rate interval whose cost is unknown, so neither spend nor the daily cap counts them: "
              "no_price, the model that answered has no price (set the target's prices); no_usage, the server "
              "reported no token counts.", "short",
              [query(f"sum by (target, reason) (increase(llm_monitor_unpriced_calls_total{{{CANARY}}}[{RATE}]))",
                     "{{target}} {{reason}}")]),
        Panel("timeseries", "Cost by target", "Probe cost per rate interval, priced on the answering model.",
              "currencyUSD",
              [query(f"sum by (target) (increase(llm_monitor_cost_usd_total{{{CANARY}}}[{RATE}]))",
                     "{{target}}")]),
        Panel("timeseries", "Cost by canary", "Probe cost per rate interval per canary.", "currencyUSD",
              [query(f"sum by (canary) (increase(llm_monitor_cost_usd_total{{{CANARY}}}[{RATE}]))",
                     "{{canary}}")]),
        Panel("timeseries", "Tokens by type", "Input and output tokens per rate interval per target.", "short",
              [query(f"sum by (target, gen_ai_token_type) (increase({TOKENS}_sum{{{CANARY}}}[{RATE}]))",
                     "{{target}} {{gen_ai_token_type}}")]),
        Panel("timeseries", "Tokens per call", "Mean input and output tokens per call per target.", "short",
              [query(f"sum by (target, gen_ai_token_type) (rate({TOKENS}_sum{{{CANARY}}}[{RATE}]))"
                     f" / sum by (target, gen_ai_token_type) (rate({TOKENS}_count{{{CANARY}}}[{RATE}]))",
                     "{{target}} {{gen_ai_token_type}}")]),
        Panel("timeseries", "Output tokens per call p50/p95",
              "Quantiles of server-reported output tokens per call.", "short",
              quantiles(TOKENS, f'{CANARY}, gen_ai_token_type="output"', "target", (0.5, 0.95))),
        Panel("timeseries", "Paused by spend cap", "1 while the daily spend cap pauses a target.", "bool_on_off",
              [query(f"max by (target) (llm_monitor_target_paused{{{TARGET}}})", "{{target}}")]),
    ]
    return dashboard("llm-monitor-cost", "LLM Monitor / Cost and tokens",
                     "Spend against the daily cap, cost per target and canary, token usage.", panels,
                     drift_annotations())


def quality() -> dict[str, Any]:
    """Return the quality and drift dashboard, annotated with drift events and model changes."""
    panels = [
        Panel("timeseries", "Check pass ratio by canary", "Share of checks passed in each canary's last run.",
              "percentunit", [query(f"avg by (target, canary) (llm_monitor_check_pass_ratio{{{CANARY}}})",
                                    "{{target}} {{canary}}")], minimum=0, maximum=1),
        Panel("timeseries", "Check results", "Check outcomes (pass, fail, error) per rate interval.", "short",
              [query(f"sum by (target, result) (increase(llm_monitor_check_results_total{{{CANARY}}}"
                     f"[{RATE}]))", "{{target}} {{result}}")]),
        Panel("timeseries", "Refusal ratio by canary", "Share of samples refused in each canary's last run.",
              "percentunit", [query(f"avg by (target, canary) (llm_monitor_refusal_ratio{{{CANARY}}})",
                                    "{{target}} {{canary}}")], minimum=0, maximum=1),
        Panel("timeseries", "Refusals by kind", "Partial and full refusals per rate interval.", "short",
              [query(f"sum by (target, refusal) (increase(llm_monitor_refusals_total{{{CANARY}}}[{RATE}]))",
                     "{{target}} {{refusal}}")]),
        Panel("timeseries", "Drift events", "Drift events opened per rate interval, by kind.", "short",
              [query(f"sum by (target, kind) (increase(llm_monitor_drift_events_total{{{CANARY}}}[{RATE}]))",
                     "{{target}} {{kind}}")]),
        Panel("table", "Open drift", "Signals with drift open now (1 = open).", "none",
              [query(f"max by (target, canary, signal) (llm_monitor_drift_active{{{CANARY}}})", instant=True)]),
        Panel("table", "Served model", "The response model and system fingerprint each target reports now.",
              "none", [query(f"max by (target, response_model, system_fingerprint) "
                             f"(llm_monitor_model_info{{{TARGET}}})", instant=True)], width=24, height=6),
    ]
    return dashboard("llm-monitor-quality", "LLM Monitor / Quality and drift",
                     "Checks, refusals and drift, annotated with drift events and model changes.", panels,
                     drift_annotations())


def canary() -> dict[str, Any]:
    """Return the per-canary dashboard."""
    panels = [
        Panel("timeseries", "Attempts, failures and skipped runs",
              "Probe attempts and failures per rate interval, and scheduled runs that did not happen (overrun: "
              "the previous run was still going; missed: the daemon was more than an interval late; spend_cap: the "
              "target's daily spend cap paused it).", "short",
              [query(f"sum by (canary, target) (increase(llm_monitor_probe_attempts_total{{{CANARY}}}[{RATE}]))",
                     "{{canary}} {{target}} attempts"),
               query(f"sum by (canary, target, error_type) "
                     f"(increase(llm_monitor_probe_failures_total{{{CANARY}}}[{RATE}]))",
                     "{{canary}} {{target}} {{error_type}}", "B"),
               query(f"sum by (canary, target, reason) "
                     f"(increase(llm_monitor_runs_skipped_total{{{CANARY}}}[{RATE}]))",
                     "{{canary}} {{target}} skipped ({{reason}})", "C")]),
        Panel("timeseries", "Time since last success and attempt",
              "Seconds since the last successful and the last attempted probe; the interval (for a cron schedule, "
              "the gap it is in now) and the stale threshold (time since the third most recent scheduled run: "
              "LLMMonitorCanaryStale fires once the time since the last success passes it) for reference.", "s",
              [query(f"time() - max by (canary, target) (llm_monitor_last_success_timestamp_seconds{{{CANARY}}})",
                     "{{canary}} {{target}} success"),
               query(f"time() - max by (canary, target) (llm_monitor_last_attempt_timestamp_seconds{{{CANARY}}})",
                     "{{canary}} {{target}} attempt", "B"),
               query(f'max by (canary) (llm_monitor_canary_interval_seconds{{{JOB}, canary=~"$canary"}})',
                     "{{canary}} interval", "C"),
               query(f'time() - max by (canary) (llm_monitor_canary_stale_cutoff_timestamp_seconds'
                     f'{{{JOB}, canary=~"$canary"}})', "{{canary}} stale threshold", "D")]),
        Panel("table", "Failing for",
              "How long each canary has failed on each target: since the first call of its current streak of "
              "failed runs (runs none of whose calls succeeded); empty while the last run had a success. "
              "LLMMonitorCanaryFailing fires past 15 minutes and 2 failed runs (held 5).", "s",
              [query(f"time() - max by (canary, target) (llm_monitor_failing_since_timestamp_seconds{{{CANARY}}})",
                     instant=True)], width=6),
        Panel("table", "Failed runs in a row",
              "How many runs in a row each canary has failed on each target (runs none of whose calls succeeded; a "
              "judge's or embeddings call is a run of its own); empty while the last run had a success. "
              "LLMMonitorCanaryFailing needs 2 and 15 minutes.", "none",
              [query(f"max by (canary, target) (llm_monitor_failing_runs{{{CANARY}}})", instant=True)], width=6),
        Panel("timeseries", "Call duration p95", "95th percentile duration of successful calls.", "s",
              quantiles(DURATION, OK, "canary, target", (0.95,))),
        Panel("timeseries", "Time to first chunk p95", "95th percentile time to first chunk (streaming).", "s",
              quantiles(TTFC, OK, "canary, target", (0.95,))),
        Panel("timeseries", "Check pass ratio by check", "Share of samples passing each check in the last run.",
              "percentunit", [query(f"avg by (canary, target, check) (llm_monitor_check_pass_ratio{{{CANARY}}})",
                                    "{{canary}} {{target}} {{check}}")], minimum=0, maximum=1),
        Panel("timeseries", "Refusal ratio", "Share of samples refused in the last run.", "percentunit",
              [query(f"avg by (canary, target) (llm_monitor_refusal_ratio{{{CANARY}}})",
                     "{{canary}} {{target}}")], minimum=0, maximum=1),
        Panel("timeseries", "Drift by signal", "1 while drift is open on a signal.", "none",
              [query(f"max by (canary, target, signal) (llm_monitor_drift_active{{{CANARY}}})",
                     "{{canary}} {{target}} {{signal}}")]),
        Panel("timeseries", "Cost per interval", "Probe cost per rate interval.", "currencyUSD",
              [query(f"sum by (canary, target) (increase(llm_monitor_cost_usd_total{{{CANARY}}}[{RATE}]))",
                     "{{canary}} {{target}}")]),
    ]
    return dashboard("llm-monitor-canary", "LLM Monitor / Canary",
                     "Everything about the selected canaries: runs, latency, checks, refusals, drift, cost.",
                     panels, drift_annotations())


DASHBOARDS = {
    "overview": overview,
    "latency": latency,
    "cost": cost,
    "quality": quality,
    "canary": canary,
}
