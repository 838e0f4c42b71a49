"""When the listener's certificate expires: the earliest `notAfter` of the certificates in `cert_file`.

The server sends every certificate in the file (its own, then the intermediates), and a client refuses the chain
once any of them has expired, so the earliest is the one that counts (blackbox_exporter's
`probe_ssl_earliest_cert_expiry` reads a chain the same way).

Read with the standard library: `cryptography` is no dependency of llm-monitor (the tests have it, through
trustme, and check this reader against it), and importing its x509 module adds about 7 MB to the daemon's RSS
(14 MB in a bare interpreter, where libcrypto is not loaded yet; measured 2026-11-30, cryptography 50), a twentieth
of the daemon's memory target, to read one date; the standard library's one decoder of a certificate file,
`ssl._ssl._test_decode_cert`, is private.
`notAfter` sits at a fixed place of the DER that `ssl.PEM_cert_to_DER_cert` gives: Certificate -> tbsCertificate
-> validity -> notAfter (RFC 5280, 4.1), a few lines to walk.
"""

from __future__ import annotations

import logging
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

log = logging.getLogger("monitor.http")
WARN_WITHIN_S = 14 * 86_400  # a certificate expiring sooner is warned of at start and on every reload
_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
_SEQUENCE, _VERSION, _UTC_TIME, _GENERALIZED_TIME = 0x30, 0xA0, 0x17, 0x18


@dataclass(frozen=True)
class Expiry:
    """The earliest `notAfter` among a file's certificates, and which one has it (0: the first, the server's)."""

    at: datetime
    position: int

    def warning(self, cert_file: str, now: datetime, within_s: float = WARN_WITHIN_S) -> str | None:
        """The warning to log when the certificate has expired at `now` or expires within `within_s`, else None."""
        left = (self.at - now).total_seconds()
        if left > within_s:
            return None
        which = "certificate" if self.position == 0 else f"certificate chain (its certificate {self.position + 1})"
        when = self.at.strftime("%Y-%m-%dT%H:%M:%SZ")
        if left <= 0:
            return f"the TLS {which} in {cert_file} expired on {when}: clients refuse it; renew it"
        return f"the TLS {which} in {cert_file} expires on {when}, in {_days(left)}: renew it"


def _days(seconds: float) -> str:
    """How long `seconds` is, in whole days, else hours, else minutes ("1 day", "5 hours", "less than a minute")."""
    for unit, size in (("day", 86_400), ("hour", 3600), ("minute", 60)):
        if (n := int(seconds // size)) >= 1:
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return "less than a minute"


def report(expiry: Expiry | None, cert_file: str, export: Callable[[float | None], None], now: datetime) -> None:
    """Export when the certificate now served expires, and warn when it has expired or expires soon."""
    export(expiry.at.timestamp() if expiry is not None else None)
    if expiry is None:
        log.warning("cannot tell when the TLS certificate in %s expires (no notAfter could be read): "
                    "llm_monitor_web_tls_certificate_expiry_timestamp_seconds is left out", cert_file)
        return
    warning = expiry.warning(cert_file, now)
    if warning is not None:
        log.warning("%s", warning, extra={"cert_file": cert_file, "not_after": expiry.at.isoformat()})


def earliest_expiry(pem: bytes) -> Expiry | None:
    """The earliest expiry among the PEM certificates in `pem`; None when no certificate's can be read."""
    found: list[Expiry] = []
    for position, block in enumerate(_PEM.findall(pem)):
        try:
            found.append(Expiry(not_after(ssl.PEM_cert_to_DER_cert(block.decode("ascii"))), position))
        except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors too
            continue
    return min(found, key=lambda e: e.at, default=None)


def not_after(der: bytes) -> datetime:
    """The `notAfter` of a DER certificate; raise ValueError when it is not one."""
    start, _ = _element(der, 0, _SEQUENCE)  # Certificate
    i, _ = _element(der, start, _SEQUENCE)  # tbsCertificate
    if der[i:i + 1] == bytes([_VERSION]):
        i = _element(der, i)[1]
    for _ in range(3):  # serialNumber, signature, issuer
        i = _element(der, i)[1]
    i, _ = _element(der, i, _SEQUENCE)  # validity
    i = _element(der, i)[1]  # notBefore
    body, end = _element(der, i)
    tag = der[i]
    text = der[body:end].decode("ascii")
    if tag == _UTC_TIME and len(text) == 13:  # YYMMDDHHMMSSZ; years 50..99 are 19xx (RFC 5280, 4.1.2.5.1)
        text = ("19" if int(text[:2]) >= 50 else "20") + text
    elif tag != _GENERALIZED_TIME or len(text) != 15:
        raise ValueError("notAfter is neither a UTCTime nor a GeneralizedTime")
    return datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=UTC)


def _element(der: bytes, i: int, tag: int | None = None) -> tuple[int, int]:
    """Where the content of the DER element at `i` starts and ends; raise ValueError when there is none (of `tag`)."""
    if i + 2 > len(der) or (tag is not None and der[i] != tag):
        raise ValueError(f"not a DER certificate (at byte {i})")
    length, i = der[i + 1], i + 2
    if length & 0x80:
        size = length & 0x7F
        if not 1 <= size <= 4 or i + size > len(der):
            raise ValueError(f"not a DER certificate (a length at byte {i})")
        length, i = int.from_bytes(der[i:i + size], "big"), i + size
    if i + length > len(der):
        raise ValueError(f"not a DER certificate (cut short at byte {i})")
    return i, i + length
