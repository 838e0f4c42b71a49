"""When the listener's certificate expires: read from its file with the standard library, checked against
`cryptography` (a test dependency, through trustme), and warned of by `check-config`."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trustme
from cryptography import x509

from monitor.webconfig.expiry import Expiry, earliest_expiry, not_after
from tests.conftest import write_config
from tests.support.inprocess import Cli
from tests.support.pki import Pki

NOW = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)


def issued(not_after: datetime | None) -> bytes:
    return trustme.CA().issue_cert("127.0.0.1", not_after=not_after).cert_chain_pems[0].bytes()


@pytest.mark.parametrize("when", [datetime(2027, 2, 3, 4, 5, 6, tzinfo=UTC),  # UTCTime
                                  datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC),  # UTCTime's last year
                                  datetime(2050, 1, 1, tzinfo=UTC),  # GeneralizedTime from 2050 on
                                  datetime(3000, 1, 1, tzinfo=UTC)])
def test_not_after_is_read_as_cryptography_reads_it(when: datetime) -> None:
    for pem in (issued(when), trustme.CA().cert_pem.bytes()):  # a leaf and a CA (both version 3, with extensions)
        der = ssl.PEM_cert_to_DER_cert(pem.decode())
        assert not_after(der) == x509.load_der_x509_certificate(der).not_valid_after_utc
    assert not_after(ssl.PEM_cert_to_DER_cert(issued(when).decode())) == when


# A version-1 certificate (no version field, no extensions: `openssl x509 -req -signkey`), made once 2026-11-30
V1 = b"""\
-----BEGIN CERTIFICATE-----
MIIBJDCBywIUSBihVOOFtDiM7tgktSIjYf1fnlYwCgYIKoZIzj0EAwIwFTETMBEG
A1UEAwwKdjEuZXhhbXBsZTAeFw0yNjExMzAwNTAyNTFaFw0zNjExMjcwNTAyNTFa
MBUxEzARBgNVBAMMCnYxLmV4YW1wbGUwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNC
AATFyppIM0wLY3ilE67E6+qI2J7SdG5K8Jwj1QIMGaiMiDmNJ0my4SbJD8CkKrLL
4pxTmuxwmfLq7uGyY1q+cQPMMAoGCCqGSM49BAMCA0gAMEUCIB5heI0MTPygJIeI
ffgy5yKoOXEOWnRpFUuGwq664py7AiEA33suuEeY8TaPDxE2kWcdbQTfInY/YG5k
4Z9oUrCKs+8=
-----END CERTIFICATE-----
"""


def test_a_version_1_certificate_without_a_version_field_is_read_too() -> None:
    der = ssl.PEM_cert_to_DER_cert(V1.decode())
    assert x509.load_der_x509_certificate(der).version is x509.Version.v1
    assert not_after(der) == datetime(2036, 11, 27, 5, 2, 51, tzinfo=UTC)


def test_the_earliest_certificate_of_a_chain_counts_and_what_is_no_certificate_is_skipped() -> None:
    late, soon = issued(datetime(2031, 1, 1, tzinfo=UTC)), issued(datetime(2027, 1, 1, tzinfo=UTC))
    assert earliest_expiry(late + soon) == Expiry(datetime(2027, 1, 1, tzinfo=UTC), 1)
    assert earliest_expiry(soon + late) == Expiry(datetime(2027, 1, 1, tzinfo=UTC), 0)
    cut = b"-----BEGIN CERTIFICATE-----\nMIIBkTCB+wIJAK\n-----END CERTIFICATE-----\n"  # no certificate inside
    assert earliest_expiry(cut + late) == Expiry(datetime(2031, 1, 1, tzinfo=UTC), 1)
    assert earliest_expiry(b"not PEM") is None and earliest_expiry(cut) is None
    with pytest.raises(ValueError, match="not a DER certificate"):
        not_after(b"\x30\x82\xff\xff")


def test_a_certificate_is_warned_of_within_14_days_and_once_expired_naming_file_and_date() -> None:
    at = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    assert Expiry(at, 0).warning("/etc/web/server.crt", NOW) == \
        "the TLS certificate in /etc/web/server.crt expires on 2026-12-03T10:00:00Z, in 3 days: renew it"
    assert Expiry(at, 1).warning("/etc/web/server.crt", at - timedelta(hours=5)) == \
        "the TLS certificate chain (its certificate 2) in /etc/web/server.crt expires on 2026-12-03T10:00:00Z, " \
        "in 5 hours: renew it"
    assert Expiry(at, 0).warning("/etc/web/server.crt", at) == \
        "the TLS certificate in /etc/web/server.crt expired on 2026-12-03T10:00:00Z: clients refuse it; renew it"
    for left, said in ((timedelta(days=1, hours=3), "1 day"), (timedelta(hours=1, minutes=59), "1 hour"),
                       (timedelta(minutes=30), "30 minutes"), (timedelta(seconds=30), "less than a minute")):
        assert Expiry(NOW + left, 0).warning("c", NOW) == \
            f"the TLS certificate in c expires on {(NOW + left).strftime('%Y-%m-%dT%H:%M:%SZ')}, in {said}: renew it"
    assert Expiry(NOW + timedelta(days=14, seconds=1), 0).warning("c", NOW) is None
    assert Expiry(NOW + timedelta(days=14), 0).warning("c", NOW) is not None


def test_check_config_warns_of_a_certificate_near_its_expiry(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(days=5, hours=1)
    Pki.make(tmp_path / "pki", not_after=soon)
    Pki.make(tmp_path / "pki", name="-far")
    cfg = write_config(tmp_path, "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}",
                       "canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n")
    cfg.write_text(cfg.read_text().replace('"127.0.0.1:0"}', '"127.0.0.1:0", web_config_file: web.yml}'))
    web = tmp_path / "web.yml"
    web.write_text("tls_server_config:\n  key_file: pki/key.pem\n  cert_file: pki/cert.pem\n")
    code, out, _ = Cli(capsys)("check-config", "-c", str(cfg))
    assert code == 0 and "configuration OK" in out
    assert f"warning: {web}:3: tls_server_config.cert_file: the TLS certificate in {tmp_path}/pki/cert.pem expires on " \
           f"{soon.strftime('%Y-%m-%dT%H:%M:%SZ')}, in 5 days: renew it" in " ".join(out.split())
    web.write_text("tls_server_config:\n  cert_file: pki/cert-far.pem\n  key_file: pki/key-far.pem\n")
    code, out, _ = Cli(capsys)("check-config", "-c", str(cfg))
    assert code == 0 and "expires" not in out
