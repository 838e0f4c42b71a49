"""Standard Webhooks v1 signatures: HMAC-SHA256 over `{id}.{timestamp}.{body}`, keyed with the decoded secret."""

from __future__ import annotations

import base64
import hashlib
import hmac

PREFIX = "whsec_"


def secret_bytes(secret: str) -> bytes:
    """Return the signing key: the base64-decoded secret after its `whsec_` prefix; ValueError if malformed."""
    raw = secret.strip().removeprefix(PREFIX)
    try:
        key = base64.b64decode(raw, validate=True)
    except ValueError:
        raise ValueError("a webhook signing secret must be base64 (optionally prefixed with whsec_)") from None
    if not key:
        raise ValueError("the webhook signing secret is empty")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Return the `webhook-signature` header value: `v1,<base64 HMAC-SHA256>`."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str | None, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Return the Standard Webhooks headers (the signature only when there is a secret)."""
    out = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp)}
    if secret:
        out["webhook-signature"] = sign(secret, msg_id, timestamp, body)
    return out
