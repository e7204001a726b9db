"""Keyset pagination over (created_at, id).

A cursor names the last row a page showed; the next page starts strictly after it. Rows inserted while a client
pages land after the rows that existed when it started (their created_at is later), so nothing that existed is
seen twice or skipped, which OFFSET paging cannot promise.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import peewee

from .errors import ApiError


def encode_cursor(created_at: dt.datetime, row_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, row_id = json.loads(raw)
        return dt.datetime.fromisoformat(created), str(row_id)
    except (ValueError, TypeError, json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError("invalid_cursor", "cursor: not a cursor this API returned", {"field": "cursor"}) from None


def paginate(query: peewee.ModelSelect, model: Any, limit: int, cursor: str | None) -> tuple[list[Any], str | None]:
    """One page of ``query`` in (created_at, id) order, and the cursor of the next page (None at the end)."""
    if cursor:
        created, row_id = decode_cursor(cursor)
        query = query.where(
            (model.created_at > created) | ((model.created_at == created) & (model.id > row_id))
        )
    rows = list(query.order_by(model.created_at, model.id).limit(limit + 1))
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor(rows[-1].created_at, rows[-1].id)
