"""Issuing leaf certificates under a role: /issue (we make the key), /sign (a CSR's key), and renewal.

One path for all three: policy decides names, TTL and key; the leaf profile shapes the certificate; the CA key
in the HSM signs; one transaction stores the certificate (and, when the role says so, its private key sealed
under the HSM-held key-encryption key). The last three steps are ``sign_leaf``, which the CSR approval workflow
(``csr_workflow``) shares.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import peewee
from asn1crypto import keys, x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ..durations import parse_duration
from ..errors import ApiError, invalid_field
from ..schema.db import write_transaction
from ..schema.models import Certificate, CertificateAuthority, Role, new_id
from ..times import as_naive_utc, utc_now
from ..plugins.manager import PluginHost
from . import events
from .authorities import ca_chain, ca_material, check_ca_can_issue, issuer_info, recheck_ca_in_transaction
from .builder import sign_certificate
from .csr import CsrError, parse_csr
from .names import build_name
from .policy import InvalidName, NameDecision, PolicyViolation, RolePolicy
from .profiles import DEFAULT_LEAF_EKU, clamp_validity, key_type_and_size, leaf_certificate_builder
from .roles import get_role, role_policy
from .serials import random_serial, serial_to_hex

SERIAL_ATTEMPTS = 3
CABF_OV_POLICY_OID = "2.23.140.1.2.2"
_EC_CURVES = {256: ec.SECP256R1, 384: ec.SECP384R1}


@dataclass(frozen=True)
class IssuanceContext:
    """What issuing needs from the process: the HSM token, the envelope for stored keys, the public base URL."""

    hsm: Any
    envelope: Any
    public_base_url: str
    # Told about each certificate once it is stored (event hooks); None fires nothing.
    plugins: PluginHost | None = None


@dataclass(frozen=True)
class Issued:
    certificate: Certificate
    private_key_pem: str | None
    chain: list[CertificateAuthority]


def private_key_context(certificate_id: str) -> bytes:
    """The envelope's associated data: a sealed key opens only for the row it was sealed for."""
    return f"certificate-private-key:{certificate_id}".encode()


def generate_leaf_key(key_type: str, key_bits: int) -> tuple[keys.PublicKeyInfo, str]:
    """A fresh leaf key pair in software: (public key info, PKCS#8 PEM of the private key).

    Leaf keys are made in software because the daemon hands them to the caller anyway: generating them in the
    HSM would need them extractable, and would cost an HSM round trip (RSA: a long one) per certificate.
    """
    if key_type == "rsa":
        private = rsa.generate_private_key(public_exponent=65537, key_size=key_bits)
    else:
        private = ec.generate_private_key(_EC_CURVES[key_bits]())
    spki = private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    return keys.PublicKeyInfo.load(spki), pem


def _policy_refusal(exc: PolicyViolation) -> ApiError:
    return ApiError("policy_violation", exc.message, {"rule": exc.rule, "value": exc.value})


def _invalid_name(exc: InvalidName) -> ApiError:
    return ApiError("invalid_field", f"{exc.field}: {exc.message}", {"field": exc.field, "value": exc.value})


def _decide_names(policy: RolePolicy, common_name: str | None, dns: list[str], ips: list[str], uris: list[str]) -> NameDecision:
    try:
        return policy.check_names(common_name, dns, ips, uris)
    except InvalidName as exc:
        raise _invalid_name(exc) from None
    except PolicyViolation as exc:
        raise _policy_refusal(exc) from None


def _decide_ttl(policy: RolePolicy, requested: Any) -> dt.timedelta:
    ttl = None
    if requested is not None:
        try:
            ttl = parse_duration(requested)
        except ValueError as exc:
            raise ApiError("invalid_duration", f"ttl: {exc}", {"field": "ttl"}) from None
    try:
        return policy.check_ttl(ttl)
    except PolicyViolation as exc:
        raise _policy_refusal(exc) from None


def policy_oids_for(subject: dict[str, Any]) -> tuple[str, ...] | None:
    """Which CA/B Forum reserved policy a serverAuth leaf with this subject asserts.

    ``subject`` uses the API's names (``organization``, ``ou``, ``country``, ``locality``, ``province``), as role
    settings and CSR subjects do. None lets the profile choose DV (a subject with only CN). An organisation with
    its country and locality or province is OV; an organisation without them meets neither, so no reserved
    policy is claimed.
    """
    if not subject.get("organization") and not subject.get("ou"):
        return None
    if subject.get("organization") and subject.get("country") and (subject.get("locality") or subject.get("province")):
        return (CABF_OV_POLICY_OID,)
    return ()


