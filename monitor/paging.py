"""Opaque cursors for keyset paging in the JSON API: where the next page of `/api/observations` or `/api/drift`
starts.

A cursor is the last row's place in the store's order (an ObservationKey: start time in whole microseconds since
the epoch, sample index, id; or an EventKey: opening time in microseconds, id) as compact JSON with a version (and,
for events, the word "drift", so neither list takes the other's cursor), then a short digest of it,
base64url-encoded so it goes into a URL as it is. The digest makes an edited or truncated cursor a client error instead of some other
place in the history. It is no signature: a cursor carries no secret and grants nothing (a forged one can only ask
for rows the query's own filters already give), and a key would have to be shared by every replica and survive
restarts for a cursor to outlive the process that gave it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from datetime import UTC, datetime, timedelta
from typing import TypeGuard

from monitor.store import ObservationKey
from monitor.store.drift_repo import EventKey

VERSION = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_DIGEST_BYTES = 6
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,400}")  # base64url without padding; far longer than any cursor made here
_MAX_ID = 32  # observations.id and drift_events.id are VARCHAR(32)
_EVENTS = "drift"


def encode(key: ObservationKey | EventKey) -> str:
    """The cursor that continues after `key`."""
    if isinstance(key, EventKey):
        fields: list[object] = [VERSION, _EVENTS, (key.opened_at - _EPOCH) // _US, key.id]
    else:
        fields = [VERSION, (key.started_at - _EPOCH) // _US, key.sample_index, key.id]
    raw = json.dumps(fields, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw + _digest(raw)).rstrip(b"=").decode()


def decode(token: str) -> ObservationKey:
    """The observation key a cursor from `encode` continues after; ValueError for anything `encode` did not make
    for an observation (an event's cursor included)."""
    fields = _fields(token)
    if not (len(fields) == 4 and fields[0] == VERSION):
        raise ValueError("unknown version")
    _, micros, sample_index, obs_id = fields
    if not (_whole(micros) and _whole(sample_index) and sample_index >= 0 and _id(obs_id)):
        raise ValueError("fields of the wrong type")
    return ObservationKey(_time(micros), sample_index, obs_id)


def decode_event(token: str) -> EventKey:
    """The drift event key a cursor from `encode` continues after; ValueError otherwise."""
    fields = _fields(token)
    if not (len(fields) == 4 and fields[:2] == [VERSION, _EVENTS]):
        raise ValueError("not a drift event cursor")
    _, _, micros, event_id = fields
    if not (_whole(micros) and _id(event_id)):
        raise ValueError("fields of the wrong type")
    return EventKey(_time(micros), event_id)


def _fields(token: str) -> list[object]:
    """The JSON list inside a cursor whose digest matches."""
    if not _TOKEN.fullmatch(token):
        raise ValueError("not base64url")
    try:
        blob = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except ValueError:  # binascii.Error: a length no encoding has
        raise ValueError("not base64url") from None
    raw, digest = blob[:-_DIGEST_BYTES], blob[-_DIGEST_BYTES:]
    if not raw or not hmac.compare_digest(digest, _digest(raw)):
        raise ValueError("digest does not match")
    fields = json.loads(raw)  # JSONDecodeError and UnicodeDecodeError are ValueErrors
    if not isinstance(fields, list):
        raise ValueError("unknown version")
    return fields


def _time(micros: int) -> datetime:
    try:
        return _EPOCH + micros * _US
    except OverflowError:
        raise ValueError("time out of range") from None


def _id(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and 0 < len(value) <= _MAX_ID


def _whole(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _digest(raw: bytes) -> bytes:
    return hashlib.sha256(b"llm-monitor cursor\0" + raw).digest()[:_DIGEST_BYTES]
