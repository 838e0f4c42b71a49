"""A target's `base_url` httpx cannot send to is refused where it is written, as an alert sink's URL is."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.sim import SimServer
from tests.conftest import write_config
from tests.support.daemon import cli

PROBES = "canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n"


@pytest.mark.parametrize(("base_url", "problem"), [
    ("http://127.0.0.1:9/v1\n", "must be an http:// or https:// URL on one line: it holds a control character "
                                "(character 22 of 22)"),
    ("http://[::1/v1", "must be an http:// or https:// URL: its host cannot be read")])
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
