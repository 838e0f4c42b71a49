"""A target's `base_url` httpx cannot send to is refused where it is written, as an alert sink's URL is."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.http_urls import url_problem
from monitor.sim import SimServer
from tests.conftest import write_config
from tests.support.daemon import cli

PROBES = "canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n"


@pytest.mark.parametrize(("base_url", "problem"), [
    ("http://127.0.0.1:9/v1\n", "must be an http:// or https:// URL on one line: it holds a control character "
                                "(character 22 of 22)"),
    ("http://[::1/v1", "must be an http:// or https:// URL: its host cannot be read"),
    ("http://256.1.1.1/v1", "its host is no IPv4 address: four numbers from 0 to 255, without leading zeros"),
    ("https://api.xn--a.example/v1", "its host has an xn-- label that is no valid IDNA (punycode) name")])
def test_a_base_url_httpx_cannot_send_to_is_refused(tmp_path: Path, base_url: str, problem: str) -> None:
    """Found by walkthrough: `base_url: ${BASE}` from a variable ending in a line break (a Kubernetes Secret's value
    written with one) passed `check-config`, and `probe` then died with httpx's InvalidURL traceback; an IPv6 host
    without its `]` was called a bad port."""
    cfg = write_config(tmp_path, "  - {id: t, provider: openai, base_url: '${BASE}', model: m}", PROBES)
    for command in ("check-config", "probe"):
        bad = cli(command, "-c", str(cfg), env={"BASE": base_url})
        assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stdout + bad.stderr
        assert f"{cfg}:2: targets[0].base_url: {problem} (value: '${{BASE}}')" in bad.stderr, bad.stderr


@pytest.mark.parametrize("base_url", ["${BASE}/v1?api-key=literal-0123456789abcdef", "${BASE}/v1#frag"])
def test_a_base_url_with_a_query_or_fragment_is_refused_without_showing_it(tmp_path: Path, base_url: str,
                                                                           steady_sim: SimServer) -> None:
    """Found by walkthrough: `base_url: https://...azure.../v1?api-key=...` passed `check-config` (its table printed
    the key) and every call was a 404 (`bad_request`): the SDKs append each call's path to the whole URL."""
    cfg = write_config(tmp_path, f"  - {{id: t, provider: openai, base_url: '{base_url}', model: sim-gpt}}", PROBES)
    env = {"BASE": steady_sim.url}
    checked = cli("check-config", "-c", str(cfg), env=env)
    assert checked.returncode == 2 and "Traceback" not in checked.stderr, checked.stdout + checked.stderr
    assert f"{cfg}:2: targets[0].base_url: must hold no query (?...) or fragment (#...): each call's path is " \
           "appended to it" in " ".join(checked.stderr.split())
    assert "Azure OpenAI: its v1 API, https://RESOURCE.openai.azure.com/openai/v1, takes no api-version" \
        in " ".join(checked.stderr.split())
    assert "literal-0123456789abcdef" not in checked.stdout + checked.stderr
    assert cli("probe", "-c", str(cfg), env=env).returncode == 2


@pytest.mark.parametrize("url", [
    "http://256.1.1.1/", "http://01.2.3.4/", "http://1.2.3.4444/", "http://xn--a.example/", "http://XN--A.example/",
    "http://xn--.example/", "http://xn--abc-.example/", "http://xn--zz.example/", "http://xn--ls8h.example/",
    "http://1.2.3.4/", "http://[::1]:8080/", "http://[2001:db8::1]/", "http://bücher.example/", "http://localhost/",
    "http://host.docker.internal:9093/", "http://xn--bcher-kva.example/", "http://xn--strae-oqa.example/",
    "http://1.2.3/", "http://a_b.example/", "https://hooks.slack.com/services/T0/B0/x"])
def test_a_url_is_refused_only_where_httpx_refuses_its_host(url: str) -> None:
    """What httpx refuses as it sends (an IPv4 address out of range, an `xn--` label that is no IDNA) is refused by
    the config check; what it sends to (IPv6, an IDN name, `localhost`, IDNA 2008's `straße`) is not. The emoji name
    (xn--ls8h) is IDNA 2003 but not 2008: httpx refuses it, and the check, looser, lets it through to fail as a
    recorded attempt."""
    import httpx

    try:
        httpx.URL(url).host  # noqa: B018  # where httpx refuses a host: parsing it, then decoding an xn-- one
        httpx_refuses = False
    except Exception:
        httpx_refuses = True
    if "xn--ls8h" in url:
        assert httpx_refuses and url_problem(url) is None
    else:
        assert (url_problem(url) is not None) == httpx_refuses, (url, url_problem(url))