@dataclass(frozen=True)
class LeafSpec:
    """What one leaf certificate says, decided by its caller (a role's policy, or the CSR workflow)."""

    subject: x509.Name
    common_name: str | None
    ttl: dt.timedelta
    # notBefore is set this far back, for relying parties with a slow clock.
    backdate: dt.timedelta
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    uris: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    key_usage: tuple[str, ...] | None = None  # None: the profile's default for the key type
    extended_key_usage: tuple[str, ...] = DEFAULT_LEAF_EKU
    policy_oids: tuple[str, ...] | None = None  # None: the profile's default

    def stored_sans(self) -> dict[str, list[str]]:
        """The names as the certificate row keeps them (``email`` only when there are any)."""
        sans = {"dns": list(self.dns_names), "ip": list(self.ip_addresses), "uri": list(self.uris)}
        if self.emails:
            sans["email"] = list(self.emails)
        return sans


def sign_leaf(
    ctx: IssuanceContext,
    ca: CertificateAuthority,
    spec: LeafSpec,
    public_key_info: keys.PublicKeyInfo,
    *,
    source: str,
    role_name: str | None = None,
    requested_by: str | None = None,
    renewed_from: str | None = None,
    certificate_id: str | None = None,
    private_key_ciphertext: bytes | None = None,
    private_key_pem: str | None = None,
    before_commit: Callable[[Certificate], None] | None = None,
) -> Issued:
    """Build a leaf for ``public_key_info`` under ``ca``, sign it with the CA key in the HSM, and store it.

    The CA must be able to issue now (422 otherwise); notAfter never passes the CA's. ``certificate_id`` is given
    when something was already bound to the row's id (a sealed private key). ``before_commit`` runs inside the
    transaction that stores the certificate, with the new row, so a caller's own state change commits with the
    certificate or, when it raises, neither does.
    """
    now = utc_now()
    check_ca_can_issue(ca, now)
    try:
        not_before, not_after = clamp_validity(now, spec.ttl, ca_material(ca).not_after, spec.backdate)
    except ValueError as exc:
        raise ApiError("policy_violation", str(exc), {"rule": "profile"}) from None
    issuer = issuer_info(ca, ctx.public_base_url)
    signer = ctx.hsm.signer(ca.hsm_key_id, ca.signature_algorithm)
    key_type, key_size = key_type_and_size(public_key_info)
    cert_id = certificate_id or new_id()
    for attempt in range(SERIAL_ATTEMPTS):
        try:
            builder = leaf_certificate_builder(
                subject=spec.subject,
                public_key_info=public_key_info,
                serial=random_serial(),
                not_before=not_before,
                not_after=not_after,
                issuer=issuer,
                dns_names=spec.dns_names,
                ip_addresses=spec.ip_addresses,
                uris=spec.uris,
                emails=spec.emails,
                key_usage=spec.key_usage,
                extended_key_usage=spec.extended_key_usage,
                policy_oids=spec.policy_oids,
            )
        except ValueError as exc:
            # The profile refuses combinations the caller allows but X.509 or the BRs do not (e.g. a free-form
            # CN on a serverAuth certificate): the request is well-formed, so this is a policy refusal.
            raise ApiError("policy_violation", str(exc), {"rule": "profile"}) from None
        cert = sign_certificate(builder.build(signer.algorithm), signer)
        der = cert.dump()
        try:
            with write_transaction():
                recheck_ca_in_transaction(ca.id, now)
                row = Certificate.create(
                    id=cert_id,
                    tenant=ca.tenant_id,
                    ca=ca.id,
                    serial_number=serial_to_hex(cert.serial_number),
                    source=source,
                    role_name=role_name,
                    common_name=spec.common_name,
                    sans=spec.stored_sans(),
                    key_type=key_type,
                    key_size=key_size,
                    not_before=as_naive_utc(not_before),
                    not_after=as_naive_utc(not_after),
                    certificate_der=der,
                    fingerprint_sha256=hashlib.sha256(der).hexdigest(),
                    tags={},
                    private_key_ciphertext=private_key_ciphertext,
                    renewed_from=renewed_from,
                    requested_by=requested_by,
                )
                if before_commit is not None:
                    before_commit(row)
            break
        except peewee.IntegrityError:
            if attempt == SERIAL_ATTEMPTS - 1:
                raise
    if renewed_from is None:
        events.notify_issued(ctx.plugins, row)
    else:
        events.notify_renewed(ctx.plugins, row, renewed_from)
    return Issued(row, private_key_pem, ca_chain(ca))


