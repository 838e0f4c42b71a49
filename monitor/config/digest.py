"""The digest of what a replica would run as leader, so replicas whose configs differ can be told apart.

Replicas on one store take turns leading with their own config files: a standby started (or reloaded) with
another cap, canary or sink changes what is probed, paid and paged the moment it takes over, without a word.
Each replica exports the digest of its config (`llm_monitor_config_info{digest}`); rule
`LLMMonitorConfigMismatch` fires while the replicas of one job export more than one.

The digest covers what the leader acts on (targets, canaries, daemon, drift, alerts, refusal settings), as
loaded, so a probe file moved or a comment edited does not change it, and without the fields left at their
defaults, so neither does an upgrade that adds a setting (a release's new field, as `messages[].cache`, took every
config's digest with it: replicas of two versions mid-upgrade, on one config file, told of a mismatch that was
not there); it leaves out what may differ from one
replica to another without changing what the leader does: the HTTP listener and its web config (two replicas on
one host listen on two ports), the store's URL (the replicas share the store: the leader lock proves it), and
the paths of the files read. Secrets are not in it: the config names the variables and files holding keys and sink
secrets, and a credential header's value, read from the environment, is left out as the key is (a short or guessable
one could be tried against the digest, a metric label and a log field; a rotated one is no other config). The digest
is a hash: nothing written in the config can be read back from it.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from monitor.literal_secrets import credential_header

if TYPE_CHECKING:
    from monitor.config.loader import Config

DIGEST_HEX = 12  # 48 bits: two configs of one fleet colliding is not a concern


def config_digest(config: Config) -> str:
    """Return a short hex digest of what `config` makes the leader do (see the module's docstring)."""
    def dump(model: Any) -> Any:
        return model.model_dump(mode="json", exclude_defaults=True)

    def target(t: Any) -> Any:
        out = dump(t)
        if "headers" in out:  # a credential header's name and presence count, never its value
            out["headers"] = {k: "<credential>" if credential_header(k) else v for k, v in out["headers"].items()}
        return out

    acted_on = {
        "targets": [target(t) for t in config.targets],
        "canaries": [dump(c) for c in config.canaries],
        "daemon": dump(config.daemon),
        "drift": dump(config.drift),
        "alerts": dump(config.alerts),
        "refusal": dump(config.refusal),
    }
    text = json.dumps(acted_on, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:DIGEST_HEX]
