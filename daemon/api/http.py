"""Small pieces every resource uses: scope declarations, reading bodies, writing times and PEM."""

from __future__ import annotations

from typing import Any

import falcon

from ..errors import ApiError
from ..times import rfc3339  # noqa: F401  (re-exported for the resources)
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


def read_optional_json(req: falcon.Request, schema_name: str, max_bytes: int) -> dict[str, Any]:
    """Like ``read_json``, but an empty body (no Content-Length, or zero) means ``{}``."""
    if not req.content_length and not req.content_type:
        return parse_body(b"{}", schema_name)
    return read_json(req, schema_name, max_bytes)


def send_pem(resp: falcon.Response, text: str) -> None:
    resp.content_type = PEM_MEDIA_TYPE
    resp.text = text
