"""Reading and annotating stored certificates, and handing out stored private keys."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import peewee

from ..durations import parse_duration
from ..errors import ApiError, invalid_field, not_found
from ..paging import paginate
from ..schema.db import write_transaction
from ..schema.models import Certificate
from ..times import utc_now
from .issuance import private_key_context

STATUSES = ("valid", "expired", "revoked")
# CA certificates live in the same table (their serials are reserved under the issuer) but are listed under
# /ca; the certificate list shows them only when asked for with source=ca.
SOURCES = ("issued", "signed", "csr", "imported", "acme", "ca")


@dataclass(frozen=True)
class CertificateFilter:
    ca_id: str | None = None
    role: str | None = None
    common_name: str | None = None
    source: str | None = None
    status: str | None = None
    expiring_within: dt.timedelta | None = None
    include_revoked: bool = False

    @classmethod
    def from_params(cls, params: dict[str, str]) -> "CertificateFilter":
        expiring = None
        if params.get("expiring_within"):
            try:
                expiring = parse_duration(params["expiring_within"])
            except ValueError as exc:
                raise ApiError("invalid_duration", f"expiring_within: {exc}", {"field": "expiring_within"}) from None
        include = params.get("include_revoked", "false").lower()
        if include not in ("true", "false", "1", "0"):
            raise invalid_field("include_revoked", "must be true or false")
        if params.get("status") and params["status"] not in STATUSES:
            raise invalid_field("status", f"must be one of {', '.join(STATUSES)}")
        if params.get("source") and params["source"] not in SOURCES:
            raise invalid_field("source", f"must be one of {', '.join(SOURCES)}")
        return cls(
            ca_id=params.get("ca_id"),
            role=params.get("role"),
            common_name=params.get("common_name"),
            source=params.get("source"),
            status=params.get("status"),
            expiring_within=expiring,
            include_revoked=include in ("true", "1"),
        )


def certificate_status(row: Certificate, now: dt.datetime | None = None) -> str:
    if row.status == "revoked":
        return "revoked"
    now = (now or utc_now()).replace(tzinfo=None)
    return "expired" if row.not_after <= now else "valid"


def list_certificates(tenant_id: str, flt: CertificateFilter, limit: int, cursor: str | None) -> tuple[list[Certificate], str | None]:
    now = utc_now().replace(tzinfo=None)
    query = Certificate.select().where(Certificate.tenant == tenant_id)
    query = query.where(Certificate.source == flt.source) if flt.source else query.where(Certificate.source != "ca")
    if flt.ca_id:
        query = query.where(Certificate.ca == flt.ca_id)
    if flt.role:
        query = query.where(Certificate.role_name == flt.role)
    if flt.common_name:
        query = query.where(peewee.fn.LOWER(Certificate.common_name) == flt.common_name.lower())
    if flt.status == "revoked":
        query = query.where(Certificate.status == "revoked")
    elif flt.status == "valid":
        query = query.where((Certificate.status == "valid") & (Certificate.not_after > now))
    elif flt.status == "expired":
        query = query.where((Certificate.status == "valid") & (Certificate.not_after <= now))
    elif not flt.include_revoked:
        query = query.where(Certificate.status != "revoked")
    if flt.expiring_within is not None:
        query = query.where((Certificate.not_after > now) & (Certificate.not_after <= now + flt.expiring_within))
    return paginate(query, Certificate, limit, cursor)


def get_certificate(tenant_id: str, certificate_id: str) -> Certificate:
    try:
        return Certificate.get((Certificate.id == certificate_id) & (Certificate.tenant == tenant_id))
    except peewee.DoesNotExist:
        raise not_found("certificate") from None


def update_certificate(tenant_id: str, certificate_id: str, body: dict[str, Any]) -> Certificate:
    with write_transaction():
        row = get_certificate(tenant_id, certificate_id)
        if "tags" in body:
            row.tags = body["tags"]
        if "description" in body:
            row.description = body["description"]
        row.save()
    return row


def stored_private_key(envelope: Any, tenant_id: str, certificate_id: str) -> str:
    """The PEM of a private key the role stored, decrypted through the HSM-held key-encryption key."""
    row = get_certificate(tenant_id, certificate_id)
    if row.private_key_ciphertext is None:
        raise ApiError(
            "invalid_state",
            "no private key is stored for this certificate (its role does not store keys, or the key came from a CSR)",
            {"private_key_stored": False},
        )
    return envelope.open(row.private_key_ciphertext, private_key_context(row.id)).decode("ascii")
