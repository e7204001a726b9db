"""ScaiVault certificate profiles: which fields and extensions CA and leaf certificates get.

These are pure functions from request data to a configured
:class:`~scaivault_pki.pki.builder.CertificateBuilder`; nothing here signs or
touches the HSM.  The profiles follow RFC 5280 and, for TLS server leaves, the
CA/B Forum TLS Baseline Requirements as checked by pkilint, so that a chain we
issue lints clean with ``lint_pkix_cert`` and ``lint_cabf_serverauth_cert``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from asn1crypto import keys, x509

from . import extensions as ext
from .builder import CertificateBuilder

__all__ = [
    "ANY_POLICY_OID",
    "CABF_DV_POLICY_OID",
    "CA_KEY_USAGE",
    "DEFAULT_LEAF_EKU",
    "IssuerInfo",
    "ca_certificate_builder",
    "clamp_validity",
    "key_type_and_size",
    "leaf_certificate_builder",
    "leaf_key_usage",
    "max_tls_subscriber_validity",
    "signature_algorithm_for",
]

#: CA/B Forum reserved policy OID for domain-validated TLS certificates
#: (BR 7.1.6.1).  pkilint's ``--detect`` mode uses it to recognise a TLS
#: subscriber certificate, and BR 7.1.2.7.9 requires a reserved OID in every one.
CABF_DV_POLICY_OID: Final = "2.23.140.1.2.1"

#: RFC 5280 4.2.1.4 anyPolicy, for internal TLS issuing CAs.
ANY_POLICY_OID: Final = "2.5.29.32.0"

#: keyUsage of every CA certificate: certificate and CRL signing, plus
#: digitalSignature so the CA key can sign OCSP responses directly (RFC 6960
#: 4.2.2.2 accepts the CA itself as responder).
CA_KEY_USAGE: Final[frozenset[str]] = frozenset({"key_cert_sign", "crl_sign", "digital_signature"})

#: Default extended key usages of a leaf: a TLS server that may also act as a client.
DEFAULT_LEAF_EKU: Final[tuple[str, ...]] = ("server_auth", "client_auth")

# Key usage bits that belong to CAs only (RFC 5280 4.2.1.3: keyCertSign needs cA).
_CA_ONLY_KEY_USAGE: Final = frozenset({"key_cert_sign", "crl_sign"})
# Bits an EC key cannot honour: it cannot encrypt (RFC 5480 3 lists which are valid).
_NOT_FOR_EC_KEY_USAGE: Final = frozenset({"key_encipherment", "data_encipherment"})

#: CA/B Forum BR 6.3.2 (ballot SC-081) maximum TLS subscriber validity by the
#: date the validity period starts.  pkilint counts the period inclusively,
#: i.e. notAfter - notBefore + 1 second must not exceed these.
_TLS_VALIDITY_SCHEDULE: Final[tuple[tuple[datetime, timedelta], ...]] = (
    (datetime(2026, 3, 15, tzinfo=UTC), timedelta(days=398)),
    (datetime(2027, 3, 15, tzinfo=UTC), timedelta(days=200)),
    (datetime(2029, 3, 15, tzinfo=UTC), timedelta(days=100)),
)
_TLS_VALIDITY_FINAL: Final = timedelta(days=47)

#: asn1crypto curve names -> the bit size our key policy talks about.
_CURVE_SIZES: Final[dict[str, int]] = {"secp256r1": 256, "secp384r1": 384, "secp521r1": 521}


def max_tls_subscriber_validity(not_before: datetime) -> timedelta:
    """Return the longest validity (inclusive count) the CA/B Forum BR allow for
    a TLS subscriber certificate whose validity starts at ``not_before``."""
    for starts_before, limit in _TLS_VALIDITY_SCHEDULE:
        if not_before < starts_before:
            return limit
    return _TLS_VALIDITY_FINAL


def signature_algorithm_for(key_type: str, key_size: int) -> str:
    """Return the signature algorithm a CA key of this type and size signs with.

    RSA (any size) -> ``sha256_rsa``; EC P-256 -> ``sha256_ecdsa``; EC P-384
    -> ``sha384_ecdsa``.  Matching the hash strength to the curve is what the
    CA/B Forum BR 7.1.3.2 and Mozilla policy require.  ``key_type`` is
    ``"rsa"`` or ``"ec"`` (case-insensitive).
    """
    kind = key_type.lower()
    if kind == "rsa":
        if key_size < 2048:
            raise ValueError(f"RSA keys must be at least 2048 bits, got {key_size}")
        return "sha256_rsa"
    if kind == "ec":
        if key_size == 256:
            return "sha256_ecdsa"
        if key_size == 384:
            return "sha384_ecdsa"
        raise ValueError(f"unsupported EC key size {key_size}; expected 256 or 384")
    raise ValueError(f"unsupported key type {key_type!r}; expected 'rsa' or 'ec'")


def key_type_and_size(public_key_info: keys.PublicKeyInfo) -> tuple[str, int]:
    """Return ``("rsa", bits)`` or ``("ec", curve bits)`` for a public key."""
    algorithm = public_key_info.algorithm
    if algorithm == "rsa":
        return "rsa", public_key_info.bit_size
    if algorithm == "ec":
        kind, curve = public_key_info.curve
        if kind != "named" or curve not in _CURVE_SIZES:
            raise ValueError(f"unsupported EC curve {curve!r}")
        return "ec", _CURVE_SIZES[curve]
    raise ValueError(f"unsupported key algorithm {algorithm!r}")


def _tuple_of_str(label: str, values: Iterable[str]) -> tuple[str, ...]:
    if isinstance(values, str):
        raise ValueError(f"{label} must be a list of strings, not a string")
    result = tuple(values)
    if not all(isinstance(v, str) for v in result):
        raise ValueError(f"{label} must contain only strings")
    return result


@dataclass(frozen=True)
class IssuerInfo:
    """What a subordinate certificate needs to know about its issuing CA.

    ``name`` must be the issuer certificate's subject (as encoded there) and
    ``key_identifier`` its subjectKeyIdentifier.  URL lists are stored as
    tuples so the dataclass is truly immutable.  Only ``http`` URLs are
    accepted: the CA/B Forum BR require them and https would make revocation
    checking depend on itself.
    """

    name: x509.Name
    key_identifier: bytes
    crl_urls: Sequence[str] = field(default=())
    ca_issuers_urls: Sequence[str] = field(default=())
    ocsp_urls: Sequence[str] = field(default=())

    def __post_init__(self) -> None:
        if not isinstance(self.name, x509.Name) or len(self.name.chosen) == 0:
            raise ValueError("issuer name must be a non-empty x509.Name")
        if not isinstance(self.key_identifier, bytes) or not self.key_identifier:
            raise ValueError("issuer key_identifier must be non-empty bytes")
        for label in ("crl_urls", "ca_issuers_urls", "ocsp_urls"):
            urls = _tuple_of_str(label, getattr(self, label))
            for url in urls:
                ext.validate_url(url, schemes=("http",))
            object.__setattr__(self, label, urls)

    @classmethod
    def from_certificate(
        cls,
        certificate: x509.Certificate,
        *,
        crl_urls: Sequence[str] = (),
        ca_issuers_urls: Sequence[str] = (),
        ocsp_urls: Sequence[str] = (),
    ) -> IssuerInfo:
        """Build issuer info from the issuing CA's certificate.

        Uses the certificate's own subjectKeyIdentifier when present (it may
        have been computed by another method than ours), else RFC 5280 method 1.
        """
        key_identifier = certificate.key_identifier or ext.key_identifier_for(
            certificate.public_key
        )
        return cls(
            name=x509.Name.load(certificate.subject.dump()),
            key_identifier=key_identifier,
            crl_urls=crl_urls,
            ca_issuers_urls=ca_issuers_urls,
            ocsp_urls=ocsp_urls,
        )


def _base_builder(
    *,
    subject: x509.Name,
    issuer_name: x509.Name,
    public_key_info: keys.PublicKeyInfo,
    serial: int,
    not_before: datetime,
    not_after: datetime,
) -> CertificateBuilder:
    return (
        CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(public_key_info)
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )


def _add_issuer_pointers(builder: CertificateBuilder, issuer: IssuerInfo) -> CertificateBuilder:
    """Add AKI, and CRL DP / AIA when the issuer publishes them."""
    builder = builder.add_extension(
        "authority_key_identifier",
        ext.authority_key_identifier(issuer.key_identifier),
        critical=ext.preferred_criticality("authority_key_identifier", is_ca=False),
    )
    if issuer.crl_urls:
        builder = builder.add_extension(
            "crl_distribution_points",
            ext.crl_distribution_points(issuer.crl_urls),
            critical=ext.preferred_criticality("crl_distribution_points", is_ca=False),
        )
    if issuer.ca_issuers_urls or issuer.ocsp_urls:
        builder = builder.add_extension(
            "authority_information_access",
            ext.authority_information_access(issuer.ca_issuers_urls, issuer.ocsp_urls),
            critical=ext.preferred_criticality("authority_information_access", is_ca=False),
        )
    return builder


def ca_certificate_builder(
    *,
    subject: x509.Name,
    public_key_info: keys.PublicKeyInfo,
    serial: int,
    not_before: datetime,
    not_after: datetime,
    path_len: int | None,
    issuer: IssuerInfo | None,
    extended_key_usage: Sequence[str] | None = None,
    policy_oids: Sequence[str] | None = None,
) -> CertificateBuilder:
    """Return a builder for a root (``issuer=None``, self-signed) or intermediate CA.

    Extensions, in order: basicConstraints (critical, cA TRUE, with
    pathLenConstraint when ``path_len`` is given), keyUsage (critical,
    keyCertSign + cRLSign + digitalSignature), subjectKeyIdentifier, then
    authorityKeyIdentifier.  Roots get an AKI equal to their SKI: RFC 5280
    4.2.1.1 lets self-signed certificates omit it, but the CA/B Forum BR
    (7.1.2.1.2) recommend it and pkilint warns without it.  Intermediates
    also get cRLDistributionPoints and authorityInfoAccess when ``issuer``
    has URLs.

    ``extended_key_usage`` and ``policy_oids`` (intermediates only) restrict
    what the CA may issue; the CA/B Forum BR 7.1.2.10 require both in a TLS
    issuing CA (e.g. ``["server_auth", "client_auth"]`` and the anyPolicy
    OID ``"2.5.29.32.0"`` or a reserved CA/B Forum OID).  RFC 5280 needs neither.
    """
    if len(subject.chosen) == 0:
        raise ValueError("a CA certificate needs a non-empty subject (RFC 5280 4.1.2.6)")
    if issuer is None and (extended_key_usage is not None or policy_oids is not None):
        # BR 7.1.2.1.2: extKeyUsage MUST NOT and certificatePolicies SHOULD NOT
        # appear in roots; constrain at the intermediate instead.
        raise ValueError("root CAs must not carry extended key usage or policies")
    own_key_identifier = ext.key_identifier_for(public_key_info)
    builder = _base_builder(
        subject=subject,
        issuer_name=subject if issuer is None else issuer.name,
        public_key_info=public_key_info,
        serial=serial,
        not_before=not_before,
        not_after=not_after,
    )
    builder = builder.add_extension(
        "basic_constraints",
        ext.basic_constraints(ca=True, path_len=path_len),
        critical=ext.preferred_criticality("basic_constraints", is_ca=True),
    ).add_extension(
        "key_usage",
        ext.key_usage(CA_KEY_USAGE),
        critical=ext.preferred_criticality("key_usage", is_ca=True),
    )
    if extended_key_usage is not None:
        builder = builder.add_extension(
            "extended_key_usage",
            ext.extended_key_usage(_tuple_of_str("extended_key_usage", extended_key_usage)),
            critical=ext.preferred_criticality("extended_key_usage", is_ca=True),
        )
    if policy_oids is not None:
        builder = builder.add_extension(
            "certificate_policies",
            ext.certificate_policies(_tuple_of_str("policy_oids", policy_oids)),
            critical=ext.preferred_criticality("certificate_policies", is_ca=True),
        )
    builder = builder.add_extension(
        "key_identifier",
        ext.subject_key_identifier(public_key_info),
        critical=ext.preferred_criticality("key_identifier", is_ca=True),
    )
    if issuer is None:
        return builder.add_extension(
            "authority_key_identifier",
            ext.authority_key_identifier(own_key_identifier),
            critical=ext.preferred_criticality("authority_key_identifier", is_ca=True),
        )
    return _add_issuer_pointers(builder, issuer)


def leaf_key_usage(key_type: str) -> frozenset[str]:
    """Default leaf keyUsage: digitalSignature, plus keyEncipherment for RSA.

    keyEncipherment only matters for TLS 1.2 RSA key transport; pkilint's
    CA/B Forum lint reports it as a WARNING when combined with
    digitalSignature, which we accept for compatibility with old clients.
    """
    if key_type == "rsa":
        return frozenset({"digital_signature", "key_encipherment"})
    return frozenset({"digital_signature"})


def _common_name(subject: x509.Name) -> str | None:
    values = [
        rdn_value["value"].native
        for rdn in subject.chosen
        for rdn_value in rdn
        if rdn_value["type"].native == "common_name"
    ]
    if len(values) > 1:
        raise ValueError("subject must not contain more than one common name")
    return values[0] if values else None


def _check_common_name_in_san(
    common_name: str | None,
    dns_names: Sequence[str],
    ip_addresses: Sequence[str],
    server_auth: bool,
) -> None:
    """RFC 6125 6.4.4 / CA/B Forum BR 7.1.4.3: the CN must repeat a SAN entry."""
    if common_name is None:
        return
    try:
        cn_ip = ipaddress.ip_address(common_name)
    except ValueError:
        cn_ip = None
    if cn_ip is not None:
        if cn_ip not in {ipaddress.ip_address(ip) for ip in ip_addresses}:
            raise ValueError(f"common name {common_name!r} must also be a SAN IP address")
        return
    try:
        ext.validate_dns_name(common_name)
        looks_like_dns = "." in common_name
    except ValueError:
        looks_like_dns = False
    if (looks_like_dns or server_auth) and common_name not in dns_names:
        raise ValueError(f"common name {common_name!r} must also be a SAN DNS name")


def leaf_certificate_builder(
    *,
    subject: x509.Name,
    public_key_info: keys.PublicKeyInfo,
    serial: int,
    not_before: datetime,
    not_after: datetime,
    issuer: IssuerInfo,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    uris: Sequence[str] = (),
    emails: Sequence[str] = (),
    key_usage: Iterable[str] | None = None,
    extended_key_usage: Sequence[str] | None = None,
    policy_oids: Sequence[str] | None = None,
) -> CertificateBuilder:
    """Return a builder for an end-entity certificate issued by ``issuer``.

    Extensions, in order: basicConstraints cA FALSE (critical, as the CA/B
    Forum BR 7.1.2.7.6 want), keyUsage (critical; default from
    :func:`leaf_key_usage` for the key type, derived from
    ``public_key_info``), extendedKeyUsage (default serverAuth + clientAuth),
    subjectAltName (always; critical only for an empty subject),
    certificatePolicies, subjectKeyIdentifier, authorityKeyIdentifier, and
    cRLDistributionPoints / authorityInfoAccess from ``issuer``.

    ``policy_oids`` defaults to the CA/B Forum DV OID when serverAuth is
    requested (BR 7.1.2.7.9 requires a reserved OID) and to none otherwise.
    A common name must repeat a SAN DNS name or IP address; with serverAuth
    any common name must.  A serverAuth leaf needs revocation information
    (BR 7.1.2.11.2), so ``issuer`` must then carry CRL or OCSP URLs.
    """
    key_type, _ = key_type_and_size(public_key_info)
    dns = _tuple_of_str("dns_names", dns_names)
    ips = _tuple_of_str("ip_addresses", ip_addresses)
    uri_list = _tuple_of_str("uris", uris)
    email_list = _tuple_of_str("emails", emails)

    usages = frozenset(leaf_key_usage(key_type) if key_usage is None else key_usage)
    if usages & _CA_ONLY_KEY_USAGE:
        raise ValueError(
            f"key usage {sorted(usages & _CA_ONLY_KEY_USAGE)} is only allowed in CA certificates"
        )
    if key_type == "ec" and usages & _NOT_FOR_EC_KEY_USAGE:
        raise ValueError(
            f"key usage {sorted(usages & _NOT_FOR_EC_KEY_USAGE)} is not possible with an EC key"
        )
    ekus = _tuple_of_str(
        "extended_key_usage",
        DEFAULT_LEAF_EKU if extended_key_usage is None else extended_key_usage,
    )
    server_auth = "server_auth" in ekus or ext.EXTENDED_KEY_USAGE_NAMES["server_auth"] in ekus
    if policy_oids is None:
        policy_oids = (CABF_DV_POLICY_OID,) if server_auth else ()
    policies = _tuple_of_str("policy_oids", policy_oids)

    subject_empty = len(subject.chosen) == 0
    _check_common_name_in_san(_common_name(subject), dns, ips, server_auth)
    if server_auth and not (issuer.crl_urls or issuer.ocsp_urls):
        raise ValueError(
            "a serverAuth certificate needs revocation information: "
            "give the issuer CRL or OCSP URLs (CA/B Forum BR 7.1.2.11.2)"
        )

    builder = _base_builder(
        subject=subject,
        issuer_name=issuer.name,
        public_key_info=public_key_info,
        serial=serial,
        not_before=not_before,
        not_after=not_after,
    )
    builder = (
        builder.add_extension(
            "basic_constraints",
            ext.basic_constraints(ca=False),
            # RFC 5280 leaves this open; the CA/B Forum BR 7.1.2.7.6 want it critical.
            critical=True,
        )
        .add_extension(
            "key_usage",
            ext.key_usage(usages),
            critical=ext.preferred_criticality("key_usage", is_ca=False),
        )
        .add_extension(
            "extended_key_usage",
            ext.extended_key_usage(ekus),
            critical=ext.preferred_criticality("extended_key_usage", is_ca=False),
        )
        .add_extension(
            "subject_alt_name",
            ext.subject_alt_name(dns=dns, ips=ips, uris=uri_list, emails=email_list),
            critical=ext.preferred_criticality(
                "subject_alt_name", is_ca=False, subject_empty=subject_empty
            ),
        )
    )
    if policies:
        builder = builder.add_extension(
            "certificate_policies",
            ext.certificate_policies(policies),
            critical=ext.preferred_criticality("certificate_policies", is_ca=False),
        )
    builder = builder.add_extension(
        "key_identifier",
        ext.subject_key_identifier(public_key_info),
        critical=ext.preferred_criticality("key_identifier", is_ca=False),
    )
    return _add_issuer_pointers(builder, issuer)


def clamp_validity(
    now: datetime, ttl: timedelta, ca_not_after: datetime, backdate: timedelta
) -> tuple[datetime, datetime]:
    """Return ``(not_before, not_after)`` for a certificate issued at ``now``.

    notBefore is ``now - backdate`` (backdating absorbs clock skew at relying
    parties); notAfter is ``now + ttl`` but never after the issuing CA's own
    notAfter, since a certificate outliving its issuer cannot validate.  Both
    are truncated to whole seconds, which is all X.509 encodes.  All
    datetimes must be timezone-aware UTC; ``ttl`` must be positive and
    ``backdate`` non-negative.  Raises ``ValueError`` when the CA expires
    before the resulting notBefore.
    """
    for label, value in (("now", now), ("ca_not_after", ca_not_after)):
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError(f"{label} must be a timezone-aware datetime")
        if value.utcoffset() != timedelta(0):
            raise ValueError(f"{label} must be in UTC")
    if ttl <= timedelta(0):
        raise ValueError("ttl must be positive")
    if backdate < timedelta(0):
        raise ValueError("backdate must not be negative")
    not_before = (now - backdate).replace(microsecond=0)
    not_after = min(now + ttl, ca_not_after).replace(microsecond=0)
    if not_after <= not_before:
        raise ValueError("the issuing CA expires before the certificate would become valid")
    return not_before, not_after
