"""The web config file: each rejection with its exact message (file, line, field, value), paths taken from the right
folders, `check-config` checking it, what a reload applies at once, and the basic-auth cache."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import trustme

from monitor.config import load_config
from monitor.config.loader import restart_only
from monitor.errors import ConfigError
from monitor.store import Store
from monitor.webconfig import auth
from monitor.webconfig import tls as tls_module
from monitor.webconfig.auth import Checker
from monitor.webconfig.model import TlsServerConfig
from monitor.webconfig.tls import TlsFilesError
from tests.conftest import write_config
from tests.support.daemon import cli
from tests.support.inprocess import Cli
from tests.support.pki import Pki, bcrypt_hash

PROBES = "canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n"
TARGET = "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}"
TLS = "tls_server_config:\n  cert_file: pki/cert.pem\n  key_file: pki/key.pem\n"
HASH = "$2b$04$8Zw3TDfGoMoJIbEBLwNXGuBQfC8O8Fo3OeWShluGqBzCkugey4I.y"  # of "pw"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    Pki.make(tmp_path / "pki")
    Pki.make(tmp_path / "pki", name="-other")
    (tmp_path / "pki" / "garbage.pem").write_text("not PEM\n")
    rsa = trustme.CA(key_type=trustme.KeyType.RSA).issue_cert("127.0.0.1")  # Pki's keys are ECDSA
    rsa.private_key_pem.write_to_path(str(tmp_path / "pki" / "key-rsa.pem"))
    cfg = write_config(tmp_path, TARGET, PROBES)
    cfg.write_text(cfg.read_text().replace('"127.0.0.1:0"}', '"127.0.0.1:0", web_config_file: web.yml}'))
    return tmp_path


def problems(folder: Path, web: str) -> list[str]:
    (folder / "web.yml").write_text(web)
    with pytest.raises(ConfigError) as e:
        load_config(folder / "monitor.yaml", environ={})
    return [str(i).replace(str(folder) + "/", "") for i in e.value.issues]


REJECTED = [
    ("tls_server_config:\n  cert_file: pki/cert.pem\n",
     ["web.yml:2: tls_server_config.key_file: Field required"]),
    (TLS + "  bogus: 1\n", ["web.yml:4: tls_server_config.bogus: unknown key (value: 1)"]),
    ("http_server_config: {http2: false}\n", ["web.yml:1: http_server_config: unknown key"]),
    (TLS + "  client_auth_type: RequireAnyClientCert\n  client_ca_file: pki/ca.pem\n",
     ["web.yml:4: tls_server_config.client_auth_type: not supported: llm-monitor verifies every client certificate it "
      "accepts; use one of NoClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert "
      "(value: 'RequireAnyClientCert')"]),
    (TLS + "  client_auth_type: Sometimes\n",
     ["web.yml:4: tls_server_config.client_auth_type: must be one of NoClientCert, VerifyClientCertIfGiven, "
      "RequireAndVerifyClientCert (value: 'Sometimes')"]),
    (TLS + "  client_auth_type: RequireAndVerifyClientCert\n",
     ["web.yml:2: tls_server_config: client_auth_type RequireAndVerifyClientCert needs client_ca_file (the CA that "
      "signs the client certificates)"]),
    (TLS + "  client_ca_file: pki/ca.pem\n",
     ["web.yml:2: tls_server_config: client_ca_file is set but client_auth_type is NoClientCert: set "
      "client_auth_type (RequireAndVerifyClientCert or VerifyClientCertIfGiven) or remove client_ca_file"]),
    (TLS + "  min_version: TLS9\n",
     ["web.yml:4: tls_server_config.min_version: Input should be 'TLS10', 'TLS11', 'TLS12' or 'TLS13' "
      "(value: 'TLS9')"]),
    (TLS + "  min_version: TLS13\n  max_version: TLS12\n",
     ["web.yml:2: tls_server_config: max_version TLS12 is below min_version TLS13"]),
    ("tls_server_config:\n  cert_file: pki/nope.pem\n  key_file: pki/key.pem\n",
     ["web.yml:2: tls_server_config.cert_file: cannot read: No such file or directory (value: 'pki/nope.pem')"]),
    ("tls_server_config:\n  cert_file: pki/garbage.pem\n  key_file: pki/key.pem\n",
     ["web.yml:2: tls_server_config.cert_file: no PEM certificate in it (value: 'pki/garbage.pem')"]),
    ("tls_server_config:\n  cert_file: pki/cert.pem\n  key_file: pki/cert.pem\n",
     ["web.yml:3: tls_server_config.key_file: no PEM private key in it (value: 'pki/cert.pem')"]),
    ("tls_server_config:\n  cert_file: pki/cert.pem\n  key_file: pki/key-other.pem\n",
     ["web.yml:3: tls_server_config.key_file: does not match the certificate in cert_file (its first certificate, "
      "which must be the server's own, before the intermediates) (value: 'pki/key-other.pem')"]),
    # a key of another type (RSA beside an ECDSA certificate): OpenSSL says NO_CERTIFICATE_ASSIGNED
    ("tls_server_config:\n  cert_file: pki/cert.pem\n  key_file: pki/key-rsa.pem\n",
     ["web.yml:3: tls_server_config.key_file: does not match the certificate in cert_file (its first certificate, "
      "which must be the server's own, before the intermediates) (value: 'pki/key-rsa.pem')"]),
    (TLS + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: pki/garbage.pem\n",
     ["web.yml:5: tls_server_config.client_ca_file: no usable PEM CA certificate in it: NO_CERTIFICATE_OR_CRL_FOUND "
      "(value: 'pki/garbage.pem')"]),
    # a password written where its hash belongs is never echoed; the user's name is
    ("basic_auth_users:\n  alice: hunter2-in-plain\n  'a:b': " + HASH + "\n",
     ["web.yml:2: basic_auth_users.alice: not a bcrypt hash ($2a$, $2b$ or $2y$, cost 04 to 31, 60 characters); "
      "make one with `htpasswd -nBC 10 USER` (the part after the colon) (value: '<redacted>')",
      "web.yml:3: basic_auth_users.a:b.[key]: a user name must be non-empty and without ':' (basic auth cannot "
      "send it) (value: 'a:b')"]),
    # found by review23: a hash with a newline after it (`$` matched before it) was taken
    ("basic_auth_users:\n  alice: \"" + HASH + "\\n\"\n",
     ["web.yml:2: basic_auth_users.alice: not a bcrypt hash ($2a$, $2b$ or $2y$, cost 04 to 31, 60 characters); "
      "make one with `htpasswd -nBC 10 USER` (the part after the colon) (value: '<redacted>')"]),
    ("basic_auth_users: [alice]\n", ["web.yml:1: basic_auth_users: Input should be a valid dictionary, got a list"]),
    ("- tls_server_config\n", ["web.yml:1: (top level): expected a mapping at the top level (keys "
                               "tls_server_config:, basic_auth_users:), got a list"]),
    # a file that is not a web config (a password file, /etc/shadow) is parsed but never quoted
    ("s3cr3t-t0ken-in-a-file\n", ["web.yml:1: (top level): expected a mapping at the top level (keys "
                                  "tls_server_config:, basic_auth_users:), got a str"]),
    ("root:$6$secret-hash:19000:0:99999:7:::\n", ["web.yml:1: (top level): unknown key, not a name (not shown); "
                                                   "expected tls_server_config:, basic_auth_users:"]),
    ("tls_server_confg: {}\n", ["web.yml:1: tls_server_confg: unknown key; did you mean tls_server_config?"]),
]


@pytest.mark.parametrize(("web", "expected"), REJECTED, ids=[str(n) for n in range(len(REJECTED))])
def test_each_rejection_names_file_line_field_and_value(folder: Path, web: str, expected: list[str]) -> None:
    assert problems(folder, web) == expected


def test_field_and_file_problems_are_reported_in_one_pass(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A bad field no longer hides the TLS files that fail, nor one failing file another: every problem at once,
    as monitor.yaml's, by load_config and by `check-config`."""
    both = ("tls_server_config:\n  cert_file: pki/nope.pem\n  key_file: pki/garbage.pem\n  client_auth_type: Sometimes\n"
            "basic_auth_users:\n  alice: hunter2-in-plain\n")
    expected = [
        "web.yml:2: tls_server_config.cert_file: cannot read: No such file or directory (value: 'pki/nope.pem')",
        "web.yml:3: tls_server_config.key_file: no PEM private key in it (value: 'pki/garbage.pem')",
        "web.yml:4: tls_server_config.client_auth_type: must be one of NoClientCert, VerifyClientCertIfGiven, "
        "RequireAndVerifyClientCert (value: 'Sometimes')",
        "web.yml:6: basic_auth_users.alice: not a bcrypt hash ($2a$, $2b$ or $2y$, cost 04 to 31, 60 characters); "
        "make one with `htpasswd -nBC 10 USER` (the part after the colon) (value: '<redacted>')"]
    assert problems(folder, both) == expected
    code, _, err = Cli(capsys)("check-config", "-c", str(folder / "monitor.yaml"))
    assert code == 2 and "(4 problems)" in err
    assert [line.strip().replace(str(folder) + "/", "") for line in err.splitlines()[1:]] == expected
    # fields all valid: every file that fails, not the first
    assert problems(folder, "tls_server_config:\n  cert_file: pki/garbage.pem\n  key_file: pki/missing-key.pem\n"
                            "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: pki/no-ca.pem\n") == [
        "web.yml:2: tls_server_config.cert_file: no PEM certificate in it (value: 'pki/garbage.pem')",
        "web.yml:3: tls_server_config.key_file: cannot read: No such file or directory (value: 'pki/missing-key.pem')",
        "web.yml:5: tls_server_config.client_ca_file: cannot read: No such file or directory (value: 'pki/no-ca.pem')"]
    # a field that fails beside files that load: the field alone
    assert problems(folder, TLS + "  bogus: 1\n") == ["web.yml:4: tls_server_config.bogus: unknown key (value: 1)"]


