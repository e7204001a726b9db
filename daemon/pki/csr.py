"""PKCS#10 certificate signing requests: strict parsing and an immutable builder.

:func:`parse_csr` turns a client-supplied CSR (PEM or DER) into a
:class:`ParsedCsr` whose every field is already validated: the self-signature
verifies, the key is RSA or a NIST P-curve, the subject fields are valid input
for :func:`~scaivault_pki.pki.names.build_name` and the requested
subjectAltName entries are valid input for
:func:`~scaivault_pki.pki.extensions.subject_alt_name`.  Anything else is a
:class:`CsrError` naming the request field at fault, so the API layer can
answer ``invalid_csr`` without knowing ASN.1.

:class:`CsrBuilder` and :func:`sign_csr` go the other way, for CSRs whose key
lives in the HSM (e.g. a CA key that an external root will certify): the
builder produces the unsigned ``CertificationRequestInfo`` and a
:class:`~scaivault_pki.pki.signing.Signer` signs it, exactly like
:mod:`scaivault_pki.pki.builder` does for certificates.

Everything is built on asn1crypto directly: ``oscrypto``/``csrbuilder`` cannot
load against the OpenSSL we ship.  pyca ``cryptography`` is used as a second,
strict-DER parser and for signature verification.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Final

from asn1crypto import algos, core, keys, pem, x509
from asn1crypto import csr as asn1_csr
from cryptography import x509 as pyca_x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from . import extensions as ext
from .builder import ImmutableBuilder, SignatureVerificationError
from .names import build_name, name_fields
from .profiles import key_type_and_size
from .signing import SIGNATURE_ALGORITHMS, Signer, check_signer_algorithm, verify_signature

__all__ = [
    "CSR_PEM_LABELS",
    "MAX_CSR_SIZE",
    "CsrBuilder",
    "CsrError",
    "ParsedCsr",
    "csr_pem",
    "parse_csr",
    "sign_csr",
]

#: PEM labels accepted for a CSR.  "NEW CERTIFICATE REQUEST" is the legacy
#: armor still written by Netscape-era tools, Java keytool and IIS.
CSR_PEM_LABELS: Final[frozenset[str]] = frozenset(
    {"CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"}
)

#: Largest input accepted, in bytes (or characters for text).  A 16384-bit RSA
#: CSR in PEM is under 6 KiB; the limit only keeps absurd input away from the
#: ASN.1 parsers.
MAX_CSR_SIZE: Final = 64 * 1024

_DEFAULT_FIELD: Final = "csr_pem"
# Longest parser detail quoted in an error message.
_MAX_DETAIL: Final = 120

# RSA moduli below 1024 bits are refused here (they are broken, not merely
# weak); 1024..2047 parse so that policy can refuse them with its own message.
# Above 16384 bits OpenSSL refuses to verify, and the cost of verifying grows
# with the modulus, so such keys are refused before any signature check.
_MIN_RSA_BITS: Final = 1024
_MAX_RSA_BITS: Final = 16384
# CA/B Forum BR 6.1.6: the exponent must be odd and at least 3; anything of
# 2**256 or more is outside every standard and only slows verification.
_MAX_RSA_EXPONENT: Final = 2**256

#: asn1crypto curve names accepted.  P-521 parses (key_size 521) so that the
#: issuance policy, which does not allow it, refuses it with a policy error.
_ACCEPTED_CURVES: Final[frozenset[str]] = frozenset({"secp256r1", "secp384r1", "secp521r1"})

# Signature algorithms we recognise but refuse, with the reason shown to clients.
_REFUSED_SIGNATURE_ALGORITHMS: Final[dict[str, str]] = {
    "rsassa_pss": "RSA-PSS signatures are not supported; sign the CSR with RSA PKCS#1 v1.5",
    "md2_rsa": "MD2 is broken",
    "md5_rsa": "MD5 is broken",
    "sha1_rsa": "SHA-1 is broken",
    "sha1_ecdsa": "SHA-1 is broken",
    "sha1_dsa": "DSA is not supported",
}


class CsrError(ValueError):
    """A certificate signing request was refused.

    ``field`` names the request field that carried the CSR (``"csr_pem"``
    unless the caller said otherwise) and ``message`` (also ``str(error)``)
    says what is wrong, without the field name, so the API layer can answer
    ``invalid_csr`` with ``f"{error.field}: {error}"`` and ``{"field": error.field}``.
    """

    def __init__(self, message: str, field: str = _DEFAULT_FIELD) -> None:
        """Create the error for ``field`` with a client-facing ``message``."""
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class ParsedCsr:
    """A CSR that passed :func:`parse_csr`: signature verified, contents validated.

    ``subject_fields`` can be passed to
    :func:`~scaivault_pki.pki.names.build_name` as is, and the four name
    tuples to :func:`~scaivault_pki.pki.extensions.subject_alt_name`; both
    were validated that way.  ``requested_extensions`` lists the ids
    (asn1crypto names, or dotted OIDs for unknown extensions) of every
    requested extension other than subjectAltName: they are recorded for the
    audit trail but never copied into a certificate, whose profile decides
    its extensions.
    """

    #: the DER encoding of the whole request, exactly as received
    der: bytes = dataclass_field(repr=False)
    subject: x509.Name = dataclass_field(repr=False)
    common_name: str | None
    subject_fields: dict[str, str]
    dns_names: tuple[str, ...]
    #: normalised by ``ipaddress`` (e.g. ``"2001:db8::1"``)
    ip_addresses: tuple[str, ...]
    uris: tuple[str, ...]
    emails: tuple[str, ...]
    requested_extensions: tuple[str, ...]
    public_key_info: keys.PublicKeyInfo = dataclass_field(repr=False)
    #: ``"rsa"`` or ``"ec"``
    key_type: str
    #: RSA modulus bits, or EC curve bits (256, 384, 521)
    key_size: int
    #: asn1crypto ``SignedDigestAlgorithm`` name, e.g. ``"sha256_ecdsa"``
    signature_algorithm: str


# ---------------------------------------------------------------------------
# Shared checks (parse_csr and CsrBuilder must agree on what is acceptable)
# ---------------------------------------------------------------------------


def _check_public_key(public_key_info: keys.PublicKeyInfo) -> tuple[str, int]:
    """Return ``(key_type, key_size)`` or raise ``ValueError`` saying what is wrong.

    The key algorithm, curve and RSA numbers are checked before pyca loads
    the key, so an Ed25519 key or a brainpool curve is reported as
    unsupported rather than as malformed.
    """
    try:
        algorithm = public_key_info["algorithm"]["algorithm"].native
        if algorithm == "rsa":
            rsa_key = public_key_info["public_key"].parsed
            modulus, exponent = rsa_key["modulus"].native, rsa_key["public_exponent"].native
        elif algorithm == "ec":
            curve_kind, curve = public_key_info.curve
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"public key cannot be parsed: {exc}") from exc
    if algorithm == "rsa":
        bits = modulus.bit_length()
        if bits < _MIN_RSA_BITS:
            raise ValueError(f"RSA key of {bits} bits is too small to be considered")
        if bits > _MAX_RSA_BITS:
            raise ValueError(f"RSA key of {bits} bits is larger than {_MAX_RSA_BITS} bits")
        if exponent < 3 or exponent % 2 == 0 or exponent >= _MAX_RSA_EXPONENT:
            raise ValueError("RSA public exponent must be odd, at least 3 and below 2**256")
    elif algorithm == "ec":
        if curve_kind != "named":
            # RFC 5480 2.1.1: explicit curve parameters MUST NOT be used.
            raise ValueError("EC keys must use a named curve, not explicit parameters")
        if curve not in _ACCEPTED_CURVES:
            raise ValueError(f"unsupported EC curve {curve!r}; expected P-256 or P-384")
    else:
        raise ValueError(
            f"unsupported public key type {algorithm!r}; only RSA and EC (P-256, P-384) keys "
            "are accepted"
        )
    try:
        # pyca checks what asn1crypto does not: RSA structure, EC point on the curve.
        serialization.load_der_public_key(public_key_info.dump())
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ValueError(f"public key cannot be parsed: {exc}") from exc
    return key_type_and_size(public_key_info)


def _check_subject(subject: x509.Name) -> dict[str, str]:
    """Return the subject as :func:`build_name` fields, or raise ``ValueError``.

    Building the name again validates every value (length limits, control
    characters, country code), so callers can reuse the fields safely.
    """
    try:
        fields = name_fields(subject)
        build_name(fields)
    except ValueError as exc:
        raise ValueError(f"subject: {exc}") from exc
    return fields


# ---------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------


def _unarmor(text: str, field: str) -> bytes:
    """Return the DER inside exactly one CSR PEM block, refusing anything else.

    RFC 7468 lets parsers skip text around a block; we refuse it so that a
    certificate bundle, a second CSR or ``openssl req -text`` output pasted
    by mistake is reported instead of being silently half-used.
    """
    text = text.strip()
    begin_count = text.count("-----BEGIN ")
    if begin_count == 0:
        raise CsrError("is not a PEM or DER certificate request", field)
    if begin_count > 1:
        raise CsrError(
            f"contains {begin_count} PEM blocks; expected exactly one certificate request", field
        )
    if not text.startswith("-----BEGIN "):
        raise CsrError("has unexpected text before the PEM block", field)
    lines = text.splitlines()
    begin, body, end = lines[0].strip(), lines[1:-1], lines[-1].strip()
    if len(lines) < 3 or not (begin.endswith("-----") and end.startswith("-----END ")):
        raise CsrError("PEM block is incomplete or has text after it", field)
    label = begin[len("-----BEGIN ") : -len("-----")]
    if not end.endswith("-----") or end[len("-----END ") : -len("-----")] != label:
        raise CsrError("PEM END line does not match the BEGIN line", field)
    if label not in CSR_PEM_LABELS:
        raise CsrError(f"PEM block is a {label!r}, not a CERTIFICATE REQUEST", field)
    encoded = "".join(line.strip() for line in body)
    if not encoded:
        raise CsrError("PEM block is empty", field)
    try:
        # validate=True refuses characters outside the base64 alphabet
        # (including RFC 1421 headers) instead of silently skipping them.
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CsrError(f"PEM body is not valid base64: {exc}", field) from exc


def _to_der(data: object, field: str) -> bytes:
    if isinstance(data, bytes):
        if len(data) > MAX_CSR_SIZE:
            raise CsrError(f"is larger than {MAX_CSR_SIZE} bytes", field)
        if not data.strip():
            raise CsrError("is empty", field)
        # DER starts with a SEQUENCE tag (0x30, the character "0"), which PEM
        # text never does; everything else is treated as PEM text.
        if data[0] == 0x30:
            return data
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError as exc:
            if b"-----BEGIN " in data:
                raise CsrError("PEM text contains non-ASCII characters", field) from exc
            raise CsrError("is not a PEM or DER certificate request", field) from exc
        return _unarmor(text, field)
    if isinstance(data, str):
        if len(data) > MAX_CSR_SIZE:
            raise CsrError(f"is larger than {MAX_CSR_SIZE} characters", field)
        if not data.strip():
            raise CsrError("is empty", field)
        if not data.isascii():
            raise CsrError("PEM text contains non-ASCII characters", field)
        return _unarmor(data, field)
    raise CsrError("must be PEM text or DER bytes", field)


def _check_signature_algorithm(
    algorithm: algos.SignedDigestAlgorithm, key_type: str, field: str
) -> str:
    name = algorithm["algorithm"].native
    if name in _REFUSED_SIGNATURE_ALGORITHMS:
        raise CsrError(
            f"signature algorithm {name!r} is refused: {_REFUSED_SIGNATURE_ALGORITHMS[name]}", field
        )
    if name not in SIGNATURE_ALGORITHMS:
        raise CsrError(
            f"signature algorithm {name!r} is not supported; expected one of "
            f"{sorted(SIGNATURE_ALGORITHMS)}",
            field,
        )
    expected_key, _ = SIGNATURE_ALGORITHMS[name]
    if expected_key != key_type:
        raise CsrError(f"signature algorithm {name!r} does not fit the {key_type} key", field)
    # RFC 5758 3.2: ECDSA parameters MUST be absent.  (RFC 4055 2.1 RSA
    # parameters must be NULL or absent; asn1crypto's full parse, done
    # before this, already refuses anything else.)
    if key_type == "ec" and not isinstance(algorithm["parameters"], core.Void):
        raise CsrError("ECDSA signature algorithm must not have parameters", field)
    return str(name)


def _ascii_name(kind: str, general_name: x509.GeneralName, field: str) -> str:
    # Read the raw IA5String bytes: asn1crypto's native value IDNA-decodes
    # DNS names and email domains, which would not be what the client sent.
    try:
        return bytes(general_name.chosen.contents).decode("ascii")
    except UnicodeDecodeError as exc:
        raise CsrError(f"subjectAltName: {kind} is not ASCII", field) from exc


def _requested_names(
    extensions: x509.Extensions, field: str
) -> tuple[dict[str, list[str]], tuple[str, ...]]:
    """Return the subjectAltName entries by kind and the other extension ids."""
    names: dict[str, list[str]] = {"dns": [], "ips": [], "uris": [], "emails": []}
    others: list[str] = []
    seen: set[str] = set()
    for extension in extensions:
        oid = extension["extn_id"].dotted
        if oid in seen:
            # RFC 5280 4.2: an extension must not appear twice; which one
            # would the client mean?
            raise CsrError(
                f"requested extension {extension['extn_id'].native!r} appears twice", field
            )
        seen.add(oid)
        if extension["extn_id"].native != "subject_alt_name":
            others.append(str(extension["extn_id"].native))
            continue
        general_names = extension["extn_value"].parsed
        if len(general_names) == 0:
            raise CsrError("subjectAltName is empty", field)
        for general_name in general_names:
            kind = general_name.name
            if kind == "dns_name":
                names["dns"].append(_ascii_name("DNS name", general_name, field))
            elif kind == "uniform_resource_identifier":
                names["uris"].append(_ascii_name("URI", general_name, field))
            elif kind == "rfc822_name":
                names["emails"].append(_ascii_name("email", general_name, field))
            elif kind == "ip_address":
                raw = bytes(general_name.chosen.contents)
                # 4 or 16 octets; 8/32 would be an address with a netmask,
                # which only name constraints may carry (RFC 5280 4.2.1.6).
                if len(raw) not in (4, 16):
                    raise CsrError("subjectAltName: IP address must be 4 or 16 octets", field)
                names["ips"].append(str(ipaddress.ip_address(raw)))
            else:
                raise CsrError(
                    f"subjectAltName: unsupported name type {kind!r}; expected DNS, IP, URI "
                    "or email",
                    field,
                )
    return names, tuple(others)


def _extension_request(
    info: asn1_csr.CertificationRequestInfo, field: str
) -> x509.Extensions | None:
    """Return the Extensions of the extensionRequest attribute, if there is one.

    Other attributes (challengePassword, Microsoft enrolment data) carry
    nothing we use and are ignored.
    """
    found: x509.Extensions | None = None
    for attribute in info["attributes"]:
        if attribute["type"].native != "extension_request":
            continue
        values = attribute["values"]
        # RFC 2985 5.4.2: extensionRequest is single-valued, once.
        if found is not None or len(values) != 1:
            raise CsrError("must contain at most one extensionRequest with one value", field)
        found = values[0]
    return found


def _malformed(exc: Exception, field: str) -> CsrError:
    # Parser messages can be long (asn1crypto appends a "while parsing" trail,
    # and a garbage length is printed in full): keep the first line, shortened.
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if len(detail) > _MAX_DETAIL:
        detail = detail[: _MAX_DETAIL - 3] + "..."
    return CsrError(f"is not a valid DER certificate request ({detail})", field)


def parse_csr(data: str | bytes, *, field: str = _DEFAULT_FIELD) -> ParsedCsr:
    """Parse and verify one PKCS#10 CSR given as PEM text or bytes, or DER bytes.

    PEM must be exactly one ``CERTIFICATE REQUEST`` (or legacy ``NEW
    CERTIFICATE REQUEST``) block, optionally surrounded by whitespace.  The
    DER must be a strict DER, version 1 request with nothing after it.  The
    self-signature must verify with RSA PKCS#1 v1.5 or ECDSA over SHA-256,
    SHA-384 or SHA-512; RSA-PSS, SHA-1 and other algorithms are refused.
    Keys must be RSA (1024..16384 bits; policy decides the real minimum) or
    EC on P-256/P-384 (P-521 parses with ``key_size`` 521 for policy to
    refuse).  The subject may only use the attributes of
    :mod:`~scaivault_pki.pki.names`, and subjectAltName only DNS, IP, URI and
    email entries; everything must pass the same validation as our own
    certificate builders.  Every refusal is a :class:`CsrError` for ``field``.
    """
    der = _to_der(data, field)
    # Checks that give a specific message come first; the strict pyca parse
    # then refuses whatever else is not DER before the signature is checked.
    try:
        request = asn1_csr.CertificationRequest.load(der, strict=True)
        info = request["certification_request_info"]
        version = info["version"].native
        public_key_info = keys.PublicKeyInfo.load(info["subject_pk_info"].dump())
    except (ValueError, TypeError, KeyError) as exc:
        raise _malformed(exc, field) from exc
    if version != "v1":
        raise CsrError(f"version must be v1 (0), got {version!r}", field)
    try:
        key_type, key_size = _check_public_key(public_key_info)
    except ValueError as exc:
        raise CsrError(str(exc), field) from exc
    try:
        # asn1crypto parses lazily: walk everything once so that a malformed
        # part (even of an extension we ignore) is reported now, not later.
        request.native  # noqa: B018
    except (ValueError, TypeError, KeyError) as exc:
        raise _malformed(exc, field) from exc
    signature_algorithm = _check_signature_algorithm(
        request["signature_algorithm"], key_type, field
    )
    try:
        # pyca parses strictly (DER only, no BER leniency, attributes present
        # as RFC 2986 requires), so no other tool can read these bytes
        # differently from us.  Its view of the signed bytes is used for
        # verification: they are exactly what was received.
        pyca_request = pyca_x509.load_der_x509_csr(der)
        signed_bytes = pyca_request.tbs_certrequest_bytes
        signature = pyca_request.signature
    except (ValueError, TypeError) as exc:
        raise _malformed(exc, field) from exc
    if not verify_signature(public_key_info, signature_algorithm, signed_bytes, signature):
        raise CsrError("signature does not verify", field)

    subject = x509.Name.load(info["subject"].dump())
    try:
        subject_fields = _check_subject(subject)
    except ValueError as exc:
        raise CsrError(str(exc), field) from exc

    extensions = _extension_request(info, field)
    names: dict[str, list[str]] = {"dns": [], "ips": [], "uris": [], "emails": []}
    others: tuple[str, ...] = ()
    if extensions is not None:
        names, others = _requested_names(extensions, field)
    if any(names.values()):
        try:
            ext.subject_alt_name(**names)
        except ValueError as exc:
            raise CsrError(f"subjectAltName: {exc}", field) from exc

    return ParsedCsr(
        der=der,
        subject=subject,
        common_name=subject_fields.get("common_name"),
        subject_fields=subject_fields,
        dns_names=tuple(names["dns"]),
        ip_addresses=tuple(names["ips"]),
        uris=tuple(names["uris"]),
        emails=tuple(names["emails"]),
        requested_extensions=others,
        public_key_info=public_key_info,
        key_type=key_type,
        key_size=key_size,
        signature_algorithm=signature_algorithm,
    )


def csr_pem(request: asn1_csr.CertificationRequest | ParsedCsr | bytes) -> str:
    """Return ``request`` (an asn1crypto request, a :class:`ParsedCsr` or DER) as PEM text."""
    if isinstance(request, ParsedCsr):
        der = request.der
    elif isinstance(request, asn1_csr.CertificationRequest):
        der = request.dump()
    elif isinstance(request, bytes):
        der = request
    else:
        raise ValueError("request must be a CertificationRequest, a ParsedCsr or DER bytes")
    text: str = pem.armor("CERTIFICATE REQUEST", der).decode("ascii")
    return text


# ---------------------------------------------------------------------------
# Building and signing
# ---------------------------------------------------------------------------


def _as_sequence(values: Iterable[str]) -> Sequence[str]:
    return values if isinstance(values, str) else tuple(values)


class CsrBuilder(ImmutableBuilder):
    """Immutable builder for an unsigned PKCS#10 ``CertificationRequestInfo``.

    Each setter validates its argument and returns a new builder; setting a
    field twice raises ``ValueError``.  It only builds requests that
    :func:`parse_csr` accepts.  Like :class:`~scaivault_pki.pki.builder.CertificateBuilder`
    it stores DER, so later changes to the caller's objects do not leak in.
    """

    __slots__ = ("_public_key", "_san", "_subject")

    _subject: bytes | None
    _public_key: bytes | None
    #: DER of the subjectAltName GeneralNames
    _san: bytes | None

    def subject_name(self, name: x509.Name) -> CsrBuilder:
        """Set the subject; the empty name is allowed if subject alt names are set.

        Its encoding is kept byte for byte (a CA's subject must match the
        issuer field of what it later signs).
        """
        self._require_unset("_subject", "subject name")
        if not isinstance(name, x509.Name):
            raise ValueError("subject name must be an asn1crypto x509.Name")
        _check_subject(name)
        return self._with("_subject", name.dump())

    def public_key(self, public_key_info: keys.PublicKeyInfo) -> CsrBuilder:
        """Set the key being certified: RSA, or EC on P-256/P-384 (P-521 builds too)."""
        self._require_unset("_public_key", "public key")
        if not isinstance(public_key_info, keys.PublicKeyInfo):
            raise ValueError("public key must be an asn1crypto keys.PublicKeyInfo")
        _check_public_key(public_key_info)
        return self._with("_public_key", public_key_info.dump())

    def subject_alt_names(
        self,
        dns: Iterable[str] = (),
        ips: Iterable[str] = (),
        uris: Iterable[str] = (),
        emails: Iterable[str] = (),
    ) -> CsrBuilder:
        """Request one subjectAltName extension with these entries (at least one).

        Validation is :func:`~scaivault_pki.pki.extensions.subject_alt_name`'s.
        All names go into one call because a request carries a single
        subjectAltName extension; calling this (or :meth:`add_dns_names`)
        twice raises ``ValueError``.
        """
        self._require_unset("_san", "subject alternative names")
        # A plain string is passed through so subject_alt_name refuses it
        # ("must be given as a list"); anything else becomes a tuple because
        # it is iterated twice (duplicate check, then encoding).
        general_names = ext.subject_alt_name(
            dns=_as_sequence(dns),
            ips=_as_sequence(ips),
            uris=_as_sequence(uris),
            emails=_as_sequence(emails),
        )
        return self._with("_san", general_names.dump())

    def add_dns_names(self, names: Iterable[str]) -> CsrBuilder:
        """Shorthand for ``subject_alt_names(dns=names)``; also set-once."""
        if isinstance(names, str):
            raise ValueError("DNS names must be given as a list, not a string")
        return self.subject_alt_names(dns=tuple(names))

    def build(self, signature_algorithm: str) -> asn1_csr.CertificationRequestInfo:
        """Return the unsigned v1 ``CertificationRequestInfo``.

        The info does not record the signature algorithm; it is given here so
        that a key that cannot sign with it (an RSA algorithm for an EC key)
        fails now rather than inside the HSM.  Raises ``ValueError`` when the
        subject or key is missing, or the subject is empty without
        subjectAltName entries (such a request names nothing).
        """
        self._require_set(("_subject", "subject name"), ("_public_key", "public key"))
        assert self._subject is not None and self._public_key is not None  # for mypy
        public_key_info = keys.PublicKeyInfo.load(self._public_key)
        check_signer_algorithm(signature_algorithm, public_key_info)
        subject = x509.Name.load(self._subject)
        subject_empty = len(subject.chosen) == 0
        if subject_empty and self._san is None:
            raise ValueError("cannot build: an empty subject requires subject alternative names")

        attributes: list[asn1_csr.CRIAttribute] = []
        if self._san is not None:
            extension = x509.Extension(
                {
                    "extn_id": "subject_alt_name",
                    # Critical with an empty subject, as the certificate
                    # will need to be (RFC 5280 4.2.1.6).
                    "critical": ext.preferred_criticality(
                        "subject_alt_name", is_ca=False, subject_empty=subject_empty
                    ),
                    "extn_value": x509.GeneralNames.load(self._san),
                }
            )
            attributes.append(
                asn1_csr.CRIAttribute(
                    {"type": "extension_request", "values": [x509.Extensions([extension])]}
                )
            )
        return asn1_csr.CertificationRequestInfo(
            {
                "version": "v1",
                "subject": subject,
                "subject_pk_info": public_key_info,
                # RFC 2986 makes the attributes field mandatory even when
                # empty, and strict parsers (pyca) refuse a CSR without it.
                "attributes": attributes,
            }
        )


def sign_csr(
    info: asn1_csr.CertificationRequestInfo, signer: Signer
) -> asn1_csr.CertificationRequest:
    """Sign ``info`` with ``signer`` (the key the request is for) and return the request.

    A CSR is self-signed, so ``signer.public_key_info`` must be the key in
    ``info``.  The signature is verified against that key, raising
    :class:`~scaivault_pki.pki.builder.SignatureVerificationError` if the
    signer (e.g. an HSM using a mislabelled key) got it wrong, and the result
    is then put through :func:`parse_csr`, so what we hand out is exactly
    what we would accept; a ``ValueError`` says why it would not be.
    """
    if not isinstance(info, asn1_csr.CertificationRequestInfo):
        raise ValueError("info must be an asn1crypto csr.CertificationRequestInfo")
    check_signer_algorithm(signer.algorithm, signer.public_key_info)
    if signer.public_key_info.dump() != info["subject_pk_info"].dump():
        raise ValueError("the signer's key is not the public key of the request")
    data = info.dump()
    signature = signer.sign(data)
    if not isinstance(signature, bytes) or not signature:
        raise SignatureVerificationError("signer returned no signature bytes")
    if not verify_signature(signer.public_key_info, signer.algorithm, data, signature):
        raise SignatureVerificationError("signature does not verify with the signer's public key")
    request = asn1_csr.CertificationRequest(
        {
            "certification_request_info": asn1_csr.CertificationRequestInfo.load(data),
            # RSA gets explicit NULL parameters, ECDSA none; asn1crypto does both.
            "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": signer.algorithm}),
            "signature": signature,
        }
    )
    der = request.dump()
    try:
        parse_csr(der)
    except CsrError as exc:
        raise ValueError(f"the signed request would be refused: {exc.message}") from exc
    return asn1_csr.CertificationRequest.load(der)