def _issue(
    ctx: IssuanceContext,
    role: Role,
    decision: NameDecision,
    ttl: dt.timedelta,
    public_key_info: keys.PublicKeyInfo,
    *,
    source: str,
    private_key_pem: str | None,
    requested_by: str | None,
    renewed_from: str | None = None,
) -> Issued:
    ca = CertificateAuthority.get_by_id(role.ca_id)
    settings = role.config
    try:
        subject = build_name(
            common_name=decision.common_name,
            organization=settings.get("organization"),
            organizational_unit=settings.get("ou"),
            country=settings.get("country"),
            locality=settings.get("locality"),
            state_or_province=settings.get("province"),
        )
    except ValueError as exc:
        raise ApiError("policy_violation", str(exc), {"rule": "profile"}) from None
    spec = LeafSpec(
        subject=subject,
        common_name=decision.common_name,
        ttl=ttl,
        backdate=parse_duration(settings["not_before_duration"]),
        dns_names=tuple(decision.dns_names),
        ip_addresses=tuple(decision.ip_addresses),
        uris=tuple(decision.uris),
        key_usage=tuple(settings["key_usage"]) if settings.get("key_usage") else None,
        extended_key_usage=tuple(settings.get("ext_key_usage") or ()),
        policy_oids=policy_oids_for(settings),
    )
    cert_id = new_id()
    sealed_key = None
    if private_key_pem is not None and settings.get("store_private_keys"):
        sealed_key = ctx.envelope.seal(private_key_pem.encode("ascii"), private_key_context(cert_id))
    return sign_leaf(
        ctx, ca, spec, public_key_info, source=source, role_name=role.name, requested_by=requested_by,
        renewed_from=renewed_from, certificate_id=cert_id, private_key_ciphertext=sealed_key,
        private_key_pem=private_key_pem,
    )


def issue_certificate(ctx: IssuanceContext, tenant_id: str, role_name: str, body: dict[str, Any], requested_by: str | None) -> Issued:
    """``POST /issue/{role}``: names and TTL through the role, a fresh key of the role's shape."""
    role = get_role(tenant_id, role_name)
    policy = role_policy(role)
    decision = _decide_names(policy, body["common_name"], body.get("alt_names", []), body.get("ip_sans", []), body.get("uri_sans", []))
    ttl = _decide_ttl(policy, body.get("ttl"))
    try:
        key_type, key_bits = policy.issued_key_shape()
    except PolicyViolation as exc:
        raise _policy_refusal(exc) from None
    public_key_info, private_pem = generate_leaf_key(key_type, key_bits)
    return _issue(ctx, role, decision, ttl, public_key_info, source="issued", private_key_pem=private_pem, requested_by=requested_by)


def sign_request(ctx: IssuanceContext, tenant_id: str, role_name: str, body: dict[str, Any], requested_by: str | None) -> Issued:
    """``POST /sign/{role}``: the CSR's signature, key and names (or the ``san`` override) through the role."""
    role = get_role(tenant_id, role_name)
    policy = role_policy(role)
    try:
        csr = parse_csr(body["csr_pem"])
    except CsrError as exc:
        raise ApiError("invalid_csr", f"csr_pem: {exc}", {"field": "csr_pem"}) from None
    try:
        policy.check_key(csr.key_type, csr.key_size)
    except PolicyViolation as exc:
        raise _policy_refusal(exc) from None
    if "san" in body:
        override = body["san"]
        dns, ips, uris = override.get("dns", []), override.get("ip", []), override.get("uri", [])
    else:
        if csr.emails:
            raise invalid_field("csr_pem", "email SANs are not issued by roles")
        dns, ips, uris = list(csr.dns_names), list(csr.ip_addresses), list(csr.uris)
    decision = _decide_names(policy, csr.common_name, dns, ips, uris)
    ttl = _decide_ttl(policy, body.get("ttl"))
    return _issue(ctx, role, decision, ttl, csr.public_key_info, source="signed", private_key_pem=None, requested_by=requested_by)


RENEWABLE_SOURCES = ("issued", "signed")


def renew_certificate(ctx: IssuanceContext, tenant_id: str, certificate: Certificate, body: dict[str, Any], requested_by: str | None) -> Issued:
    """Same subject, names and role; a new key when we made the old one, the same public key for a CSR's."""
    if certificate.source not in RENEWABLE_SOURCES:
        raise ApiError("invalid_state", f"a certificate from source {certificate.source!r} is not renewed here",
                       {"source": certificate.source})
    if certificate.status == "revoked":
        raise ApiError("invalid_state", "a revoked certificate is not renewed; issue a new one", {"status": "revoked"})
    try:
        role = get_role(tenant_id, certificate.role_name or "")
    except ApiError:
        raise ApiError("invalid_state", f"role {certificate.role_name!r} no longer exists",
                       {"role": certificate.role_name}) from None
    policy = role_policy(role)
    sans = certificate.sans or {}
    decision = _decide_names(policy, certificate.common_name, sans.get("dns", []), sans.get("ip", []), sans.get("uri", []))
    ttl = _decide_ttl(policy, body.get("ttl"))
    if certificate.source == "issued":
        try:
            key_type, key_bits = policy.issued_key_shape()
        except PolicyViolation as exc:
            raise _policy_refusal(exc) from None
        public_key_info, private_pem = generate_leaf_key(key_type, key_bits)
    else:
        public_key_info = x509.Certificate.load(certificate.certificate_der).public_key
        key_type, key_size = key_type_and_size(public_key_info)
        try:
            policy.check_key(key_type, key_size)
        except PolicyViolation as exc:
            raise _policy_refusal(exc) from None
        private_pem = None
    return _issue(ctx, role, decision, ttl, public_key_info, source=certificate.source, private_key_pem=private_pem,
                  requested_by=requested_by, renewed_from=certificate.id)
