"""Secrets are never read from the config text: a model refuses, by name, the key a secret would be written under.

A target's `api_key`, a Slack sink's `url` and a PagerDuty sink's `routing_key` are refused before the fields are
read, with a message that says where the secret goes instead and never shows it (an unknown key's "Extra inputs are
not permitted" would echo the value).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import model_validator
from pydantic_core import PydanticCustomError

# The error type of a refused key: config loading names the key itself (its line, `targets[0].api_key`), where the
# model validator's error is the model's, and never shows its value
LITERAL_SECRET = "literal_secret"

# A request header whose name says it carries a credential: its name holds auth, secret, password, passphrase,
# cookie, credential, jwt, api key (apikey, api_key), or token (not a count of them: tokens, token-count, -limit,
# -budget, tokenizer), or ends in key or keys (Proxy-Authorization, Cookie, X-Goog-Api-Key, Ocp-Apim-Subscription-Key,
# X-Portkey-Api-Key, Helicone-Auth, X-Auth-Token, Cf-Access-Jwt-Assertion, ...), IETF's Idempotency-Key (one request's
# name) aside. Its value comes from the environment (a ${VAR} in the config), never the config text, and is scrubbed
# from what the upstream returns, as the API key is.
_CREDENTIAL_HEADER = re.compile(r"auth|secret|passw|passphrase|cookie|credential|jwt|api[-_]?key"
                                r"|token(?!s|iz|[-_]?(?:count|limit|budget))|(?<!idempotency[-_])keys?$", re.I)


def credential_header(name: str) -> bool:
    """Tell whether a request header's name says it carries a credential (`_CREDENTIAL_HEADER`)."""
    return bool(_CREDENTIAL_HEADER.search(name))


def header_secrets(headers: Mapping[str, str]) -> tuple[str, ...]:
    """The values of the credential headers among `headers`, and the credential after an auth scheme
    (`Basic dXNlcjpwYXNz` -> `dXNlcjpwYXNz`, which an upstream may echo alone): secrets no result may carry."""
    out: list[str] = []
    for name, value in headers.items():
        if credential_header(name) and value.strip():
            scheme, _, credential = value.strip().partition(" ")
            out += [value, *([credential.strip()] if credential.strip() and scheme.isalpha() else [])]
    return tuple(dict.fromkeys(out))


def refused_key(key: str, message: str) -> Any:
    """Return a model validator (run before the fields) that refuses input holding `key`, saying `message`."""

    def refuse(cls: type, data: Any) -> Any:
        if isinstance(data, dict) and key in data:
            raise PydanticCustomError(LITERAL_SECRET, message, {"key": key})
        return data

    return model_validator(mode="before")(refuse)  # a classmethod, as its first parameter is `cls`
