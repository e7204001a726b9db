"""Build root -> intermediate -> leaf chains with the real profiles and a software signer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from asn1crypto import x509

from scaivault_pki.pki.builder import sign_certificate
from scaivault_pki.pki.names import build_name
from scaivault_pki.pki.profiles import (
    IssuerInfo,
    ca_certificate_builder,
    clamp_validity,
    leaf_certificate_builder,
)
from scaivault_pki.pki.serials import random_serial
from tests.support.software_signer import SoftwareSigner

# Public-suffix names and public IPs: the CA/B Forum lints reject reserved
# ranges (192.0.2.0/24, 2001:db8::/32) and reserved TLDs (.test) as "internal".
PKI_BASE_URL = "http://pki.example.com"
LEAF_DNS_NAME = "www.example.com"
LEAF_IPV4 = "93.184.215.14"
LEAF_IPV6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"
# Comfortably below every CA/B Forum limit up to and after 2029 (47 days).
LEAF_TTL = timedelta(days=45)
BACKDATE = timedelta(minutes=5)


@dataclass(frozen=True)
class Chain:
    """A freshly issued chain and the signers of its CAs."""

    root: x509.Certificate
    intermediate: x509.Certificate
    leaf: x509.Certificate
    root_signer: SoftwareSigner
    intermediate_signer: SoftwareSigner
    leaf_signer: SoftwareSigner
    now: datetime


def build_chain(
    root_key: tuple[str, int],
    intermediate_key: tuple[str, int],
    leaf_key: tuple[str, int],
    *,
    now: datetime | None = None,
    root_not_after: datetime | None = None,
    leaf_subject: x509.Name | None = None,
    leaf_dns_names: tuple[str, ...] = (LEAF_DNS_NAME, "example.com"),
    leaf_ips: tuple[str, ...] = (LEAF_IPV4, LEAF_IPV6),
) -> Chain:
    """Issue root, intermediate and a serverAuth leaf with ScaiVault's profiles."""
    now = now or datetime.now(UTC)
    root_signer = SoftwareSigner.generate(*root_key)
    intermediate_signer = SoftwareSigner.generate(*intermediate_key)
    leaf_signer = SoftwareSigner.generate(*leaf_key)

    root_tbs = ca_certificate_builder(
        subject=build_name(
            common_name="ScaiVault Test Root CA", organization="Acme, Inc.", country="US"
        ),
        public_key_info=root_signer.public_key_info,
        serial=random_serial(),
        not_before=now - BACKDATE,
        not_after=root_not_after or now + timedelta(days=3650),
        path_len=None,
        issuer=None,
    ).build(root_signer.algorithm)
    root = sign_certificate(root_tbs, root_signer)

    root_info = IssuerInfo.from_certificate(
        root,
        crl_urls=[f"{PKI_BASE_URL}/root.crl"],
        ca_issuers_urls=[f"{PKI_BASE_URL}/root.der"],
    )
    intermediate_tbs = ca_certificate_builder(
        subject=build_name(
            common_name="ScaiVault Test Issuing CA", organization="Acme, Inc.", country="US"
        ),
        public_key_info=intermediate_signer.public_key_info,
        serial=random_serial(),
        not_before=now - BACKDATE,
        not_after=now + timedelta(days=1825),
        path_len=0,
        issuer=root_info,
    ).build(root_signer.algorithm)
    intermediate = sign_certificate(intermediate_tbs, root_signer)

    intermediate_info = IssuerInfo.from_certificate(
        intermediate,
        crl_urls=[f"{PKI_BASE_URL}/issuing.crl"],
        ca_issuers_urls=[f"{PKI_BASE_URL}/issuing.der"],
        ocsp_urls=[f"{PKI_BASE_URL}/ocsp"],
    )
    not_before, not_after = clamp_validity(now, LEAF_TTL, intermediate.not_valid_after, BACKDATE)
    leaf_tbs = leaf_certificate_builder(
        subject=leaf_subject if leaf_subject is not None else build_name(common_name=LEAF_DNS_NAME),
        public_key_info=leaf_signer.public_key_info,
        serial=random_serial(),
        not_before=not_before,
        not_after=not_after,
        issuer=intermediate_info,
        dns_names=leaf_dns_names,
        ip_addresses=leaf_ips,
    ).build(intermediate_signer.algorithm)
    leaf = sign_certificate(leaf_tbs, intermediate_signer)
    return Chain(root, intermediate, leaf, root_signer, intermediate_signer, leaf_signer, now)
