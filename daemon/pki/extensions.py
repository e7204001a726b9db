"""Certificate extension values and the RFC 5280 criticality rules.

Every helper is a pure function returning an asn1crypto value suitable for
``CertificateBuilder.add_extension(extn_id, value, critical)``; extension ids
are asn1crypto ``ExtensionId`` names (note that asn1crypto calls
subjectKeyIdentifier ``"key_identifier"``).  Inputs are validated here, once,
so that a malformed URL or DNS name is reported with a clear ``ValueError``
instead of producing a certificate that relying parties reject.
"""

from __future__ import annotations

import enum
import hashlib
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from asn1crypto import core, keys, x509

__all__ = [
    "CRITICALITY",
    "EXTENDED_KEY_USAGE_NAMES",
    "KEY_USAGE_NAMES",
    "Criticality",
    "CriticalityRule",
    "authority_information_access",
    "authority_key_identifier",
    "basic_constraints",
    "certificate_policies",
    "criticality_violation",
    "crl_distribution_points",
    "extended_key_usage",
    "key_identifier_for",
    "key_usage",
    "preferred_criticality",
    "subject_alt_name",
    "subject_key_identifier",
    "validate_dns_name",
    "validate_url",
]


# ---------------------------------------------------------------------------
# Criticality rules (data)
# ---------------------------------------------------------------------------


class Criticality(enum.Enum):
    """What a specification says about an extension's critical flag."""

    MUST = "must be critical"
    SHOULD = "should be critical"
    EITHER = "may be critical or not"
    SHOULD_NOT = "should not be critical"
    MUST_NOT = "must not be critical"


@dataclass(frozen=True)
class CriticalityRule:
    """The criticality requirement for one extension.

    ``in_ca`` overrides ``default`` in CA certificates (basicConstraints cA
    TRUE); ``with_empty_subject`` overrides it when the subject is the empty
    name.  The more specific override wins (empty subject, then CA).
    """

    default: Criticality
    reference: str
    in_ca: Criticality | None = None
    with_empty_subject: Criticality | None = None


#: RFC 5280 (and companion RFCs) criticality requirements by asn1crypto
#: extension id.  Extensions not listed carry no requirement (EITHER).
CRITICALITY: Final[dict[str, CriticalityRule]] = {
    "authority_key_identifier": CriticalityRule(Criticality.MUST_NOT, "RFC 5280 4.2.1.1"),
    "key_identifier": CriticalityRule(Criticality.MUST_NOT, "RFC 5280 4.2.1.2"),
    "key_usage": CriticalityRule(Criticality.SHOULD, "RFC 5280 4.2.1.3"),
    "certificate_policies": CriticalityRule(Criticality.EITHER, "RFC 5280 4.2.1.4"),
    "policy_mappings": CriticalityRule(Criticality.SHOULD, "RFC 5280 4.2.1.5"),
    "subject_alt_name": CriticalityRule(
        Criticality.SHOULD_NOT, "RFC 5280 4.2.1.6", with_empty_subject=Criticality.MUST
    ),
    "issuer_alt_name": CriticalityRule(Criticality.SHOULD_NOT, "RFC 5280 4.2.1.7"),
    "subject_directory_attributes": CriticalityRule(Criticality.MUST_NOT, "RFC 5280 4.2.1.8"),
    # MAY either way in end-entity certificates; MUST be critical in CA
    # certificates whose key verifies certificate signatures.
    "basic_constraints": CriticalityRule(
        Criticality.EITHER, "RFC 5280 4.2.1.9", in_ca=Criticality.MUST
    ),
    "name_constraints": CriticalityRule(Criticality.MUST, "RFC 5280 4.2.1.10"),
    "policy_constraints": CriticalityRule(Criticality.MUST, "RFC 5280 4.2.1.11"),
    "extended_key_usage": CriticalityRule(Criticality.EITHER, "RFC 5280 4.2.1.12"),
    "crl_distribution_points": CriticalityRule(Criticality.SHOULD_NOT, "RFC 5280 4.2.1.13"),
    "inhibit_any_policy": CriticalityRule(Criticality.MUST, "RFC 5280 4.2.1.14"),
    "freshest_crl": CriticalityRule(Criticality.MUST_NOT, "RFC 5280 4.2.1.15"),
    "authority_information_access": CriticalityRule(Criticality.MUST_NOT, "RFC 5280 4.2.2.1"),
    "subject_information_access": CriticalityRule(Criticality.MUST_NOT, "RFC 5280 4.2.2.2"),
    "signed_certificate_timestamp_list": CriticalityRule(Criticality.MUST_NOT, "RFC 6962 3.3"),
}


