"""Certificate authorities: creating roots and intermediates whose keys live in the HSM, and reading them.

No HTTP here: functions take plain values and raise ``ApiError``.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from dataclasses import dataclass, field
from typing import Any

import peewee
from asn1crypto import pem, x509

from ..errors import ApiError, invalid_field, not_found
from ..schema.db import is_sqlite, write_transaction
from ..schema.models import Certificate, CertificateAuthority, new_id
from .builder import sign_certificate
from .names import build_name
from .profiles import IssuerInfo, ca_certificate_builder, signature_algorithm_for
from .serials import random_serial, serial_to_hex

# The API's short subject field names -> build_name's keywords.
API_SUBJECT_FIELDS = {
    "organization": "organization",
    "ou": "organizational_unit",
    "country": "country",
    "locality": "locality",
    "province": "state_or_province",
}
KEY_SIZES = {"rsa": (2048, 3072, 4096), "ec": (256, 384)}
DEFAULT_KEY_SIZE = {"rsa": 2048, "ec": 256}
DEFAULT_VALIDITY_DAYS = {"root": 3650, "intermediate": 1825}
# A CA's notBefore is set this far back so relying parties with a slightly slow clock accept it at once.
CA_BACKDATE = dt.timedelta(minutes=1)
# Serial collisions at 127 random bits are astronomically rare; a retry keeps even that from reaching a client.
SERIAL_ATTEMPTS = 3


@dataclass(frozen=True)
class CaSpec:
    """A validated request for a new CA."""

    name: str
    common_name: str
    ca_type: str
    parent_ca_id: str | None = None
    key_type: str = "rsa"
    key_size: int | None = None
    validity_days: int | None = None
    max_path_length: int | None = None
    subject: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> "CaSpec":
        subject = {name: body[field] for field, name in API_SUBJECT_FIELDS.items() if field in body}
        spec = cls(
            name=body["name"],
            common_name=body["common_name"],
            ca_type=body["ca_type"],
            parent_ca_id=body.get("parent_ca_id"),
            key_type=body.get("key_type", "rsa"),
            key_size=body.get("key_size"),
            validity_days=body.get("validity_days"),
            max_path_length=body.get("max_path_length"),
            subject=subject,
        )
        spec.check()
        return spec

    @property
    def resolved_key_size(self) -> int:
        return self.key_size or DEFAULT_KEY_SIZE[self.key_type]

    @property
    def resolved_validity(self) -> dt.timedelta:
        return dt.timedelta(days=self.validity_days or DEFAULT_VALIDITY_DAYS[self.ca_type])

    def check(self) -> None:
        """Cross-field rules the request schema cannot say."""
        if self.resolved_key_size not in KEY_SIZES[self.key_type]:
            allowed = ", ".join(map(str, KEY_SIZES[self.key_type]))
            raise invalid_field("key_size", f"{self.key_size} is not valid for key_type {self.key_type} ({allowed})")
        if self.ca_type == "intermediate" and not self.parent_ca_id:
            raise ApiError("missing_field", "parent_ca_id: is required for an intermediate CA", {"field": "parent_ca_id"})
        if self.ca_type == "root" and self.parent_ca_id:
            raise invalid_field("parent_ca_id", "a root CA has no parent")


@dataclass(frozen=True)
class CaMaterial:
    """What signing under a CA needs from its certificate, parsed once per process."""

    subject: x509.Name
    key_identifier: bytes
    not_after: dt.datetime


@functools.lru_cache(maxsize=1024)
def _material_from_der(der: bytes) -> CaMaterial:
    cert = x509.Certificate.load(der)
    tbs = cert["tbs_certificate"]
    return CaMaterial(
        subject=tbs["subject"],
        key_identifier=cert.key_identifier,
        not_after=tbs["validity"]["not_after"].native.astimezone(dt.timezone.utc),
    )


def ca_material(ca: CertificateAuthority) -> CaMaterial:
    return _material_from_der(ca.certificate_der)


def issuer_info(ca: CertificateAuthority, public_base_url: str) -> IssuerInfo:
    """The issuer side of a certificate signed by ``ca``: its name, key id and where relying parties look."""
    base = f"{public_base_url.rstrip('/')}/v1/pki/ca/{ca.id}"
    material = ca_material(ca)
    return IssuerInfo(
        name=material.subject,
        key_identifier=material.key_identifier,
        crl_urls=[f"{base}/crl"],
        ca_issuers_urls=[f"{base}/certificate.der"],
        ocsp_urls=[f"{base}/ocsp"],
    )


def get_ca(tenant_id: str, ca_id: str) -> CertificateAuthority:
    """The tenant's CA, or 404 (also for another tenant's CA: existence is never revealed)."""
    try:
        return CertificateAuthority.get(
            (CertificateAuthority.id == ca_id) & (CertificateAuthority.tenant == tenant_id)
        )
    except peewee.DoesNotExist:
        raise not_found("CA") from None


def get_ca_public(ca_id: str) -> CertificateAuthority:
    """Any tenant's CA by id, for the unauthenticated certificate/CRL/OCSP endpoints relying parties use."""
    try:
        return CertificateAuthority.get_by_id(ca_id)
    except peewee.DoesNotExist:
        raise not_found("CA") from None