def test_a_missing_web_config_file_is_reported_where_it_is_named(folder: Path) -> None:
    (folder / "web.yml").write_text("# plain HTTP, no users\n")
    assert load_config(folder / "monitor.yaml", environ={}).web.tls_server_config is None
    (folder / "web.yml").unlink()
    with pytest.raises(ConfigError) as e:
        load_config(folder / "monitor.yaml", environ={})
    assert [str(i) for i in e.value.issues] == [
        f"{folder}/monitor.yaml:5: http.web_config_file: no such web config file (value: '{folder}/web.yml')"]
    with pytest.raises(ConfigError) as e:
        load_config(folder / "monitor.yaml", environ={}, web_config_file=str(folder / "flag.yml"))
    assert [str(i) for i in e.value.issues] == [
        f"(command line): --web.config.file: no such web config file (value: '{folder}/flag.yml')"]
    with pytest.raises(ConfigError) as e:
        load_config(folder / "monitor.yaml", environ={}, web_config_file=str(folder / "pki"))
    assert [str(i) for i in e.value.issues] == [
        f"(command line): --web.config.file: a folder, not a web config file (value: '{folder}/pki')"]


def test_commands_that_serve_no_listener_do_not_read_the_web_config_file(
        folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An operator who may read the store but not the server's private key can still list drift or export."""
    (folder / "web.yml").write_text(TLS.replace("pki/key.pem", "pki/unreadable-key.pem"))
    store = Store(load_config(folder / "monitor.yaml", environ={}, listener=False).storage.url)
    store.migrate()
    store.close()
    run = Cli(capsys)
    code, _, err = run("check-config", "-c", str(folder / "monitor.yaml"))
    assert code == 2 and "tls_server_config.key_file: cannot read" in err
    for args in (["drift"], ["export"], ["alerts", "pending"]):
        code, _, err = run(*args, "-c", str(folder / "monitor.yaml"))
        assert code == 0 and "web" not in err, (args, err)
    assert load_config(folder / "monitor.yaml", environ={}, listener=False).web.tls_server_config is None


def test_web_config_problems_join_the_one_pass_report(folder: Path) -> None:
    (folder / "probes" / "p.yaml").write_text(PROBES + "    samples: 0\n")
    assert problems(folder, "bogus: 1\n") == [
        "web.yml:1: bogus: unknown key (value: 1)",
        "probes/p.yaml:4: canaries[0].samples: Input should be greater than or equal to 1 (value: 0)"]


def test_paths_are_taken_from_the_folders_of_the_files_that_name_them(folder: Path, tmp_path_factory:
                                                                      pytest.TempPathFactory) -> None:
    (folder / "conf").mkdir()
    (folder / "pki").rename(folder / "conf" / "pki")
    (folder / "conf" / "web.yml").write_text(TLS + "basic_auth_users: {alice: '" + HASH + "'}\n")
    cfg = folder / "monitor.yaml"
    cfg.write_text(cfg.read_text().replace("web_config_file: web.yml", "web_config_file: conf/web.yml"))
    elsewhere = tmp_path_factory.mktemp("cwd")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(elsewhere)
        config = load_config(cfg, environ={})
    assert config.web_file == str(folder / "conf" / "web.yml")
    assert config.web.tls_server_config is not None
    assert config.web.tls_server_config.cert_file == str(folder / "conf" / "pki" / "cert.pem")
    assert config.web.basic_auth_users == {"alice": HASH}


def test_check_config_checks_the_web_config_file_and_takes_the_flag(folder: Path) -> None:
    (folder / "web.yml").write_text(TLS + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: pki/ca.pem\n"
                                    "basic_auth_users: {alice: '" + HASH + "', bob: '" + HASH + "'}\n")
    ok = cli("check-config", "-c", str(folder / "monitor.yaml"))
    assert ok.returncode == 0, ok.stderr
    assert f"web config {folder}/web.yml: TLS (min TLS12, client certificates: RequireAndVerifyClientCert), basic " \
           "auth for 2 users" in ok.stdout
    (folder / "plain.yml").write_text("# users, no TLS\nbasic_auth_users: {alice: '" + HASH + "'}\n")
    warned = cli("check-config", "-c", str(folder / "monitor.yaml"), "--web.config.file", str(folder / "plain.yml"))
    assert warned.returncode == 0, warned.stderr
    assert f"warning: {folder}/plain.yml:2: basic_auth_users: set without tls_server_config: passwords cross the " \
           "network in the clear" in " ".join(warned.stdout.split())
    (folder / "plain.yml").write_text("basic_auth_users: {alice: hunter2-in-plain}\n")
    bad = cli("check-config", "-c", str(folder / "monitor.yaml"), "--web.config.file", str(folder / "plain.yml"))
    assert bad.returncode == 2
    assert "plain.yml:1: basic_auth_users.alice: not a bcrypt hash" in bad.stderr
    assert "hunter2" not in bad.stderr + bad.stdout


def test_a_reload_applies_certificate_and_key_at_once_and_the_rest_of_tls_at_restart(folder: Path) -> None:
    (folder / "web.yml").write_text(TLS)
    running = load_config(folder / "monitor.yaml", environ={})
    (folder / "web.yml").write_text("tls_server_config:\n  cert_file: pki/cert-other.pem\n  key_file: pki/key-other.pem"
                                    "\n  min_version: TLS13\nbasic_auth_users: {alice: '" + HASH + "'}\n")
    kept, changed = restart_only(running, load_config(folder / "monitor.yaml", environ={}))
    assert changed == ["tls_server_config.min_version"]
    assert kept.web.tls_server_config is not None and running.web.tls_server_config is not None
    assert kept.web.tls_server_config.cert_file.endswith("cert-other.pem")
    assert kept.web.tls_server_config.min_version == "TLS12"
    assert kept.web.basic_auth_users == {"alice": HASH}
    (folder / "web.yml").write_text("")
    kept, changed = restart_only(running, load_config(folder / "monitor.yaml", environ={}))
    assert changed == ["tls_server_config"] and kept.web.tls_server_config == running.web.tls_server_config


async def test_a_successful_check_is_cached_and_a_failed_one_is_not(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = auth._checkpw

    def counted(password: bytes, hashed: str) -> bool:
        calls.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(auth, "_checkpw", counted)
    alice, bob = bcrypt_hash("pw-a"), bcrypt_hash("pw-b")
    users = {"alice": alice, "bob": bob}
    checker = Checker(size=2)
    assert [await checker.check(users, "alice", b"pw-a") for _ in range(3)] == [True] * 3
    assert calls == [alice]  # bcrypt once, then the cache
    assert [await checker.check(users, "alice", b"wrong") for _ in range(2)] == [False] * 2
    assert calls == [alice] * 3  # failures pay bcrypt every time
    assert await checker.check(users, "nobody", b"pw-a") is False
    assert len(calls) == 4  # an unknown user costs a bcrypt too: the time does not tell who exists
    assert await checker.check({"alice": bcrypt_hash("pw-a")}, "alice", b"pw-a") is True
    assert len(calls) == 5  # a new hash for the same password: checked again
    assert await checker.check({"bob": bob}, "alice", b"pw-a") is False  # a removed user: the cache does not help
    assert await checker.check(users, "alice", b"x" * 100) is False  # past 72 bytes, wrong: refused, not raised
    await asyncio.gather(*(checker.check(users, "bob", b"pw-b") for _ in range(3)))
    assert len(checker._ok) == 2  # bounded


async def test_a_password_past_72_bytes_is_checked_as_go_and_htpasswd_hash_it() -> None:
    """bcrypt reads 72 bytes: Go's bcrypt (exporter-toolkit), htpasswd and Python's bcrypt before 5.0 hash and check
    a longer password by those; so does the listener, whatever bcrypt version is installed."""
    import base64
    import secrets

    password = base64.b64encode(secrets.token_bytes(66))  # `openssl rand -base64 66`: 88 bytes
    users = {"prometheus": bcrypt_hash(password[:72].decode())}  # the hash htpasswd makes of it
    assert await Checker().check(users, "prometheus", password) is True
    assert await Checker().check(users, "prometheus", password[:71]) is False


@pytest.mark.parametrize("gone", ["cert_file", "key_file", "client_ca_file"])
def test_a_file_removed_between_reading_and_loading_is_a_file_problem(tmp_path: Path, gone: str,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A renewal done as `rm`, then `cp`, seen between the read and OpenSSL's own open: FileNotFoundError escaped
    the renewal watch (in the handshake) and a reload's `except MonitorError`."""
    Pki.make(tmp_path)
    files = {"cert_file": "cert.pem", "key_file": "key.pem", "client_ca_file": "ca.pem"}
    tls = TlsServerConfig(**{k: str(tmp_path / v) for k, v in files.items()}, client_auth_type="RequireAndVerifyClientCert")
    read = tls_module._read

    def read_then_remove(field: str, path: str) -> bytes:
        data = read(field, path)
        if field == gone:
            Path(path).unlink()
        return data

    monkeypatch.setattr(tls_module, "_read", read_then_remove)
    with pytest.raises(TlsFilesError) as raised:
        tls_module.build_server_tls(tls)
    assert [(p.field, p.reason) for p in raised.value.problems] == [(gone, "cannot read: No such file or directory")]
