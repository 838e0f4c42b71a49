"""The store's PostgreSQL advisory lock keys, one pair per schema: deployments in one database but different schemas
(search_path) each lead and migrate on their own."""

from __future__ import annotations

import zlib

MIGRATION_LOCK_ID = 7_166_001  # replicas starting together migrate one at a time
LEADER_LOCK_ID = 7_166_002


def schema_key(schema: str) -> int:
    """The second key of a schema's locks: a stable 31-bit hash of its name (not PostgreSQL's hashtext, whose
    values a major version may change)."""
    return zlib.crc32(schema.encode()) & 0x7FFF_FFFF
