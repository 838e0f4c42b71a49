"""The configuration schema: targets (upstream model APIs), canaries (probe prompts) and daemon settings.

Every model rejects unknown keys, carries its defaults, and checks what it can on its own; cross-file checks
(unique ids, canaries naming known targets) live in :mod:`monitor.config.references`. One module per concept
(target, canary, settings, drift; strict: what they share); this one holds the top-level file and re-exports
them, so `from monitor.config.models import Target` keeps working.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from monitor.alerts.config import AlertsConfig
from monitor.config.canary import Canary, Message, ProbeFile, Schedule
from monitor.config.drift import DriftConfig, EmbeddingsConfig, InputPrices
from monitor.config.settings import Daemon, Http, RefusalConfig, Storage
from monitor.config.strict import Id, Strict
from monitor.config.target import Prices, RequestParams, Target


class MonitorFile(Strict):
    """The top-level monitor.yaml as written by the user."""

    targets: list[Target] = Field(min_length=1)
    probes: list[Annotated[str, Field(min_length=1)]] = ["./probes"]  # "" named monitor.yaml's own folder
    storage: Storage = Storage()
    http: Http = Http()
    daemon: Daemon = Daemon()
    drift: DriftConfig = DriftConfig()
    alerts: AlertsConfig = AlertsConfig()
    refusal: RefusalConfig = RefusalConfig()


__all__ = [
    "Canary", "Daemon", "DriftConfig", "EmbeddingsConfig", "Http", "Id", "InputPrices", "Message", "MonitorFile",
    "Prices", "ProbeFile", "RefusalConfig", "RequestParams", "Schedule", "Storage", "Strict", "Target",
]