def _rule_for(extn_id: str, *, is_ca: bool, subject_empty: bool) -> tuple[Criticality, str]:
    rule = CRITICALITY.get(extn_id)
    if rule is None:
        return Criticality.EITHER, "no requirement"
    if subject_empty and rule.with_empty_subject is not None:
        return rule.with_empty_subject, rule.reference
    if is_ca and rule.in_ca is not None:
        return rule.in_ca, rule.reference
    return rule.default, rule.reference


def preferred_criticality(extn_id: str, *, is_ca: bool, subject_empty: bool = False) -> bool:
    """Return the critical flag that satisfies the MUST/SHOULD rules for ``extn_id``.

    For EITHER the answer is ``False``: a non-critical extension cannot make
    a certificate unusable for a relying party that does not understand it.
    """
    requirement, _ = _rule_for(extn_id, is_ca=is_ca, subject_empty=subject_empty)
    return requirement in (Criticality.MUST, Criticality.SHOULD)


def criticality_violation(
    extn_id: str, critical: bool, *, is_ca: bool, subject_empty: bool
) -> str | None:
    """Return a message if ``critical`` breaks a MUST/MUST NOT rule, else ``None``.

    SHOULD rules are not violations; profiles follow them via
    :func:`preferred_criticality`.
    """
    requirement, reference = _rule_for(extn_id, is_ca=is_ca, subject_empty=subject_empty)
    if requirement is Criticality.MUST and not critical:
        return f"{extn_id} must be critical ({reference})"
    if requirement is Criticality.MUST_NOT and critical:
        return f"{extn_id} must not be critical ({reference})"
    return None


# ---------------------------------------------------------------------------
# Name and URL validation shared by the extension helpers
# ---------------------------------------------------------------------------

_LABEL_RE: Final = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
# RFC 5280 4.2.1.13 / 4.2.2.1 only define HTTP, FTP and LDAP retrieval.
_RETRIEVAL_SCHEMES: Final = frozenset({"http", "ldap", "ftp"})


def validate_dns_name(name: str, *, allow_wildcard: bool = True) -> str:
    """Check that ``name`` is a normalised (lower-case ASCII, A-label) DNS name.

    Internationalised names must already be converted to A-labels ("xn--");
    upper case is rejected rather than folded because silently changing a
    requested name would be surprising.  A single leading ``*.`` wildcard
    label is accepted when ``allow_wildcard``.  Underscores are rejected
    because RFC 5280 4.2.1.6 requires preferred name syntax (and the CA/B
    Forum forbids them).  Returns ``name``.
    """
    if not isinstance(name, str) or not name:
        raise ValueError("DNS name must be a non-empty string")
    if not name.isascii():
        raise ValueError(f"DNS name {name!r} is not ASCII; convert it to A-labels first")
    if len(name) > 253:
        raise ValueError(f"DNS name {name!r} is longer than 253 characters")
    labels = name.split(".")
    if labels[0] == "*" and allow_wildcard and len(labels) > 1:
        labels = labels[1:]
    for label in labels:
        if not _LABEL_RE.fullmatch(label):
            raise ValueError(f"DNS name {name!r} has an invalid label {label!r}")
    return name


def validate_url(url: str, *, schemes: Iterable[str] = _RETRIEVAL_SCHEMES) -> str:
    """Check that ``url`` is an absolute, ASCII, already normalised URI.

    Normalised means asn1crypto will encode it unchanged (lower-case scheme
    and host, no spaces), so the certificate contains exactly what was
    configured.  Returns ``url``.
    """
    allowed = frozenset(schemes)
    if not isinstance(url, str) or not url:
        raise ValueError("URL must be a non-empty string")
    if not url.isascii() or any(c.isspace() for c in url):
        raise ValueError(f"URL {url!r} must be ASCII without whitespace")
    parts = urlsplit(url)
    if parts.scheme not in allowed:
        raise ValueError(f"URL {url!r} must use one of the schemes {sorted(allowed)}")
    if not parts.netloc:
        raise ValueError(f"URL {url!r} has no host")
    encoded = x509.URI(url).contents.decode("ascii")
    if encoded != url:
        raise ValueError(f"URL {url!r} is not normalised; use {encoded!r}")
    return url


def _uri(url: str, schemes: Iterable[str] = _RETRIEVAL_SCHEMES) -> x509.GeneralName:
    return x509.GeneralName(
        name="uniform_resource_identifier", value=validate_url(url, schemes=schemes)
    )


def _no_duplicates(kind: str, values: Sequence[str]) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"duplicate {kind} {value!r}")
        seen.add(value)


# ---------------------------------------------------------------------------
# Extension value helpers
# ---------------------------------------------------------------------------

#: KeyUsage bit names understood by asn1crypto.
KEY_USAGE_NAMES: Final[frozenset[str]] = frozenset(x509.KeyUsage._map.values())

