"""Certificate profiles: CA and leaf extension sets, validity clamping, algorithm choice."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

import pytest
from asn1crypto import x509

from scaivault_pki.pki import extensions as ext
from scaivault_pki.pki.builder import sign_certificate
from scaivault_pki.pki.names import build_name
from scaivault_pki.pki.profiles import (
    CABF_DV_POLICY_OID,
    IssuerInfo,
    ca_certificate_builder,
    clamp_validity,
    key_type_and_size,
    leaf_certificate_builder,
    max_tls_subscriber_validity,
    signature_algorithm_for,
)
from tests.support.software_signer import SoftwareSigner

UTC = UTC
NOW = datetime(2030, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
CA_NAME = build_name(common_name="Issuing CA", organization="Acme", country="US")
CRL = "http://pki.example.com/ca.crl"
CA_CERT_URL = "http://pki.example.com/ca.der"
OCSP = "http://ocsp.example.com"


@pytest.fixture(scope="module")
def ec_key() -> SoftwareSigner:
    return SoftwareSigner.generate("ec", 256)


@pytest.fixture(scope="module")
def rsa_key() -> SoftwareSigner:
    return SoftwareSigner.generate("rsa", 2048)


def issuer_info(**overrides: object) -> IssuerInfo:
    values: dict[str, object] = {
        "name": CA_NAME,
        "key_identifier": b"\xaa" * 20,
        "crl_urls": [CRL],
        "ca_issuers_urls": [CA_CERT_URL],
        "ocsp_urls": [OCSP],
    }
    values.update(overrides)
    return IssuerInfo(**values)  # type: ignore[arg-type]


def extensions_of(tbs: x509.TbsCertificate) -> list[tuple[str, bool, object]]:
    return [
        (e["extn_id"].native, e["critical"].native, e["extn_value"].parsed.native)
        for e in tbs["extensions"]
    ]


# -- signature algorithms ---------------------------------------------------


@pytest.mark.parametrize(
    ("key_type", "size", "algorithm"),
    [
        ("rsa", 2048, "sha256_rsa"),
        ("RSA", 4096, "sha256_rsa"),
        ("ec", 256, "sha256_ecdsa"),
        ("EC", 384, "sha384_ecdsa"),
    ],
)
def test_signature_algorithm_for(key_type: str, size: int, algorithm: str) -> None:
    assert signature_algorithm_for(key_type, size) == algorithm


@pytest.mark.parametrize(
    ("key_type", "size"), [("rsa", 1024), ("ec", 521), ("ec", 224), ("dsa", 2048)]
)
def test_signature_algorithm_for_rejects(key_type: str, size: int) -> None:
    with pytest.raises(ValueError):
        signature_algorithm_for(key_type, size)


def test_key_type_and_size(ec_key: SoftwareSigner, rsa_key: SoftwareSigner) -> None:
    assert key_type_and_size(ec_key.public_key_info) == ("ec", 256)
    assert key_type_and_size(rsa_key.public_key_info) == ("rsa", 2048)
    assert key_type_and_size(SoftwareSigner.generate("ec", 384).public_key_info) == ("ec", 384)


# -- CA profile -----------------------------------------------------------------


def test_root_profile(ec_key: SoftwareSigner) -> None:
    tbs = ca_certificate_builder(
        subject=CA_NAME,
        public_key_info=ec_key.public_key_info,
        serial=99,
        not_before=NOW,
        not_after=NOW + timedelta(days=3650),
        path_len=None,
        issuer=None,
    ).build("sha256_ecdsa")
    own_id = ext.key_identifier_for(ec_key.public_key_info)
    assert tbs["issuer"].dump() == tbs["subject"].dump() == CA_NAME.dump()
    assert extensions_of(tbs) == [
        ("basic_constraints", True, {"ca": True, "path_len_constraint": None}),
        ("key_usage", True, {"digital_signature", "key_cert_sign", "crl_sign"}),
        ("key_identifier", False, own_id),
        (
            "authority_key_identifier",
            False,
            {
                "key_identifier": own_id,
                "authority_cert_issuer": None,
                "authority_cert_serial_number": None,
            },
        ),
    ]


def test_intermediate_profile(ec_key: SoftwareSigner) -> None:
    subject = build_name(common_name="Sub CA", organization="Acme", country="US")
    tbs = ca_certificate_builder(
        subject=subject,
        public_key_info=ec_key.public_key_info,
        serial=100,
        not_before=NOW,
        not_after=NOW + timedelta(days=1000),
        path_len=0,
        issuer=issuer_info(),
    ).build("sha256_ecdsa")
    assert tbs["issuer"].dump() == CA_NAME.dump()
    names = [e[0] for e in extensions_of(tbs)]
    assert names == [
        "basic_constraints",
        "key_usage",
        "key_identifier",
        "authority_key_identifier",
        "crl_distribution_points",
        "authority_information_access",
    ]
    values = {e[0]: e for e in extensions_of(tbs)}
    assert values["basic_constraints"][2] == {"ca": True, "path_len_constraint": 0}
    assert values["authority_key_identifier"][2]["key_identifier"] == b"\xaa" * 20
    assert values["crl_distribution_points"][1] is False


def test_intermediate_without_urls_has_no_dp_or_aia(ec_key: SoftwareSigner) -> None:
    tbs = ca_certificate_builder(
        subject=build_name(common_name="Sub CA"),
        public_key_info=ec_key.public_key_info,
        serial=100,
        not_before=NOW,
        not_after=NOW + timedelta(days=1000),
        path_len=None,
        issuer=issuer_info(crl_urls=[], ca_issuers_urls=[], ocsp_urls=[]),
    ).build("sha256_ecdsa")
    assert [e[0] for e in extensions_of(tbs)] == [
        "basic_constraints",
        "key_usage",
        "key_identifier",
        "authority_key_identifier",
    ]


def test_intermediate_with_eku_and_policies(ec_key: SoftwareSigner) -> None:
    tbs = ca_certificate_builder(
        subject=build_name(common_name="TLS CA"),
        public_key_info=ec_key.public_key_info,
        serial=100,
        not_before=NOW,
        not_after=NOW + timedelta(days=1000),
        path_len=0,
        issuer=issuer_info(),
        extended_key_usage=["server_auth"],
        policy_oids=["2.5.29.32.0"],
    ).build("sha256_ecdsa")
    names = [e[0] for e in extensions_of(tbs)]
    assert names[:5] == [
        "basic_constraints",
        "key_usage",
        "extended_key_usage",
        "certificate_policies",
        "key_identifier",
    ]


def test_ca_profile_rejections(ec_key: SoftwareSigner) -> None:
    common = {
        "public_key_info": ec_key.public_key_info,
        "serial": 1,
        "not_before": NOW,
        "not_after": NOW + timedelta(days=10),
        "path_len": None,
    }
    with pytest.raises(ValueError, match="non-empty subject"):
        ca_certificate_builder(subject=build_name(), issuer=None, **common)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="root"):
        ca_certificate_builder(  # type: ignore[arg-type]
            subject=CA_NAME, issuer=None, extended_key_usage=["server_auth"], **common
        )


# -- IssuerInfo ---------------------------------------------------------------


def test_issuer_info_is_immutable_and_copies_lists() -> None:
    urls = [CRL]
    info = issuer_info(crl_urls=urls)
    urls.append("http://other.example.com/x.crl")
    assert info.crl_urls == (CRL,)
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.crl_urls = ()  # type: ignore[misc]


@pytest.mark.parametrize(
    "overrides",
    [
        {"crl_urls": ["https://pki.example.com/ca.crl"]},
        {"ocsp_urls": ["ldap://pki.example.com/"]},
        {"ca_issuers_urls": "http://pki.example.com/ca.der"},
        {"name": build_name()},
        {"key_identifier": b""},
    ],
)
def test_issuer_info_rejects(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        issuer_info(**overrides)


def test_issuer_info_from_certificate(ec_key: SoftwareSigner) -> None:
    root = sign_certificate(
        ca_certificate_builder(
            subject=CA_NAME,
            public_key_info=ec_key.public_key_info,
            serial=5,
            not_before=NOW,
            not_after=NOW + timedelta(days=10),
            path_len=None,
            issuer=None,
        ).build(ec_key.algorithm),
        ec_key,
    )
    info = IssuerInfo.from_certificate(root, ocsp_urls=[OCSP])
    assert info.name.dump() == root.subject.dump()
    assert info.key_identifier == ext.key_identifier_for(ec_key.public_key_info)
    assert info.ocsp_urls == (OCSP,)


# -- leaf profile ---------------------------------------------------------------


def leaf(key: SoftwareSigner, **overrides: object) -> x509.TbsCertificate:
    values: dict[str, object] = {
        "subject": build_name(common_name="www.example.com"),
        "public_key_info": key.public_key_info,
        "serial": 2**70,
        "not_before": NOW,
        "not_after": NOW + timedelta(days=45),
        "issuer": issuer_info(),
        "dns_names": ["www.example.com"],
    }
    values.update(overrides)
    return leaf_certificate_builder(**values).build("sha256_ecdsa")  # type: ignore[arg-type]


def test_leaf_profile_defaults_ec(ec_key: SoftwareSigner) -> None:
    tbs = leaf(ec_key)
    assert extensions_of(tbs) == [
        ("basic_constraints", True, {"ca": False, "path_len_constraint": None}),
        ("key_usage", True, {"digital_signature"}),
        ("extended_key_usage", False, ["server_auth", "client_auth"]),
        ("subject_alt_name", False, ["www.example.com"]),
        (
            "certificate_policies",
            False,
            [{"policy_identifier": CABF_DV_POLICY_OID, "policy_qualifiers": None}],
        ),
        ("key_identifier", False, ext.key_identifier_for(ec_key.public_key_info)),
        (
            "authority_key_identifier",
            False,
            {
                "key_identifier": b"\xaa" * 20,
                "authority_cert_issuer": None,
                "authority_cert_serial_number": None,
            },
        ),
        (
            "crl_distribution_points",
            False,
            [{"distribution_point": [CRL], "reasons": None, "crl_issuer": None}],
        ),
        (
            "authority_information_access",
            False,
            [
                {"access_method": "ocsp", "access_location": OCSP},
                {"access_method": "ca_issuers", "access_location": CA_CERT_URL},
            ],
        ),
    ]


def test_leaf_profile_rsa_adds_key_encipherment(rsa_key: SoftwareSigner) -> None:
    values = {e[0]: e[2] for e in extensions_of(leaf(rsa_key))}
    assert values["key_usage"] == {"digital_signature", "key_encipherment"}


def test_leaf_with_empty_subject_has_critical_san(ec_key: SoftwareSigner) -> None:
    san = [
        e for e in extensions_of(leaf(ec_key, subject=build_name())) if e[0] == "subject_alt_name"
    ]
    assert san[0][1] is True


def test_leaf_client_only_has_no_policy_by_default(ec_key: SoftwareSigner) -> None:
    tbs = leaf(
        ec_key,
        subject=build_name(common_name="Batch Job"),
        dns_names=[],
        emails=["jobs@example.com"],
        extended_key_usage=["client_auth"],
        issuer=issuer_info(crl_urls=[], ocsp_urls=[]),
    )
    names = [e[0] for e in extensions_of(tbs)]
    assert "certificate_policies" not in names
    assert "crl_distribution_points" not in names


def test_leaf_ip_common_name(ec_key: SoftwareSigner) -> None:
    leaf(
        ec_key,
        subject=build_name(common_name="2001:db8::1"),
        dns_names=[],
        ip_addresses=["2001:DB8:0::1"],
    )
    with pytest.raises(ValueError, match="SAN IP address"):
        leaf(ec_key, subject=build_name(common_name="192.0.2.1"), ip_addresses=["192.0.2.2"])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"dns_names": ["example.com"]}, "must also be a SAN DNS name"),
        ({"subject": build_name(common_name="Not A Hostname")}, "must also be a SAN DNS name"),
        ({"dns_names": []}, "must also be a SAN DNS name"),
        ({"subject": build_name(), "dns_names": []}, "at least one name"),
        ({"key_usage": {"digital_signature", "key_encipherment"}}, "EC key"),
        ({"key_usage": {"digital_signature", "key_cert_sign"}}, "only allowed in CA"),
        ({"extended_key_usage": ["server_auth", "bogus"]}, "unknown extended key usage"),
        ({"issuer": issuer_info(crl_urls=[], ocsp_urls=[])}, "revocation information"),
        ({"dns_names": "www.example.com"}, "list"),
    ],
)
def test_leaf_profile_rejections(
    ec_key: SoftwareSigner, overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        leaf(ec_key, **overrides)


def test_leaf_cn_check_only_for_dns_like_names_without_server_auth(ec_key: SoftwareSigner) -> None:
    # A person-style CN is fine for a client certificate ...
    leaf(ec_key, subject=build_name(common_name="Alice"), extended_key_usage=["client_auth"])
    # ... but a hostname-looking CN must still be in the SAN.
    with pytest.raises(ValueError, match="SAN DNS name"):
        leaf(
            ec_key,
            subject=build_name(common_name="db.example.com"),
            extended_key_usage=["client_auth"],
        )


# -- validity ------------------------------------------------------------------


def test_clamp_validity_backdates_and_truncates() -> None:
    not_before, not_after = clamp_validity(
        NOW, timedelta(days=30), NOW + timedelta(days=365), timedelta(minutes=5)
    )
    assert not_before == datetime(2030, 5, 6, 7, 3, 9, tzinfo=UTC)
    assert not_after == datetime(2030, 6, 5, 7, 8, 9, tzinfo=UTC)
    assert not_before.microsecond == not_after.microsecond == 0


def test_clamp_validity_caps_at_ca_not_after() -> None:
    ca_not_after = NOW + timedelta(days=10, microseconds=5)
    _, not_after = clamp_validity(NOW, timedelta(days=30), ca_not_after, timedelta(0))
    assert not_after == datetime(2030, 5, 16, 7, 8, 9, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "ttl", "ca_not_after", "backdate"),
    [
        (datetime(2030, 1, 1), timedelta(days=1), NOW, timedelta(0)),
        (NOW, timedelta(days=1), NOW.replace(tzinfo=None), timedelta(0)),
        (NOW.astimezone(timezone(timedelta(hours=1))), timedelta(days=1), NOW, timedelta(0)),
        (NOW, timedelta(0), NOW + timedelta(days=1), timedelta(0)),
        (NOW, timedelta(days=1), NOW + timedelta(days=1), timedelta(seconds=-1)),
        (NOW, timedelta(days=1), NOW - timedelta(days=1), timedelta(minutes=5)),
    ],
)
def test_clamp_validity_rejects(
    now: datetime, ttl: timedelta, ca_not_after: datetime, backdate: timedelta
) -> None:
    with pytest.raises(ValueError):
        clamp_validity(now, ttl, ca_not_after, backdate)


@pytest.mark.parametrize(
    ("when", "days"),
    [
        (datetime(2026, 3, 14, 23, 59, 59, tzinfo=UTC), 398),
        (datetime(2026, 3, 15, tzinfo=UTC), 200),
        (datetime(2027, 3, 15, tzinfo=UTC), 100),
        (datetime(2029, 3, 15, tzinfo=UTC), 47),
        (datetime(2040, 1, 1, tzinfo=UTC), 47),
    ],
)
def test_max_tls_subscriber_validity(when: datetime, days: int) -> None:
    assert max_tls_subscriber_validity(when) == timedelta(days=days)
