"""Small pieces every resource uses: scope declarations, reading bodies, writing times and PEM."""

from __future__ import annotations

import datetime as dt
from typing import Any

import falcon

from ..errors import ApiError
from .validation import parse_body

# Marks a method as reachable without a token (CA certificates, CRLs, OCSP, health: relying parties need them).
PUBLIC = "public"

PEM_MEDIA_TYPE = "application/x-pem-file"


def read_json(req: falcon.Request, schema_name: str, max_bytes: int) -> dict[str, Any]:
    """The request's JSON body, checked against ``schema_name``; 415/413/400 otherwise."""
    content_type = (req.content_type or "").split(";", 1)[0].strip().lower()
    if content_type != "application/json":
        raise ApiError("unsupported_media_type", "send the body as application/json")
    if req.content_length is not None and req.content_length > max_bytes:
        raise ApiError("payload_too_large", f"request body is larger than {max_bytes} bytes")
    raw = req.bounded_stream.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise ApiError("payload_too_large", f"request body is larger than {max_bytes} bytes")
    return parse_body(raw, schema_name)


def rfc3339(value: dt.datetime | None) -> str | None:
    """A stored naive-UTC (or aware) time as ``2026-11-27T08:00:00Z``."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value.replace(microsecond=0).isoformat() + "Z"


def send_pem(resp: falcon.Response, text: str) -> None:
    resp.content_type = PEM_MEDIA_TYPE
    resp.text = text
