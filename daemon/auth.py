"""Bearer tokens: creation, hashing, lookup and scope checks.

A token is ``svp_`` + 32 random bytes (base64url). Only its SHA-256 is stored: with 256 bits of entropy a slow
password hash adds nothing, and a fast hash keeps authentication off the hot path's critical cost.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

import peewee

from .errors import ApiError
from .schema.models import ApiToken, Tenant

TOKEN_PREFIX = "svp_"

SCOPES = ("pki:admin", "pki:issue", "pki:read", "secrets:read", "secrets:write")

# What a scope grants beyond itself. pki:admin is everything in the tenant's PKI; pki:issue reads what it
# needs to issue. The secret store is separate on purpose: a PKI admin does not read DNS credentials.
IMPLIED_SCOPES: dict[str, frozenset[str]] = {
    "pki:admin": frozenset({"pki:admin", "pki:issue", "pki:read"}),
    "pki:issue": frozenset({"pki:issue", "pki:read"}),
    "pki:read": frozenset({"pki:read"}),
    "secrets:write": frozenset({"secrets:write", "secrets:read"}),
    "secrets:read": frozenset({"secrets:read"}),
}


@dataclass(frozen=True)
class Principal:
    """Who is calling: one token, bound to one tenant."""

    token_id: str
    tenant_id: str
    tenant_name: str
    scopes: frozenset[str]

    def granted(self) -> frozenset[str]:
        out: set[str] = set()
        for scope in self.scopes:
            out |= IMPLIED_SCOPES.get(scope, frozenset())
        return frozenset(out)

    def has_any(self, required: tuple[str, ...]) -> bool:
        return bool(self.granted() & set(required))


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def validate_scopes(scopes: list[str]) -> list[str]:
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise ValueError(f"unknown or missing scope(s): {', '.join(unknown) or '(none)'}; known: {', '.join(SCOPES)}")
    return sorted(set(scopes))


def create_token(tenant: Tenant, scopes: list[str], description: str = "") -> tuple[ApiToken, str]:
    """Make a token for ``tenant``; returns the row and the secret, which is shown once and never stored."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken.create(
        tenant=tenant, token_hash=hash_token(secret), scopes=" ".join(validate_scopes(scopes)), description=description
    )
    return row, secret


def authenticate(authorization: str | None) -> Principal:
    """Resolve an ``Authorization`` header to a principal, or raise 401."""
    if not authorization:
        raise ApiError("unauthenticated", "missing bearer token (Authorization: Bearer <token>)")
    scheme, _, secret = authorization.strip().partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret.startswith(TOKEN_PREFIX):
        raise ApiError("unauthenticated", "malformed Authorization header; expected 'Bearer svp_...'")
    digest = hash_token(secret)
    try:
        row = (
            ApiToken.select(ApiToken, Tenant)
            .join(Tenant)
            .where(ApiToken.token_hash == digest)
            .get()
        )
    except peewee.DoesNotExist:
        raise ApiError("unauthenticated", "invalid or revoked token") from None
    # The lookup is by hash already; compare again in constant time so the check never leaks through timing.
    if not hmac.compare_digest(row.token_hash, digest) or row.revoked_at is not None:
        raise ApiError("unauthenticated", "invalid or revoked token")
    return Principal(token_id=row.id, tenant_id=row.tenant.id, tenant_name=row.tenant.name, scopes=row.scope_set)
