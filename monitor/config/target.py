"""A target: one upstream model API to watch, with its request parameters and prices."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from monitor.chars import NOT_IN_HEADER
from monitor.config.strict import Id, Strict
from monitor.domain import MAX_ANSWER_TOKENS
from monitor.durations import Seconds
from monitor.http_urls import API_ENDPOINTS, url_problem
from monitor.keylike import looks_like_a_key
from monitor.literal_secrets import refused_key
from monitor.one_line import one_line
from monitor.placed import Placed

# The headers the provider clients send the API key in: refused, the key settings say where the key comes from
KEY_HEADERS = frozenset({"authorization", "x-api-key", "api-key"})
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")  # RFC 9110 field name
# USD per million tokens at most: the dearest models bill a few hundred (a price of 1e300 made every cost infinite)
MAX_PRICE = 10_000
# The seed as the OpenAI API and OpenTelemetry's int attributes take it: a signed 64-bit integer
SEED_RANGE = (-(2**63), 2**63 - 1)


class RequestParams(Strict):
    """Sampling parameters sent with every call; canary params override the target's."""

    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_ANSWER_TOKENS)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = Field(default=None, ge=SEED_RANGE[0], le=SEED_RANGE[1])

    def merged(self, override: RequestParams | None) -> RequestParams:
        """Return these params with every field set in `override` replacing ours."""
        if override is None:
            return self
        return self.model_copy(update=override.model_dump(exclude_none=True))


class Prices(Strict):
    """USD per million tokens. Reasoning tokens are billed as output tokens (they are counted in them).

    Input tokens read from a prompt cache are priced at `cached_input`, those written to one at
    `cache_write_input` (Anthropic: 1.25 times the input price, for the default 5-minute TTL) or
    `cache_write_1h_input` (2 times, for a 1-hour TTL); any of the three left unset prices its tokens as `input`
    (OpenAI-compatible servers bill no cache writes)."""

    input: float = Field(ge=0, le=MAX_PRICE)
    cached_input: float | None = Field(default=None, ge=0, le=MAX_PRICE)
    cache_write_input: float | None = Field(default=None, ge=0, le=MAX_PRICE)
    cache_write_1h_input: float | None = Field(default=None, ge=0, le=MAX_PRICE)
    output: float = Field(ge=0, le=MAX_PRICE)


class Target(Strict, Placed):
    """One upstream model API to watch (Placed: the problems of its API key, read when its provider is built, name
    the file and line of the target)."""

    id: Id
    provider: Literal["openai", "anthropic"]
    base_url: str
    model: str = Field(min_length=1, max_length=200)  # the store's column
    api_key_env: str | None = None
    api_key_file: str | None = None
    params: RequestParams = RequestParams()
    stream: bool = True
    stream_usage: bool = True  # send stream_options.include_usage (OpenAI-compatible servers)
    # auto: a <think> block leading the content (a reasoning model served without a reasoning parser) is reasoning,
    # not the answer (OpenAI-compatible servers; monitor.providers.thinktags); always: the chat template opens the
    # block, so the content is reasoning up to </think>, all of it when none comes; off: the answer as sent
    reasoning_tags: Literal["auto", "always", "off"] = "auto"
    timeout: Annotated[Seconds, Field(gt=0)] = 60.0  # one whole call: 60, 60s or 1m
    max_concurrency: int = Field(default=4, ge=1, le=1024)
    # Bytes read from one reply at most (after decompression too): the longest completions models write today
    # (128k tokens) take about 40 MB streamed in OpenAI's format, about 300 bytes of framing each, and well under
    # 1 MB as one JSON answer. A hostile or broken upstream can hold this much per call in flight to it.
    max_reply_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    headers: dict[str, str] = {}
    prices: Prices | None = None
    daily_spend_cap_usd: float | None = Field(default=None, gt=0)
    # all: every canary that lists no targets runs against it; listed: only the canaries that name it (a judge or
    # embeddings target, or a costly model watched by a few canaries)
    canaries: Literal["all", "listed"] = "all"

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        problem = url_problem(v)
        if problem:
            raise ValueError(problem)
        if "?" in v or "#" in v:  # the SDKs append each call's path to the whole URL: every call was a 404
            raise ValueError("must hold no query (?...) or fragment (#...): each call's path is appended to it, so "
                             "no call would reach the API (a key goes in api_key_env or api_key_file, other values "
                             "in headers; Azure OpenAI: its v1 API, https://RESOURCE.openai.azure.com/openai/v1, "
                             "takes no api-version)")
        base = v.rstrip("/")
        endpoint = next((e for e in API_ENDPOINTS if base.lower().endswith(e)), None)
        if endpoint:  # pasted from a curl example: each call appends its own path again, and every call was a 404
            raise ValueError(f"ends in the endpoint {endpoint}, which each call appends itself: write the API's base, "
                             f"without {endpoint}")
        return base

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        # a ${MODEL} whose value ends in a line break (a Kubernetes ConfigMap's) was sent as it came: every call a 404
        # naming `sim-gpt ` (the line break shown as a space), with check-config's OK
        return one_line(v, after=", which no model name has")

    @field_validator("reasoning_tags", mode="before")
    @classmethod
    def _tags_switch(cls, v: Any) -> Any:
        # YAML reads an unquoted off (and no, false) as False: the switch meant
        return {False: "off", True: "auto"}.get(v, v) if isinstance(v, bool) else v

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        if v is not None and (not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", v) or looks_like_a_key(v)):
            raise ValueError(
                "must be the NAME of an environment variable that holds the key (e.g. OPENAI_API_KEY), "
                "not the key itself: keys are never read from the config text")
        return v

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if name.lower() in KEY_HEADERS:
                raise ValueError(f"header {name!r} carries a secret: use api_key_env or api_key_file instead")
            if not _TOKEN.match(name):
                raise ValueError(f"header name {name!r} is not a valid HTTP header name (letters, digits and "
                                 "!#$%&'*+-.^_`|~, no spaces)")
            if NOT_IN_HEADER.search(value):
                raise ValueError(f"header {name!r}: its value must be printable ASCII on one line (no line breaks, "
                                 "no other control or non-ASCII characters)")
        return v

    _no_literal_key = refused_key("api_key", "api_key is not accepted in the config text: put the key in an "
                                  "environment variable and name it with api_key_env (or point api_key_file at a file)")
