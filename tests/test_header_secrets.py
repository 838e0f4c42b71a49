"""Credential headers (`targets[].headers` named like Cookie, X-Goog-Api-Key, Helicone-Auth): their values come from
the environment (a ${VAR}), never the config text, and are kept out of what the upstream returns, the API, the
CLI's output, the logs and `store scrub`'s reach, as the API key is."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from monitor.app import App
from monitor.commands.scrub import configured_secrets
from monitor.config import load_config
from monitor.config.models import Target
from monitor.domain import CallResult, ErrorType
from monitor.embeddings import Embedder
from monitor.errors import ConfigError
from monitor.literal_secrets import credential_header
from monitor.providers import build_provider
from monitor.providers.base import ChatRequest
from tests.conftest import write_config
from tests.support.daemon import cli
from tests.support.jsonserver import json_server

SECRET = "goog-LEAKCHECK-0123456789abcdef"
PROBES = "canaries:\n  - id: echo\n    messages: [{role: user, content: hi}]\n    schedule: {every: 1h}\n"
MSG = [{"role": "user", "content": "hi"}]


def target(headers: str) -> str:
    return f"  - id: t\n    provider: openai\n    base_url: 'http://127.0.0.1:9/v1'\n    model: m\n    headers:\n{headers}"


def problems(cfg: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as e:
        load_config(cfg, environ=env or {})
    return [str(i) for i in e.value.issues]


@pytest.mark.parametrize("name", ["Cookie", "Proxy-Authorization", "X-Goog-Api-Key", "Ocp-Apim-Subscription-Key",
                                  "X-Portkey-Api-Key", "Helicone-Auth", "X-Auth-Token", "X-Client-Secret"])
def test_a_literal_credential_header_is_refused_at_its_line_without_its_value(tmp_path: Path, name: str) -> None:
    cfg = write_config(tmp_path, target(f"      X-Title: monitor\n      {name}: {SECRET}"), PROBES)
    assert problems(cfg) == [
        f"{cfg}:8: targets[0].headers: header {name!r} carries a credential, which is never read from the config "
        f"text: put it in an environment variable and write its value as ${{VAR}} (e.g. {name}: \"${{MY_VAR}}\")"]


@pytest.mark.parametrize("name", ["Authorization", "X-Api-Key", "api-key"])
def test_the_key_headers_are_refused_once_pointing_at_the_key_settings(tmp_path: Path, name: str) -> None:
    # Found by a newcomer's walk-through: `X-Api-Key: abc` got two errors, "use api_key_env or api_key_file instead"
    # and "write its value as ${VAR}", and the ${VAR} the second asked for was refused by the first
    cfg = write_config(tmp_path, target(f"      {name}: {SECRET}"), PROBES)
    assert problems(cfg) == [
        f"{cfg}:7: targets[0].headers: header {name!r} carries a secret: use api_key_env or api_key_file instead"]


def test_a_default_after_the_variable_is_config_text_too(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, target(f'      Cookie: "${{C:-{SECRET}}}"'), PROBES)
    (issue,) = problems(cfg)
    assert "header 'Cookie' carries a credential" in issue and SECRET not in issue


def test_credential_headers_from_the_environment_are_accepted(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, target('      X-Goog-Api-Key: "${GOOG}"\n      Proxy-Authorization: "Basic ${PROXY}"\n'
                                        "      X-Title: monitor\n      X-Max-Tokens: '100'"), PROBES)
    config = load_config(cfg, environ={"GOOG": SECRET, "PROXY": "dXNlcjpwYXNzd29yZA=="})
    assert config.targets[0].headers["X-Goog-Api-Key"] == SECRET
    assert config.targets[0].headers["Proxy-Authorization"] == "Basic dXNlcjpwYXNzd29yZA=="


def test_the_rule_names() -> None:
    assert not any(map(credential_header, ["X-Title", "HTTP-Referer", "OpenAI-Organization", "X-Max-Tokens",
                                           "anthropic-beta"]))


@pytest.mark.parametrize("name", [
    "X-Title", "HTTP-Referer", "Accept", "User-Agent", "X-Request-Id", "OpenAI-Organization", "OpenAI-Project",
    "OpenAI-Beta", "anthropic-version", "anthropic-beta", "X-Max-Tokens", "Keep-Alive", "X-Stainless-Retry-Count",
    "Helicone-Session-Id", "X-Session-Id", "api-version",
    # a count or limit of tokens is no token (a header's value a number), an idempotency key no credential (IETF's
    # Idempotency-Key names one request, a fixed one in the config would be a mistake, not a secret)
    "X-Trace-Token-Count", "X-Token-Limit", "X-Token-Budget", "X-Tokenizer", "Idempotency-Key"])
def test_a_harmless_header_is_no_credential(name: str) -> None:
    assert not credential_header(name)


@pytest.mark.parametrize("name", [
    "X-Api-Key", "Api-Key", "api_key", "apikey", "X-API-KEY", "Ocp-Apim-Subscription-Key", "X-Auth-Token",
    "Authorization", "Proxy-Authorization", "Cookie", "X-Goog-Api-Key", "X-Portkey-Virtual-Key", "Helicone-Auth",
    "X-Amz-Security-Token", "CF-Access-Client-Secret", "Private-Token", "X-Vault-Token", "X-Csrf-Token", "X-Token",
    "cf-aig-authorization", "X-Password",
    # missed before: a plural, a key not last, a credential, a JWT, a passphrase
    "X-Api-Keys", "X-ApiKey-Value", "X-Api-Key-V2", "X-Credential", "X-Credentials", "Cf-Access-Jwt-Assertion",
    "X-Passphrase"])
def test_a_credential_header_is_one(name: str) -> None:
    assert credential_header(name)


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_an_echoed_header_value_never_leaves_the_provider(kind: str) -> None:
    def echo(body: dict, headers: dict) -> tuple[int, dict]:  # through the real SDK (openai) and httpx (anthropic)
        said = f"Bad key {headers.get('x-goog-api-key')} and proxy credential {headers.get('proxy-authorization')}"
        return 401, {"type": "error", "error": {"type": "authentication_error", "message": said}}

    with json_server(echo) as url:
        headers = {"X-Goog-Api-Key": SECRET, "Proxy-Authorization": "Basic dXNlcjpwYXNzd29yZA=="}
        t = Target(id="t", provider=kind, base_url=url + ("/v1" if kind == "openai" else ""), model="m",
                   headers=headers)
        provider = build_provider(t, None)
        try:
            r = await provider.complete(ChatRequest(model="m", messages=MSG, timeout_s=5))
        finally:
            await provider.aclose()
    assert r.error_type == ErrorType.AUTH, r.error_message
    assert "Bad key <redacted> and proxy credential <redacted>" in (r.error_message or "")
    assert SECRET not in repr(r) and "dXNlcjpwYXNzd29yZA==" not in repr(r)


async def test_a_header_secret_is_not_in_the_store_api_logs_or_check_config(tmp_path: Path,
                                                                           caplog: pytest.LogCaptureFixture) -> None:
    def echo(body: dict, headers: dict) -> tuple[int, dict]:
        return 401, {"error": {"message": f"Helicone-Auth {headers.get('helicone-auth')} is not valid",
                               "type": "invalid_request_error"}}

    caplog.set_level(logging.DEBUG)
    with json_server(echo) as url:
        cfg = write_config(tmp_path, f"  - {{id: t, provider: openai, base_url: '{url}/v1', model: m, stream: false, "
                                     "headers: {Helicone-Auth: 'Bearer ${HELICONE}'}}", PROBES)
        env = {"HELICONE": SECRET}
        app = App(load_config(cfg, environ=env), registry=CollectorRegistry(), environ=env)
        await app.start(schedule=False)
        try:
            [obs] = await app.runner.run(*app.config.pairs()[0])
            async with httpx.AsyncClient() as client:
                targets = (await client.get(f"http://127.0.0.1:{app.port}/api/targets")).text
                observations = (await client.get(f"http://127.0.0.1:{app.port}/api/observations")).text
        finally:
            await app.stop()
    assert "Helicone-Auth <redacted> is not valid" in (obs.call.error_message or "")
    checked = cli("check-config", "-c", str(cfg), env={**env, "COLUMNS": "200"})
    assert checked.returncode == 0, checked.stdout + checked.stderr
    stored = "\n".join(p.read_bytes().decode("utf-8", "replace") for p in tmp_path.glob("m.db*"))
    assert "is not valid" in observations + stored
    for where in (targets, observations, checked.stdout + checked.stderr, caplog.text, stored):
        assert SECRET not in where
    assert [s.name for s in configured_secrets(app.config, env)[0]] == ["target t's header Helicone-Auth"] * 2
    assert {s.value for s in configured_secrets(app.config, env)[0]} == {f"Bearer {SECRET}", SECRET}


def test_an_echoed_header_value_never_leaves_the_embedder(caplog: pytest.LogCaptureFixture) -> None:
    def echo(body: dict, headers: dict) -> tuple[int, dict]:
        return 401, {"error": {"message": f"bad key {headers.get('x-goog-api-key')}", "type": "invalid_request_error"}}

    calls: list[CallResult] = []
    with json_server(echo) as url:
        embedder = Embedder(f"{url}/v1", None, "e", pause_s=0, headers={"X-Goog-Api-Key": SECRET},
                            record=lambda call, started: calls.append(call))
        try:
            embedder(["a"])
        finally:
            embedder.close()
    [call] = calls
    assert "bad key <redacted>" in (call.error_message or "")
    assert SECRET not in repr(call) + caplog.text


async def test_a_header_value_holding_another_secret_is_redacted_whole() -> None:
    # Found by review: the secrets were replaced in the order given, so a key also sent inside a Cookie (beside a
    # session) was replaced within the echoed cookie first, which then no longer matched: the session stayed
    session = "sess-PRIVATE-9f8e7d6c5b4a"

    def echo(body: dict, headers: dict) -> tuple[int, dict]:
        return 401, {"error": {"message": f"bad cookie {headers.get('cookie')}", "type": "invalid_request_error"}}

    with json_server(echo) as url:
        t = Target(id="t", provider="openai", base_url=url + "/v1", model="m",
                   headers={"X-Goog-Api-Key": SECRET, "Cookie": f"key={SECRET}; sid={session}"})
        provider = build_provider(t, None)
        try:
            r = await provider.complete(ChatRequest(model="m", messages=MSG, timeout_s=5))
        finally:
            await provider.aclose()
    assert "bad cookie <redacted>" in (r.error_message or ""), r.error_message
    assert session not in repr(r) and SECRET not in repr(r)
