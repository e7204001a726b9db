"""End-to-end checks of issued chains with independent verifiers: OpenSSL, pkilint and pyca."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from ipaddress import ip_address

import pytest
from cryptography import x509 as cx509
from cryptography.x509.verification import PolicyBuilder, Store

from scaivault_pki.pki.builder import sign_certificate
from scaivault_pki.pki.names import build_name
from scaivault_pki.pki.profiles import (
    ANY_POLICY_OID,
    IssuerInfo,
    ca_certificate_builder,
    clamp_validity,
    leaf_certificate_builder,
)
from scaivault_pki.pki.serials import random_serial
from tests.support.chains import (
    BACKDATE,
    LEAF_DNS_NAME,
    LEAF_IPV6,
    LEAF_TTL,
    PKI_BASE_URL,
    Chain,
    build_chain,
)
from tests.support.lint import openssl_verify, pkilint_report
from tests.support.software_signer import SoftwareSigner

KEY_CHAINS = {
    "rsa2048": (("rsa", 2048), ("rsa", 2048), ("rsa", 2048)),
    "p256": (("ec", 256), ("ec", 256), ("ec", 256)),
    "p384": (("ec", 384), ("ec", 384), ("ec", 384)),
    # The signature algorithm follows the *issuer's* key, not the subject's.
    "mixed": (("ec", 384), ("rsa", 2048), ("ec", 256)),
}


@pytest.fixture(scope="module", params=sorted(KEY_CHAINS))
def chain(request: pytest.FixtureRequest) -> Chain:
    return build_chain(*KEY_CHAINS[request.param])


def _assert_lint_clean(der: bytes, kind: str) -> None:
    report = pkilint_report(der, kind)
    for note in report.notes:
        print(f"pkilint {kind}: {note}")
    assert report.errors == [], report.errors


def test_openssl_verifies_chain(chain: Chain) -> None:
    ok, output = openssl_verify(
        [chain.root.dump()], [chain.intermediate.dump()], chain.leaf.dump(), purpose="sslserver"
    )
    assert ok, output


def test_openssl_rejects_chain_without_intermediate(chain: Chain) -> None:
    ok, output = openssl_verify([chain.root.dump()], [], chain.leaf.dump())
    assert not ok, output


@pytest.mark.parametrize("which", ["root", "intermediate", "leaf"])
def test_pkix_lint_clean(chain: Chain, which: str) -> None:
    _assert_lint_clean(getattr(chain, which).dump(), "pkix")


def test_cabf_serverauth_lint_clean_leaf(chain: Chain) -> None:
    _assert_lint_clean(chain.leaf.dump(), "cabf_serverauth")


def test_cabf_serverauth_lint_clean_root(chain: Chain) -> None:
    _assert_lint_clean(chain.root.dump(), "cabf_serverauth")


def test_pyca_loads_and_verifies_signatures(chain: Chain) -> None:
    root = cx509.load_der_x509_certificate(chain.root.dump())
    intermediate = cx509.load_der_x509_certificate(chain.intermediate.dump())
    leaf = cx509.load_der_x509_certificate(chain.leaf.dump())
    root.verify_directly_issued_by(root)
    intermediate.verify_directly_issued_by(root)
    leaf.verify_directly_issued_by(intermediate)
    # Independent SKI computation agrees with ours (RFC 5280 method 1).
    for certificate in (root, intermediate, leaf):
        ski = certificate.extensions.get_extension_for_class(cx509.SubjectKeyIdentifier).value
        assert ski == cx509.SubjectKeyIdentifier.from_public_key(certificate.public_key())


def test_pyca_webpki_verifier_accepts_chain(chain: Chain) -> None:
    """pyca's verifier enforces a strict RFC 5280 / CA/B Forum profile on every certificate."""
    root = cx509.load_der_x509_certificate(chain.root.dump())
    intermediate = cx509.load_der_x509_certificate(chain.intermediate.dump())
    leaf = cx509.load_der_x509_certificate(chain.leaf.dump())
    for subject in (cx509.DNSName(LEAF_DNS_NAME), cx509.IPAddress(ip_address(LEAF_IPV6))):
        verifier = (
            PolicyBuilder().store(Store([root])).time(chain.now).build_server_verifier(subject)
        )
        built = verifier.verify(leaf, [intermediate])
        assert built == [leaf, intermediate, root]


def test_signature_algorithms_follow_issuer_keys(chain: Chain) -> None:
    assert chain.root["signature_algorithm"]["algorithm"].native == chain.root_signer.algorithm
    assert (
        chain.intermediate["signature_algorithm"]["algorithm"].native == chain.root_signer.algorithm
    )
    assert chain.leaf["signature_algorithm"]["algorithm"].native == (
        chain.intermediate_signer.algorithm
    )


