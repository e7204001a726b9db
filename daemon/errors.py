"""Every error the API can answer, in one table: code -> HTTP status.

Service code raises ``ApiError(code, message, details)``; it never imports falcon. The app turns an
``ApiError`` into ``{"error": {"code", "message", "details"?}}`` with the status from ``ERROR_STATUS``.
"""

from __future__ import annotations

from typing import Any

ERROR_STATUS: dict[str, int] = {
    # 400: malformed or invalid input
    "invalid_json": 400,
    "invalid_request": 400,
    "invalid_field": 400,
    "missing_field": 400,
    "unknown_field": 400,
    "invalid_duration": 400,
    "invalid_cursor": 400,
    "invalid_pem": 400,
    "invalid_csr": 400,
    # 401 / 403 / 404 / 405
    "unauthenticated": 401,
    "forbidden": 403,
    "self_approval_refused": 403,  # four eyes: the token that requested a CSR may not approve it
    "not_found": 404,
    "method_not_allowed": 405,
    # 409: conflicts and wrong state
    "already_exists": 409,
    "conflict": 409,
    "invalid_state": 409,
    # 413 / 415
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    # 422: well-formed but refused by policy
    "policy_violation": 422,
    "ca_cannot_issue": 422,
    "ttl_exceeds_max": 422,
    "secret_not_found": 422,  # a DNS provider's config refers to a secret (or key) that does not exist
    "dns_provider_type_unavailable": 422,  # the provider's plugin type is not installed (or disabled)
    "dns_provider_misconfigured": 422,  # the resolved config does not fit the provider (e.g. a secret's value)
    # 502: an upstream service refused or failed
    "dns_provider_error": 502,  # the DNS provider refused a change or could not be reached
    "acme_upstream_error": 502,  # the ACME CA refused a request or could not be reached
    # 503: a dependency is down
    "hsm_unavailable": 503,
    "database_unavailable": 503,
    # 500: our bug, never for anything a client sent
    "internal_error": 500,
}


class ApiError(Exception):
    """An error meant for the client. ``code`` must be a key of ``ERROR_STATUS``."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None):
        if code not in ERROR_STATUS:
            raise ValueError(f"unknown error code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details

    @property
    def status(self) -> int:
        return ERROR_STATUS[self.code]

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return {"error": body}


def invalid_field(field: str, message: str) -> ApiError:
    """400 naming the field at fault."""
    return ApiError("invalid_field", f"{field}: {message}", {"field": field})


def not_found(kind: str) -> ApiError:
    return ApiError("not_found", f"{kind} not found")
