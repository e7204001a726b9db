"""Extension value helpers and the criticality table."""

from __future__ import annotations

import pytest
from cryptography import x509 as cx509

from scaivault_pki.pki import extensions as ext
from tests.support.software_signer import SoftwareSigner


def test_basic_constraints() -> None:
    assert ext.basic_constraints(True, 0).native == {"ca": True, "path_len_constraint": 0}
    assert ext.basic_constraints(True).native == {"ca": True, "path_len_constraint": None}
    # cA FALSE is DEFAULT, so DER omits it: an empty SEQUENCE.
    assert ext.basic_constraints(False).dump() == b"\x30\x00"
    with pytest.raises(ValueError, match="CA"):
        ext.basic_constraints(False, 0)
    with pytest.raises(ValueError, match="non-negative"):
        ext.basic_constraints(True, -1)


def test_key_usage() -> None:
    value = ext.key_usage({"key_cert_sign", "crl_sign"})
    assert value.native == {"key_cert_sign", "crl_sign"}
    assert value.dump() == bytes.fromhex("03020106")  # trailing zero bits trimmed (DER)
    with pytest.raises(ValueError, match="unknown key usage"):
        ext.key_usage({"sign_everything"})
    with pytest.raises(ValueError, match="at least one"):
        ext.key_usage(set())
    with pytest.raises(ValueError, match="key_agreement"):
        ext.key_usage({"encipher_only"})


