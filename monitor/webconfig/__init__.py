"""The listener's web configuration file (exporter-toolkit's format): TLS and basic auth for the HTTP face.

    model   the file's schema (strict, like monitor.yaml)
    tls     the server SSLContext built from it, and its renewal on reload
    expiry  when the certificate served expires (read with the standard library), and the warning before
    auth    the basic-auth middleware and its cache of successful checks
"""

from monitor.webconfig.model import TlsServerConfig, WebConfigFile

__all__ = ["TlsServerConfig", "WebConfigFile"]
