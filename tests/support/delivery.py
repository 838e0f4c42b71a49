"""What the alert delivery tests share: the webhook secret, a clock the test moves, an alerts config whose messages
go out without waiting for their group, a drift event, and `build` (the alerting on a store, with that clock).
The `clock` and `rx` (a signing receiver on that clock) fixtures are in `tests/conftest.py`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.alerts import AlertEvent, AlertsConfig, build_alerting
from monitor.store import Store
from monitor.telemetry.metrics import Metrics

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class Clock:
    """The time the alerting sees: it stands still until the test moves it (`advance`)."""

    def __init__(self) -> None:
        self.t = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)


def config(url: str, **extra: object) -> AlertsConfig:
    """Deliveries are the subject here, not grouping: drift messages go out without waiting for their group."""
    return AlertsConfig.model_validate({
        "group_wait": "0s",
        "retry": {"initial": "10s", "max": "10m", "give_up_after": "1h"},
        "sinks": [{"name": "hook", "type": "webhook", "url": url + "/hook", "secret_env": "HOOK_SECRET"}],
        **extra})


def event(i: int = 0, kind: str = "drift.opened") -> AlertEvent:
    return AlertEvent(kind=kind, canary=f"c{i}", target="t", signal="refusal_rate", event_id=f"e{i}",
                      evidence={"baseline_value": 0.1, "current_value": 0.5})


def build(store: Store, cfg: AlertsConfig, clock: Clock, env: dict | None = None, registry=None):  # type: ignore[no-untyped-def]
    metrics = Metrics(registry) if registry is not None else None
    return build_alerting(cfg, store, environ=env or {"HOOK_SECRET": SECRET}, metrics=metrics, now=clock,
                          rand=lambda: 1.0)
