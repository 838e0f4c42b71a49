"""The listener with a web config file, as users run it: HTTPS, client certificates, basic auth, reloads.

A real `llm-monitor run` over loopback, a throwaway CA made per test; nothing of HTTP or TLS is mocked."""

from __future__ import annotations

import ssl
import time
from pathlib import Path

import httpx
import pytest

from monitor.webconfig.tls import CHECK_FILES_S
from tests.conftest import write_config
from tests.support.daemon import Daemon, free_port
from tests.support.pki import Pki, bcrypt_hash

PROBES = "canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n    schedule: {every: 5m}\n"
TARGET = "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}"
TOKEN = "reload-tok-WEBCFG-4711"
ALICE = "alice-PW-never-logged-1"
BOB = "bob-PW-never-logged-2"
PLAIN = "typed-in-plain-PW-3"  # a password written where its hash belongs


def daemon_config(folder: Path, port: int, web: str) -> Path:
    cfg = write_config(folder, TARGET, PROBES, extra="")
    cfg.write_text(cfg.read_text().replace('"127.0.0.1:0"}', f'"127.0.0.1:{port}", web_config_file: web.yml}}'))
    (folder / "web.yml").write_text(web)
    return cfg


def reload(d: Daemon, verify: ssl.SSLContext) -> httpx.Response:
    return httpx.post(d.url + "/-/reload", headers={"authorization": f"Bearer {TOKEN}"}, timeout=10, verify=verify)


def test_client_certificates_are_required_and_plain_http_gets_nothing(tmp_path: Path) -> None:
    pki = Pki.make(tmp_path / "pki")
    other = Pki.make(tmp_path / "other")  # a client certificate the configured CA did not sign
    port = free_port()
    cfg = daemon_config(tmp_path, port, "tls_server_config:\n  cert_file: pki/cert.pem\n  key_file: pki/key.pem\n"
                                        "  client_auth_type: RequireAndVerifyClientCert\n"
                                        "  client_ca_file: pki/ca.pem\n")
    d = Daemon(cfg, port, scheme="https", client={"verify": pki.client(cert=pki.folder / "client.pem")})
    try:
        d.wait_ready()
        r = d.get("/metrics")
        assert r.status_code == 200 and "llm_monitor_build_info" in r.text
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)  # plain HTTP to the TLS port
        with pytest.raises(httpx.TransportError):
            httpx.get(d.url + "/metrics", verify=pki.client(), timeout=5)  # no client certificate
        with pytest.raises(httpx.TransportError):
            httpx.get(d.url + "/metrics", verify=pki.client(cert=other.folder / "client.pem"), timeout=5)
        with pytest.raises(httpx.TransportError):
            httpx.get(d.url + "/metrics", verify=other.client(cert=pki.folder / "client.pem"), timeout=5)
        assert d.get("/readyz").status_code == 200  # the daemon is unharmed by the refused handshakes
    finally:
        d.stop()
    assert "Traceback" not in d.log


def test_basic_auth_over_https_reload_token_new_users_and_renewed_certificate(tmp_path: Path) -> None:
    pki = Pki.make(tmp_path / "pki")
    tls = "tls_server_config:\n  cert_file: pki/cert.pem\n  key_file: pki/key.pem\n"
    port = free_port()
    cfg = daemon_config(tmp_path, port, f"{tls}basic_auth_users:\n  alice: {bcrypt_hash(ALICE)}\n")
    web = tmp_path / "web.yml"
    d = Daemon(cfg, port, env={"LLM_MONITOR_RELOAD_TOKEN": TOKEN}, scheme="https", log_level="debug",
               client={"verify": pki.client(), "auth": ("alice", ALICE)})
    try:
        d.wait_ready()
        for path in ("/metrics", "/api/observations", "/healthz", "/readyz", "/-/healthy", "/-/ready"):  # every path, as exporter-toolkit
            r = httpx.get(d.url + path, verify=pki.client(), timeout=5)
            assert (r.status_code, r.headers["www-authenticate"], r.text) == \
                (401, 'Basic realm="llm-monitor"', "Unauthorized\n"), path
        r = httpx.get(d.url + "/metrics", verify=pki.client(), auth=("alice", "wrong"), timeout=5)
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")
        assert httpx.get(d.url + "/metrics", verify=pki.client(), auth=("mallory", ALICE), timeout=5).status_code == 401
        assert d.get("/metrics").status_code == 200 and d.get("/api/observations").json() == []
        assert d.get("/metrics").status_code == 200  # the cached check

        # /-/reload keeps its bearer token (one Authorization header cannot carry both)
        assert httpx.post(d.url + "/-/reload", verify=pki.client(), timeout=5).status_code == 401
        assert httpx.post(d.url + "/-/reload", verify=pki.client(), auth=("alice", ALICE), timeout=5).status_code \
            == 401
        web.write_text(f"{tls}basic_auth_users:\n  bob: {bcrypt_hash(BOB)}\n")
        r = reload(d, verify=pki.client())
        assert r.status_code == 200 and r.json()["reloaded"] is True, r.text
        assert d.get("/metrics").status_code == 401  # alice is gone, her cached check with her
        assert httpx.get(d.url + "/metrics", verify=pki.client(), auth=("bob", BOB), timeout=5).status_code == 200
        d.client["auth"] = ("bob", BOB)

        # a bad web config keeps the running one, names file, field and value, and never echoes the password
        web.write_text(f"{tls}basic_auth_users:\n  bob: {PLAIN}\n")
        r = reload(d, verify=pki.client())
        assert r.status_code == 400 and r.json()["reloaded"] is False
        assert f"{web}:5: basic_auth_users.bob: not a bcrypt hash" in r.json()["message"]
        assert "(value: '<redacted>')" in r.json()["message"]
        assert d.get("/metrics").status_code == 200
        assert "llm_monitor_config_last_reload_successful 0.0" in d.get("/metrics").text

        # a renewed certificate (here from another CA) serves new connections without a restart
        renewed = Pki.make(tmp_path / "pki", name="-new")
        for part in ("cert", "key"):
            (tmp_path / "pki" / f"{part}-new.pem").replace(tmp_path / "pki" / f"{part}.pem")
        web.write_text(f"{tls}  min_version: TLS13\nbasic_auth_users:\n  bob: {bcrypt_hash(BOB)}\n")
        either = pki.client()  # between reloads the listener looks at its files too (at most every check_every):
        renewed.ca.configure_trust(either)  # on a slow machine it may serve the new certificate before the reload
        r = reload(d, verify=either)
        assert r.status_code == 200, r.text
        assert r.json()["message"].endswith("; changed tls_server_config.min_version: takes effect at the next restart")
        with pytest.raises(httpx.TransportError):
            d.get("/metrics")  # trusts the old CA only
        d.client["verify"] = renewed.client()
        assert d.get("/metrics").status_code == 200
    finally:
        d.stop()
    for secret in (ALICE, BOB, PLAIN, TOKEN):
        assert secret not in d.log
    assert "config reloaded" in d.log and "reload failed, keeping the running config" in d.log


