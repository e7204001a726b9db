"""The certificate a tls-alpn-01 responder presents (RFC 8737 section 3).

The validator connects with ALPN ``acme-tls/1`` and SNI set to the domain, and accepts the self-signed
certificate it gets only if its subjectAltName holds exactly that one dNSName and it carries the critical
acmeIdentifier extension whose value is the SHA-256 digest of the challenge's key authorization. The certificate
proves control of the TLS endpoint, not of any key that matters: its key is a fresh software EC P-256 key, made
per certificate and never stored, so the HSM is never involved (the challenge listener must not open it).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from asn1crypto import core, keys, pem, x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .builder import CertificateBuilder, sign_certificate
from .extensions import subject_alt_name, validate_dns_name
from .issuance import generate_leaf_key
from .names import build_name
from .serials import random_serial

__all__ = ["ACME_IDENTIFIER_OID", "ACME_TLS_ALPN_PROTOCOL", "CERTIFICATE_LIFETIME", "ChallengeCertificate",
           "challenge_certificate"]

#: id-pe-acmeIdentifier (RFC 8737 section 6.1).
ACME_IDENTIFIER_OID = "1.3.6.1.5.5.7.1.31"
#: The ALPN protocol name a validator offers, and the only one the responder speaks (RFC 8737 section 6.2).
ACME_TLS_ALPN_PROTOCOL = "acme-tls/1"
#: Validators do not check the validity period; it only has to cover the time the certificate is served.
CERTIFICATE_LIFETIME = dt.timedelta(days=7)
_BACKDATE = dt.timedelta(hours=1)
_SIGNATURE_ALGORITHM = "sha256_ecdsa"
#: A fixed subject: the validator looks only at the SAN, and a domain can be longer than a CN may be (64).
_SUBJECT_CN = "ACME tls-alpn-01 challenge"


@dataclass(frozen=True)
class ChallengeCertificate:
    """A tls-alpn-01 certificate and its private key (PKCS#8 PEM)."""

    certificate: x509.Certificate
    private_key_pem: str

    @property
    def certificate_pem(self) -> str:
        return pem.armor("CERTIFICATE", self.certificate.dump()).decode("ascii")


@dataclass(frozen=True)
class _OwnKeySigner:
    """A :class:`~scaivault_pki.pki.signing.Signer` over the certificate's own software key (self-signed)."""

    key: ec.EllipticCurvePrivateKey
    public_key_info: keys.PublicKeyInfo
    algorithm: str = _SIGNATURE_ALGORITHM

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data, ec.ECDSA(hashes.SHA256()))


def challenge_certificate(domain: str, key_authorization: str, now: dt.datetime | None = None) -> ChallengeCertificate:
    """The self-signed certificate to answer a tls-alpn-01 challenge for ``domain`` with ``key_authorization``.

    ``domain`` must be a normalised DNS name (lower case, no wildcard, no trailing dot): it becomes the only
    subjectAltName. ``key_authorization`` is ASCII (RFC 8555 8.1). Raises ``ValueError`` for either being wrong.
    """
    validate_dns_name(domain, allow_wildcard=False)
    try:
        digest = hashlib.sha256(key_authorization.encode("ascii")).digest()
    except UnicodeEncodeError:
        raise ValueError("a key authorization is ASCII (RFC 8555 8.1)") from None
    public_key_info, key_pem = generate_leaf_key("ec", 256)
    private_key = serialization.load_pem_private_key(key_pem.encode("ascii"), password=None)
    assert isinstance(private_key, ec.EllipticCurvePrivateKey)  # generate_leaf_key("ec", ...) made it
    name = build_name(common_name=_SUBJECT_CN)
    start = (now or dt.datetime.now(dt.timezone.utc)) - _BACKDATE
    tbs = (
        CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .serial_number(random_serial())
        .not_valid_before(start)
        .not_valid_after(start + _BACKDATE + CERTIFICATE_LIFETIME)
        .public_key(public_key_info)
        .add_extension("subject_alt_name", subject_alt_name(dns=[domain]), critical=False)
        # extnValue is the DER of Authorization ::= OCTET STRING (SIZE (32)), the digest (RFC 8737 section 3).
        .add_extension(ACME_IDENTIFIER_OID, core.OctetString(digest), critical=True)
        .build(_SIGNATURE_ALGORITHM)
    )
    certificate = sign_certificate(tbs, _OwnKeySigner(private_key, public_key_info))
    return ChallengeCertificate(certificate, key_pem)