#: Friendly extended key usage names accepted besides dotted OIDs.
EXTENDED_KEY_USAGE_NAMES: Final[dict[str, str]] = {
    "server_auth": "1.3.6.1.5.5.7.3.1",
    "client_auth": "1.3.6.1.5.5.7.3.2",
    "code_signing": "1.3.6.1.5.5.7.3.3",
    "email_protection": "1.3.6.1.5.5.7.3.4",
    "time_stamping": "1.3.6.1.5.5.7.3.8",
    "ocsp_signing": "1.3.6.1.5.5.7.3.9",
}

_OID_RE: Final = re.compile(r"[0-2](\.(0|[1-9][0-9]*))+")


def basic_constraints(ca: bool, path_len: int | None = None) -> x509.BasicConstraints:
    """Return a BasicConstraints value (RFC 5280 4.2.1.9).

    ``path_len`` is only meaningful (and only allowed) when ``ca`` is true.
    ``cA`` FALSE is the DEFAULT and therefore omitted from the DER, as
    required for DER encoding.
    """
    if path_len is not None:
        if not ca:
            raise ValueError("path_len is only allowed in CA certificates")
        if isinstance(path_len, bool) or not isinstance(path_len, int) or path_len < 0:
            raise ValueError("path_len must be a non-negative integer")
    value: dict[str, object] = {"ca": bool(ca)}
    if path_len is not None:
        value["path_len_constraint"] = path_len
    return x509.BasicConstraints(value)


def key_usage(names: Iterable[str]) -> x509.KeyUsage:
    """Return a KeyUsage value from asn1crypto bit names (RFC 5280 4.2.1.3).

    At least one bit must be set; unknown names raise ``ValueError``.
    """
    bits = set(names)
    if not bits:
        raise ValueError("key usage needs at least one bit")
    unknown = bits - KEY_USAGE_NAMES
    if unknown:
        raise ValueError(
            f"unknown key usage {sorted(unknown)}; expected names from {sorted(KEY_USAGE_NAMES)}"
        )
    if bits & {"encipher_only", "decipher_only"} and "key_agreement" not in bits:
        raise ValueError("encipher_only/decipher_only require key_agreement (RFC 5280 4.2.1.3)")
    return x509.KeyUsage(bits)


def extended_key_usage(names: Sequence[str]) -> x509.ExtKeyUsageSyntax:
    """Return an ExtKeyUsageSyntax from friendly names or dotted OIDs, in the given order."""
    if isinstance(names, str):
        raise ValueError("extended key usage must be a list of names, not a string")
    if not names:
        raise ValueError("extended key usage needs at least one purpose")
    oids: list[str] = []
    for name in names:
        if name in EXTENDED_KEY_USAGE_NAMES:
            oids.append(EXTENDED_KEY_USAGE_NAMES[name])
        elif isinstance(name, str) and _OID_RE.fullmatch(name):
            oids.append(name)
        else:
            raise ValueError(
                f"unknown extended key usage {name!r}; use a dotted OID or one of "
                f"{sorted(EXTENDED_KEY_USAGE_NAMES)}"
            )
    _no_duplicates("extended key usage", oids)
    return x509.ExtKeyUsageSyntax(oids)


def key_identifier_for(public_key_info: keys.PublicKeyInfo) -> bytes:
    """Return the RFC 5280 4.2.1.2 method 1 key identifier of ``public_key_info``.

    That is the SHA-1 of the subjectPublicKey BIT STRING value (excluding
    the tag, length and unused-bits octet).  SHA-1 is fine here: the
    identifier only needs to be unique per key, not collision resistant
    against an attacker, and every tool computes it this way.
    """
    public_key_bits = public_key_info["public_key"].contents[1:]  # drop unused-bits octet
    return hashlib.sha1(public_key_bits).digest()


def subject_key_identifier(public_key_info: keys.PublicKeyInfo) -> core.OctetString:
    """Return a subjectKeyIdentifier value (extension id ``"key_identifier"``)."""
    return core.OctetString(key_identifier_for(public_key_info))


def authority_key_identifier(key_identifier: bytes) -> x509.AuthorityKeyIdentifier:
    """Return an authorityKeyIdentifier with only the keyIdentifier field.

    authorityCertIssuer/authorityCertSerialNumber are left out on purpose:
    they pin the issuer certificate and break chains after CA re-issuance,
    and the CA/B Forum BR forbid them.
    """
    if not isinstance(key_identifier, bytes) or not key_identifier:
        raise ValueError("key_identifier must be non-empty bytes")
    return x509.AuthorityKeyIdentifier({"key_identifier": key_identifier})