def _child_path_len(parent: CertificateAuthority, requested: int | None) -> int:
    """pathLenConstraint for a new intermediate: strictly below the parent's, 0 by default under a root."""
    if parent.path_len is not None and parent.path_len == 0:
        raise ApiError(
            "ca_cannot_issue",
            f"parent CA {parent.name!r} has pathLenConstraint 0 and cannot sign another CA",
            {"rule": "path_len"},
        )
    ceiling = parent.path_len - 1 if parent.path_len is not None else None
    if requested is None:
        return ceiling if ceiling is not None else 0
    if ceiling is not None and requested > ceiling:
        raise ApiError(
            "policy_violation",
            f"max_path_length {requested} must be below the parent's pathLenConstraint {parent.path_len}",
            {"field": "max_path_length", "rule": "path_len"},
        )
    return requested


def recheck_ca_in_transaction(ca_id: str, now: dt.datetime) -> None:
    """Inside the write transaction that stores something signed by ``ca_id``: is the CA still able to issue?

    The first check runs before signing, outside the transaction; a revocation committed in between must still
    win. On PostgreSQL the CA row is locked (``FOR UPDATE``), so a concurrent CA revocation, which updates the
    CA rows before their certificates, either waits for this insert and then revokes it too, or commits first
    and is seen here. On SQLite the write transaction (``BEGIN IMMEDIATE``) already excludes other writers.
    """
    query = CertificateAuthority.select().where(CertificateAuthority.id == ca_id)
    if not is_sqlite():
        query = query.for_update()
    check_ca_can_issue(query.get(), now)


def check_ca_can_issue(ca: CertificateAuthority, now: dt.datetime) -> None:
    """A revoked or expired CA signs nothing more (422 naming why)."""
    if ca.status != "active":
        raise ApiError("ca_cannot_issue", f"CA {ca.name!r} is {ca.status} and cannot sign", {"rule": "ca_status"})
    if ca.not_after <= now.replace(tzinfo=None):
        raise ApiError("ca_cannot_issue", f"CA {ca.name!r} has expired", {"rule": "ca_validity"})


