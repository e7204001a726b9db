"""An immutable X.509 v3 certificate builder on asn1crypto, and certificate signing.

Modelled on ``cryptography.x509.CertificateBuilder``: every setter validates
its argument once and returns a *new* builder, and setting a field twice is an
error.  :meth:`CertificateBuilder.build` returns the unsigned
``TbsCertificate``; :func:`sign_certificate` has it signed by a
:class:`~scaivault_pki.pki.signing.Signer` (in production, the HSM layer).
Keeping signing out of the builder means the TBS can be inspected, linted or
logged before a CA key is ever used.

The builder stores DER bytes rather than the caller's asn1crypto objects, so
mutating a ``Name`` after passing it in cannot change an existing builder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, TypeVar

from asn1crypto import algos, core, keys, x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from .extensions import criticality_violation
from .serials import MAX_SERIAL
from .signing import SIGNATURE_ALGORITHMS, SignatureVerificationError, Signer, sign_and_verify

__all__ = [
    "CertificateBuilder",
    "SignatureVerificationError",
    "encode_validity_time",
    "sign_certificate",
]

# RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050 on.
_GENERALIZED_TIME_FROM_YEAR: Final = 2050
# UTCTime cannot express years before 1950, and certificates never need them.
_EARLIEST_YEAR: Final = 1950


def _check_utc(label: str, value: datetime) -> datetime:
    if not isinstance(value, datetime):
        raise ValueError(f"{label} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{label} must be timezone-aware (UTC)")
    if value.utcoffset() != timedelta(0):
        raise ValueError(f"{label} must be in UTC, got offset {value.utcoffset()}")
    if value.year < _EARLIEST_YEAR:
        raise ValueError(f"{label} must not be before {_EARLIEST_YEAR}")
    # Certificates carry whole seconds; dropping sub-seconds here (as pyca
    # does) keeps the notBefore < notAfter check consistent with the encoding.
    return value.replace(microsecond=0)


def encode_validity_time(value: datetime) -> x509.Time:
    """Encode a UTC datetime as an RFC 5280 4.1.2.5 validity time.

    Years before 2050 use UTCTime (``YYMMDDHHMMSSZ``), 2050 and later use
    GeneralizedTime (``YYYYMMDDHHMMSSZ``); both always carry seconds and
    ``Z`` and never fractional seconds.
    """
    value = _check_utc("time", value)
    if value.year >= _GENERALIZED_TIME_FROM_YEAR:
        return x509.Time(name="general_time", value=core.GeneralizedTime(value))
    return x509.Time(name="utc_time", value=core.UTCTime(value))


def _extension_oid(extn_id: str) -> str:
    """Map an asn1crypto extension name or dotted OID to the dotted OID."""
    if not isinstance(extn_id, str) or not extn_id:
        raise ValueError("extension id must be a non-empty string")
    try:
        return str(x509.ExtensionId.unmap(extn_id))
    except ValueError as exc:
        raise ValueError(
            f"unknown extension {extn_id!r}: use an asn1crypto extension name "
            "(e.g. 'basic_constraints', 'key_identifier') or a dotted OID"
        ) from exc


@dataclass(frozen=True)
class _StoredExtension:
    oid: str
    name: str
    critical: bool
    der: bytes


# Structural RFC 5280 rules checked by build(), as (reference, predicate,
# message).  Each predicate gets the parsed extension values by name (absent
# extensions are missing from the dict) and whether the subject is empty, and
# returns True when the rule is violated.
_Rule = tuple[str, Callable[[dict[str, Any], bool], bool], str]

_BUILD_RULES: Final[tuple[_Rule, ...]] = (
    (
        "RFC 5280 4.1.2.6",
        lambda ext, empty: empty and "subject_alt_name" not in ext,
        "an empty subject requires a subjectAltName extension",
    ),
    (
        "RFC 5280 4.1.2.6",
        lambda ext, empty: empty and bool(ext.get("basic_constraints", {}).get("ca")),
        "a CA certificate must have a non-empty subject",
    ),
    (
        "RFC 5280 4.2.1.3",
        lambda ext, empty: (
            "key_cert_sign" in ext.get("key_usage", set())
            and not ext.get("basic_constraints", {}).get("ca")
        ),
        "keyCertSign requires basicConstraints cA TRUE",
    ),
    (
        "RFC 5280 4.2.1.9",
        lambda ext, empty: (
            ext.get("basic_constraints", {}).get("path_len_constraint") is not None
            and "key_usage" in ext
            and "key_cert_sign" not in ext["key_usage"]
        ),
        "pathLenConstraint requires keyUsage keyCertSign",
    ),
    (
        "RFC 5280 4.2.1.2",
        lambda ext, empty: (
            bool(ext.get("basic_constraints", {}).get("ca")) and "key_identifier" not in ext
        ),
        "CA certificates must include a subjectKeyIdentifier",
    ),
)


class ImmutableBuilder:
    """The mechanics shared by our builders: slots set once, every setter returns a new builder.

    Subclasses declare ``__slots__`` and call ``_require_unset`` then ``_with`` in their setters.
    """

    __slots__: tuple[str, ...] = ()

    def __init__(self) -> None:
        """Create an empty builder."""
        for slot in self.__slots__:
            object.__setattr__(self, slot, None)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable; setters return a new builder")

    def _with(self: _B, slot: str, value: object) -> _B:
        clone = type(self).__new__(type(self))
        for name in self.__slots__:
            object.__setattr__(clone, name, getattr(self, name))
        object.__setattr__(clone, slot, value)
        return clone

    def _require_unset(self, slot: str, label: str) -> None:
        if getattr(self, slot) is not None:
            raise ValueError(f"{label} may only be set once")

    def _require_set(self, *fields: tuple[str, str]) -> None:
        """Before ``build``: every ``(slot, label)`` must have been set, else one ``ValueError`` naming all missing."""
        missing = [label for slot, label in fields if getattr(self, slot) is None]
        if missing:
            raise ValueError(f"cannot build: missing {', '.join(missing)}")


_B = TypeVar("_B", bound=ImmutableBuilder)


class CertificateBuilder(ImmutableBuilder):
    """Immutable builder for an unsigned X.509 v3 ``TbsCertificate``.

    Each setter validates its argument and returns a new builder; setting the
    same field twice, or adding the same extension twice, raises
    ``ValueError``.  Extensions are emitted in insertion order.
    """

    __slots__ = (
        "_extensions",
        "_issuer",
        "_not_after",
        "_not_before",
        "_public_key",
        "_serial",
        "_subject",
    )

    _subject: bytes | None
    _issuer: bytes | None
    _serial: int | None
    _not_before: datetime | None
    _not_after: datetime | None
    _public_key: bytes | None
    _extensions: tuple[_StoredExtension, ...]

    def __init__(self) -> None:
        """Create an empty builder."""
        super().__init__()
        object.__setattr__(self, "_extensions", ())

    # -- setters ----------------------------------------------------------

    def subject_name(self, name: x509.Name) -> CertificateBuilder:
        """Set the subject; the empty name is allowed (then SAN must be critical)."""
        self._require_unset("_subject", "subject name")
        if not isinstance(name, x509.Name):
            raise ValueError("subject name must be an asn1crypto x509.Name")
        return self._with("_subject", name.dump())

    def issuer_name(self, name: x509.Name) -> CertificateBuilder:
        """Set the issuer, which must be non-empty (RFC 5280 4.1.2.4).

        For chaining to work it must be byte-identical to the issuer
        certificate's subject, so pass that certificate's ``subject``.
        """
        self._require_unset("_issuer", "issuer name")
        if not isinstance(name, x509.Name):
            raise ValueError("issuer name must be an asn1crypto x509.Name")
        if len(name.chosen) == 0:
            raise ValueError("issuer name must not be empty (RFC 5280 4.1.2.4)")
        return self._with("_issuer", name.dump())

    def serial_number(self, serial: int) -> CertificateBuilder:
        """Set the serial: a positive integer of at most 20 DER octets (< 2**159)."""
        self._require_unset("_serial", "serial number")
        if isinstance(serial, bool) or not isinstance(serial, int):
            raise ValueError("serial number must be an int")
        if serial <= 0:
            raise ValueError("serial number must be positive (RFC 5280 4.1.2.2)")
        if serial > MAX_SERIAL:
            raise ValueError("serial number must fit in 20 octets (< 2**159, RFC 5280 4.1.2.2)")
        return self._with("_serial", serial)

    def not_valid_before(self, when: datetime) -> CertificateBuilder:
        """Set notBefore: an aware UTC datetime; microseconds are dropped."""
        self._require_unset("_not_before", "not valid before")
        value = _check_utc("not valid before", when)
        if self._not_after is not None and value >= self._not_after:
            raise ValueError("not valid before must be earlier than not valid after")
        return self._with("_not_before", value)

    def not_valid_after(self, when: datetime) -> CertificateBuilder:
        """Set notAfter: an aware UTC datetime; microseconds are dropped."""
        self._require_unset("_not_after", "not valid after")
        value = _check_utc("not valid after", when)
        if self._not_before is not None and value <= self._not_before:
            raise ValueError("not valid after must be later than not valid before")
        return self._with("_not_after", value)

    def public_key(self, public_key_info: keys.PublicKeyInfo) -> CertificateBuilder:
        """Set the subject public key (an RSA or EC ``PublicKeyInfo``)."""
        self._require_unset("_public_key", "public key")
        if not isinstance(public_key_info, keys.PublicKeyInfo):
            raise ValueError("public key must be an asn1crypto keys.PublicKeyInfo")
        try:
            algorithm = public_key_info.algorithm
            der = public_key_info.dump()
            # Loading the key with pyca now turns a corrupt SPKI (bad RSA
            # structure, EC point not on the curve) into an error at the
            # call site instead of an unusable certificate.
            serialization.load_der_public_key(der)
        except (ValueError, TypeError, KeyError, UnsupportedAlgorithm) as exc:
            raise ValueError(f"public key cannot be parsed: {exc}") from exc
        if algorithm not in ("rsa", "ec"):
            raise ValueError(f"unsupported public key algorithm {algorithm!r}")
        if algorithm == "ec" and public_key_info.curve[0] != "named":
            raise ValueError("EC public keys must use a named curve (RFC 5480)")
        return self._with("_public_key", der)

    def add_extension(self, extn_id: str, value: object, critical: bool) -> CertificateBuilder:
        """Add an extension by asn1crypto name (or dotted OID) with its value.

        ``value`` is the asn1crypto value for the extension (see
        :mod:`scaivault_pki.pki.extensions`), or its native form.  For an OID
        asn1crypto does not know, pass DER ``bytes`` or any asn1crypto value.
        """
        if not isinstance(critical, bool):
            raise ValueError("critical must be a bool")
        oid = _extension_oid(extn_id)
        if any(stored.oid == oid for stored in self._extensions):
            raise ValueError(f"extension {extn_id!r} has already been added")
        name = x509.ExtensionId.map(oid)
        if name == oid and isinstance(value, core.Asn1Value):
            # asn1crypto has no spec for this OID: embed the encoding as is.
            value = value.dump()
        try:
            extension = x509.Extension({"extn_id": oid, "critical": critical, "extn_value": value})
            der = extension.dump()
            # Round-trip so a value that encodes but cannot be parsed back
            # (a wrong native structure) fails here.
            x509.Extension.load(der)["extn_value"].parsed  # noqa: B018
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            # asn1crypto signals a value of the wrong shape with any of these.
            raise ValueError(f"invalid value for extension {extn_id!r}: {exc}") from exc
        stored = _StoredExtension(oid=oid, name=name, critical=critical, der=der)
        return self._with("_extensions", (*self._extensions, stored))

    # -- build ------------------------------------------------------------

    def build(self, signature_algorithm: str) -> x509.TbsCertificate:
        """Return the unsigned v3 ``TbsCertificate``.

        ``signature_algorithm`` is the asn1crypto name of the algorithm the
        issuer will sign with (see :data:`~scaivault_pki.pki.signing.SIGNATURE_ALGORITHMS`).
        Raises ``ValueError`` when a required field is missing or an RFC 5280
        structural rule (criticality, empty subject, CA consistency) is broken.
        """
        if signature_algorithm not in SIGNATURE_ALGORITHMS:
            raise ValueError(
                f"signature algorithm {signature_algorithm!r} is not supported; "
                f"expected one of {sorted(SIGNATURE_ALGORITHMS)}"
            )
        self._require_set(
            ("_subject", "subject name"),
            ("_issuer", "issuer name"),
            ("_serial", "serial number"),
            ("_not_before", "not valid before"),
            ("_not_after", "not valid after"),
            ("_public_key", "public key"),
        )
        assert self._not_before is not None and self._not_after is not None  # for mypy
        if self._not_after <= self._not_before:
            raise ValueError("not valid after must be later than not valid before")

        subject = x509.Name.load(self._subject)
        extensions = [x509.Extension.load(stored.der) for stored in self._extensions]
        self._check_rules(subject, extensions)

        tbs_fields: dict[str, object] = {
            "version": "v3",
            "serial_number": self._serial,
            # RSA gets explicit NULL parameters (RFC 4055 / 8017), ECDSA
            # none (RFC 5758 3.2); asn1crypto does both for these names.
            "signature": algos.SignedDigestAlgorithm({"algorithm": signature_algorithm}),
            "issuer": x509.Name.load(self._issuer),
            "validity": x509.Validity(
                {
                    "not_before": encode_validity_time(self._not_before),
                    "not_after": encode_validity_time(self._not_after),
                }
            ),
            "subject": subject,
            "subject_public_key_info": keys.PublicKeyInfo.load(self._public_key),
        }
        if extensions:
            # An empty extensions SEQUENCE is invalid (SIZE (1..MAX)); omit it.
            tbs_fields["extensions"] = x509.Extensions(extensions)
        return x509.TbsCertificate(tbs_fields)

    def _check_rules(self, subject: x509.Name, extensions: list[x509.Extension]) -> None:
        subject_empty = len(subject.chosen) == 0
        values: dict[str, Any] = {}
        for stored, extension in zip(self._extensions, extensions, strict=True):
            if stored.name != stored.oid:
                values[stored.name] = extension["extn_value"].parsed.native
        is_ca = bool(values.get("basic_constraints", {}).get("ca"))
        for stored in self._extensions:
            problem = criticality_violation(
                stored.name, stored.critical, is_ca=is_ca, subject_empty=subject_empty
            )
            if problem:
                raise ValueError(f"cannot build: {problem}")
        for reference, violated, message in _BUILD_RULES:
            if violated(values, subject_empty):
                raise ValueError(f"cannot build: {message} ({reference})")


def sign_certificate(
    tbs: x509.TbsCertificate, signer: Signer, *, verify: bool = True
) -> x509.Certificate:
    """Sign ``tbs`` with ``signer`` and return the complete certificate.

    The TBS signature algorithm must equal ``signer.algorithm`` (and suit the
    signer's key type).  The DER of ``tbs`` is what gets signed.  With
    ``verify`` (the default) the signature is checked against
    ``signer.public_key_info`` before the certificate is returned, so a
    signer using the wrong key raises :class:`SignatureVerificationError`
    instead of yielding a certificate that no relying party accepts.
    """
    if not isinstance(tbs, x509.TbsCertificate):
        raise ValueError("tbs must be an asn1crypto x509.TbsCertificate")
    data = tbs.dump()
    signature = sign_and_verify(signer, tbs["signature"]["algorithm"].native, data, verify=verify)
    return x509.Certificate(
        {
            "tbs_certificate": x509.TbsCertificate.load(data),
            # Must be identical to the TBS 'signature' field (RFC 5280 4.1.1.2).
            "signature_algorithm": algos.SignedDigestAlgorithm.load(tbs["signature"].dump()),
            "signature_value": signature,
        }
    )