def test_extended_key_usage_names_and_oids_in_order() -> None:
    value = ext.extended_key_usage(["client_auth", "1.3.6.1.5.5.7.3.1", "ocsp_signing"])
    assert [purpose.dotted for purpose in value] == [
        "1.3.6.1.5.5.7.3.2",
        "1.3.6.1.5.5.7.3.1",
        "1.3.6.1.5.5.7.3.9",
    ]
    for bad in (["server_auth", "1.3.6.1.5.5.7.3.1"], ["nonsense"], [], "server_auth", ["1.2."]):
        with pytest.raises(ValueError):
            ext.extended_key_usage(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(("key_type", "size"), [("rsa", 2048), ("ec", 256), ("ec", 384)])
def test_subject_key_identifier_matches_pyca_method_1(key_type: str, size: int) -> None:
    signer = SoftwareSigner.generate(key_type, size)
    expected = cx509.SubjectKeyIdentifier.from_public_key(signer.public_key).digest
    assert ext.subject_key_identifier(signer.public_key_info).native == expected
    assert ext.key_identifier_for(signer.public_key_info) == expected


def test_authority_key_identifier_has_only_key_identifier() -> None:
    value = ext.authority_key_identifier(b"\x01" * 20)
    assert value.native == {
        "key_identifier": b"\x01" * 20,
        "authority_cert_issuer": None,
        "authority_cert_serial_number": None,
    }
    with pytest.raises(ValueError):
        ext.authority_key_identifier(b"")


def test_subject_alt_name_all_types() -> None:
    value = ext.subject_alt_name(
        dns=["example.com", "*.example.com", "xn--caf-dma.example"],
        ips=["192.0.2.1", "2001:DB8::1"],
        uris=["spiffe://example.com/workload", "https://example.com/"],
        emails=["ops@example.com"],
    )
    assert [(name.name, name.native) for name in value] == [
        ("dns_name", "example.com"),
        ("dns_name", "*.example.com"),
        ("dns_name", "xn--caf-dma.example"),
        ("ip_address", "192.0.2.1"),
        ("ip_address", "2001:db8::1"),
        ("uniform_resource_identifier", "spiffe://example.com/workload"),
        ("uniform_resource_identifier", "https://example.com/"),
        ("rfc822_name", "ops@example.com"),
    ]
    assert value[4].chosen.contents == bytes.fromhex("20010db8000000000000000000000001")
    assert value[3].chosen.contents == bytes([192, 0, 2, 1])


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"dns": ["Example.com"]},
        {"dns": ["café.example"]},
        {"dns": ["under_score.example.com"]},
        {"dns": ["-lead.example.com"]},
        {"dns": ["a..b"]},
        {"dns": ["example.com."]},
        {"dns": ["a.*.example.com"]},
        {"dns": ["x" * 64 + ".com"]},
        {"dns": ["example.com", "example.com"]},
        {"dns": "example.com"},
        {"ips": ["192.0.2.0/24"]},
        {"ips": ["::1", "0:0::1"]},
        {"ips": ["999.1.1.1"]},
        {"uris": ["relative/path"]},
        {"uris": ["http://Example.com/"]},
        {"uris": ["http://example.com/a b"]},
        {"emails": ["no-at-sign"]},
        {"emails": ["a@b@example.com"]},
        {"emails": ["user@Example.com"]},
    ],
)
def test_subject_alt_name_rejects(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ext.subject_alt_name(**kwargs)  # type: ignore[arg-type]


def test_crl_distribution_points_single_point_with_mirrors() -> None:
    value = ext.crl_distribution_points(
        ["http://a.example.com/ca.crl", "http://b.example.com/ca.crl"]
    )
    assert len(value) == 1
    point = value[0]
    assert point["reasons"].native is None and point["crl_issuer"].native is None
    assert point["distribution_point"].native == [
        "http://a.example.com/ca.crl",
        "http://b.example.com/ca.crl",
    ]
    for bad in ([], "http://a.example.com/x.crl", ["mailto:x@example.com"], ["http:///nohost"]):
        with pytest.raises(ValueError):
            ext.crl_distribution_points(bad)  # type: ignore[arg-type]


def test_authority_information_access() -> None:
    value = ext.authority_information_access(
        ca_issuers=["http://pki.example.com/ca.der"], ocsp=["http://ocsp.example.com"]
    )
    assert [(d["access_method"].native, d["access_location"].native) for d in value] == [
        ("ocsp", "http://ocsp.example.com"),
        ("ca_issuers", "http://pki.example.com/ca.der"),
    ]
    with pytest.raises(ValueError):
        ext.authority_information_access()
    with pytest.raises(ValueError, match="http"):
        ext.authority_information_access(ocsp=["ldap://ocsp.example.com/"])


def test_certificate_policies() -> None:
    assert [
        p["policy_identifier"].dotted for p in ext.certificate_policies(["2.23.140.1.2.1"])
    ] == ["2.23.140.1.2.1"]
    for bad in ([], ["not-an-oid"], ["2.5.29.32.0", "2.5.29.32.0"]):
        with pytest.raises(ValueError):
            ext.certificate_policies(bad)


@pytest.mark.parametrize(
    ("extn_id", "is_ca", "subject_empty", "preferred"),
    [
        ("basic_constraints", True, False, True),
        ("basic_constraints", False, False, False),
        ("key_usage", False, False, True),
        ("subject_alt_name", False, False, False),
        ("subject_alt_name", False, True, True),
        ("authority_key_identifier", True, False, False),
        ("key_identifier", True, False, False),
        ("authority_information_access", False, False, False),
        ("crl_distribution_points", False, False, False),
        ("name_constraints", True, False, True),
        ("extended_key_usage", False, False, False),
        ("1.2.3.4", False, False, False),
    ],
)
def test_preferred_criticality(
    extn_id: str, is_ca: bool, subject_empty: bool, preferred: bool
) -> None:
    assert ext.preferred_criticality(extn_id, is_ca=is_ca, subject_empty=subject_empty) is preferred


def test_criticality_violations_only_for_must_rules() -> None:
    assert ext.criticality_violation("key_identifier", True, is_ca=False, subject_empty=False)
    assert ext.criticality_violation("basic_constraints", False, is_ca=True, subject_empty=False)
    assert ext.criticality_violation("subject_alt_name", False, is_ca=False, subject_empty=True)
    assert ext.criticality_violation("name_constraints", False, is_ca=True, subject_empty=False)
    # SHOULD-level rules are left to the profiles.
    assert ext.criticality_violation("key_usage", False, is_ca=False, subject_empty=False) is None
    assert (
        ext.criticality_violation("subject_alt_name", True, is_ca=False, subject_empty=False)
        is None
    )
    assert (
        ext.criticality_violation("basic_constraints", False, is_ca=False, subject_empty=False)
        is None
    )
