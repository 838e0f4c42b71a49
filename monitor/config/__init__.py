"""Configuration: the schema (models), YAML with line numbers, and loading with precise errors."""

from monitor.config.loader import Config, load_config, load_probe_files, probe_paths
from monitor.config.models import Canary, Daemon, Http, Prices, RequestParams, Schedule, Storage, Target
from monitor.config.secrets import resolve_api_key
from monitor.durations import parse_duration

__all__ = [
    "Canary", "Config", "Daemon", "Http", "Prices", "RequestParams", "Schedule", "Storage", "Target",
    "load_config", "load_probe_files", "parse_duration", "probe_paths", "resolve_api_key",
]
