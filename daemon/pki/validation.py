"""RFC 5280 section 6 certification path building and validation, as a pure function.

Given a target certificate, untrusted intermediates, trust anchors, revocation evidence and a time,
:func:`validate_path` builds every candidate path from the target to an anchor (issuer/subject name chaining with
RFC 5280 7.1 name comparison, AKI/SKI to order candidates, cross-signed and duplicate-subject CAs tried in turn)
and runs the basic path validation algorithm over each: signatures, validity periods, basicConstraints and
pathLenConstraint, keyUsage keyCertSign, name constraints (DNS, IP, email, URI, directoryName), certificate
policies with policy constraints, mappings and inhibitAnyPolicy, and refusal of unrecognised critical extensions.
For TLS server use (a ``hostname``) it adds extendedKeyUsage serverAuth on the leaf (and on any CA that restricts
its EKUs) and RFC 6125 host name matching.

No database, no network, no clock: the caller loads anchors, our own revocation records and CRLs, and passes the
validation time. Every refusal is a :class:`Finding` with a stable ``code``; a path is ``valid`` only when it has
no error at all, so an unknown condition can never turn into a "valid".

Index convention in findings: 0 is the target, 1 its issuer, and so on; the anchor has the last index.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import re
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import idna
from asn1crypto import core, keys, x509
from asn1crypto import crl as asn1_crl
from cryptography import x509 as cx509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa

from ..times import rfc3339

__all__ = [
    "Anchor",
    "CertificateParseError",
    "Finding",
    "ParsedCrl",
    "PathCertificate",
    "RevocationRecord",
    "RevocationSources",
    "ValidationResult",
    "hostname_matches",
    "normalise_hostname",
    "signature_problem",
    "validate_path",
]

# Longest path (intermediates) explored, and how many complete candidate paths are evaluated at most: a hostile
# bundle of same-named CAs must not make path building explode.
MAX_INTERMEDIATES: Final = 8
MAX_CANDIDATE_PATHS: Final = 32
# Certificates visited while building: same-named CAs without key identifiers would otherwise multiply the
# partial paths (20 of them at depth 8 is 5e9); past the budget the search reports what it found so far.
MAX_BUILD_STEPS: Final = 2000

ANY_POLICY: Final = "2.5.29.32.0"
SERVER_AUTH: Final = "1.3.6.1.5.5.7.3.1"
ANY_EKU: Final = "2.5.29.37.0"

#: Extensions whose meaning this engine processes (or that carry no validation semantics, like AKI/SKI and the
#: pointers to CRLs and issuers). A critical extension outside this set makes its certificate unusable
#: (RFC 5280 4.2: "A certificate-using system MUST reject the certificate if it encounters a critical extension
#: it does not recognize").
RECOGNISED_EXTENSIONS: Final[frozenset[str]] = frozenset({
    "2.5.29.19",  # basicConstraints
    "2.5.29.15",  # keyUsage
    "2.5.29.37",  # extKeyUsage
    "2.5.29.17",  # subjectAltName
    "2.5.29.30",  # nameConstraints
    "2.5.29.32",  # certificatePolicies
    "2.5.29.33",  # policyMappings
    "2.5.29.36",  # policyConstraints
    "2.5.29.54",  # inhibitAnyPolicy
    "2.5.29.14",  # subjectKeyIdentifier
    "2.5.29.35",  # authorityKeyIdentifier
    "2.5.29.31",  # cRLDistributionPoints
    "2.5.29.46",  # freshestCRL
    "2.5.29.18",  # issuerAltName
    "1.3.6.1.5.5.7.1.1",  # authorityInfoAccess
    "1.3.6.1.5.5.7.1.11",  # subjectInfoAccess
})

# CRL extensions we understand; a critical one outside this set makes the CRL unusable (RFC 5280 5.2).
_RECOGNISED_CRL_EXTENSIONS: Final = frozenset({
    "2.5.29.20",  # cRLNumber
    "2.5.29.35",  # authorityKeyIdentifier
    "2.5.29.28",  # issuingDistributionPoint
    "2.5.29.27",  # deltaCRLIndicator
    "2.5.29.46",  # freshestCRL
    "2.5.29.18",  # issuerAltName
    "1.3.6.1.5.5.7.1.1",  # authorityInfoAccess
})
_RECOGNISED_CRL_ENTRY_EXTENSIONS: Final = frozenset({
    "2.5.29.21",  # reasonCode
    "2.5.29.24",  # invalidityDate
})

# Signatures over these digests are forgeable or close to it; a path relying on one is refused.
_WEAK_DIGESTS: Final = frozenset({"md2", "md5", "sha1"})
_MIN_RSA_BITS: Final = 1024
_RECOMMENDED_RSA_BITS: Final = 2048
_SUPPORTED_CURVES: Final = frozenset({"secp256r1", "secp384r1", "secp521r1"})

# Error codes by what they say about the certificate, which decides the response's summary booleans.
_TIME_CODES: Final = frozenset({"expired", "not_yet_valid"})
_REVOCATION_CODES: Final = frozenset({"revoked"})
_PURPOSE_CODES: Final = frozenset({"hostname_mismatch", "eku_server_auth_missing"})

# What asn1crypto and pyca raise on malformed input (asn1crypto is not always tidy about which).
_PARSER_ERRORS: Final = (ValueError, TypeError, KeyError, IndexError, OverflowError, AttributeError, cx509.InvalidVersion)

_DNS_LABEL: Final = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class CertificateParseError(ValueError):
    """A certificate (or CRL) is not strict DER of the expected structure."""


@dataclass(frozen=True)
class Finding:
    """One error or warning about the validation, tied to a certificate of the path when it is about one."""

    code: str
    message: str
    certificate_index: int | None = None
    subject: str | None = None
    details: Mapping[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape the API returns."""
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.certificate_index is not None:
            out["certificate_index"] = self.certificate_index
        if self.subject is not None:
            out["subject"] = self.subject
        if self.details:
            out["details"] = dict(self.details)
        return out


# ---------------------------------------------------------------------------
# Parsed inputs
# ---------------------------------------------------------------------------


def _name_key(name: x509.Name) -> str:
    """A string equal for names that RFC 5280 7.1 says match (case-insensitive, insignificant spaces folded)."""
    return "\x1e".join(_rdn_key(rdn) for rdn in name.chosen)


def _rdn_key(rdn: x509.RelativeDistinguishedName) -> str:
    parts = []
    for atv in rdn:
        value = atv["value"]
        try:
            text = atv.prepped_value if isinstance(value.native, str) else None
        except (ValueError, TypeError):
            text = None
        # Values that are not strings (or fail string preparation) compare by their encoding, never loosely.
        parts.append(f"{atv['type'].dotted}={text if text is not None else 'der:' + value.dump().hex()}")
    return "\x1f".join(sorted(parts))


