"""Trust anchors, CRLs of outside CAs, importing certificates, and validating chains for a tenant.

The service side of ``/v1/pki/trust-anchors``, ``/v1/pki/certificates/import`` and
``/v1/pki/certificates/validate``: strict reading of what clients send (PEM certificates, CRLs, private keys),
storage through the models, and the gathering of anchors and revocation evidence that the pure path validator
(:mod:`.validation`) needs. No HTTP here: functions take plain values and raise ``ApiError``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import hashlib
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import peewee
from asn1crypto import pem as asn1_pem
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from ..errors import ApiError, invalid_field, not_found
from ..paging import paginate
from ..schema.db import write_transaction
from ..schema.models import (
    Certificate,
    CertificateAuthority,
    CertificateChain,
    TrustAnchor,
    TrustAnchorCrl,
    new_id,
    utcnow,
)
from ..times import as_naive_utc, rfc3339, utc_now
from .authorities import get_ca
from .issuance import private_key_context
from .serials import MAX_SERIAL, serial_to_hex
from .validation import (
    Anchor,
    CertificateParseError,
    ParsedCrl,
    PathCertificate,
    RevocationRecord,
    RevocationSources,
    ValidationResult,
    normalise_hostname,
    signature_problem,
    validate_path,
)

# More certificates or CRLs than this in one field is not a chain but a bundle of unrelated things; the limit
# keeps path building and parsing cheap whatever a client sends.
MAX_BUNDLE_ITEMS: Final = 20

_PEM_BLOCK: Final = re.compile(
    r"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END ([A-Z0-9 ]+)-----", re.DOTALL
)
_RFC3339: Final = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)
_ENCRYPTED_KEY_HINT: Final = "is encrypted; decrypt it first (e.g. openssl pkey -in key.pem -out plain.pem) and send the plain key"
_PRIVATE_KEY_LABELS: Final = frozenset({"PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"})


# ---------------------------------------------------------------------------
# Reading client input
# ---------------------------------------------------------------------------


def _pem_blocks(text: str, field: str, labels: frozenset[str], what: str) -> list[tuple[str, bytes]]:
    """Every PEM block in ``text`` as (label, DER), refusing other labels and text between blocks.

    Text around a bundle is refused rather than skipped, so ``openssl x509 -text`` output or a key pasted
    into a certificate field is reported instead of half-used.
    """
    if not text.isascii():
        raise ApiError("invalid_pem", f"{field}: PEM text contains non-ASCII characters", {"field": field})
    blocks: list[tuple[str, bytes]] = []
    position = 0
    for match in _PEM_BLOCK.finditer(text):
        if text[position:match.start()].strip():
            raise ApiError("invalid_pem", f"{field}: unexpected text outside the PEM blocks", {"field": field})
        position = match.end()
        begin, body, end = match.group(1), match.group(2), match.group(3)
        index = len(blocks)
        if begin != end:
            raise ApiError("invalid_pem", f"{field}: block {index}: END line does not match BEGIN {begin}", {"field": field, "index": index})
        if begin not in labels:
            raise ApiError("invalid_pem", f"{field}: block {index} is a {begin}, expected {what}", {"field": field, "index": index})
        if ":" in body:
            # RFC 1421 headers (Proc-Type, DEK-Info) only appear in legacy encrypted keys.
            raise ApiError("invalid_pem", f"{field}: block {index} has PEM headers; {what} must not be encrypted",
                           {"field": field, "index": index})
        try:
            der = base64.b64decode("".join(body.split()), validate=True)
        except (binascii.Error, ValueError):
            raise ApiError("invalid_pem", f"{field}: block {index} is not valid base64", {"field": field, "index": index}) from None
        if not der:
            raise ApiError("invalid_pem", f"{field}: block {index} is empty", {"field": field, "index": index})
        blocks.append((begin, der))
    if text[position:].strip():
        raise ApiError("invalid_pem", f"{field}: unexpected text outside the PEM blocks", {"field": field})
    return blocks


def read_certificates(text: str, field: str, *, exactly_one: bool = False) -> list[PathCertificate]:
    """Certificates from PEM text: strict DER each, at most ``MAX_BUNDLE_ITEMS`` (exactly one if asked)."""
    blocks = _pem_blocks(text, field, frozenset({"CERTIFICATE"}), "a CERTIFICATE")
    if exactly_one and len(blocks) != 1:
        raise ApiError("invalid_pem", f"{field}: expected exactly one CERTIFICATE block, found {len(blocks)}", {"field": field})
    if len(blocks) > MAX_BUNDLE_ITEMS:
        raise ApiError("invalid_pem", f"{field}: more than {MAX_BUNDLE_ITEMS} certificates", {"field": field})
    out = []
    for index, (_, der) in enumerate(blocks):
        try:
            out.append(PathCertificate.from_der(der))
        except CertificateParseError as exc:
            where = "" if exactly_one else f"certificate {index}: "
            raise ApiError("invalid_pem", f"{field}: {where}{exc}", {"field": field, "index": index}) from None
    return out


def read_crls(text: str, field: str) -> list[ParsedCrl]:
    """CRLs from PEM text (``X509 CRL`` blocks), strict DER each."""
    blocks = _pem_blocks(text, field, frozenset({"X509 CRL"}), "an X509 CRL")
    if len(blocks) > MAX_BUNDLE_ITEMS:
        raise ApiError("invalid_pem", f"{field}: more than {MAX_BUNDLE_ITEMS} CRLs", {"field": field})
    out = []
    for index, (_, der) in enumerate(blocks):
        try:
            out.append(ParsedCrl.from_der(der))
        except CertificateParseError as exc:
            raise ApiError("invalid_pem", f"{field}: CRL {index}: {exc}", {"field": field, "index": index}) from None
    return out


def read_private_key(text: str, field: str) -> Any:
    """One unencrypted private key (PKCS#8, or traditional RSA/EC PEM); encrypted keys are refused with a hint."""
    if "ENCRYPTED" in text:
        raise ApiError("invalid_pem", f"{field}: {_ENCRYPTED_KEY_HINT}", {"field": field, "encrypted": True})
    blocks = _pem_blocks(text, field, _PRIVATE_KEY_LABELS, "a PRIVATE KEY")
    if len(blocks) != 1:
        raise ApiError("invalid_pem", f"{field}: expected exactly one private key block, found {len(blocks)}", {"field": field})
    label, der = blocks[0]
    try:
        return serialization.load_pem_private_key(asn1_pem.armor(label, der), password=None)
    except TypeError:
        raise ApiError("invalid_pem", f"{field}: {_ENCRYPTED_KEY_HINT}", {"field": field, "encrypted": True}) from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        detail = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else "unreadable"
        raise ApiError("invalid_pem", f"{field}: not a usable private key ({detail})", {"field": field}) from None


def parse_validation_time(text: str) -> dt.datetime:
    """An RFC 3339 timestamp with a zone (``2026-11-27T08:00:00Z``) as an aware UTC datetime; 400 otherwise."""
    if not _RFC3339.match(text):
        raise invalid_field("validation_time", "must be an RFC 3339 time with a zone, like 2026-11-27T08:00:00Z")
    try:
        value = dt.datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError as exc:
        raise invalid_field("validation_time", f"is not a valid time ({exc})") from None
    return value.astimezone(dt.timezone.utc)


def _public_key_der(private_key: Any) -> bytes:
    return private_key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def public_key_shape(cert: PathCertificate) -> tuple[str | None, int | None]:
    """(key_type, key_size) for the certificate list: rsa/ec as issued certificates show them, and EdDSA."""
    info = cert.asn1.public_key
    if info.algorithm == "rsa":
        return "rsa", info.bit_size
    if info.algorithm == "ec":
        return "ec", info.bit_size
    if info.algorithm in ("ed25519", "ed448"):
        return info.algorithm, info.bit_size
    return None, None


# Parsed once per process: anchors, our CA certificates and stored CRLs are read on every validation. Only
# stored rows are cached, never what a request brings, so a client cannot fill the cache with its input.
@functools.lru_cache(maxsize=1024)
def _stored_certificate(der: bytes) -> PathCertificate:
    return PathCertificate.from_der(der)


@functools.lru_cache(maxsize=128)
def _stored_crl(der: bytes) -> ParsedCrl:
    return ParsedCrl.from_der(der)


def _ca_certificate(ca: CertificateAuthority) -> PathCertificate:
    return _stored_certificate(ca.certificate_der)


# ---------------------------------------------------------------------------
# Trust anchors
# ---------------------------------------------------------------------------


def _check_ca_certificate(cert: PathCertificate) -> None:
    """A trust anchor must be able to sign certificates: basicConstraints cA TRUE, keyCertSign if keyUsage."""
    if not cert.is_ca:
        raise ApiError("policy_violation", "certificate_pem: a trust anchor must be a CA certificate (basicConstraints cA TRUE); "
                       "this is an end-entity certificate", {"rule": "ca_certificate", "field": "certificate_pem"})
    usage = cert.asn1.key_usage_value
    if usage is not None and "key_cert_sign" not in usage.native:
        raise ApiError("policy_violation", "certificate_pem: the certificate's keyUsage does not allow keyCertSign",
                       {"rule": "key_usage", "field": "certificate_pem"})


def create_trust_anchor(tenant_id: str, body: dict[str, Any]) -> TrustAnchor:
    """Register a CA certificate the tenant trusts. 409 for a name or certificate the tenant already has."""
    cert = read_certificates(body["certificate_pem"], "certificate_pem", exactly_one=True)[0]
    _check_ca_certificate(cert)
    with write_transaction():
        _refuse_duplicate_anchor(tenant_id, body["name"], cert.fingerprint)
        try:
            return TrustAnchor.create(
                tenant=tenant_id,
                name=body["name"],
                subject=cert.subject,
                certificate_der=cert.der,
                fingerprint_sha256=cert.fingerprint,
                not_before=as_naive_utc(cert.not_before),
                not_after=as_naive_utc(cert.not_after),
            )
        except peewee.IntegrityError:
            # A concurrent insert won the race between the check and the insert.
            raise ApiError("already_exists", "a trust anchor with this name or certificate already exists") from None


def _refuse_duplicate_anchor(tenant_id: str, name: str, fingerprint: str) -> None:
    same = TrustAnchor.select().where(TrustAnchor.tenant == tenant_id)
    if same.where(TrustAnchor.name == name).exists():
        raise ApiError("already_exists", f"a trust anchor named {name!r} already exists", {"field": "name"})
    existing = same.where(TrustAnchor.fingerprint_sha256 == fingerprint).first()
    if existing is not None:
        raise ApiError("already_exists", f"this certificate is already trust anchor {existing.name!r}",
                       {"field": "certificate_pem", "id": existing.id})


def list_trust_anchors(tenant_id: str, limit: int, cursor: str | None) -> tuple[list[TrustAnchor], str | None]:
    return paginate(TrustAnchor.select().where(TrustAnchor.tenant == tenant_id), TrustAnchor, limit, cursor)


def get_trust_anchor(tenant_id: str, anchor_id: str) -> TrustAnchor:
    """The tenant's anchor, or 404 (also for another tenant's)."""
    try:
        return TrustAnchor.get((TrustAnchor.id == anchor_id) & (TrustAnchor.tenant == tenant_id))
    except peewee.DoesNotExist:
        raise not_found("trust anchor") from None


def delete_trust_anchor(tenant_id: str, anchor_id: str) -> None:
    """Remove the anchor and the CRLs stored under it."""
    with write_transaction():
        anchor = get_trust_anchor(tenant_id, anchor_id)
        TrustAnchorCrl.delete().where(TrustAnchorCrl.trust_anchor == anchor.id).execute()
        anchor.delete_instance()


def anchor_crls(anchor: TrustAnchor) -> list[TrustAnchorCrl]:
    return list(TrustAnchorCrl.select().where(TrustAnchorCrl.trust_anchor == anchor.id).order_by(TrustAnchorCrl.created_at, TrustAnchorCrl.id))


@dataclass(frozen=True)
class StoredCrl:
    row: TrustAnchorCrl
    created: bool


def store_anchor_crl(tenant_id: str, anchor_id: str, body: dict[str, Any]) -> StoredCrl:
    """Keep a CRL of an outside CA for validation: issued by the anchor itself, or by a CA that chains to it.

    ``issuer_chain_pem`` (the CRL issuer's certificate first, then any intermediates) must validate to this
    anchor now; the CRL's signature must verify with the issuer's key, which must allow cRLSign. One CRL is
    kept per issuer key: a newer one (higher CRL number, else later thisUpdate) replaces it, an older one is 409.
    """
    anchor = get_trust_anchor(tenant_id, anchor_id)
    crls = read_crls(body["crl_pem"], "crl_pem")
    if len(crls) != 1:
        raise ApiError("invalid_pem", f"crl_pem: expected exactly one X509 CRL block, found {len(crls)}", {"field": "crl_pem"})
    crl = crls[0]
    anchor_cert = _stored_certificate(anchor.certificate_der)
    issuer = anchor_cert
    if body.get("issuer_chain_pem"):
        chain = read_certificates(body["issuer_chain_pem"], "issuer_chain_pem")
        if not chain:
            raise ApiError("missing_field", "issuer_chain_pem: holds no certificate", {"field": "issuer_chain_pem"})
        issuer = chain[0]
        verdict = validate_path(issuer, intermediates=chain[1:], anchors=[Anchor(anchor_cert, "trust_anchor", anchor.id, anchor.name)],
                                at=utc_now())
        if not verdict.valid:
            codes = sorted({e.code for e in verdict.errors})
            raise ApiError("policy_violation", f"issuer_chain_pem: the CRL issuer does not validate to this trust anchor ({', '.join(codes)})",
                           {"rule": "crl_issuer", "errors": [e.as_dict() for e in verdict.errors]})
    if crl.issuer_key != issuer.subject_key:
        raise ApiError("policy_violation", f"crl_pem: the CRL is issued by {crl.issuer}, not by {issuer.subject}; "
                       "give the CRL issuer's certificate in issuer_chain_pem", {"rule": "crl_issuer"})
    problem = signature_problem(crl, issuer)
    if problem is not None:
        raise ApiError("policy_violation", f"crl_pem: {problem}", {"rule": "crl_signature"})
    usage = issuer.asn1.key_usage_value
    if usage is not None and "crl_sign" not in usage.native:
        raise ApiError("policy_violation", "crl_pem: the issuer's keyUsage does not allow cRLSign", {"rule": "crl_signature"})
    if crl.unusable_reason is not None:
        raise ApiError("policy_violation", f"crl_pem: {crl.unusable_reason}", {"rule": "crl_scope"})
    if crl.is_delta:
        raise ApiError("policy_violation", "crl_pem: delta CRLs are not stored; send the complete CRL", {"rule": "crl_scope"})
    issuer_key = hashlib.sha256(f"{issuer.subject_key}\x00{issuer.spki_sha256}".encode()).hexdigest()
    fingerprint = hashlib.sha256(crl.der).hexdigest()
    with write_transaction():
        row = TrustAnchorCrl.get_or_none((TrustAnchorCrl.trust_anchor == anchor.id) & (TrustAnchorCrl.issuer_key == issuer_key))
        if row is not None:
            if hashlib.sha256(row.crl_der).hexdigest() == fingerprint:
                return StoredCrl(row, created=False)
            stored = _stored_crl(row.crl_der)
            if _crl_order(crl) <= _crl_order(stored):
                raise ApiError("conflict", "a newer CRL of this issuer is already stored",
                               {"stored_crl_number": stored.crl_number, "stored_this_update": rfc3339(stored.this_update)})
        values = {
            "issuer": crl.issuer,
            "crl_der": crl.der,
            "crl_number": str(crl.crl_number) if crl.crl_number is not None else None,
            "this_update": as_naive_utc(crl.this_update),
            "next_update": as_naive_utc(crl.next_update) if crl.next_update else None,
            "updated_at": utcnow(),
        }
        if row is None:
            return StoredCrl(TrustAnchorCrl.create(tenant=tenant_id, trust_anchor=anchor.id, issuer_key=issuer_key, **values), created=True)
        for name, value in values.items():
            setattr(row, name, value)
        row.save()
        return StoredCrl(row, created=True)


def _crl_order(crl: ParsedCrl) -> tuple[int, dt.datetime]:
    return (crl.crl_number if crl.crl_number is not None else -1, crl.this_update)


# ---------------------------------------------------------------------------
# Import
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Imported:
    certificate: Certificate
    chain: list[PathCertificate]


def _issuing_ca(tenant_id: str, cert: PathCertificate, ca_id: str | None) -> CertificateAuthority | None:
    """The tenant's CA that issued ``cert`` (name, key identifier and signature), or None.

    With ``ca_id`` the named CA must be the issuer (422 otherwise).
    """
    if ca_id is not None:
        ca = get_ca(tenant_id, ca_id)
        ca_cert = _ca_certificate(ca)
        if cert.issuer_key != ca_cert.subject_key:
            raise ApiError("policy_violation", f"ca_id: the certificate's issuer {cert.pyca.issuer.rfc4514_string()} is not CA {ca.name!r}",
                           {"rule": "ca_id", "field": "ca_id"})
        problem = signature_problem(cert, ca_cert)
        if problem is not None:
            raise ApiError("policy_violation", f"ca_id: the certificate was not signed by CA {ca.name!r}: {problem}",
                           {"rule": "ca_id", "field": "ca_id"})
        return ca
    for ca in CertificateAuthority.select().where(CertificateAuthority.tenant == tenant_id):
        ca_cert = _ca_certificate(ca)
        if ca_cert.subject_key != cert.issuer_key:
            continue
        aki = cert.authority_key_identifier
        if aki is not None and ca_cert.subject_key_identifier is not None and aki != ca_cert.subject_key_identifier:
            continue
        if signature_problem(cert, ca_cert) is None:
            return ca
    return None


def _ordered_chain(cert: PathCertificate, chain: Sequence[PathCertificate]) -> list[PathCertificate]:
    """The chain in issuing order (issuer of ``cert`` first), refusing certificates that are not on its path."""
    remaining = list(chain)
    ordered: list[PathCertificate] = []
    current = cert
    while remaining:
        issuer = next((c for c in remaining if c.subject_key == current.issuer_key and signature_problem(current, c) is None), None)
        if issuer is None:
            break
        ordered.append(issuer)
        remaining.remove(issuer)
        if issuer.self_issued:
            break
        current = issuer
    if remaining:
        index = list(chain).index(remaining[0])
        raise ApiError("policy_violation",
                       f"chain_pem: certificate {index} ({remaining[0].subject}) is not on the issuing path of the certificate",
                       {"rule": "chain", "field": "chain_pem", "index": index})
    return ordered


def stored_sans(cert: PathCertificate) -> dict[str, list[str]]:
    """The certificate's SANs in the shape the certificates table stores (``{"dns", "ip", "uri"[, "email"]}``)."""
    names: dict[str, list[str]] = {"dns": [], "ip": [], "uri": []}
    san = cert.asn1.subject_alt_name_value
    for general_name in san or ():
        raw = bytes(general_name.chosen.contents) if general_name.name != "directory_name" else b""
        if general_name.name == "dns_name":
            names["dns"].append(raw.decode("ascii", "replace"))
        elif general_name.name == "ip_address" and len(raw) in (4, 16):
            names["ip"].append(str(ipaddress.ip_address(raw)))
        elif general_name.name == "uniform_resource_identifier":
            names["uri"].append(raw.decode("ascii", "replace"))
        elif general_name.name == "rfc822_name":
            names.setdefault("email", []).append(raw.decode("ascii", "replace"))
    return names


def subject_common_name(cert: PathCertificate) -> str | None:
    """The subject's first common name, as the certificates table stores it (at most 255 characters)."""
    for rdn in cert.asn1.subject.chosen:
        for atv in rdn:
            if atv["type"].native == "common_name":
                return str(atv["value"].native)[:255]
    return None


def import_certificate(envelope: Any, tenant_id: str, body: dict[str, Any], requested_by: str | None) -> Imported:
    """Store an outside (or our own, re-imported) certificate with its chain and, sealed, its private key."""
    cert = read_certificates(body["certificate_pem"], "certificate_pem", exactly_one=True)[0]
    serial = cert.serial_number
    if serial > MAX_SERIAL:
        raise ApiError("policy_violation", "certificate_pem: the serial number is longer than 20 octets (RFC 5280 4.1.2.2)",
                       {"rule": "serial_number", "field": "certificate_pem"})
    chain = _ordered_chain(cert, read_certificates(body["chain_pem"], "chain_pem")) if body.get("chain_pem") else []
    key_pem = None
    if body.get("private_key_pem"):
        key = read_private_key(body["private_key_pem"], "private_key_pem")
        if _public_key_der(key) != cert.asn1.public_key.dump():
            raise ApiError("policy_violation", "private_key_pem: the private key does not belong to the certificate's public key",
                           {"rule": "key_mismatch", "field": "private_key_pem"})
        if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)):
            raise invalid_field("private_key_pem", "only RSA, EC and EdDSA keys are stored")
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    ca = _issuing_ca(tenant_id, cert, body.get("ca_id"))
    key_type, key_size = public_key_shape(cert)
    cert_id = new_id()
    sealed = envelope.seal(key_pem, private_key_context(cert_id)) if key_pem is not None else None
    with write_transaction():
        existing = Certificate.get_or_none((Certificate.tenant == tenant_id) & (Certificate.fingerprint_sha256 == cert.fingerprint))
        if existing is not None:
            raise ApiError("already_exists", "this certificate is already stored", {"field": "certificate_pem", "id": existing.id})
        try:
            row = Certificate.create(
                id=cert_id,
                tenant=tenant_id,
                ca=ca.id if ca is not None else None,
                serial_number=serial_to_hex(serial),
                source="imported",
                common_name=subject_common_name(cert),
                sans=stored_sans(cert),
                key_type=key_type,
                key_size=key_size,
                not_before=as_naive_utc(cert.not_before),
                not_after=as_naive_utc(cert.not_after),
                certificate_der=cert.der,
                fingerprint_sha256=cert.fingerprint,
                tags={},
                private_key_ciphertext=sealed,
                requested_by=requested_by,
            )
            if chain:
                CertificateChain.create(certificate=row.id, chain_pem="".join(asn1_pem.armor("CERTIFICATE", c.der).decode("ascii") for c in chain))
        except peewee.IntegrityError:
            # The same serial under the same CA of ours: another certificate already holds it.
            raise ApiError("already_exists", "a certificate with this serial number from this CA is already stored",
                           {"field": "certificate_pem"}) from None
    return Imported(row, chain)


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------


