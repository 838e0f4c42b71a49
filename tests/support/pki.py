"""A throwaway PKI for TLS tests: a CA, a server certificate for 127.0.0.1, client certificates, as PEM files."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import bcrypt
import trustme


@dataclass
class Pki:
    """PEM files in `folder`: the CA (`ca.pem`), the server's `cert.pem` and `key.pem`, a client's `client.pem`."""

    folder: Path
    ca: trustme.CA

    @classmethod
    def make(cls, folder: Path, name: str = "", *, not_after: datetime | None = None) -> Pki:
        """A new CA with a server certificate for 127.0.0.1 (valid until `not_after`, else trustme's default) and a
        client certificate, written under `folder`."""
        folder.mkdir(parents=True, exist_ok=True)
        pki = cls(folder, trustme.CA())
        pki.ca.cert_pem.write_to_path(str(folder / f"ca{name}.pem"))
        server = pki.ca.issue_cert("127.0.0.1", "localhost", not_after=not_after)
        server.cert_chain_pems[0].write_to_path(str(folder / f"cert{name}.pem"))
        server.private_key_pem.write_to_path(str(folder / f"key{name}.pem"))
        client = pki.ca.issue_cert("scraper@example.com")
        client.private_key_and_cert_chain_pem.write_to_path(str(folder / f"client{name}.pem"))
        return pki

    def client(self, *, cert: Path | None = None) -> ssl.SSLContext:
        """A client context trusting this CA, presenting `cert` (a key and certificate PEM) if given."""
        ctx = ssl.create_default_context()
        self.ca.configure_trust(ctx)
        if cert is not None:
            ctx.load_cert_chain(str(cert))
        return ctx


def bcrypt_hash(password: str) -> str:
    """A bcrypt hash at the lowest cost (4): as valid as any, and fast in tests."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()
