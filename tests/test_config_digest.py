"""Replicas tell which config they would lead with: `llm_monitor_config_info{digest}` on leader and standby."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from prometheus_client import CollectorRegistry
from pydantic import create_model

from monitor.app import App
from monitor.config import load_config
from monitor.config.digest import config_digest
from monitor.config.models import Canary, Message
from tests.conftest import write_config

PROBES = "canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n    samples: 1\n    schedule: {every: 1h}\n"
TARGET = "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m, daily_spend_cap_usd: 5}"


def _replica(tmp_path: Path, name: str, store: str, listen: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    cfg = write_config(folder, TARGET, PROBES, extra="daemon: {max_start_delay: 0}\n")
    cfg.write_text(cfg.read_text().replace(f"sqlite:///{folder / 'm.db'}", store).replace("127.0.0.1:0", listen))
    return cfg


def _digests(registry: CollectorRegistry) -> dict[str, float]:
    [family] = [f for f in registry.collect() if f.name == "llm_monitor_config_info"]
    return {s.labels["digest"]: s.value for s in family.samples}


def test_what_may_differ_between_replicas_does_not_change_the_digest_what_the_leader_does_does(
        tmp_path: Path) -> None:
    a = load_config(_replica(tmp_path, "a", "sqlite:////var/lib/one.db", "127.0.0.1:9581"), environ={})
    b_cfg = _replica(tmp_path, "b", "sqlite:////srv/other/path.db", "0.0.0.0:9582")  # another listener and path
    b_cfg.write_text("# replica b\n" + b_cfg.read_text())
    assert config_digest(load_config(b_cfg, environ={})) == config_digest(a)
    b_cfg.write_text(b_cfg.read_text().replace("daily_spend_cap_usd: 5", "daily_spend_cap_usd: 0.5"))
    assert config_digest(load_config(b_cfg, environ={})) != config_digest(a)
    probes = tmp_path / "b" / "probes" / "p.yaml"
    b_cfg.write_text(b_cfg.read_text().replace("daily_spend_cap_usd: 0.5", "daily_spend_cap_usd: 5"))
    probes.write_text(PROBES.replace("every: 1h", "every: 30m"))
    assert config_digest(load_config(b_cfg, environ={})) != config_digest(a)


async def test_leader_and_standby_export_the_digest_of_their_config_and_a_reload_replaces_it(tmp_path: Path) -> None:
    # Found running two replicas on PostgreSQL: a standby restarted with another daily cap said nothing, and took
    # the lead later with it (a target paused at once). Each replica now exports the digest of its config.
    store = f"sqlite:///{tmp_path / 'store.db'}"
    cfg_a, cfg_b = _replica(tmp_path, "a", store, "127.0.0.1:0"), _replica(tmp_path, "b", store, "127.0.0.1:0")
    reg_a, reg_b = CollectorRegistry(), CollectorRegistry()
    a = App(load_config(cfg_a, environ={}), registry=reg_a, environ={}, serve_http=False)
    b = App(load_config(cfg_b, environ={}), registry=reg_b, environ={}, serve_http=False)
    await a.start()
    await b.start()
    try:
        assert (a.leading, b.leading) == (True, False)
        same = config_digest(a.config)
        assert _digests(reg_a) == _digests(reg_b) == {same: 1.0}
        cfg_b.write_text(cfg_b.read_text().replace("daily_spend_cap_usd: 5", "daily_spend_cap_usd: 0.5"))
        ok, _ = await b.reload()  # on the standby: what it would lead with from now on
        assert ok and _digests(reg_a) == {same: 1.0}
        differs = config_digest(b.config)
        assert differs != same and _digests(reg_b) == {differs: 1.0}  # the one in force, alone
    finally:
        await b.stop()
        await a.stop()


def test_a_setting_a_release_adds_with_its_default_leaves_the_digest_as_it_was(tmp_path: Path) -> None:
    # Found by review: `messages[].cache` (default none) was in every config's digest, so replicas of the old and
    # the new version on one config file exported two digests, and LLMMonitorConfigMismatch told of configs that
    # differ while an upgrade went one replica at a time. A later release's new field is made here.
    config = load_config(_replica(tmp_path, "a", "sqlite:////var/lib/one.db", "127.0.0.1:9581"), environ={})
    later_message = create_model("Message", __base__=Message, later=(int | None, None))
    later_canary = create_model("Canary", __base__=Canary, messages=(list[later_message], ...))  # type: ignore[valid-type]
    later = dataclasses.replace(config, canaries=tuple(later_canary(**c.model_dump()) for c in config.canaries))
    assert later.canaries[0].model_dump()["messages"][0]["later"] is None  # the new field is there, at its default
    assert config_digest(later) == config_digest(config)
    set_ = dataclasses.replace(config, canaries=tuple(
        later_canary(**{**c.model_dump(), "messages": [{**m.model_dump(), "later": 1} for m in c.messages]})
        for c in config.canaries))
    assert config_digest(set_) != config_digest(config)  # set to anything else, it is what the leader acts on


def test_alerts_external_labels_are_in_the_digest_when_set(tmp_path: Path) -> None:
    # Two replicas of one deployment labelled apart would push the same alerts under two identities; none set, the
    # digest is what it was before the setting existed (left out at its default)
    config = load_config(_replica(tmp_path, "a", "sqlite:////var/lib/one.db", "127.0.0.1:9581"), environ={})
    assert config.alerts.external_labels == {} and "external_labels" not in config.alerts.model_dump(
        exclude_defaults=True)
    labelled = dataclasses.replace(config, alerts=config.alerts.model_copy(update={"external_labels": {"env": "prod"}}))
    assert config_digest(labelled) != config_digest(config)


def test_a_credential_headers_value_is_not_in_the_digest_its_name_is(tmp_path: Path) -> None:
    # Found by review: the digest (a metric label, a log field) hashed the value a `${VAR}` gave a credential header,
    # so a short or guessable token could be tried against it offline; the API key's value never was in it
    cfg = _replica(tmp_path, "a", "sqlite:////var/lib/one.db", "127.0.0.1:9581")
    cfg.write_text(cfg.read_text().replace("daily_spend_cap_usd: 5", "daily_spend_cap_usd: 5, headers: "
                                           "{Helicone-Auth: 'Bearer ${HELICONE}', X-Title: mon}"))
    one, other = (config_digest(load_config(cfg, environ={"HELICONE": v})) for v in ("pw123456", "other-token-9"))
    assert one == other
    assert config_digest(load_config(cfg, environ={"HELICONE": "pw123456"})) != config_digest(
        load_config(_replica(tmp_path, "b", "sqlite:////var/lib/one.db", "127.0.0.1:9581"), environ={}))
    retitled = cfg.read_text().replace("X-Title: mon", "X-Title: other")
    cfg.write_text(retitled)
    assert config_digest(load_config(cfg, environ={"HELICONE": "pw123456"})) != one  # other headers count as before
