"""A target's `base_url` httpx cannot send to is refused where it is written, as an alert sink's URL is."""

from __future__ import annotations

import http.server
import socketserver
import threading
from collections.abc import Iterator
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
    # C1 (U+0080 to U+009F, NEL a line break among them): no URL code point (WHATWG's start at U+00A0); httpx sent
    # it percent-encoded, to a path no server has
    ("http://127.0.0.1:9/v1\x85", "must be an http:// or https:// URL on one line: it holds a control character "
                                  "(character 22 of 22)"),
    ("http://127.0.0.1:9/v\x9b1", "must be an http:// or https:// URL on one line: it holds a control character "
                                  "(character 21 of 22)"),
    ("http://[::1/v1", "must be an http:// or https:// URL: its host cannot be read"),
    ("http://256.1.1.1/v1", "its host is no IPv4 address: four numbers from 0 to 255, without leading zeros"),
    ("https://xn--a.example/v1", "its host starts with an xn-- label, and is then no valid IDNA (punycode) name"),
    ("https://xn--ls8h.example/v1", "its host starts with an xn-- label, and is then no valid IDNA (punycode) name"),
    ("https://💩.example/v1", "its host is no name IDNA can encode (IDNA 2008)")])
def test_a_base_url_httpx_cannot_send_to_is_refused(tmp_path: Path, base_url: str, problem: str) -> None:
    """Found by walkthrough: `base_url: ${BASE}` from a variable ending in a line break (a Kubernetes Secret's value
    written with one) passed `check-config`, and `probe` then died with httpx's InvalidURL traceback; an IPv6 host
    without its `]` was called a bad port."""
    cfg = write_config(tmp_path, "  - {id: t, provider: openai, base_url: '${BASE}', model: m}", PROBES)
    for command in ("check-config", "probe"):
        bad = cli(command, "-c", str(cfg), env={"BASE": base_url})
        assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stdout + bad.stderr
        assert f"{cfg}:2: targets[0].base_url: {problem} (value: '${{BASE}}')" in bad.stderr, bad.stderr


@pytest.mark.parametrize(("url", "at"), [("https://api.example/v1\u202e", 23), ("https://api.example/\u200bv1", 21),
                                        ("\ufeffhttps://api.example/v1", None), ("https://api\u2066.example/v1", 12)])
def test_a_url_holding_an_invisible_or_text_direction_character_is_refused(url: str, at: int | None) -> None:
    """Found by review: a bidi override (U+202E) or a zero-width space passed the URL check, which refused control
    characters only, and httpx sent it percent-encoded: the URL the operator read was not the one called."""
    problem = url_problem(url)
    if at is None:  # a BOM before the scheme: no http:// URL at all
        assert problem == "must be an http:// or https:// URL"
        return
    assert problem == ("must be an http:// or https:// URL on one line, every character visible: it holds an "
                       f"invisible or text-direction character (character {at} of {len(url)})")


def test_a_url_with_a_zero_width_joiner_in_its_path_is_taken() -> None:
    """A zero-width joiner is part of an emoji sequence or a Persian word, not a hidden character."""
    assert url_problem("https://api.example/\U0001f469\u200d\U0001f4bb/v1") is None


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


@pytest.fixture(scope="module")
def proxy() -> Iterator[str]:
    """An HTTP proxy that answers every request 200 (and a CONNECT, then closes): httpx sends to any host through it,
    no name looked up."""

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_CONNECT = do_GET

        def log_message(self, *args: object) -> None:
            pass

    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), Answer) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield f"http://127.0.0.1:{server.server_address[1]}"
        server.shutdown()


@pytest.mark.parametrize("url", [
    "http://256.1.1.1/", "http://01.2.3.4/", "http://1.2.3.4444/", "http://xn--a.example/", "http://XN--A.example/",
    "http://xn--.example/", "http://xn--abc-.example/", "http://xn--zz.example/", "http://xn--ls8h.example/",
    "http://XN--LS8H.example/", "http://api.xn--ls8h.example/", "http://api.xn--a.example/",
    "http://xn--bcher-kva.a_b.example/", "http://a_b.xn--bcher-kva.example/", "http://xn--bcher-kva..example/",
    "http://xn--bcher-kva.example./", "http://xn--bcher-kva.example%41/", "http://💩.example/", "http://ü_.example/",
    "http://1.2.3.4/", "http://[::1]:8080/", "http://[2001:db8::1]/", "http://bücher.example/", "http://localhost/",
    "http://host.docker.internal:9093/", "http://xn--bcher-kva.example/", "http://xn--strae-oqa.example/",
    "http://1.2.3/", "http://a_b.example/", "https://hooks.slack.com/services/T0/B0/x"])
def test_a_url_is_refused_only_where_httpx_refuses_its_host(url: str, proxy: str) -> None:
    """What httpx refuses as it sends (an IPv4 address out of range, a host starting with an `xn--` label that is no
    IDNA, such as the emoji name xn--ls8h, IDNA 2003 but not 2008) is refused by the config check; what it sends to
    (IPv6, an IDN name, `localhost`, IDNA 2008's `straße`, an `xn--` label not first: httpx decodes only a host that
    starts with one) is not. Found by walkthrough: `xn--ls8h.example` passed `check-config`, then every call failed
    with idna's InvalidCodepoint."""
    import httpx

    with httpx.Client(proxy=proxy, trust_env=False) as client:
        try:
            client.get(url)
            httpx_refuses = False
        except httpx.TransportError:  # the proxy's answer to a CONNECT (https): sent, no TLS behind it
            httpx_refuses = False
        except Exception:  # InvalidURL, idna's IDNAError: refused before a byte went out
            httpx_refuses = True
    assert (url_problem(url) is not None) == httpx_refuses, (url, url_problem(url))