def _tenant_cas(tenant_id: str) -> list[tuple[CertificateAuthority, PathCertificate]]:
    return [(ca, _ca_certificate(ca)) for ca in CertificateAuthority.select().where(CertificateAuthority.tenant == tenant_id)]


def _records(tenant_id: str, certs: Sequence[PathCertificate], cas: Sequence[tuple[CertificateAuthority, PathCertificate]]) -> dict[str, RevocationRecord]:
    """Our records about the certificates that can appear in a path: rows of the certificates table, and CAs."""
    prints = sorted({c.fingerprint for c in certs})
    records: dict[str, RevocationRecord] = {}
    for start in range(0, len(prints), 200):
        rows = Certificate.select(Certificate.fingerprint_sha256, Certificate.status, Certificate.revoked_at, Certificate.revocation_reason).where(
            (Certificate.tenant == tenant_id) & (Certificate.fingerprint_sha256.in_(prints[start:start + 200])))
        for row in rows:
            records[row.fingerprint_sha256] = RevocationRecord(row.status == "revoked", _aware(row.revoked_at), row.revocation_reason)
    for ca, cert in cas:
        # A CA is revoked when either its CA row or the row of its certificate says so.
        if ca.status == "revoked" and not (cert.fingerprint in records and records[cert.fingerprint].revoked):
            records[cert.fingerprint] = RevocationRecord(True, _aware(ca.revoked_at), ca.revocation_reason)
        elif cert.fingerprint not in records:
            records[cert.fingerprint] = RevocationRecord(False)
    return records


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    return value.replace(tzinfo=dt.timezone.utc) if value is not None and value.tzinfo is None else value