@dataclass(frozen=True, eq=False)
class PathCertificate:
    """A strictly parsed certificate with what path building and validation read from it."""

    der: bytes
    asn1: x509.Certificate
    pyca: cx509.Certificate
    fingerprint: str
    subject_key: str
    issuer_key: str
    subject: str
    spki_sha256: str
    extension_ids: tuple[str, ...]
    critical_extension_ids: frozenset[str]

    @classmethod
    def from_der(cls, der: bytes) -> PathCertificate:
        """Parse ``der`` strictly (asn1crypto and pyca must both accept it, every extension must decode)."""
        return _parse_certificate(bytes(der))

    @property
    def self_issued(self) -> bool:
        return self.subject_key == self.issuer_key

    @property
    def subject_key_identifier(self) -> bytes | None:
        return self.asn1.key_identifier

    @property
    def authority_key_identifier(self) -> bytes | None:
        return self.asn1.authority_key_identifier

    @property
    def not_before(self) -> dt.datetime:
        return self.asn1["tbs_certificate"]["validity"]["not_before"].native

    @property
    def not_after(self) -> dt.datetime:
        return self.asn1["tbs_certificate"]["validity"]["not_after"].native

    @property
    def is_ca(self) -> bool:
        """basicConstraints present with cA TRUE."""
        bc = self.asn1.basic_constraints_value
        return bool(bc is not None and bc["ca"].native)

    @property
    def serial_number(self) -> int:
        return self.asn1.serial_number


def _parse_certificate(der: bytes) -> PathCertificate:
    try:
        cert = x509.Certificate.load(der, strict=True)
        # asn1crypto parses lazily: walk everything now so a malformed extension is refused at the door.
        cert.native  # noqa: B018
        for extension in cert["tbs_certificate"]["extensions"]:
            extension["extn_value"].parsed  # noqa: B018
        if cert.serial_number <= 0:
            # RFC 5280 4.1.2.2; pyca only warns today and will refuse such certificates.
            raise ValueError("serial number is not positive")
        pyca = cx509.load_der_x509_certificate(der)
        subject_text = pyca.subject.rfc4514_string()
        spki = cert.public_key.dump()
    except _PARSER_ERRORS as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CertificateParseError(f"not a valid DER X.509 certificate ({detail[:120]})") from None
    if cert["tbs_certificate"]["version"].native != "v3" and len(cert["tbs_certificate"]["extensions"]):
        raise CertificateParseError("extensions are only allowed in v3 certificates")
    ids = tuple(ext["extn_id"].dotted for ext in cert["tbs_certificate"]["extensions"])
    critical = frozenset(ext["extn_id"].dotted for ext in cert["tbs_certificate"]["extensions"] if ext["critical"].native)
    return PathCertificate(
        der=der,
        asn1=cert,
        pyca=pyca,
        fingerprint=hashlib.sha256(der).hexdigest(),
        subject_key=_name_key(cert.subject),
        issuer_key=_name_key(cert.issuer),
        subject=subject_text or "(empty subject)",
        spki_sha256=hashlib.sha256(spki).hexdigest(),
        extension_ids=ids,
        critical_extension_ids=critical,
    )


@dataclass(frozen=True)
class Anchor:
    """A trust anchor: a certificate the tenant trusts (a registered anchor, or one of our root CAs).

    ``kind`` is ``"trust_anchor"`` or ``"ca"``; ``id`` and ``name`` identify the row, for the response.
    """

    certificate: PathCertificate
    kind: str
    id: str
    name: str


@dataclass(frozen=True)
class RevocationRecord:
    """What our own records say about a certificate one of our CAs issued (or about one of our CA certs)."""

    revoked: bool
    revoked_at: dt.datetime | None = None
    reason: str | None = None


@dataclass(frozen=True, eq=False)
class ParsedCrl:
    """A strictly parsed CRL; its signature is checked against the issuer found in the path when it is used."""

    der: bytes
    asn1: asn1_crl.CertificateList
    pyca: cx509.CertificateRevocationList
    issuer_key: str
    issuer: str
    this_update: dt.datetime
    next_update: dt.datetime | None
    crl_number: int | None
    is_delta: bool
    # serial -> (revocation date, reason name or None); removeFromCRL entries are kept apart (delta CRLs)
    revoked: Mapping[int, tuple[dt.datetime, str | None]]
    unusable_reason: str | None  # set when the CRL carries something we cannot honour (e.g. an indirect CRL)
    idp_full_names: tuple[str, ...]
    only_user_certs: bool
    only_ca_certs: bool

    @classmethod
    def from_der(cls, der: bytes) -> ParsedCrl:
        """Parse ``der`` strictly as an X.509 v2 (or v1) CRL."""
        return _parse_crl(bytes(der))

    @property
    def authority_key_identifier(self) -> bytes | None:
        return self.asn1.authority_key_identifier


def _parse_crl(der: bytes) -> ParsedCrl:
    try:
        crl = asn1_crl.CertificateList.load(der, strict=True)
        crl.native  # noqa: B018
        pyca = cx509.load_der_x509_crl(der)
        tbs = crl["tbs_cert_list"]
        issuer_text = pyca.issuer.rfc4514_string()
    except _PARSER_ERRORS as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CertificateParseError(f"not a valid DER X.509 CRL ({detail[:120]})") from None
    unusable = None
    for extension in tbs["crl_extensions"]:
        if extension["critical"].native and extension["extn_id"].dotted not in _RECOGNISED_CRL_EXTENSIONS:
            unusable = f"critical CRL extension {extension['extn_id'].dotted} is not supported"
    idp = crl.issuing_distribution_point_value
    full_names: list[str] = []
    only_user = only_ca = False
    if idp is not None:
        if idp["indirect_crl"].native:
            unusable = "indirect CRLs are not supported"
        if idp["only_some_reasons"].native:
            unusable = "CRLs partitioned by reason are not supported"
        if idp["only_contains_attribute_certs"].native:
            unusable = "attribute-certificate CRLs do not cover public-key certificates"
        only_user = bool(idp["only_contains_user_certs"].native)
        only_ca = bool(idp["only_contains_ca_certs"].native)
        point = idp["distribution_point"]
        if isinstance(point, core.Void):
            pass  # no partition by distribution point
        elif point.name == "full_name":
            full_names = [gn.native for gn in point.chosen if gn.name == "uniform_resource_identifier"]
        elif point.name == "name_relative_to_crl_issuer":
            unusable = unusable or "distribution points relative to the CRL issuer are not supported"
    revoked: dict[int, tuple[dt.datetime, str | None]] = {}
    for entry in tbs["revoked_certificates"]:
        for extension in entry["crl_entry_extensions"]:
            if extension["critical"].native and extension["extn_id"].dotted not in _RECOGNISED_CRL_ENTRY_EXTENSIONS:
                unusable = f"critical CRL entry extension {extension['extn_id'].dotted} is not supported"
        reason = entry.crl_reason_value
        revoked[entry["user_certificate"].native] = (entry["revocation_date"].native, reason.native if reason is not None else None)
    number = crl.crl_number_value
    next_update = tbs["next_update"].native
    return ParsedCrl(
        der=der,
        asn1=crl,
        pyca=pyca,
        issuer_key=_name_key(tbs["issuer"]),
        issuer=issuer_text or "(empty issuer)",
        this_update=tbs["this_update"].native,
        next_update=next_update,
        crl_number=number.native if number is not None else None,
        is_delta=crl.delta_crl_indicator_value is not None,
        revoked=revoked,
        unusable_reason=unusable,
        idp_full_names=tuple(full_names),
        only_user_certs=only_user,
        only_ca_certs=only_ca,
    )


