"""Request id, logging, database connection and authentication, in that order."""

from __future__ import annotations

import logging
import re
import time
import uuid

import falcon

from ..auth import authenticate
from ..errors import ApiError
from ..schema.db import database
from .http import PUBLIC

log = logging.getLogger("scaivault_pki.http")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestContext:
    """Gives every request an id (the caller's ``X-Request-Id`` if sane) and logs one line when it ends."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        given = req.get_header("X-Request-Id") or ""
        req.context.request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        req.context.started = time.monotonic()
        req.context.principal = None
        resp.set_header("X-Request-Id", req.context.request_id)

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource, req_succeeded: bool) -> None:
        principal = getattr(req.context, "principal", None)
        log.info(
            "request",
            extra={
                "request_id": getattr(req.context, "request_id", None),
                "tenant": principal.tenant_name if principal else None,
                "method": req.method,
                "path": req.path,
                "status": int(resp.status_code if hasattr(resp, "status_code") else str(resp.status)[:3]),
                "duration_ms": round((time.monotonic() - getattr(req.context, "started", time.monotonic())) * 1000, 2),
            },
        )


class DatabaseConnection:
    """One connection per worker process, kept across requests.

    A sync worker serves one request at a time, so its connection is never shared; keeping it saves the
    connect, the pragmas and (on SQLite) the WAL checkpoint that closing the last connection triggers, which
    together cost more than the rest of a read. A request that failed on the database drops the connection
    so the next one reconnects (a restarted PostgreSQL, a network blip).
    """

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        database.connect(reuse_if_open=True)

    def process_response(self, req, resp, resource, req_succeeded: bool) -> None:
        if resp.status_code == 503 and not database.is_closed():
            database.close()


class Authentication:
    """Checks the bearer token against the scopes the resource declares for the method.

    Each resource has ``scopes = {"GET": ("pki:read",), "POST": ("pki:admin",)}``; ``PUBLIC`` opens a method
    to anyone. A method the resource does not declare is refused (fail closed), even with a valid token.
    """

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource, params) -> None:
        if resource is None:
            return
        method = "GET" if req.method == "HEAD" else req.method
        declared = getattr(resource, "scopes", {}).get(method)
        if declared is None and not hasattr(resource, f"on_{method.lower()}"):
            return  # no responder: falcon answers 405 (or lists the methods for OPTIONS)
        if declared == PUBLIC:
            return
        principal = authenticate(req.get_header("Authorization"))
        req.context.principal = principal
        if not declared:
            raise ApiError("forbidden", f"{req.method} {req.uri_template} declares no scope and is refused")
        if not principal.has_any(declared):
            raise ApiError(
                "forbidden",
                f"this token lacks the scope for {req.method} {req.uri_template}: needs one of {', '.join(declared)}",
                {"required_scopes": list(declared)},
            )
