"""An immutable X.509 v2 CRL builder on asn1crypto (RFC 5280 section 5), and CRL signing.

Shaped like :class:`~scaivault_pki.pki.builder.CertificateBuilder`: every setter validates its argument once and
returns a new builder, setting a field twice is an error, :meth:`CrlBuilder.build` returns the unsigned
``TbsCertList`` and :func:`sign_crl` has it signed by a :class:`~scaivault_pki.pki.signing.Signer` (the HSM's in
production). Nothing here touches the database.

What the builder emits, and why:

- version v2, because CRL extensions are present (RFC 5280 5.1.2.1);
- authorityKeyIdentifier and cRLNumber, both required of conforming CAs (5.2.1, 5.2.3), non-critical;
- for a delta CRL, the critical deltaCRLIndicator naming the base CRL's number (5.2.4);
- for a full CRL, optionally the non-critical freshestCRL pointing at the delta CRL (5.2.6);
- per entry a reasonCode extension, left out for ``unspecified`` as 5.3.1 recommends;
- no issuingDistributionPoint: our CRLs are complete for their CA's whole scope (user and CA certificates, all
  reasons), which is what a CRL without one means, so certificates' CRL distribution points always match.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from asn1crypto import algos, core, crl, x509
from asn1crypto import parser as asn1_parser

from . import extensions as ext
from .builder import ImmutableBuilder, encode_validity_time
from .serials import MAX_SERIAL
from .signing import SIGNATURE_ALGORITHMS, Signer, sign_and_verify

__all__ = [
    "CRL_REASONS",
    "CrlBuilder",
    "RevokedEntry",
    "asn1_reason",
    "known_reason",
    "sign_crl",
]

#: RFC 5280 5.3.1 reason names, as the API takes them, mapped to asn1crypto's ``CRLReason`` names.
#: ``removeFromCRL`` only exists in delta CRLs (un-holding a certificate) and is never a reason to revoke.
CRL_REASONS: Final[dict[str, str]] = {
    "unspecified": "unspecified",
    "keyCompromise": "key_compromise",
    "cACompromise": "ca_compromise",
    "affiliationChanged": "affiliation_changed",
    "superseded": "superseded",
    "cessationOfOperation": "cessation_of_operation",
    "certificateHold": "certificate_hold",
    "privilegeWithdrawn": "privilege_withdrawn",
    "aACompromise": "aa_compromise",
}

# RFC 5280 5.2.3: a CRL number is a non-negative INTEGER of at most 20 octets, like a serial.
_MAX_CRL_NUMBER: Final = MAX_SERIAL


def asn1_reason(reason: str) -> str:
    """The asn1crypto ``CRLReason`` name of an RFC 5280 reason name; ValueError for anything else."""
    try:
        return CRL_REASONS[reason]
    except (KeyError, TypeError):
        raise ValueError(f"unknown revocation reason {reason!r}; expected one of {', '.join(CRL_REASONS)}") from None


def known_reason(value: str | None) -> str:
    """A stored reason as an RFC 5280 name; anything we cannot encode (None, unknown text) is ``unspecified``."""
    return value if value in CRL_REASONS else "unspecified"


@functools.lru_cache(maxsize=len(CRL_REASONS))
def _entry_extensions_der(reason: str) -> bytes:
    """crlEntryExtensions for ``reason``: a reasonCode, or nothing for unspecified (RFC 5280 5.3.1)."""
    if reason == "unspecified":
        return b""
    extension = crl.CRLEntryExtension({"extn_id": "crl_reason", "critical": False, "extn_value": asn1_reason(reason)})
    return crl.CRLEntryExtensions([extension]).dump()


def _sequence(contents: bytes) -> bytes:
    return asn1_parser.emit(0, 1, 16, contents)  # universal, constructed, SEQUENCE


# Entries are encoded from parts rather than as an asn1crypto object each: a CRL lists thousands, asn1crypto
# spends about a millisecond on each, and the CRL is built while the CA's write lock is held. The parts are
# asn1crypto's own encodings, so the DER is the same. Most entries reappear on every CRL of their CA, so they are
# remembered: a publication only encodes what was revoked since the last one.
@functools.lru_cache(maxsize=65536)
def _entry_der(serial: int, revoked_at: datetime, reason: str) -> bytes:
    contents = core.Integer(serial).dump() + encode_validity_time(revoked_at).dump() + _entry_extensions_der(reason)
    return _sequence(contents)


@dataclass(frozen=True)
class RevokedEntry:
    """One revoked certificate as a CRL lists it."""

    serial: int
    revoked_at: datetime  # aware UTC
    reason: str = "unspecified"  # an RFC 5280 name (a key of CRL_REASONS)

    def __post_init__(self) -> None:
        if isinstance(self.serial, bool) or not isinstance(self.serial, int) or not 0 < self.serial <= MAX_SERIAL:
            raise ValueError(f"invalid serial {self.serial!r}: a positive integer of at most 20 octets")
        asn1_reason(self.reason)
        self.der  # noqa: B018 - encoding checks the time: aware UTC, 1950 or later

    @property
    def der(self) -> bytes:
        """The entry's ``RevokedCertificate`` DER."""
        return _entry_der(self.serial, self.revoked_at, self.reason)


