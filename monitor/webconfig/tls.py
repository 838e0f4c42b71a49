"""The listener's server-side TLS: a context built from `tls_server_config`, whose certificate a reload replaces.

uvicorn hands one SSLContext to the event loop's server at start. Each handshake calls that context's SNI
callback (with or without a server name), and the callback may switch the connection to another context: that
is how a reload serves a renewed certificate and key to new connections without closing the listener. The
settings each connection copies from the first context before the callback runs (client_auth_type, the TLS
versions) and TLS itself being on or off wait for a restart (see monitor.config.loader.restart_only).
"""

from __future__ import annotations

import logging
import os
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from monitor.errors import MonitorError
from monitor.webconfig.expiry import Expiry, earliest_expiry
from monitor.webconfig.model import TlsServerConfig

log = logging.getLogger("monitor.http")
CHECK_FILES_S = 5.0  # at most this often a handshake looks whether the certificate or key files changed

FILE_FIELDS = ("cert_file", "key_file", "client_ca_file")  # the fields of tls_server_config that name files
_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1, "TLS12": ssl.TLSVersion.TLSv1_2,
             "TLS13": ssl.TLSVersion.TLSv1_3}
_VERIFY = {"NoClientCert": ssl.CERT_NONE, "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
           "RequireAndVerifyClientCert": ssl.CERT_REQUIRED}


class TlsFileError(MonitorError):
    """A file `tls_server_config` names cannot be used; names the field, the reason and the path."""

    def __init__(self, field: str, reason: str, path: str):
        self.field, self.reason, self.path = field, reason, path
        super().__init__(f"tls_server_config.{field}: {reason} (value: {path!r})")


class TlsFilesError(MonitorError):
    """The files `tls_server_config` names cannot be served; carries every problem found, one TlsFileError each."""

    def __init__(self, problems: list[TlsFileError]):
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


def _no_passphrase() -> bytes:
    # Without a callback OpenSSL would prompt for a passphrase on the terminal and block the daemon.
    raise TlsFileError("key_file", "an encrypted private key: give it unencrypted (readable by the daemon only)", "")


def _read(field: str, path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise TlsFileError(field, f"cannot read: {e.strerror or e}", path) from None
    except ValueError:  # open() refuses a NUL in a path
        raise TlsFileError(field, "cannot read: the path holds a NUL character", path) from None


def _load_files(ctx: ssl.SSLContext, files: Mapping[str, str]) -> tuple[list[TlsFileError], bytes]:
    """Load the files named in `files` (field -> path) into `ctx`; return every problem found, and the certificate
    file as read. Each file is checked on its own, and the certificate and key together once each of them is fine,
    so one pass names them all."""
    problems: list[TlsFileError] = []
    read: dict[str, bytes] = {}
    for field, path in files.items():
        try:
            read[field] = _read(field, path)
        except TlsFileError as e:
            problems.append(e)
    cert, key = read.get("cert_file"), read.get("key_file")
    if cert is not None and b"-----BEGIN CERTIFICATE-----" not in cert:
        problems.append(TlsFileError("cert_file", "no PEM certificate in it", files["cert_file"]))
        cert = None
    if key is not None and b"PRIVATE KEY-----" not in key:
        problems.append(TlsFileError("key_file", "no PEM private key in it", files["key_file"]))
        key = None
    elif key is not None and b"ENCRYPTED" in key:
        problems.append(TlsFileError("key_file", "an encrypted private key: give it unencrypted (readable by the "
                                                 "daemon only)", files["key_file"]))
        key = None
    if cert is not None and key is not None:
        problems += _load_pair(ctx, files["cert_file"], files["key_file"])
    if "client_ca_file" in read:
        problems += _load_client_ca(ctx, files["client_ca_file"])
    problems.sort(key=lambda p: FILE_FIELDS.index(p.field))
    return problems, read.get("cert_file", b"")


def _load_pair(ctx: ssl.SSLContext, cert_file: str, key_file: str) -> list[TlsFileError]:
    try:
        ctx.load_cert_chain(cert_file, key_file, password=_no_passphrase)
    except TlsFileError as e:  # the passphrase callback: an encrypted key the PEM check did not tell
        return [TlsFileError(e.field, e.reason, key_file)]
    except ssl.SSLError as e:
        # KEY_VALUES_MISMATCH: another key of the certificate's type; NO_CERTIFICATE_ASSIGNED: a key of another type
        # (an EC key beside an RSA certificate), which OpenSSL files in a slot no certificate is in
        if e.reason in ("KEY_VALUES_MISMATCH", "NO_CERTIFICATE_ASSIGNED"):
            return [TlsFileError("key_file", "does not match the certificate in cert_file (its first certificate, "
                                             "which must be the server's own, before the intermediates)", key_file)]
        return [TlsFileError("cert_file", f"cannot be loaded with key_file: {e.reason or e}", cert_file)]
    except OSError as e:  # removed since it was read (a renewal done as rm, then cp): OpenSSL opens it again
        field, path = ("cert_file", cert_file) if not os.path.exists(cert_file) else ("key_file", key_file)
        return [TlsFileError(field, f"cannot read: {e.strerror or e}", path)]
    return []


def _load_client_ca(ctx: ssl.SSLContext, ca_file: str) -> list[TlsFileError]:
    try:
        ctx.load_verify_locations(cafile=ca_file)
    except ssl.SSLError as e:
        return [TlsFileError("client_ca_file", f"no usable PEM CA certificate in it: {e.reason or e}", ca_file)]
    except OSError as e:  # removed since it was read
        return [TlsFileError("client_ca_file", f"cannot read: {e.strerror or e}", ca_file)]
    if not ctx.get_ca_certs():
        return [TlsFileError("client_ca_file", "no PEM CA certificate in it", ca_file)]
    return []


def check_files(files: Mapping[str, str]) -> list[TlsFileError]:
    """Every problem of the TLS files named in `files` (field -> path), for a web config whose other fields failed:
    its file problems are reported in the same pass, not once the fields are fixed."""
    return _load_files(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), files)[0]