def subject_alt_name(
    dns: Sequence[str] = (),
    ips: Sequence[str] = (),
    uris: Sequence[str] = (),
    emails: Sequence[str] = (),
) -> x509.GeneralNames:
    """Return a subjectAltName GeneralNames value (RFC 5280 4.2.1.6).

    DNS names must already be normalised (see :func:`validate_dns_name`);
    IP addresses may be IPv4 or IPv6 in any textual form (not networks);
    URIs must be absolute; emails are ASCII ``local@domain``.  At least one
    entry is required, duplicates are rejected.  Order: DNS, IP, URI, email.
    """
    for kind, values in (("DNS name", dns), ("IP address", ips), ("URI", uris), ("email", emails)):
        if isinstance(values, str):
            raise ValueError(f"{kind}s must be given as a list, not a string")
    names: list[x509.GeneralName] = []
    _no_duplicates("DNS name", dns)
    for dns_name in dns:
        names.append(x509.GeneralName(name="dns_name", value=validate_dns_name(dns_name)))
    parsed_ips = []
    for ip in ips:
        try:
            parsed_ips.append(ipaddress.ip_address(ip))
        except ValueError as exc:
            raise ValueError(f"invalid IP address {ip!r}") from exc
    # Compare parsed values: "::1" and "0:0::1" are the same address.
    _no_duplicates("IP address", [str(ip) for ip in parsed_ips])
    for parsed in parsed_ips:
        names.append(x509.GeneralName(name="ip_address", value=str(parsed)))
    _no_duplicates("URI", uris)
    for uri in uris:
        parts = urlsplit(uri) if isinstance(uri, str) else None
        if parts is None or not parts.scheme:
            raise ValueError(f"URI {uri!r} must be absolute (RFC 5280 4.2.1.6)")
        names.append(_uri(uri, schemes=(parts.scheme,)))
    _no_duplicates("email", emails)
    for email in emails:
        local, at, domain = email.partition("@") if isinstance(email, str) else ("", "", "")
        if (
            not at
            or not local
            or not local.isascii()
            or any(c.isspace() or c in '@"' or not c.isprintable() for c in local)
        ):
            raise ValueError(f"invalid email address {email!r}")
        validate_dns_name(domain, allow_wildcard=False)
        names.append(x509.GeneralName(name="rfc822_name", value=email))
    if not names:
        raise ValueError("subjectAltName needs at least one name")
    return x509.GeneralNames(names)


def crl_distribution_points(urls: Sequence[str]) -> x509.CRLDistributionPoints:
    """Return a cRLDistributionPoints value with one DistributionPoint.

    All URLs go into the fullName of a single distribution point: they are
    alternative locations of the *same* CRL, which is how RFC 5280 4.2.1.13
    expresses mirrors (several DistributionPoints would mean partitioned
    CRLs).  reasons and cRLIssuer are never set.
    """
    if isinstance(urls, str) or not urls:
        raise ValueError("at least one CRL URL is required")
    _no_duplicates("CRL URL", urls)
    return x509.CRLDistributionPoints(
        [
            x509.DistributionPoint(
                {
                    "distribution_point": x509.DistributionPointName(
                        name="full_name", value=[_uri(url) for url in urls]
                    )
                }
            )
        ]
    )


def authority_information_access(
    ca_issuers: Sequence[str] = (), ocsp: Sequence[str] = ()
) -> x509.AuthorityInfoAccessSyntax:
    """Return an authorityInfoAccess value (RFC 5280 4.2.2.1), OCSP entries first.

    caIssuers URLs point at the DER issuer certificate; OCSP URLs must be
    http (RFC 6960 appendix A; https would be circular to validate).
    """
    if isinstance(ca_issuers, str) or isinstance(ocsp, str):
        raise ValueError("URLs must be given as lists, not strings")
    if not ca_issuers and not ocsp:
        raise ValueError("authorityInfoAccess needs at least one URL")
    _no_duplicates("caIssuers URL", ca_issuers)
    _no_duplicates("OCSP URL", ocsp)
    descriptions = [
        x509.AccessDescription({"access_method": "ocsp", "access_location": _uri(url, ("http",))})
        for url in ocsp
    ] + [
        x509.AccessDescription({"access_method": "ca_issuers", "access_location": _uri(url)})
        for url in ca_issuers
    ]
    return x509.AuthorityInfoAccessSyntax(descriptions)


def certificate_policies(policy_oids: Sequence[str]) -> x509.CertificatePolicies:
    """Return a certificatePolicies value with bare policy OIDs (no qualifiers).

    Qualifiers are omitted: RFC 5280 4.2.1.4 recommends against them and the
    CA/B Forum BR discourage them.
    """
    if isinstance(policy_oids, str) or not policy_oids:
        raise ValueError("at least one policy OID is required")
    for oid in policy_oids:
        if not isinstance(oid, str) or not _OID_RE.fullmatch(oid):
            raise ValueError(f"invalid policy OID {oid!r}")
    _no_duplicates("policy OID", policy_oids)
    return x509.CertificatePolicies(
        [x509.PolicyInformation({"policy_identifier": oid}) for oid in policy_oids]
    )
