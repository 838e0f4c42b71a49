"""The daemon's own settings: the store, the HTTP listener, shutdown and start-up, the refusal judge."""

from __future__ import annotations

import ipaddress
import re

from pydantic import Field, field_validator

from monitor.config.store_url import port_problem
from monitor.config.strict import Strict
from monitor.durations import Seconds
from monitor.keylike import looks_like_a_key
from monitor.one_line import one_line


class Storage(Strict):
    url: str = "sqlite:///llm-monitor.db"
    retention_days: float = Field(default=90, gt=0, le=36_500)
    connect_timeout: Seconds = 10.0  # PostgreSQL: opening a connection (libpq's connect_timeout; 0: no limit)
    statement_timeout: Seconds = 60.0  # PostgreSQL, the daemon's sessions: one statement (not migrations, the prune)
    lock_timeout: Seconds = 10.0  # PostgreSQL, the daemon's sessions: one statement's wait for a lock

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^(sqlite|postgresql(\+psycopg)?)://", v):
            raise ValueError("must start with sqlite:// or postgresql+psycopg://")
        # `run` and every command found these only when opening the store: sqlite://llm-monitor.db as SQLAlchemy's
        # "Invalid SQLite URL", sqlite:// (in memory) as a TypeError traceback
        if v.startswith("sqlite:"):
            if v.partition("?")[0] in ("sqlite://", "sqlite:///", "sqlite:///:memory:"):
                raise ValueError("an in-memory SQLite database lives only in the process that opens it: give a file "
                                 "(sqlite:///path/to/llm-monitor.db)")
            if not v.startswith("sqlite:///"):
                raise ValueError("a SQLite URL is sqlite:/// then the file's path: sqlite:///llm-monitor.db (relative "
                                 "to the working directory) or sqlite:////var/lib/llm-monitor/llm-monitor.db (absolute)")
        # ${ENV} is interpolated before this check, so the password has to reach libpq another way
        if re.match(r"^postgresql(\+psycopg)?://[^/@]*:[^/@]+@", v) or re.search(r"[?&]password=", v):
            raise ValueError("must not contain a password: use PGPASSWORD, PGPASSFILE or a .pgpass file")
        problem = port_problem(v)
        if problem:
            raise ValueError(problem)
        return v


class Http(Strict):
    listen: str = "127.0.0.1:9464"
    reload_token_env: str = "LLM_MONITOR_RELOAD_TOKEN"
    web_config_file: str | None = Field(default=None, min_length=1)  # TLS and basic auth (exporter-toolkit format)

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        # a NUL or a C1 character (U+0085, a next line) passed as part of the host; a line break is said so too
        one_line(v, "must be HOST:PORT on one line")
        host, colon, port = v.rpartition(":")
        # ":9464" (no host) is every interface, as Prometheus and Go read it: 0.0.0.0:9464
        if not colon or not (port.isascii() and port.isdigit()):
            raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:9464, or 0.0.0.0:9464 (also written :9464) for "
                             "every interface")
        if re.search(r"[/\s]", host):  # a URL (http://127.0.0.1:9464) passed, and `run` could not resolve its host
            raise ValueError("must be HOST:PORT, not a URL: no scheme, path or spaces (e.g. 127.0.0.1:9464)")
        if len(port.lstrip("0")) > 5 or int(port) > 65535:
            raise ValueError("the port is out of range: must be HOST:PORT with a port from 0 to 65535")
        bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        if bare != host or ":" in bare:  # `127.0.0.1::9464` bound host `127.0.0.1:`, which no resolver knows
            try:
                ipaddress.IPv6Address(bare)
            except ValueError:
                raise ValueError(f"its host {host} is no IPv6 address, the only host with a colon in it: write "
                                 "HOST:PORT (127.0.0.1:9464), an IPv6 address in brackets ([::1]:9464)") from None
        return v

    @field_validator("reload_token_env")
    @classmethod
    def _token_env(cls, v: str) -> str:
        # the token written here in place of its variable's name would be shown to anyone by the 403 that says
        # which variable to set; a name no environment can hold would leave reload over HTTP off for good
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", v) or looks_like_a_key(v):
            raise ValueError("must be the NAME of an environment variable that holds the token (e.g. "
                             "LLM_MONITOR_RELOAD_TOKEN), not the token itself: secrets are never read from the "
                             "config text")
        return v

    @property
    def host(self) -> str:
        """The address to bind: `:9464` is 0.0.0.0 (every IPv4 interface), `[::]:9464` is :: (every interface)."""
        return self.listen.rpartition(":")[0].strip("[]") or "0.0.0.0"

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class Daemon(Strict):
    grace_period: Seconds = 30.0  # in-flight probes get this long on shutdown
    max_start_delay: Seconds = 30.0  # first runs are spread over this long


class RefusalConfig(Strict):
    """The optional LLM judge consulted where the local refusal classifier is unsure."""

    judge_target: str | None = None  # a configured target with a pinned model
    min_agreement: float = Field(default=0.9, gt=0, le=1)  # on the frozen calibration set, or no verdicts count
    band: tuple[float, float] = (0.3, 0.7)  # local refusal scores that count as unsure

    @field_validator("band")
    @classmethod
    def _band(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0 <= v[0] <= v[1] <= 1:
            raise ValueError(f"must be [low, high] with 0 <= low <= high <= 1, got [{v[0]:g}, {v[1]:g}]")
        return v