class CrlBuilder(ImmutableBuilder):
    """Immutable builder for an unsigned v2 ``TbsCertList`` (full or delta)."""

    __slots__ = (
        "_issuer",
        "_key_identifier",
        "_this_update",
        "_next_update",
        "_number",
        "_entries",
        "_delta_base",
        "_freshest_urls",
    )

    _issuer: bytes | None
    _key_identifier: bytes | None
    _this_update: datetime | None
    _next_update: datetime | None
    _number: int | None
    _entries: tuple[RevokedEntry, ...] | None
    _delta_base: int | None
    _freshest_urls: tuple[str, ...] | None

    def _set_once(self, slot: str, label: str, value: object) -> CrlBuilder:
        self._require_unset(slot, label)
        return self._with(slot, value)

    def issuer_name(self, name: x509.Name) -> CrlBuilder:
        """The CA's subject, exactly as encoded in its certificate (relying parties match it byte for byte)."""
        if not isinstance(name, x509.Name) or len(name.chosen) == 0:
            raise ValueError("issuer name must be a non-empty asn1crypto x509.Name (RFC 5280 5.1.2.3)")
        return self._set_once("_issuer", "issuer name", name.dump())

    def authority_key_identifier(self, key_identifier: bytes) -> CrlBuilder:
        """The CA's subjectKeyIdentifier."""
        if not isinstance(key_identifier, bytes) or not key_identifier:
            raise ValueError("key identifier must be non-empty bytes")
        return self._set_once("_key_identifier", "authority key identifier", key_identifier)

    def this_update(self, when: datetime) -> CrlBuilder:
        """When this CRL was issued (aware UTC; sub-seconds are dropped)."""
        encode_validity_time(when)
        value = when.replace(microsecond=0)
        if self._next_update is not None and value >= self._next_update:
            raise ValueError("this update must be earlier than next update")
        return self._set_once("_this_update", "this update", value)

    def next_update(self, when: datetime) -> CrlBuilder:
        """When the next CRL will be issued at the latest (aware UTC; RFC 5280 5.1.2.5 makes it mandatory)."""
        encode_validity_time(when)
        value = when.replace(microsecond=0)
        if self._this_update is not None and value <= self._this_update:
            raise ValueError("next update must be later than this update")
        return self._set_once("_next_update", "next update", value)

    def crl_number(self, number: int) -> CrlBuilder:
        """The CRL number: strictly increasing per CA, shared by full and delta CRLs (RFC 5280 5.2.3)."""
        if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= _MAX_CRL_NUMBER:
            raise ValueError("CRL number must be a non-negative integer of at most 20 octets (RFC 5280 5.2.3)")
        return self._set_once("_number", "CRL number", number)

    def revoked_certificates(self, entries: Iterable[RevokedEntry]) -> CrlBuilder:
        """Every entry at once (set once; an empty list is a CRL that revokes nothing)."""
        values = tuple(entries)
        if not all(isinstance(entry, RevokedEntry) for entry in values):
            raise ValueError("entries must be RevokedEntry values")
        serials = [entry.serial for entry in values]
        if len(set(serials)) != len(serials):
            raise ValueError("a serial number may appear only once in a CRL")
        return self._set_once("_entries", "revoked certificates", values)

    def delta_of(self, base_number: int) -> CrlBuilder:
        """Make this a delta CRL over the full CRL numbered ``base_number`` (RFC 5280 5.2.4)."""
        if isinstance(base_number, bool) or not isinstance(base_number, int) or not 0 <= base_number <= _MAX_CRL_NUMBER:
            raise ValueError("base CRL number must be a non-negative integer of at most 20 octets")
        return self._set_once("_delta_base", "delta CRL base", base_number)

    def freshest_crl(self, urls: Sequence[str]) -> CrlBuilder:
        """Where the delta CRLs for this full CRL are (RFC 5280 5.2.6)."""
        ext.crl_distribution_points(urls)  # validates the URLs
        return self._set_once("_freshest_urls", "freshest CRL", tuple(urls))

    def build(self, signature_algorithm: str) -> crl.TbsCertList:
        """Return the unsigned ``TbsCertList``; ValueError when a field is missing or the rules are broken."""
        if signature_algorithm not in SIGNATURE_ALGORITHMS:
            raise ValueError(f"signature algorithm {signature_algorithm!r} is not supported")
        self._require_set(
            ("_issuer", "issuer name"),
            ("_key_identifier", "authority key identifier"),
            ("_this_update", "this update"),
            ("_next_update", "next update"),
            ("_number", "CRL number"),
        )
        assert self._number is not None and self._this_update is not None and self._next_update is not None
        extensions = [
            crl.TBSCertListExtension(
                {"extn_id": "authority_key_identifier", "critical": False,
                 "extn_value": ext.authority_key_identifier(self._key_identifier or b"")}
            ),
            crl.TBSCertListExtension({"extn_id": "crl_number", "critical": False, "extn_value": self._number}),
        ]
        if self._delta_base is not None:
            if self._freshest_urls is not None:
                raise ValueError("cannot build: freshestCRL belongs in full CRLs, not in a delta CRL")
            if self._delta_base >= self._number:
                raise ValueError("cannot build: a delta CRL's number must exceed its base CRL's (RFC 5280 5.2.4)")
            extensions.append(
                crl.TBSCertListExtension(
                    {"extn_id": "delta_crl_indicator", "critical": True, "extn_value": self._delta_base}
                )
            )
        if self._freshest_urls is not None:
            extensions.append(
                crl.TBSCertListExtension(
                    {"extn_id": "freshest_crl", "critical": False,
                     "extn_value": ext.crl_distribution_points(self._freshest_urls)}
                )
            )
        fields: dict[str, object] = {
            "version": "v2",
            "signature": algos.SignedDigestAlgorithm({"algorithm": signature_algorithm}),
            "issuer": x509.Name.load(self._issuer or b""),
            "this_update": encode_validity_time(self._this_update),
            "next_update": encode_validity_time(self._next_update),
            "crl_extensions": crl.TBSCertListExtensions(extensions),
        }
        if self._entries:
            # RFC 5280 5.1.2.6: with nothing revoked the list is absent, not empty.
            listed = _sequence(b"".join(entry.der for entry in self._entries))
            fields["revoked_certificates"] = crl.RevokedCertificates.load(listed)
        return crl.TbsCertList(fields)


def sign_crl(tbs: crl.TbsCertList, signer: Signer, *, verify: bool = True) -> crl.CertificateList:
    """Sign ``tbs`` with ``signer`` (the CA's key) and return the CRL; the signature is checked first."""
    if not isinstance(tbs, crl.TbsCertList):
        raise ValueError("tbs must be an asn1crypto crl.TbsCertList")
    data = tbs.dump()
    signature = sign_and_verify(signer, tbs["signature"]["algorithm"].native, data, verify=verify)
    return crl.CertificateList(
        {
            "tbs_cert_list": crl.TbsCertList.load(data),
            # Must equal the TBS 'signature' field (RFC 5280 5.1.1.2).
            "signature_algorithm": algos.SignedDigestAlgorithm.load(tbs["signature"].dump()),
            "signature": signature,
        }
    )