def create_ca(hsm: Any, tenant_id: str, spec: CaSpec, public_base_url: str) -> CertificateAuthority:
    """Generate the CA key in the HSM, build and sign its certificate, store both in one transaction.

    ``hsm`` is the process's ``scaivault_pki.hsm.Token``. If anything after key generation fails, the new key
    is destroyed again so the token holds no orphans.
    """
    if _name_taken(tenant_id, spec.name):
        raise ApiError("already_exists", f"a CA named {spec.name!r} already exists", {"field": "name"})
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    parent = None
    path_len = spec.max_path_length
    if spec.ca_type == "intermediate":
        parent = get_ca(tenant_id, spec.parent_ca_id or "")
        check_ca_can_issue(parent, now)
        path_len = _child_path_len(parent, spec.max_path_length)
    try:
        subject = build_name({"common_name": spec.common_name, **spec.subject})
    except ValueError as exc:
        raise invalid_field("subject", str(exc)) from None

    ca_id = new_id()
    key_size = spec.resolved_key_size
    own_algorithm = signature_algorithm_for(spec.key_type, key_size)
    key = hsm.generate_key_pair(spec.key_type, key_size, label=f"scaivault-ca-{ca_id}")
    try:
        not_before = now - CA_BACKDATE
        not_after = now + spec.resolved_validity
        if parent is not None:
            # Never outlive the issuer: a chain is only as valid as its shortest-lived link.
            not_after = min(not_after, ca_material(parent).not_after)
            issuer = issuer_info(parent, public_base_url)
            signer = hsm.signer(parent.hsm_key_id, parent.signature_algorithm)
        else:
            issuer = None
            signer = hsm.signer(key.key_id, own_algorithm)
        for attempt in range(SERIAL_ATTEMPTS):
            serial = random_serial()
            builder = ca_certificate_builder(
                subject=subject,
                public_key_info=key.public_key_info,
                serial=serial,
                not_before=not_before,
                not_after=not_after,
                path_len=path_len,
                issuer=issuer,
            )
            cert = sign_certificate(builder.build(signer.algorithm), signer)
            try:
                with write_transaction():
                    if parent is not None:
                        recheck_ca_in_transaction(parent.id, now)
                    return _store_ca(ca_id, tenant_id, spec, parent, key.key_id, own_algorithm, path_len, cert)
            except peewee.IntegrityError:
                if _name_taken(tenant_id, spec.name):
                    raise ApiError("already_exists", f"a CA named {spec.name!r} already exists", {"field": "name"}) from None
                if attempt == SERIAL_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable: the last attempt returns or raises")
    except BaseException:
        hsm.destroy_key_pair(key.key_id)
        raise


def _name_taken(tenant_id: str, name: str) -> bool:
    return (
        CertificateAuthority.select()
        .where((CertificateAuthority.tenant == tenant_id) & (CertificateAuthority.name == name))
        .exists()
    )


def _store_ca(
    ca_id: str,
    tenant_id: str,
    spec: CaSpec,
    parent: CertificateAuthority | None,
    key_id: str,
    own_algorithm: str,
    path_len: int | None,
    cert: x509.Certificate,
) -> CertificateAuthority:
    """Insert the CA and the row that reserves its serial under its issuer (a root is its own issuer)."""
    der = cert.dump()
    tbs = cert["tbs_certificate"]
    not_before = tbs["validity"]["not_before"].native.replace(tzinfo=None)
    not_after = tbs["validity"]["not_after"].native.replace(tzinfo=None)
    serial = serial_to_hex(cert.serial_number)
    ca = CertificateAuthority.create(
        id=ca_id,
        tenant=tenant_id,
        name=spec.name,
        common_name=spec.common_name,
        ca_type=spec.ca_type,
        parent=parent,
        key_type=spec.key_type,
        key_size=spec.resolved_key_size,
        hsm_key_id=key_id,
        signature_algorithm=own_algorithm,
        serial_number=serial,
        subject_key_id=cert.key_identifier.hex(),
        certificate_der=der,
        path_len=path_len,
        not_before=not_before,
        not_after=not_after,
    )
    Certificate.create(
        tenant=tenant_id,
        ca=parent.id if parent is not None else ca_id,
        serial_number=serial,
        source="ca",
        common_name=spec.common_name,
        sans={},
        key_type=spec.key_type,
        key_size=spec.resolved_key_size,
        not_before=not_before,
        not_after=not_after,
        certificate_der=der,
        fingerprint_sha256=hashlib.sha256(der).hexdigest(),
        tags={},
    )
    return ca


def ca_chain(ca: CertificateAuthority) -> list[CertificateAuthority]:
    """``ca`` and its ancestors up to the root, issuing CA first."""
    chain = [ca]
    while chain[-1].parent_id is not None:
        chain.append(CertificateAuthority.get_by_id(chain[-1].parent_id))
    return chain


def certificate_pem(der: bytes) -> str:
    return pem.armor("CERTIFICATE", der).decode("ascii")