def test_tls_issuing_intermediate_lints_clean_under_cabf() -> None:
    """With EKU and policies an intermediate also satisfies the CA/B Forum CA profile."""
    root_signer = SoftwareSigner.generate("ec", 384)
    intermediate_signer = SoftwareSigner.generate("ec", 256)
    now = datetime.now(UTC)
    root = sign_certificate(
        ca_certificate_builder(
            subject=build_name(common_name="Root", organization="Acme", country="US"),
            public_key_info=root_signer.public_key_info,
            serial=random_serial(),
            not_before=now,
            not_after=now + timedelta(days=3650),
            path_len=None,
            issuer=None,
        ).build(root_signer.algorithm),
        root_signer,
    )
    intermediate = sign_certificate(
        ca_certificate_builder(
            subject=build_name(common_name="TLS Issuing", organization="Acme", country="US"),
            public_key_info=intermediate_signer.public_key_info,
            serial=random_serial(),
            not_before=now,
            not_after=now + timedelta(days=1000),
            path_len=0,
            issuer=IssuerInfo.from_certificate(
                root,
                crl_urls=[f"{PKI_BASE_URL}/root.crl"],
                ca_issuers_urls=[f"{PKI_BASE_URL}/root.der"],
            ),
            extended_key_usage=["server_auth", "client_auth"],
            policy_oids=[ANY_POLICY_OID],
        ).build(root_signer.algorithm),
        root_signer,
    )
    _assert_lint_clean(intermediate.dump(), "pkix")
    _assert_lint_clean(intermediate.dump(), "cabf_serverauth")


def test_root_valid_past_2050_verifies_everywhere() -> None:
    """GeneralizedTime notAfter (2050+) is accepted by OpenSSL, pyca and pkilint."""
    chain = build_chain(
        ("ec", 256),
        ("ec", 256),
        ("ec", 256),
        root_not_after=datetime(2055, 6, 1, tzinfo=UTC),
    )
    assert chain.root["tbs_certificate"]["validity"]["not_after"].name == "general_time"
    assert chain.root["tbs_certificate"]["validity"]["not_before"].name == "utc_time"
    ok, output = openssl_verify([chain.root.dump()], [chain.intermediate.dump()], chain.leaf.dump())
    assert ok, output
    _assert_lint_clean(chain.root.dump(), "pkix")
    root = cx509.load_der_x509_certificate(chain.root.dump())
    assert root.not_valid_after_utc == datetime(2055, 6, 1, tzinfo=UTC)


def test_leaf_with_empty_subject_lints_clean() -> None:
    """An empty subject forces a critical SAN; both linters accept the result."""
    chain = build_chain(("ec", 256), ("ec", 256), ("ec", 256), leaf_subject=build_name())
    san = chain.leaf["tbs_certificate"]["extensions"][3]
    assert san["extn_id"].native == "subject_alt_name"
    assert san["critical"].native is True
    _assert_lint_clean(chain.leaf.dump(), "pkix")
    _assert_lint_clean(chain.leaf.dump(), "cabf_serverauth")
    ok, output = openssl_verify([chain.root.dump()], [chain.intermediate.dump()], chain.leaf.dump())
    assert ok, output


def test_client_only_leaf_lints_clean_under_pkix() -> None:
    """A clientAuth-only leaf (no CA/B Forum policy) with a person-style CN and email SAN."""
    chain = build_chain(("ec", 256), ("ec", 256), ("ec", 256))
    signer = SoftwareSigner.generate("rsa", 2048)
    not_before, not_after = clamp_validity(
        chain.now, LEAF_TTL, chain.intermediate.not_valid_after, BACKDATE
    )
    leaf = sign_certificate(
        leaf_certificate_builder(
            subject=build_name(common_name="Service Account 7", organization="Acme", country="US"),
            public_key_info=signer.public_key_info,
            serial=random_serial(),
            not_before=not_before,
            not_after=not_after,
            issuer=IssuerInfo.from_certificate(
                chain.intermediate, crl_urls=[f"{PKI_BASE_URL}/issuing.crl"]
            ),
            # Not a spiffe:// URI: pkilint's URI syntax check (the `validators`
            # package) only knows http(s), ftp(s), git, rtsp, sftp, ssh and telnet
            # and reports any other scheme as an ERROR.
            uris=["https://example.com/service/seven"],
            emails=["seven@example.com"],
            extended_key_usage=["client_auth"],
        ).build(chain.intermediate_signer.algorithm),
        chain.intermediate_signer,
    )
    _assert_lint_clean(leaf.dump(), "pkix")
    ok, output = openssl_verify(
        [chain.root.dump()], [chain.intermediate.dump()], leaf.dump(), purpose="sslclient"
    )
    assert ok, output
