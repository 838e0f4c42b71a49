"""The web configuration file's schema: exporter-toolkit's `--web.config.file` format, the part llm-monitor serves.

Prometheus, node_exporter and the other exporters read TLS and basic-auth settings for their listener from this
file (https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md); one file can serve
them all. Keys llm-monitor does not support (`http_server_config`, `cipher_suites`, ...) are unknown keys: an
error, as everywhere in its config, rather than a setting silently ignored.
"""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from monitor.placed import Placed

CLIENT_AUTH_TYPES = ("NoClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert")
# exporter-toolkit's two that accept a client certificate without verifying it: Python's ssl cannot do that
_UNVERIFIED = ("RequestClientCert", "RequireAnyClientCert")
TlsVersion = Literal["TLS10", "TLS11", "TLS12", "TLS13"]
_BCRYPT = re.compile(r"^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}\Z")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsServerConfig(_Strict):
    """The listener's TLS: its certificate and key, and whether (and against which CA) clients must show one.

    Paths are taken from the web config file's folder unless absolute, as exporter-toolkit reads them."""

    cert_file: str = Field(min_length=1)
    key_file: str = Field(min_length=1)
    client_auth_type: str = "NoClientCert"
    client_ca_file: str | None = Field(default=None, min_length=1)
    min_version: TlsVersion = "TLS12"
    max_version: TlsVersion | None = None

    @field_validator("client_auth_type")
    @classmethod
    def _client_auth_type(cls, v: str) -> str:
        if v in _UNVERIFIED:
            raise ValueError(f"not supported: llm-monitor verifies every client certificate it accepts; use one of "
                             f"{', '.join(CLIENT_AUTH_TYPES)}")
        if v not in CLIENT_AUTH_TYPES:
            raise ValueError(f"must be one of {', '.join(CLIENT_AUTH_TYPES)}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> TlsServerConfig:
        if self.client_auth_type == "NoClientCert" and self.client_ca_file is not None:
            raise ValueError("client_ca_file is set but client_auth_type is NoClientCert: set client_auth_type "
                             "(RequireAndVerifyClientCert or VerifyClientCertIfGiven) or remove client_ca_file")
        if self.client_auth_type != "NoClientCert" and self.client_ca_file is None:
            raise ValueError(f"client_auth_type {self.client_auth_type} needs client_ca_file (the CA that signs the "
                             "client certificates)")
        if self.max_version is not None and self.max_version < self.min_version:
            raise ValueError(f"max_version {self.max_version} is below min_version {self.min_version}")
        return self

    def files(self) -> dict[str, str]:
        """The files this config names, by field."""
        out = {"cert_file": self.cert_file, "key_file": self.key_file}
        if self.client_ca_file is not None:
            out["client_ca_file"] = self.client_ca_file
        return out


def _bcrypt_hash(v: str) -> str:
    if not _BCRYPT.match(v):
        raise ValueError("not a bcrypt hash ($2a$, $2b$ or $2y$, cost 04 to 31, 60 characters); make one with "
                         "`htpasswd -nBC 10 USER` (the part after the colon)")
    return v


def _user_name(v: str) -> str:
    if not v or ":" in v:
        raise ValueError("a user name must be non-empty and without ':' (basic auth cannot send it)")
    return v


class WebConfigFile(_Strict, Placed):
    """The web config file: TLS for the listener and the users basic auth lets in (name -> bcrypt hash). Placed: its
    warnings name the line of `basic_auth_users` or `tls_server_config.cert_file`.

    Empty (or no file) is plain HTTP without authentication."""

    # Never echoed in an error: a value that fails as a hash is most often the password written in plain.
    UNECHOED: ClassVar[frozenset[str]] = frozenset({"basic_auth_users"})

    tls_server_config: TlsServerConfig | None = None
    basic_auth_users: dict[Annotated[str, AfterValidator(_user_name)], Annotated[str, AfterValidator(_bcrypt_hash)]] \
        = Field(default_factory=dict)
