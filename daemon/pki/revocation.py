"""Revoking certificates and CAs.

A revocation is one write transaction that marks the rows revoked and the issuing CA(s) ``crl_dirty``; the
background job publishes their next CRLs within seconds (see ``crl_publication``). Rows are updated before the
CA rows, the order CRL publication locks them in reverse, so the two never deadlock on PostgreSQL.

Decisions:

- Reasons are RFC 5280 names (``keyCompromise``...), matched case-insensitively and stored in canonical form.
  ``removeFromCRL`` is not a reason to revoke (it only un-lists held certificates in delta CRLs), and
  ``certificateHold`` is as final as any other reason: there is no un-hold.
- Revoking twice answers the first revocation unchanged (same time, same reason).
- Serials are unique per CA, not per tenant: a serial that several of the tenant's CAs issued needs ``ca_id``.
- A CA's certificate is revoked through ``revoke_ca`` only, because revoking it revokes everything under it.
- Under a revoked CA, every certificate and sub-CA is revoked at the same time. Their reason is
  ``cACompromise`` when the CA's was ``keyCompromise`` or ``cACompromise`` (RFC 5280 5.3.1: their issuer's key
  is what was compromised), otherwise the CA's reason (e.g. ``cessationOfOperation``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from typing import Any

from asn1crypto import pem, x509

from ..errors import ApiError, invalid_field, not_found
from ..plugins.manager import PluginHost
from ..schema.db import write_transaction
from ..schema.models import Certificate, CertificateAuthority
from ..times import as_naive_utc, utc_now
from . import acme_orders, events
from .authorities import get_ca
from .crl import CRL_REASONS
from .serials import parse_serial, serial_to_hex

log = logging.getLogger("scaivault_pki.revocation")

DEFAULT_REASON = "unspecified"
_BY_LOWER_NAME = {name.lower(): name for name in CRL_REASONS}
_COMPROMISES = ("keyCompromise", "cACompromise")


def parse_reason(value: str | None, field: str = "reason") -> str:
    """An RFC 5280 reason name in canonical form (``DEFAULT_REASON`` when absent); 400 naming ``field`` otherwise."""
    if value is None:
        return DEFAULT_REASON
    if value.lower() == "removefromcrl":
        raise invalid_field(
            field, "removeFromCRL only un-lists held certificates in delta CRLs; it is not a reason to revoke"
        )
    try:
        return _BY_LOWER_NAME[value.lower()]
    except KeyError:
        choices = ", ".join(CRL_REASONS)
        raise invalid_field(field, f"{value!r} is not an RFC 5280 reason; use one of {choices}") from None


def cascade_reason(reason: str) -> str:
    """The reason certificates under a revoked CA get (see the module docstring)."""
    return "cACompromise" if reason in _COMPROMISES else reason


def _certificate_by_pem(tenant_id: str, text: str) -> Certificate:
    try:
        blocks = list(pem.unarmor(text.encode("ascii"), multiple=True))
        if len(blocks) != 1 or blocks[0][0] != "CERTIFICATE":
            raise ValueError("expected exactly one CERTIFICATE block")
        der = blocks[0][2]
        x509.Certificate.load(der, strict=True).native  # noqa: B018 - refuse garbage that merely looks like PEM
    except (ValueError, TypeError, UnicodeEncodeError) as exc:
        message = f"certificate_pem: not one PEM certificate ({exc})"
        raise ApiError("invalid_pem", message, {"field": "certificate_pem"}) from None
    row = Certificate.get_or_none(
        (Certificate.tenant == tenant_id) & (Certificate.fingerprint_sha256 == hashlib.sha256(der).hexdigest())
    )
    if row is None:
        raise not_found("certificate")
    return row


def _certificate_by_serial(tenant_id: str, serial_text: str, ca_id: str | None) -> Certificate:
    try:
        serial = serial_to_hex(parse_serial(serial_text))
    except ValueError as exc:
        raise invalid_field("serial_number", str(exc)) from None
    query = Certificate.select().where((Certificate.tenant == tenant_id) & (Certificate.serial_number == serial))
    if ca_id is not None:
        query = query.where(Certificate.ca == ca_id)
    rows = list(query)
    if not rows:
        raise not_found("certificate")
    if len(rows) > 1:
        ca_ids = sorted(str(row.ca_id) for row in rows)
        raise ApiError(
            "conflict",
            f"serial {serial} was issued by {len(rows)} CAs of this tenant; say which with ca_id",
            {"field": "ca_id", "ca_ids": ca_ids},
        )
    return rows[0]


def find_certificate(tenant_id: str, body: dict[str, Any]) -> Certificate:
    """The certificate a revoke request names: by ``serial_number`` (and ``ca_id``) or by ``certificate_pem``."""
    if ("serial_number" in body) == ("certificate_pem" in body):
        raise ApiError(
            "missing_field" if "serial_number" not in body else "invalid_request",
            "give either serial_number or certificate_pem",
            {"field": "serial_number"},
        )
    if "certificate_pem" in body:
        if "ca_id" in body:
            raise invalid_field("ca_id", "only used with serial_number; certificate_pem names the certificate already")
        return _certificate_by_pem(tenant_id, body["certificate_pem"])
    return _certificate_by_serial(tenant_id, body["serial_number"], body.get("ca_id"))


def _ca_of_certificate_row(row: Certificate) -> CertificateAuthority | None:
    """The CA whose own certificate ``row`` is (rows of source 'ca' sit under the issuer; a root's under itself)."""
    return (
        CertificateAuthority.select()
        .where(
            (CertificateAuthority.tenant == row.tenant_id)
            & (CertificateAuthority.serial_number == row.serial_number)
            & ((CertificateAuthority.parent == row.ca_id) | (CertificateAuthority.id == row.ca_id))
        )
        .first()
    )


def revoke_certificate(tenant_id: str, body: dict[str, Any], plugins: PluginHost | None = None,
                       envelope: Any = None) -> Certificate:
    """``POST /v1/pki/revoke``: mark the certificate revoked and its CA's CRL dirty; a second call changes nothing.

    With ``use_acme`` (certificates from ACME orders; needs ``envelope`` to open the account key) the issuing
    ACME CA revokes it first, and only then is it marked revoked here.
    """
    reason = parse_reason(body.get("reason"))
    row = find_certificate(tenant_id, body)
    if body.get("use_acme"):
        if row.status != "revoked":
            acme_orders.revoke_upstream(envelope, row, reason)
    elif row.source == "acme":
        raise ApiError(
            "invalid_state",
            "this certificate comes from an ACME CA: revoke it there with use_acme: true",
            {"source": row.source, "field": "use_acme"},
        )
    if row.source == "ca":
        ca = _ca_of_certificate_row(row)
        raise ApiError(
            "invalid_state",
            "this is a CA certificate; revoke the CA (and everything under it) with POST /v1/pki/ca/{id}/revoke",
            {"ca_id": ca.id if ca is not None else None},
        )
    if row.ca_id is None and row.source != "acme":
        raise ApiError(
            "invalid_state",
            "this certificate was not issued by a CA of this daemon, so no CRL or OCSP answer of ours can revoke it",
            {"source": row.source},
        )
    with write_transaction():
        updated = (
            Certificate.update(status="revoked", revoked_at=as_naive_utc(utc_now()), revocation_reason=reason)
            .where((Certificate.id == row.id) & (Certificate.status != "revoked"))
            .execute()
        )
        if updated and row.ca_id is not None:
            CertificateAuthority.update(crl_dirty=True).where(CertificateAuthority.id == row.ca_id).execute()
        row = Certificate.get_by_id(row.id)
    if updated:
        log.info(
            "certificate revoked",
            extra={"tenant_id": tenant_id, "certificate_id": row.id, "serial_number": row.serial_number,
                   "ca_id": row.ca_id, "reason": row.revocation_reason},
        )
        events.notify_revoked(plugins, row, row.revocation_reason)
    return row


def _subtree(ca: CertificateAuthority) -> list[str]:
    """``ca`` and every CA below it, breadth first."""
    found = [ca.id]
    frontier: Iterable[str] = [ca.id]
    while frontier:
        frontier = [
            child_id
            for (child_id,) in CertificateAuthority.select(CertificateAuthority.id)
            .where(CertificateAuthority.parent.in_(list(frontier)))
            .tuples()
        ]
        found.extend(frontier)
    return found


def revoke_ca(tenant_id: str, ca_id: str, body: dict[str, Any]) -> CertificateAuthority:
    """``POST /v1/pki/ca/{id}/revoke``: the CA, its sub-CAs and all their certificates, in one transaction.

    The CA's own certificate row (under its parent) is revoked with ``reason`` so the parent's next CRL lists
    it; everything below gets ``cascade_reason(reason)``. Already-revoked rows keep their revocation.
    """
    reason = parse_reason(body.get("reason"))
    with write_transaction():
        ca = get_ca(tenant_id, ca_id)
        if ca.status == "revoked":
            return ca
        now = as_naive_utc(utc_now())
        subtree = _subtree(ca)
        below = cascade_reason(reason)
        own_row = (Certificate.source == "ca") & (Certificate.serial_number == ca.serial_number)
        own_row &= Certificate.ca == (ca.parent_id or ca.id)
        Certificate.update(status="revoked", revoked_at=now, revocation_reason=reason).where(
            own_row & (Certificate.status != "revoked")
        ).execute()
        # The CA rows first: their row locks make a concurrent issuance under them (which locks its CA row,
        # see authorities.recheck_ca_in_transaction) finish before the certificates below are revoked.
        CertificateAuthority.update(status="revoked", revoked_at=now, revocation_reason=reason).where(
            CertificateAuthority.id == ca.id
        ).execute()
        CertificateAuthority.update(status="revoked", revoked_at=now, revocation_reason=below).where(
            CertificateAuthority.id.in_(subtree[1:]) & (CertificateAuthority.status != "revoked")
        ).execute()
        certificates = (
            Certificate.update(status="revoked", revoked_at=now, revocation_reason=below)
            .where(Certificate.ca.in_(subtree) & (Certificate.status != "revoked"))
            .execute()
        )
        dirty = subtree + ([ca.parent_id] if ca.parent_id else [])
        CertificateAuthority.update(crl_dirty=True).where(CertificateAuthority.id.in_(dirty)).execute()
        ca = CertificateAuthority.get_by_id(ca.id)
    log.info(
        "ca revoked",
        extra={"tenant_id": tenant_id, "ca_id": ca.id, "reason": reason, "cas_revoked": len(subtree),
               "certificates_revoked": certificates},
    )
    return ca