def test_the_flag_replaces_the_config_key(tmp_path: Path) -> None:
    port = free_port()
    cfg = daemon_config(tmp_path, port, "basic_auth_users:\n  alice: " + bcrypt_hash(ALICE) + "\n")
    (tmp_path / "open.yml").write_text("# no TLS, no users\n")
    d = Daemon(cfg, port, args=("--web.config.file", str(tmp_path / "open.yml")))
    try:
        d.wait_ready()
        assert d.get("/metrics").status_code == 200
    finally:
        d.stop()
    assert "basic auth without TLS" not in d.log


def test_a_certificate_renewed_in_its_files_is_served_without_a_reload(tmp_path: Path) -> None:
    """cert-manager renews a Secret's files in place; the listener serves them before the old certificate expires,
    as exporter-toolkit does, and files that do not load yet (a key written after its certificate) keep the running
    certificate."""
    port = free_port()
    pki = Pki.make(tmp_path / "pki")
    web = f"tls_server_config:\n  cert_file: {tmp_path}/pki/cert.pem\n  key_file: {tmp_path}/pki/key.pem\n"
    d = Daemon(daemon_config(tmp_path, port, web), port, scheme="https", client={"verify": pki.client()})
    try:
        d.wait_ready()
        renewed = Pki.make(tmp_path / "pki", name="-new")
        (tmp_path / "pki" / "cert-new.pem").replace(tmp_path / "pki" / "cert.pem")  # the key is not there yet
        time.sleep(CHECK_FILES_S + 0.5)
        assert d.get("/metrics").status_code == 200  # the running certificate, still trusted by the old CA
        (tmp_path / "pki" / "key-new.pem").replace(tmp_path / "pki" / "key.pem")
        d.client["verify"] = renewed.client()
        deadline = time.monotonic() + 3 * CHECK_FILES_S
        while True:
            try:
                assert d.get("/metrics").status_code == 200
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the renewed certificate was never served"
                time.sleep(0.5)
    finally:
        d.stop()
    assert "TLS files changed but cannot be served" in d.log and "TLS certificate renewed from its files" in d.log


def test_prometheus_scrapes_it_with_the_documented_https_settings(tmp_path: Path) -> None:
    """The commented scrape settings of deploy/prometheus/prometheus.yml, uncommented, let a real Prometheus scrape
    a daemon that asks for a client certificate and basic auth."""
    import yaml

    from tests.support.prom import start_prometheus

    example = (Path(__file__).resolve().parents[1] / "deploy" / "prometheus" / "prometheus.yml").read_text().splitlines()
    start = next(i for i, line in enumerate(example) if line.strip() == "# scheme: https")
    block = [line.replace("# ", "", 1) for line in example[start:] if line.strip().startswith("#")]
    scrape = yaml.safe_load("\n".join(line[4:] for line in block))
    pki = Pki.make(tmp_path / "pki")
    (tmp_path / "password").write_text(ALICE + "\n")
    scrape["basic_auth"].update(password_file=str(tmp_path / "password"))
    scrape["tls_config"].update(ca_file=str(tmp_path / "pki" / "ca.pem"), server_name="localhost",
                                cert_file=str(tmp_path / "pki" / "client.pem"),
                                key_file=str(tmp_path / "pki" / "client.pem"))
    user = scrape["basic_auth"]["username"]
    port = free_port()
    web = (f"tls_server_config:\n  cert_file: {tmp_path}/pki/cert.pem\n  key_file: {tmp_path}/pki/key.pem\n"
           f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {tmp_path}/pki/ca.pem\n"
           f"basic_auth_users:\n  {user}: {bcrypt_hash(ALICE)}\n")
    d = Daemon(daemon_config(tmp_path, port, web), port, scheme="https",
               client={"verify": pki.client(cert=tmp_path / "pki" / "client.pem"), "auth": (user, ALICE)})
    try:
        d.wait_ready()
        with start_prometheus(tmp_path, [f"127.0.0.1:{port}"], scrape=scrape) as prom:
            assert prom.wait_for('up{job="llm-monitor"} == 1', timeout_s=30)
            assert prom.wait_for("llm_monitor_build_info", timeout_s=10)
    finally:
        d.stop()