def validate_certificate(tenant_id: str, body: dict[str, Any]) -> tuple[ValidationResult, dt.datetime]:
    """``POST /certificates/validate``: path building and validation against the tenant's anchors and root CAs.

    Our intermediates serve as untrusted intermediates. Revocation (``check_revocation``, default true) comes
    from our records for certificates our CAs signed, and from CRLs given in ``crls_pem`` or stored under a
    trust anchor for the rest; nothing is fetched.
    """
    target = read_certificates(body["certificate_pem"], "certificate_pem", exactly_one=True)[0]
    chain = read_certificates(body["chain_pem"], "chain_pem") if body.get("chain_pem") else []
    given_crls = read_crls(body["crls_pem"], "crls_pem") if body.get("crls_pem") else []
    at = parse_validation_time(body["validation_time"]) if body.get("validation_time") else utc_now()
    hostname = None
    if body.get("hostname") is not None:
        try:
            hostname = normalise_hostname(body["hostname"])
        except ValueError as exc:
            raise invalid_field("hostname", str(exc)) from None
    cas = _tenant_cas(tenant_id)
    anchors = [Anchor(_stored_certificate(row.certificate_der), "trust_anchor", row.id, row.name)
               for row in TrustAnchor.select().where(TrustAnchor.tenant == tenant_id)]
    anchors += [Anchor(cert, "ca", ca.id, ca.name) for ca, cert in cas if ca.ca_type == "root"]
    intermediates = chain + [cert for ca, cert in cas if ca.ca_type != "root"]
    revocation = None
    if body.get("check_revocation", True):
        stored_crls = [_stored_crl(row.crl_der) for row in TrustAnchorCrl.select(TrustAnchorCrl.crl_der).where(TrustAnchorCrl.tenant == tenant_id)]
        revocation = RevocationSources(
            records=_records(tenant_id, [target, *chain, *(cert for _, cert in cas)], cas),
            authoritative_keys=frozenset(cert.spki_sha256 for _, cert in cas),
            crls=given_crls + stored_crls,
        )
    result = validate_path(target, intermediates=intermediates, anchors=anchors, at=at, hostname=hostname, revocation=revocation)
    return result, at