@dataclass(frozen=True)
class RevocationSources:
    """Revocation evidence the caller gathered.

    ``authoritative_keys`` are the SHA-256 hashes of our own CAs' public keys: for a certificate signed by one of
    them, ``records`` (by certificate fingerprint) is the whole truth, and a certificate missing from the records
    is reported as undetermined. Anchors of ours are looked up in ``records`` too. ``crls`` serve everything else.
    """

    records: Mapping[str, RevocationRecord] = field(default_factory=dict)
    authoritative_keys: frozenset[str] = frozenset()
    crls: Sequence[ParsedCrl] = ()


@dataclass(frozen=True)
class ValidationResult:
    """The verdict. ``path`` runs from the target to the anchor (inclusive) of the path reported."""

    valid: bool
    chain_valid: bool
    not_expired: bool
    not_revoked: bool | None
    anchor: Anchor | None
    path: tuple[PathCertificate, ...]
    errors: tuple[Finding, ...]
    warnings: tuple[Finding, ...]
    revocation_checked: bool


# ---------------------------------------------------------------------------
# Signatures
# ---------------------------------------------------------------------------


class _SignatureProblem(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _check_signature(public_key: Any, signature: bytes, signed: bytes, algorithm_oid: str,
                     hash_algorithm: hashes.HashAlgorithm | None, parameters: Any) -> None:
    """Verify one signature; raises ``_SignatureProblem`` with ``bad_signature`` or why it cannot be checked."""
    if hash_algorithm is not None and hash_algorithm.name in _WEAK_DIGESTS:
        raise _SignatureProblem("weak_signature_algorithm", f"signature uses {hash_algorithm.name.upper()}, which is refused")
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            if not isinstance(parameters, (padding.PKCS1v15, padding.PSS)) or hash_algorithm is None:
                raise _SignatureProblem("signature_algorithm_mismatch", f"signature algorithm {algorithm_oid} does not fit an RSA key")
            public_key.verify(signature, signed, parameters, hash_algorithm)
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            if not isinstance(parameters, ec.ECDSA):
                raise _SignatureProblem("signature_algorithm_mismatch", f"signature algorithm {algorithm_oid} does not fit an EC key")
            public_key.verify(signature, signed, parameters)
        elif isinstance(public_key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
            if algorithm_oid not in ("1.3.101.112", "1.3.101.113"):
                raise _SignatureProblem("signature_algorithm_mismatch", f"signature algorithm {algorithm_oid} does not fit an EdDSA key")
            public_key.verify(signature, signed)
        else:
            raise _SignatureProblem("unsupported_public_key", "the issuer's key type is not supported")
    except InvalidSignature:
        raise _SignatureProblem("bad_signature", "signature does not verify with the issuer's public key") from None
    except (UnsupportedAlgorithm, ValueError, TypeError) as exc:
        raise _SignatureProblem("unsupported_signature_algorithm", f"signature cannot be checked: {exc}") from None


def _issuer_public_key(issuer: PathCertificate) -> Any:
    try:
        return issuer.pyca.public_key()
    except (UnsupportedAlgorithm, ValueError) as exc:
        raise _SignatureProblem("unsupported_public_key", f"the issuer's public key cannot be used: {exc}") from None


def _verify_certificate_signature(cert: PathCertificate, issuer: PathCertificate) -> None:
    tbs = cert.asn1["tbs_certificate"]
    if cert.asn1["signature_algorithm"].dump() != tbs["signature"].dump():
        raise _SignatureProblem("signature_algorithm_mismatch",
                                "signatureAlgorithm differs from the signature field inside the certificate (RFC 5280 4.1.1.2)")
    try:
        hash_algorithm = cert.pyca.signature_hash_algorithm
        parameters = cert.pyca.signature_algorithm_parameters
    except UnsupportedAlgorithm as exc:
        raise _SignatureProblem("unsupported_signature_algorithm", f"signature algorithm is not supported: {exc}") from None
    _check_signature(_issuer_public_key(issuer), cert.pyca.signature, cert.pyca.tbs_certificate_bytes,
                     cert.pyca.signature_algorithm_oid.dotted_string, hash_algorithm, parameters)


def _verify_crl_signature(crl: ParsedCrl, issuer: PathCertificate) -> None:
    if crl.asn1["signature_algorithm"].dump() != crl.asn1["tbs_cert_list"]["signature"].dump():
        raise _SignatureProblem("signature_algorithm_mismatch", "CRL signatureAlgorithm differs from its inner signature field")
    try:
        hash_algorithm = crl.pyca.signature_hash_algorithm
        parameters = crl.pyca.signature_algorithm_parameters
    except UnsupportedAlgorithm as exc:
        raise _SignatureProblem("unsupported_signature_algorithm", f"CRL signature algorithm is not supported: {exc}") from None
    _check_signature(_issuer_public_key(issuer), crl.pyca.signature, crl.pyca.tbs_certlist_bytes,
                     crl.pyca.signature_algorithm_oid.dotted_string, hash_algorithm, parameters)


def signature_problem(signed: PathCertificate | ParsedCrl, issuer: PathCertificate) -> str | None:
    """Why the certificate or CRL ``signed`` does not verify with ``issuer``'s key, or None when it does."""
    try:
        if isinstance(signed, ParsedCrl):
            _verify_crl_signature(signed, issuer)
        else:
            _verify_certificate_signature(signed, issuer)
    except _SignatureProblem as problem:
        return problem.message
    return None


def _key_problem(cert: PathCertificate) -> tuple[str, str, bool] | None:
    """(code, message, is_error) when the certificate's own public key is weak or unsupported."""
    info: keys.PublicKeyInfo = cert.asn1.public_key
    algorithm = info.algorithm
    if algorithm == "rsa":
        bits = info.bit_size
        if bits < _MIN_RSA_BITS:
            return "weak_key", f"RSA key of {bits} bits is refused", True
        if bits < _RECOMMENDED_RSA_BITS:
            return "weak_key", f"RSA key of {bits} bits is below the recommended {_RECOMMENDED_RSA_BITS}", False
        return None
    if algorithm == "ec":
        kind, curve = info.curve
        if kind != "named" or curve not in _SUPPORTED_CURVES:
            return "unsupported_public_key", f"EC curve {curve!r} is not supported", True
        return None
    if algorithm in ("ed25519", "ed448", "rsassa_pss"):
        return None
    return "unsupported_public_key", f"public key algorithm {algorithm!r} is not supported", True


# ---------------------------------------------------------------------------
# Names: host names, name constraints
# ---------------------------------------------------------------------------


def normalise_hostname(hostname: str) -> str:
    """Lower-case A-label form of a DNS host name, or the canonical text of an IP literal.

    Raises ``ValueError`` for anything that is neither (the API answers 400).
    """
    text = hostname.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    text = text.lower()
    if text.endswith("."):
        text = text[:-1]  # the absolute form names the same host
    if not text or len(text) > 253:
        raise ValueError("is not a DNS name or IP address")
    try:
        ascii_name = text if text.isascii() else idna.encode(text, uts46=True).decode("ascii")
    except idna.IDNAError:
        raise ValueError("is not a valid internationalised DNS name") from None
    if not all(_DNS_LABEL.match(label) for label in ascii_name.split(".")):
        raise ValueError("is not a DNS name or IP address (letters, digits and hyphens per label)")
    return ascii_name


def _dns_presented(name: str) -> str | None:
    """A SAN dNSName as compared: lower case, no trailing dot; None when it cannot be a host name at all."""
    if not name or not name.isascii():
        return None
    name = name.lower()
    if name.endswith("."):
        name = name[:-1]
    return name or None


def hostname_matches(reference: str, presented: str) -> bool:
    """RFC 6125 6.4: does SAN dNSName ``presented`` match the normalised DNS ``reference``?

    A wildcard is honoured only as the complete left-most label (``*.example.com``), matches exactly one
    non-empty label, and needs at least two labels after it; partial wildcards (``w*.example.com``) never match.
    """
    name = _dns_presented(presented)
    if name is None:
        return False
    if "*" not in name:
        return name == reference
    labels = name.split(".")
    if labels[0] != "*" or any("*" in label for label in labels[1:]) or len(labels) < 3:
        return False
    ref_labels = reference.split(".")
    if len(ref_labels) != len(labels) or not ref_labels[0]:
        return False
    return ref_labels[1:] == labels[1:]


def _dns_in_subtree(name: str, constraint: str) -> bool:
    """RFC 5280 4.2.1.10: ``name`` is ``constraint`` or ends in ``.constraint``; ``.example.com`` means below only."""
    constraint = constraint.lower()
    if constraint.endswith("."):
        constraint = constraint[:-1]
    if constraint == "":
        return True
    if constraint.startswith("."):
        return name.endswith(constraint)
    return name == constraint or name.endswith("." + constraint)


def _wildcard_may_cover(name: str, constraint: str) -> bool:
    """Could wildcard SAN ``name`` (``*.X``) stand for a host inside the subtree ``constraint``?

    ``*.example.com`` covers ``foo.example.com``, so an excluded subtree ``foo.example.com`` is hit although the
    SAN itself is not a subdomain of it.
    """
    if not name.startswith("*."):
        return False
    base = name[2:]
    target = constraint.lower().rstrip(".").lstrip(".")
    return "." in target and target.split(".", 1)[1] == base and target.split(".", 1)[0] != ""


def _ip_in_subtree(address: bytes, constraint: bytes) -> bool:
    half = len(constraint) // 2
    if len(address) != half:
        return False
    network, mask = constraint[:half], constraint[half:]
    return all((a & m) == (n & m) for a, n, m in zip(address, network, mask))


def _valid_ip_constraint(constraint: bytes) -> bool:
    if len(constraint) not in (8, 32):
        return False
    mask = int.from_bytes(constraint[len(constraint) // 2:], "big")
    bits = len(constraint) // 2 * 8
    inverted = ~mask & ((1 << bits) - 1)
    # A contiguous prefix mask: ones followed only by zeros.
    return inverted & (inverted + 1) == 0


def _email_in_subtree(address: str, constraint: str) -> bool:
    """RFC 5280 4.2.1.10 rfc822Name: a mailbox, all mailboxes on a host, or (leading dot) on a domain's hosts."""
    if "@" not in address:
        return False
    local, _, host = address.rpartition("@")
    host = host.lower()
    if "@" in constraint:
        c_local, _, c_host = constraint.rpartition("@")
        return local == c_local and host == c_host.lower()
    constraint = constraint.lower()
    if constraint.startswith("."):
        return host.endswith(constraint)
    return host == constraint


def _uri_host(uri: str) -> str | None:
    try:
        host = urllib.parse.urlsplit(uri).hostname
    except ValueError:
        return None
    return host.lower().rstrip(".") if host else None


def _uri_in_subtree(host: str, constraint: str) -> bool:
    constraint = constraint.lower()
    if constraint.startswith("."):
        return host.endswith(constraint)
    return host == constraint


def _dn_in_subtree(name_rdns: list[str], constraint_rdns: list[str]) -> bool:
    return len(constraint_rdns) <= len(name_rdns) and name_rdns[: len(constraint_rdns)] == constraint_rdns


@dataclass(frozen=True)
class _Names:
    """The names of one certificate that name constraints apply to."""

    dns: tuple[str, ...] = ()
    ips: tuple[bytes, ...] = ()
    emails: tuple[str, ...] = ()
    uris: tuple[str, ...] = ()
    dirnames: tuple[tuple[str, ...], ...] = ()
    other_kinds: frozenset[str] = frozenset()
    malformed: tuple[str, ...] = ()


def _certificate_names(cert: PathCertificate, *, is_target: bool) -> _Names:
    dns: list[str] = []
    ips: list[bytes] = []
    emails: list[str] = []
    uris: list[str] = []
    dirnames: list[tuple[str, ...]] = []
    other: set[str] = set()
    malformed: list[str] = []
    subject = cert.asn1.subject
    if len(subject.chosen):
        dirnames.append(tuple(_rdn_key(rdn) for rdn in subject.chosen))
    for rdn in subject.chosen:
        for atv in rdn:
            if atv["type"].native == "email_address":
                emails.append(str(atv["value"].native))
    san = cert.asn1.subject_alt_name_value
    if san is not None:
        for general_name in san:
            kind = general_name.name
            raw = bytes(general_name.chosen.contents) if kind in ("dns_name", "rfc822_name", "uniform_resource_identifier", "ip_address") else b""
            if kind == "dns_name":
                text = raw.decode("ascii", "replace")
                presented = _dns_presented(text)
                if presented is None:
                    malformed.append(f"DNS name {text!r}")
                else:
                    dns.append(presented)
            elif kind == "ip_address":
                if len(raw) not in (4, 16):
                    malformed.append("IP address that is not 4 or 16 octets")
                else:
                    ips.append(raw)
            elif kind == "rfc822_name":
                emails.append(raw.decode("ascii", "replace"))
            elif kind == "uniform_resource_identifier":
                uris.append(raw.decode("ascii", "replace"))
            elif kind == "directory_name":
                dirnames.append(tuple(_rdn_key(rdn) for rdn in general_name.chosen.chosen))
            else:
                other.add(kind)
    elif is_target:
        # Without a SAN, relying parties that still read a host name from the CN (OpenSSL does) must see it
        # constrained too, or a CA limited to example.com could mint CN=bank.com for them.
        for rdn in subject.chosen:
            for atv in rdn:
                if atv["type"].native == "common_name":
                    value = str(atv["value"].native).lower().rstrip(".")
                    labels = value.split(".")
                    if len(labels) > 1 and all(_DNS_LABEL.match(label) for label in labels):
                        dns.append(value)
    return _Names(tuple(dns), tuple(ips), tuple(emails), tuple(uris), tuple(dirnames), frozenset(other), tuple(malformed))


@dataclass
class _Subtrees:
    """Name constraints of one CA, by name form."""

    dns: list[str] = field(default_factory=list)
    ips: list[bytes] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)
    uris: list[str] = field(default_factory=list)
    dirnames: list[tuple[str, ...]] = field(default_factory=list)
    other_kinds: set[str] = field(default_factory=set)


def _parse_subtrees(subtrees: Any) -> _Subtrees:
    out = _Subtrees()
    for subtree in subtrees:
        if subtree["minimum"].native != 0 or subtree["maximum"].native is not None:
            raise ValueError("name constraint subtrees must have minimum 0 and no maximum (RFC 5280 4.2.1.10)")
        base = subtree["base"]
        kind = base.name
        if kind == "dns_name":
            out.dns.append(bytes(base.chosen.contents).decode("ascii"))
        elif kind == "ip_address":
            raw = bytes(base.chosen.contents)
            if not _valid_ip_constraint(raw):
                raise ValueError("an IP name constraint must be an address and a contiguous mask (8 or 32 octets)")
            out.ips.append(raw)
        elif kind == "rfc822_name":
            out.emails.append(bytes(base.chosen.contents).decode("ascii"))
        elif kind == "uniform_resource_identifier":
            out.uris.append(bytes(base.chosen.contents).decode("ascii"))
        elif kind == "directory_name":
            out.dirnames.append(tuple(_rdn_key(rdn) for rdn in base.chosen.chosen))
        else:
            out.other_kinds.add(kind)
    return out


@dataclass
class _NameConstraintState:
    """Accumulated constraints: every permitted layer must admit a name of its form; no excluded subtree may."""

    permitted_layers: list[tuple[str, _Subtrees]] = field(default_factory=list)
    excluded_layers: list[tuple[str, _Subtrees]] = field(default_factory=list)

    def add(self, ca: PathCertificate) -> None:
        value = ca.asn1.name_constraints_value
        if value is None:
            return
        if value["permitted_subtrees"].native is not None:
            self.permitted_layers.append((ca.subject, _parse_subtrees(value["permitted_subtrees"])))
        if value["excluded_subtrees"].native is not None:
            self.excluded_layers.append((ca.subject, _parse_subtrees(value["excluded_subtrees"])))

    def violations(self, names: _Names) -> list[tuple[str, str, dict[str, Any]]]:
        """(code, message, details) for every name outside the permitted or inside an excluded subtree."""
        out: list[tuple[str, str, dict[str, Any]]] = []
        checks: list[tuple[str, str, Iterable[Any], Any, Any]] = [
            ("dns", "DNS name", names.dns, _dns_in_subtree, lambda v: v),
            ("ips", "IP address", names.ips, _ip_in_subtree, lambda v: str(ipaddress.ip_address(v))),
            ("emails", "email address", names.emails, _email_in_subtree, lambda v: v),
            ("dirnames", "directory name", names.dirnames, lambda n, c: _dn_in_subtree(list(n), list(c)), lambda v: "/".join(v)),
        ]
        for form, label, values, inside, show in checks:
            for value in values:
                for ca_subject, subtrees in self.permitted_layers:
                    allowed = getattr(subtrees, form)
                    if allowed and not any(inside(value, c) for c in allowed):
                        out.append(("name_constraint_violation", f"{label} {show(value)} is outside the permitted subtrees of {ca_subject}",
                                    {"name_type": form, "name": show(value), "constraint": "permitted", "ca": ca_subject}))
                for ca_subject, subtrees in self.excluded_layers:
                    excluded = getattr(subtrees, form)
                    hit = any(inside(value, c) for c in excluded)
                    if form == "dns" and not hit:
                        hit = any(_wildcard_may_cover(value, c) for c in excluded)
                    if hit:
                        out.append(("name_constraint_violation", f"{label} {show(value)} is inside an excluded subtree of {ca_subject}",
                                    {"name_type": form, "name": show(value), "constraint": "excluded", "ca": ca_subject}))
        for uri in names.uris:
            host = _uri_host(uri)
            for ca_subject, subtrees in self.permitted_layers + self.excluded_layers:
                if subtrees.uris and host is None:
                    out.append(("name_constraint_violation", f"URI {uri} has no host to check against the URI constraints of {ca_subject}",
                                {"name_type": "uris", "name": uri, "ca": ca_subject}))
            if host is None:
                continue
            for ca_subject, subtrees in self.permitted_layers:
                if subtrees.uris and not any(_uri_in_subtree(host, c) for c in subtrees.uris):
                    out.append(("name_constraint_violation", f"URI {uri} is outside the permitted subtrees of {ca_subject}",
                                {"name_type": "uris", "name": uri, "constraint": "permitted", "ca": ca_subject}))
            for ca_subject, subtrees in self.excluded_layers:
                if any(_uri_in_subtree(host, c) for c in subtrees.uris):
                    out.append(("name_constraint_violation", f"URI {uri} is inside an excluded subtree of {ca_subject}",
                                {"name_type": "uris", "name": uri, "constraint": "excluded", "ca": ca_subject}))
        for kind in sorted(names.other_kinds):
            for ca_subject, subtrees in self.permitted_layers + self.excluded_layers:
                if kind in subtrees.other_kinds:
                    out.append(("unsupported_name_constraint",
                                f"{kind} names are constrained by {ca_subject} in a form this validator does not process",
                                {"name_type": kind, "ca": ca_subject}))
        return out


# ---------------------------------------------------------------------------
# Path building
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Candidate:
    certificates: tuple[PathCertificate, ...]  # target first, topmost intermediate last
    anchor: Anchor | None


def _key_id_compatible(child: PathCertificate, issuer: PathCertificate) -> bool:
    aki, ski = child.authority_key_identifier, issuer.subject_key_identifier
    return aki is None or ski is None or aki == ski


def _issuer_order(child: PathCertificate, at: dt.datetime) -> Any:
    def key(issuer: PathCertificate) -> tuple[int, int, float]:
        matching_id = 0 if child.authority_key_identifier and child.authority_key_identifier == issuer.subject_key_identifier else 1
        current = 0 if issuer.not_before <= at <= issuer.not_after else 1
        return (matching_id, current, -issuer.not_before.timestamp())
    return key


def _build_candidates(target: PathCertificate, pool: Sequence[PathCertificate], anchors: Sequence[Anchor],
                      at: dt.datetime) -> tuple[list[_Candidate], _Candidate]:
    """Every path from ``target`` to an anchor (shortest first), and the longest dead end for error reporting."""
    by_subject: dict[str, list[PathCertificate]] = {}
    for cert in pool:
        by_subject.setdefault(cert.subject_key, []).append(cert)
    anchors_by_subject: dict[str, list[Anchor]] = {}
    for anchor in anchors:
        anchors_by_subject.setdefault(anchor.certificate.subject_key, []).append(anchor)

    complete: list[_Candidate] = []
    dead_end = _Candidate((target,), None)
    steps = 0

    def walk(chain: tuple[PathCertificate, ...], seen_keys: frozenset[tuple[str, str]]) -> None:
        nonlocal dead_end, steps
        steps += 1
        if len(complete) >= MAX_CANDIDATE_PATHS or steps > MAX_BUILD_STEPS:
            return
        current = chain[-1]
        found = False
        order = _issuer_order(current, at)
        for anchor in sorted(anchors_by_subject.get(current.issuer_key, []), key=lambda a: order(a.certificate)):
            if anchor.certificate.fingerprint == current.fingerprint:
                continue
            complete.append(_Candidate(chain, anchor))
            found = True
        if len(chain) <= MAX_INTERMEDIATES:
            for issuer in sorted(by_subject.get(current.issuer_key, []), key=order):
                identity = (issuer.subject_key, issuer.spki_sha256)
                if identity in seen_keys or any(issuer.fingerprint == c.fingerprint for c in chain):
                    continue
                if not _key_id_compatible(current, issuer) and any(
                        _key_id_compatible(current, other) for other in by_subject[current.issuer_key]):
                    continue  # a better-matching issuer exists; this one is only tried when none does
                found = True
                walk(chain + (issuer,), seen_keys | {identity})
        if not found and len(chain) > len(dead_end.certificates):
            dead_end = _Candidate(chain, None)

    walk((target,), frozenset({(target.subject_key, target.spki_sha256)}))
    complete.sort(key=lambda c: len(c.certificates))
    return complete, dead_end


# ---------------------------------------------------------------------------
# Validation of one path
# ---------------------------------------------------------------------------


class _Report:
    def __init__(self, path: Sequence[PathCertificate]):
        self.path = path
        self.errors: list[Finding] = []
        self.warnings: list[Finding] = []
        self.revocation: list[bool | None] = []

    def error(self, code: str, message: str, index: int | None = None, **details: Any) -> None:
        self.errors.append(self._finding(code, message, index, details))

    def warn(self, code: str, message: str, index: int | None = None, **details: Any) -> None:
        self.warnings.append(self._finding(code, message, index, details))

    def _finding(self, code: str, message: str, index: int | None, details: dict[str, Any]) -> Finding:
        subject = self.path[index].subject if index is not None and index < len(self.path) else None
        return Finding(code, message, index, subject, details or None)


def _check_validity(report: _Report, cert: PathCertificate, index: int, at: dt.datetime) -> None:
    if at < cert.not_before:
        report.error("not_yet_valid", f"not valid before {rfc3339(cert.not_before)}", index, not_before=rfc3339(cert.not_before))
    elif at > cert.not_after:
        report.error("expired", f"expired at {rfc3339(cert.not_after)}", index, not_after=rfc3339(cert.not_after))


def _check_extensions(report: _Report, cert: PathCertificate, index: int) -> None:
    if len(set(cert.extension_ids)) != len(cert.extension_ids):
        report.error("duplicate_extension", "an extension appears more than once (RFC 5280 4.2)", index)
    for oid in sorted(cert.critical_extension_ids - RECOGNISED_EXTENSIONS):
        report.error("unknown_critical_extension", f"critical extension {oid} is not recognised", index, oid=oid)


def _check_ca(report: _Report, cert: PathCertificate, index: int) -> None:
    """RFC 5280 6.1.4 (k) and (n): a CA certificate must say so, and be allowed to sign certificates."""
    bc = cert.asn1.basic_constraints_value
    if bc is None:
        report.error("missing_basic_constraints", "issues certificates but has no basicConstraints extension", index)
    elif not bc["ca"].native:
        report.error("not_a_ca", "issues certificates but basicConstraints says cA FALSE", index)
    usage = cert.asn1.key_usage_value
    if usage is None:
        report.warn("key_usage_absent", "CA certificate has no keyUsage extension (RFC 5280 4.2.1.3 requires one)", index)
    elif "key_cert_sign" not in usage.native:
        report.error("key_cert_sign_missing", "keyUsage of a CA in the path lacks keyCertSign", index,
                     key_usage=sorted(usage.native))


def _check_purpose(report: _Report, path: Sequence[PathCertificate], hostname: str) -> None:
    """TLS server use: serverAuth on the leaf and on every CA that restricts EKUs, and the host name in the SAN."""
    leaf = path[0]
    eku = leaf.asn1.extended_key_usage_value
    if eku is None:
        report.error("eku_server_auth_missing", "no extendedKeyUsage; serverAuth is required to authenticate a TLS server", 0)
    elif SERVER_AUTH not in {p.dotted for p in eku}:
        report.error("eku_server_auth_missing", "extendedKeyUsage does not include serverAuth", 0,
                     ext_key_usage=[p.dotted for p in eku])
    for index, cert in enumerate(path[1:], start=1):
        ca_eku = cert.asn1.extended_key_usage_value
        if ca_eku is not None and not {SERVER_AUTH, ANY_EKU} & {p.dotted for p in ca_eku}:
            report.error("eku_server_auth_missing", "a CA in the path restricts extendedKeyUsage and excludes serverAuth", index)
    san = leaf.asn1.subject_alt_name_value
    try:
        reference_ip = ipaddress.ip_address(hostname).packed
    except ValueError:
        reference_ip = None
    matched = False
    if san is not None:
        for general_name in san:
            if reference_ip is not None and general_name.name == "ip_address":
                matched = matched or bytes(general_name.chosen.contents) == reference_ip
            elif reference_ip is None and general_name.name == "dns_name":
                presented = bytes(general_name.chosen.contents).decode("ascii", "replace")
                matched = matched or hostname_matches(hostname, presented)
    if not matched:
        kind = "IP address" if reference_ip is not None else "DNS name"
        report.error("hostname_mismatch", f"no subjectAltName {kind} matches {hostname} (the subject CN is not used)", 0,
                     hostname=hostname)


def _policy_ids(cert: PathCertificate) -> set[str] | None:
    policies = cert.asn1.certificate_policies_value
    return None if policies is None else {p["policy_identifier"].dotted for p in policies}


def _process_policies(report: _Report, ordered: Sequence[tuple[int, PathCertificate]]) -> None:
    """RFC 5280 6.1.3 (d)-(f), 6.1.4 (a)-(b), (h)-(j) and 6.1.5 over sets of policies instead of the tree.

    The user-initial-policy-set is anyPolicy and no initial flag is set, so only the CAs' own policyConstraints
    and inhibitAnyPolicy can make a path fail here; qualifiers are not kept, which the outcome does not need.
    """
    n = len(ordered)
    valid: set[str] | None = {ANY_POLICY}
    explicit = inhibit_any = mapping = n + 1
    for position, (index, cert) in enumerate(ordered, start=1):
        is_last = position == n
        policies = _policy_ids(cert)
        if policies is not None and valid is not None:
            any_allowed = inhibit_any > 0 or (not is_last and cert.self_issued)
            new = {p for p in policies - {ANY_POLICY} if p in valid or ANY_POLICY in valid}
            if ANY_POLICY in policies and any_allowed:
                new |= valid
            valid = new or None
        else:
            valid = None
        if explicit == 0 and valid is None:
            report.error("no_valid_policy", "a CA requires an explicit certificate policy and none is valid for the path", index)
            return
        if is_last:
            break
        mappings = cert.asn1.policy_mappings_value
        if mappings is not None:
            for pair in mappings:
                issuer_domain, subject_domain = pair["issuer_domain_policy"].dotted, pair["subject_domain_policy"].dotted
                if ANY_POLICY in (issuer_domain, subject_domain):
                    report.error("invalid_policy_mapping", "policyMappings must not map anyPolicy (RFC 5280 6.1.4 (a))", index)
                    return
                if valid is not None and (issuer_domain in valid or ANY_POLICY in valid):
                    if mapping > 0:
                        valid.add(subject_domain)
                    valid.discard(issuer_domain)
            if valid is not None and not valid:
                valid = None
        if not cert.self_issued:
            explicit = max(explicit - 1, 0)
            mapping = max(mapping - 1, 0)
            inhibit_any = max(inhibit_any - 1, 0)
        constraints = cert.asn1.policy_constraints_value
        if constraints is not None:
            if constraints["require_explicit_policy"].native is not None:
                explicit = min(explicit, constraints["require_explicit_policy"].native)
            if constraints["inhibit_policy_mapping"].native is not None:
                mapping = min(mapping, constraints["inhibit_policy_mapping"].native)
        inhibit = cert.asn1.inhibit_any_policy_value
        if inhibit is not None:
            inhibit_any = min(inhibit_any, inhibit.native)
    # Wrap-up (6.1.5 (a)-(b)) for the target.
    index, target = ordered[-1]
    explicit = max(explicit - 1, 0)
    constraints = target.asn1.policy_constraints_value
    if constraints is not None and constraints["require_explicit_policy"].native == 0:
        explicit = 0
    if explicit == 0 and not valid:
        report.error("no_valid_policy", "the path requires an explicit certificate policy and none is valid", index)


def _evaluate(candidate: _Candidate, at: dt.datetime, hostname: str | None, sources: RevocationSources | None,
              anchor_is_target: bool = False) -> _Report:
    """Run the checks over one path; ``report.path`` is target first and ends with the anchor when there is one."""
    certs = list(candidate.certificates)
    anchor = candidate.anchor
    path = certs + ([anchor.certificate] if anchor is not None and not anchor_is_target else [])
    report = _Report(path)
    top = len(path) - 1

    # Findings about every certificate on its own.
    for index, cert in enumerate(path):
        _check_validity(report, cert, index, at)
        _check_extensions(report, cert, index)
        problem = _key_problem(cert)
        if problem is not None:
            code, message, is_error = problem
            (report.error if is_error else report.warn)(code, message, index)

    if anchor is None:
        top_cert = path[-1]
        self_signed = False
        if top_cert.self_issued:
            try:
                _verify_certificate_signature(top_cert, top_cert)
                self_signed = True
            except _SignatureProblem:
                self_signed = False
        if self_signed and top == 0:
            report.error("self_signed", "self-signed certificate that is not a trust anchor of this tenant", 0)
        elif self_signed:
            report.error("untrusted_root", "the path ends in a self-signed certificate that is not a trust anchor", top)
        else:
            report.error("issuer_not_found", "no issuer for this certificate among the chain, our CAs and the trust anchors", top)
    if anchor is not None and not anchor_is_target:
        # The anchor is trusted as given, but it must still be a usable CA (RFC 5280 leaves this open; OpenSSL
        # and browsers check it, and an anchor that cannot sign certificates would be a configuration error).
        _check_ca(report, anchor.certificate, top)

    # Walk down from the anchor (RFC 5280 order), certificates above index 0 act as CAs.
    ordered = [(index, path[index]) for index in range(len(certs) - 1, -1, -1)]
    # Without an anchor (a dead end) the checks still run between the certificates we have.
    working_issuer = anchor.certificate if anchor is not None and not anchor_is_target else None
    max_path_length = len(certs)
    constraints = _NameConstraintState()
    if working_issuer is not None:
        anchor_bc = working_issuer.asn1.basic_constraints_value
        if anchor_bc is not None and anchor_bc["path_len_constraint"].native is not None:
            max_path_length = min(max_path_length, anchor_bc["path_len_constraint"].native)
        try:
            constraints.add(working_issuer)
        except ValueError as exc:
            report.error("invalid_name_constraints", str(exc), top)
    path_len_source = working_issuer.subject if working_issuer is not None else None
    for index, cert in ordered:
        is_target = index == 0
        if working_issuer is not None:
            if cert.issuer_key != working_issuer.subject_key:
                report.error("issuer_name_mismatch", "issuer name does not match the subject of the next certificate", index)
            try:
                _verify_certificate_signature(cert, working_issuer)
            except _SignatureProblem as problem:
                report.error(problem.code, problem.message, index)
        if not (cert.self_issued and not is_target):
            names = _certificate_names(cert, is_target=is_target)
            for description in names.malformed:
                report.error("malformed_name", f"subjectAltName contains a malformed {description}", index)
            for code, message, details in constraints.violations(names):
                report.error(code, message, index, **details)
        if is_target:
            break
        # Preparation for the next certificate (6.1.4).
        try:
            constraints.add(cert)
        except ValueError as exc:
            report.error("invalid_name_constraints", str(exc), index)
        _check_ca(report, cert, index)
        if not cert.self_issued:
            if max_path_length <= 0:
                report.error("path_length_exceeded",
                             f"the pathLenConstraint of {path_len_source or 'a CA above'} allows no further CA certificates here", index)
            max_path_length -= 1
        bc = cert.asn1.basic_constraints_value
        if bc is not None and bc["path_len_constraint"].native is not None and bc["path_len_constraint"].native < max_path_length:
            max_path_length = bc["path_len_constraint"].native
            path_len_source = cert.subject
        working_issuer = cert

    if anchor is not None and not anchor_is_target:
        _process_policies(report, ordered)
    if hostname is not None:
        _check_purpose(report, path, hostname)
    if sources is not None:
        _check_revocation(report, path, anchor, at, sources, anchor_is_target)
    return report


# ---------------------------------------------------------------------------
# Revocation
# ---------------------------------------------------------------------------


def _crl_covers(crl: ParsedCrl, cert: PathCertificate) -> bool:
    if crl.only_user_certs and cert.is_ca:
        return False
    if crl.only_ca_certs and not cert.is_ca:
        return False
    if crl.idp_full_names:
        points = cert.asn1.crl_distribution_points
        cert_urls = {gn.native for dp in points
                     if not isinstance(dp["distribution_point"], core.Void) and dp["distribution_point"].name == "full_name"
                     for gn in dp["distribution_point"].chosen if gn.name == "uniform_resource_identifier"}
        return bool(cert_urls & set(crl.idp_full_names))
    return True


def _crl_status(report: _Report, index: int, cert: PathCertificate, issuer: PathCertificate, at: dt.datetime,
                crls: Sequence[ParsedCrl]) -> bool | None:
    """True: a fresh complete CRL of the issuer does not list it; False: revoked; None: undetermined."""
    fresh_complete = False
    candidates = [c for c in crls if c.issuer_key == cert.issuer_key]
    if not candidates:
        report.warn("revocation_unknown", "no CRL of this certificate's issuer is known (fetching is off)", index)
        return None
    listed: tuple[dt.datetime, str | None] | None = None
    for crl in candidates:
        if crl.unusable_reason is not None:
            report.warn("crl_unusable", f"CRL of {crl.issuer} ignored: {crl.unusable_reason}", index)
            continue
        if crl.authority_key_identifier and issuer.subject_key_identifier and crl.authority_key_identifier != issuer.subject_key_identifier:
            continue  # another key of the same CA name; not evidence about this certificate
        try:
            _verify_crl_signature(crl, issuer)
        except _SignatureProblem as problem:
            report.warn("crl_signature_invalid", f"CRL of {crl.issuer} ignored: {problem.message}", index)
            continue
        usage = issuer.asn1.key_usage_value
        if usage is not None and "crl_sign" not in usage.native:
            report.warn("crl_signature_invalid", f"CRL of {crl.issuer} ignored: the issuer's keyUsage lacks cRLSign", index)
            continue
        if not _crl_covers(crl, cert):
            continue
        entry = crl.revoked.get(cert.serial_number)
        if entry is not None and entry[1] != "remove_from_crl":
            listed = entry
        elif crl.is_delta:
            continue
        elif crl.next_update is not None and crl.this_update <= at <= crl.next_update:
            fresh_complete = True
        else:
            report.warn("crl_stale", f"CRL of {crl.issuer} is not current at the validation time "
                        f"(thisUpdate {rfc3339(crl.this_update)}, nextUpdate {rfc3339(crl.next_update)})", index)
    if listed is not None:
        revoked_at, reason = listed
        report.error("revoked", f"revoked on {rfc3339(revoked_at)}" + (f" ({reason})" if reason else ""), index,
                     revoked_at=rfc3339(revoked_at), reason=reason, source="crl")
        return False
    if fresh_complete:
        return True
    report.warn("revocation_unknown", "no current CRL of this certificate's issuer covers it", index)
    return None


def _check_revocation(report: _Report, path: Sequence[PathCertificate], anchor: Anchor | None, at: dt.datetime,
                      sources: RevocationSources, anchor_is_target: bool) -> None:
    statuses: list[bool | None] = []
    last = len(path) - 1
    for index, cert in enumerate(path):
        is_anchor = anchor is not None and index == last
        record = sources.records.get(cert.fingerprint)
        if is_anchor:
            # Anchors are trusted as configured; only our own CAs have a revocation state to honour.
            if record is not None and record.revoked:
                report.error("revoked", "this CA of ours has been revoked", index, source="records",
                             revoked_at=rfc3339(record.revoked_at), reason=record.reason)
            if record is not None:
                statuses.append(not record.revoked)
            continue
        issuer = path[index + 1] if index < last else None
        if issuer is None:
            statuses.append(None)  # a dead end: nothing signed it that we know of
            continue
        if issuer.spki_sha256 in sources.authoritative_keys:
            if record is None:
                report.warn("revocation_unknown", "signed by one of our CAs, but not found in our records", index)
                statuses.append(None)
            elif record.revoked:
                report.error("revoked", "revoked" + (f" on {rfc3339(record.revoked_at)}" if record.revoked_at else "")
                             + (f" ({record.reason})" if record.reason else ""), index, source="records",
                             revoked_at=rfc3339(record.revoked_at), reason=record.reason)
                statuses.append(False)
            else:
                statuses.append(True)
            continue
        statuses.append(_crl_status(report, index, cert, issuer, at, sources.crls))
    report.revocation = statuses


# ---------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------


def _rank(report: _Report) -> tuple[int, int]:
    chain_errors = sum(1 for e in report.errors if e.code not in _TIME_CODES | _REVOCATION_CODES | _PURPOSE_CODES)
    return chain_errors, len(report.errors)


def validate_path(
    target: PathCertificate,
    *,
    intermediates: Sequence[PathCertificate],
    anchors: Sequence[Anchor],
    at: dt.datetime,
    hostname: str | None = None,
    revocation: RevocationSources | None = None,
) -> ValidationResult:
    """Build and validate the paths from ``target`` to ``anchors`` at time ``at`` (timezone-aware).

    ``intermediates`` are untrusted: they only help to build paths. ``hostname`` (already normalised with
    :func:`normalise_hostname`) adds the TLS server checks. ``revocation`` None skips revocation checking, which
    the result reports with ``not_revoked`` None. The first path without errors wins; when every path fails,
    the one with the fewest chain errors is reported.
    """
    if at.tzinfo is None:
        raise ValueError("validation time must be timezone-aware")
    anchors = _unique_anchors(anchors)
    # Anchors are terminal: a copy of an anchor among the intermediates is only ever reached as the anchor.
    anchor_prints = {a.certificate.fingerprint for a in anchors}
    pool = _unique(c for c in intermediates if c.fingerprint != target.fingerprint and c.fingerprint not in anchor_prints)
    same_as_anchor = [a for a in anchors if a.certificate.fingerprint == target.fingerprint]
    reports: list[tuple[_Report, Anchor | None]] = []
    if same_as_anchor:
        anchor = same_as_anchor[0]
        reports.append((_evaluate(_Candidate((target,), anchor), at, hostname, revocation, anchor_is_target=True), anchor))
    else:
        complete, dead_end = _build_candidates(target, pool, anchors, at)
        for candidate in complete:
            report = _evaluate(candidate, at, hostname, revocation)
            reports.append((report, candidate.anchor))
            if not report.errors:
                break
        if not complete:
            reports.append((_evaluate(dead_end, at, hostname, revocation), None))
    chosen, anchor = next(((r, a) for r, a in reports if not r.errors), None) or min(reports, key=lambda item: _rank(item[0]))
    return _result(chosen, anchor, revocation is not None)


def _result(report: _Report, anchor: Anchor | None, revocation_checked: bool) -> ValidationResult:
    codes = [e.code for e in report.errors]
    chain_valid = anchor is not None and all(c in _TIME_CODES | _REVOCATION_CODES | _PURPOSE_CODES for c in codes)
    not_expired = not any(c in _TIME_CODES for c in codes)
    warnings = list(report.warnings)
    if not revocation_checked:
        not_revoked: bool | None = None
        warnings.append(Finding("revocation_not_checked", "revocation was not checked (check_revocation is false)"))
    elif any(c in _REVOCATION_CODES for c in codes):
        not_revoked = False
    elif anchor is not None and report.revocation and all(s is True for s in report.revocation):
        not_revoked = True
    else:
        not_revoked = None
    return ValidationResult(
        valid=not report.errors and anchor is not None,
        chain_valid=chain_valid,
        not_expired=not_expired,
        not_revoked=not_revoked,
        anchor=anchor,
        path=tuple(report.path),
        errors=tuple(report.errors),
        warnings=tuple(warnings),
        revocation_checked=revocation_checked,
    )


def _unique(certs: Iterable[PathCertificate]) -> list[PathCertificate]:
    seen: set[str] = set()
    out = []
    for cert in certs:
        if cert.fingerprint not in seen:
            seen.add(cert.fingerprint)
            out.append(cert)
    return out


def _unique_anchors(anchors: Iterable[Anchor]) -> list[Anchor]:
    seen: set[str] = set()
    out = []
    for anchor in anchors:
        if anchor.certificate.fingerprint not in seen:
            seen.add(anchor.certificate.fingerprint)
            out.append(anchor)
    return out
