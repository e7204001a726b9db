"""Time in one format: RFC 3339 UTC with a Z, second precision (what X.509 encodes)."""

from __future__ import annotations

import datetime as dt


def utc_now() -> dt.datetime:
    """Now, timezone-aware UTC, whole seconds."""
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def rfc3339(value: dt.datetime | None) -> str | None:
    """A stored naive-UTC (or aware) time as ``2026-11-27T08:00:00Z``."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value.replace(microsecond=0).isoformat() + "Z"


def as_naive_utc(value: dt.datetime) -> dt.datetime:
    """What the database stores: naive UTC."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value
