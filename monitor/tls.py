"""One default TLS context per HTTP library per process.

Each context loads the CA bundle (about 1 MB and tens of milliseconds on the event loop); providers and alert
sinks all verify servers the same way (httpx's defaults, which honour SSL_CERT_FILE and SSL_CERT_DIR), so they
share one instead of building their own.
"""

from __future__ import annotations

import functools
import ssl
from types import ModuleType

import httpx


@functools.cache
def default_context(httpx_mod: ModuleType = httpx) -> ssl.SSLContext:
    """httpx's default client TLS context for `httpx_mod` (httpx, or the openai SDK's httpx2), built once."""
    return httpx_mod.create_ssl_context()
