"""Every exported name in one module, so a rename of the still-moving OTel GenAI names is a one-file change."""

# OpenTelemetry GenAI semantic conventions (v1.41.1), Prometheus form.
OP_DURATION = "gen_ai_client_operation_duration_seconds"
OP_TTFC = "gen_ai_client_operation_time_to_first_chunk_seconds"
TOKEN_USAGE = "gen_ai_client_token_usage"

DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
RATE_BUCKETS = (1, 2, 5, 10, 20, 35, 50, 75, 100, 150, 200, 300, 500, 1000, 2000, 5000)

GENAI_LABELS = ("gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "gen_ai_response_model",
                "server_address", "error_type", "canary", "target")

# Span attributes.
ATTR_OPERATION = "gen_ai.operation.name"
ATTR_PROVIDER = "gen_ai.provider.name"
ATTR_REQUEST_MODEL = "gen_ai.request.model"
ATTR_RESPONSE_MODEL = "gen_ai.response.model"
ATTR_RESPONSE_ID = "gen_ai.response.id"
ATTR_FINISH_REASONS = "gen_ai.response.finish_reasons"
ATTR_TEMPERATURE = "gen_ai.request.temperature"
ATTR_MAX_TOKENS = "gen_ai.request.max_tokens"
ATTR_SEED = "gen_ai.request.seed"
ATTR_TOP_P = "gen_ai.request.top_p"
ATTR_STREAM = "gen_ai.request.stream"
ATTR_INPUT_TOKENS = "gen_ai.usage.input_tokens"
ATTR_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
ATTR_CACHED_TOKENS = "gen_ai.usage.cache_read.input_tokens"
ATTR_CACHE_WRITE_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
ATTR_REASONING_TOKENS = "gen_ai.usage.reasoning.output_tokens"
ATTR_TTFC = "gen_ai.response.time_to_first_chunk"
ATTR_FINGERPRINT = "openai.response.system_fingerprint"
ATTR_ERROR_TYPE = "error.type"
ATTR_SERVER_ADDRESS = "server.address"
ATTR_CANARY = "llm_monitor.canary"
ATTR_TARGET = "llm_monitor.target"

# Drift signals whose `llm_monitor_drift_active` series exist for every pair from start-up (any other signal's
# appears with its first event: a gauge born at 1 reads the same).
WATCHED_SIGNALS = ("refused", "error", "output_chars", "completion", "response_model", "system_fingerprint")
# Every signal the drift engine can open an event on, besides each check's `check:NAME` (monitor.drift.names): their
# `llm_monitor_drift_events_total` series exist for every pair from start-up, as a counter born at 1 shows no
# increase() for its first event (the dashboards' drift annotation and panel would miss it).
EVENT_SIGNALS = ("refused", "error", "exact_match", "output_tokens", "output_chars", "similarity", "latency_s",
                 "ttft_s", "semantic_similarity", "finish_reason", "error_type", "response_model",
                 "system_fingerprint", "completion")
MODEL_SIGNALS = ("response_model", "system_fingerprint")


def signal_kind(signal: str) -> str:
    """The `kind` label of a drift signal: a change of served model, or of behaviour."""
    return "model" if signal in MODEL_SIGNALS else "behaviour"