def _build_context(tls: TlsServerConfig) -> tuple[ssl.SSLContext, bytes]:
    """Build the server context `tls` describes, reading its files now; return it and the certificate file as read,
    or raise TlsFilesError naming every file that fails."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = _VERSIONS[tls.min_version]
    if tls.max_version is not None:
        ctx.maximum_version = _VERSIONS[tls.max_version]
    problems, cert = _load_files(ctx, tls.files())
    if problems:
        raise TlsFilesError(problems)
    ctx.verify_mode = _VERIFY[tls.client_auth_type]
    return ctx, cert


Stamp = tuple[tuple[int, int, int] | None, ...]


@dataclass(frozen=True, eq=False)
class ServerTls:
    """A server context built from a `tls_server_config` and its files, as loading the config checked them.

    The config loader builds it (the check that the files load is the build), and the listener serves that
    same context: at start, and after a reload whose TLS settings are those running. `stamp` is the state of
    the certificate and key files taken before they were read, so a change made while, or since, they were read
    counts as one and is served once it loads. `expiry`: when the certificates in cert_file expire (None: no date
    could be read)."""

    tls: TlsServerConfig
    context: ssl.SSLContext
    stamp: Stamp
    expiry: Expiry | None


def build_server_tls(tls: TlsServerConfig) -> ServerTls:
    """Read `tls`'s files and build its server context; raise TlsFilesError naming every file that fails."""
    stamp = _stamp(tls)
    context, cert = _build_context(tls)
    return ServerTls(tls, context, stamp, earliest_expiry(cert))


class ListenerTls:
    """The TLS of a running listener: the context it started with, and the one new connections get.

    `context` goes to uvicorn once; `use` makes later handshakes switch to another context (a reload's renewed
    certificate). Between reloads, a handshake at most every `check_every` seconds looks at the certificate and
    key files (modification time, size, inode: a Kubernetes Secret's atomic symlink swap changes them) and, when
    they changed, serves them from then on, as exporter-toolkit reads them at every handshake: a certificate
    cert-manager renews is served before the old one expires, without a reload. Files that do not load (a key
    written after its certificate) keep the current context, with a warning, until they change again. All of it
    runs on the event loop, so a handshake never sees a context half replaced. `on_serve` is called with what new
    connections get, each time that changes (the first included): the certificate's expiry follows it."""

    def __init__(self, served: ServerTls, *, check_every: float = CHECK_FILES_S,
                 monotonic: Callable[[], float] = time.monotonic,
                 on_serve: Callable[[ServerTls], None] = lambda _: None):
        self.context = served.context
        self._current = self.context
        self._tls = served.tls
        self._stamp = served.stamp
        self._check_every = check_every
        self._monotonic = monotonic
        self._checked = monotonic()
        self._on_serve = on_serve
        self.context.sni_callback = self._pick
        on_serve(served)

    def _pick(self, conn: ssl.SSLObject | ssl.SSLSocket, _name: str | None, ctx: ssl.SSLContext) -> None:
        self._renew_if_changed()
        if self._current is not ctx:
            conn.context = self._current

    def _renew_if_changed(self) -> None:
        now = self._monotonic()
        if now - self._checked < self._check_every:
            return
        self._checked = now
        stamp = _stamp(self._tls)
        if stamp == self._stamp:
            return
        self._stamp = stamp  # tried once per change of the files
        try:
            served = build_server_tls(self._tls)
        except TlsFilesError as e:
            log.warning("TLS files changed but cannot be served; new connections keep the running certificate "
                        "until they change again: %s", e)
            return
        self._current = served.context
        log.info("TLS certificate renewed from its files", extra={"cert_file": self._tls.cert_file})
        self._on_serve(served)

    def use(self, served: ServerTls) -> None:
        """Serve new connections with `served` (its settings equal to those running but for the files), and watch
        its files from now on."""
        self._current, self._tls, self._stamp = served.context, served.tls, served.stamp
        self._on_serve(served)


def _stamp(tls: TlsServerConfig) -> Stamp:
    out: list[tuple[int, int, int] | None] = []
    for path in (tls.cert_file, tls.key_file):
        try:
            st = os.stat(path)
            out.append((st.st_mtime_ns, st.st_size, st.st_ino))
        except (OSError, ValueError):  # ValueError: a NUL in the path (_read reports it)
            out.append(None)
    return tuple(out)


_LIVE = ("cert_file", "key_file")


def tls_restart_only(running: TlsServerConfig | None,
                     loaded: TlsServerConfig | None) -> tuple[TlsServerConfig | None, list[str]]:
    """Split a reloaded `tls_server_config`: return the one to serve now (the running settings with the loaded
    certificate and key) and the names of the settings that wait for a restart (TLS on or off, the others)."""
    if running is None or loaded is None:
        return running, ([] if running == loaded else ["tls_server_config"])
    now = running.model_copy(update={f: getattr(loaded, f) for f in _LIVE})
    changed = [f"tls_server_config.{f}" for f in TlsServerConfig.model_fields if getattr(now, f) != getattr(loaded, f)]
    return now, changed
