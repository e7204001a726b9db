"""Distinguished name building and RFC 4514 parsing."""

from __future__ import annotations

import pytest
from asn1crypto import x509
from cryptography import x509 as cx509
from cryptography.x509.oid import NameOID

from scaivault_pki.pki.names import build_name, name_fields, parse_rfc4514

ALL_FIELDS = {
    "common_name": "example.com",
    "organization": "Acme, Inc.",
    "organizational_unit": "Platform",
    "country": "US",
    "locality": "San Francisco",
    "state_or_province": "California",
}


def test_build_name_uses_conventional_order_and_string_types() -> None:
    name = build_name(**ALL_FIELDS)
    attributes = [rdn[0]["type"].native for rdn in name.chosen]
    assert attributes == [
        "country_name",
        "state_or_province_name",
        "locality_name",
        "organization_name",
        "organizational_unit_name",
        "common_name",
    ]
    string_types = {rdn[0]["type"].native: rdn[0]["value"].name for rdn in name.chosen}
    assert string_types.pop("country_name") == "printable_string"
    assert set(string_types.values()) == {"utf8_string"}
    assert all(len(rdn) == 1 for rdn in name.chosen)


def test_build_name_is_deterministic_and_round_trips() -> None:
    first = build_name(**ALL_FIELDS)
    second = build_name(**dict(reversed(list(ALL_FIELDS.items()))))
    assert first.dump() == second.dump()
    assert name_fields(x509.Name.load(first.dump())) == ALL_FIELDS


def test_build_name_encodes_like_pyca() -> None:
    """pyca also uses PrintableString for C and UTF8String elsewhere: same DER."""
    pyca_name = cx509.Name(
        [
            cx509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            cx509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "California"),
            cx509.NameAttribute(NameOID.LOCALITY_NAME, "San Francisco"),
            cx509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme, Inc."),
            cx509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Platform"),
            cx509.NameAttribute(NameOID.COMMON_NAME, "example.com"),
        ]
    )
    assert build_name(**ALL_FIELDS).dump() == pyca_name.public_bytes()


def test_build_name_from_mapping() -> None:
    assert build_name(ALL_FIELDS).dump() == build_name(**ALL_FIELDS).dump()
    parsed = parse_rfc4514(r"CN=example.com,O=Acme\, Inc.,C=US")
    assert build_name(parsed, organizational_unit="Ops").native == {
        "country_name": "US",
        "organization_name": "Acme, Inc.",
        "organizational_unit_name": "Ops",
        "common_name": "example.com",
    }
    assert build_name({"locality": None}).dump() == b"\x30\x00"
    with pytest.raises(ValueError, match="email"):
        build_name({"email": "a@example.com"})
    with pytest.raises(ValueError, match="common_name: given both"):
        build_name({"common_name": "a"}, common_name="b")
    with pytest.raises(ValueError, match="mapping"):
        build_name("CN=a")  # type: ignore[arg-type]


def test_empty_name() -> None:
    assert build_name().dump() == b"\x30\x00"


@pytest.mark.parametrize(
    ("field", "limit"),
    [
        ("common_name", 64),
        ("organization", 64),
        ("organizational_unit", 64),
        ("locality", 128),
        ("state_or_province", 128),
    ],
)
def test_length_limits(field: str, limit: int) -> None:
    build_name(**{field: "x" * limit})
    with pytest.raises(ValueError, match=field):
        build_name(**{field: "x" * (limit + 1)})


def test_length_counts_characters_not_bytes() -> None:
    build_name(common_name="é" * 64)


@pytest.mark.parametrize("country", ["us", "USA", "U", "U1", "", "ÜS"])
def test_bad_country(country: str) -> None:
    with pytest.raises(ValueError, match="country"):
        build_name(country=country)


@pytest.mark.parametrize("value", ["", "a\x00b", "line\nbreak"])
def test_empty_or_control_characters_rejected(value: str) -> None:
    with pytest.raises(ValueError, match="organization"):
        build_name(organization=value)


def test_non_string_rejected() -> None:
    with pytest.raises(ValueError, match="common_name"):
        build_name(common_name=42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            r"CN=example.com,O=Acme\, Inc.,C=US",
            {"common_name": "example.com", "organization": "Acme, Inc.", "country": "US"},
        ),
        (
            "cn=a,ou=b,st=c,l=d",
            {
                "common_name": "a",
                "organizational_unit": "b",
                "state_or_province": "c",
                "locality": "d",
            },
        ),
        ("2.5.4.3=by-oid,2.5.4.6=DE", {"common_name": "by-oid", "country": "DE"}),
        ("OID.2.5.4.10=legacy", {"organization": "legacy"}),
        (
            r"O=\"quoted\" \+ plus \; semi \< \> \\ back \= eq",
            {"organization": '"quoted" + plus ; semi < > \\ back = eq'},
        ),
        (r"CN=caf\C3\A9", {"common_name": "café"}),
        ("CN=café", {"common_name": "café"}),
        (r"CN=\ leading and trailing\ ", {"common_name": " leading and trailing "}),
        (r"CN=\#not-hex", {"common_name": "#not-hex"}),
        ("CN=mid#hash", {"common_name": "mid#hash"}),
        ("CN=a=b", {"common_name": "a=b"}),
        ("CN=#0c03616263", {"common_name": "abc"}),
        ("CN = spaced , O = out ", {"common_name": "spaced", "organization": "out"}),
        ("", {}),
    ],
)
def test_parse_rfc4514(text: str, expected: dict[str, str]) -> None:
    assert parse_rfc4514(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("DC=example,DC=com", "unsupported attribute"),
        ("STREET=Main", "unsupported attribute"),
        ("CN=a+O=b", "multi-valued"),
        ("CN=a,CN=b", "more than once"),
        (r"CN=bad\x", "invalid escape"),
        ("CN=dangling\\", "dangling"),
        ("CN=a,", "trailing"),
        (r"CN=\C3", "UTF-8"),
        ("CN", "missing '='"),
        ("=value", "invalid attribute type"),
        ("CN=semi;colon", "must be escaped"),
        ('CN=quo"te', "must be escaped"),
        ("C=USA", "country"),
        ("CN=#zz", "hex"),
        ("CN=#0201ff", "not a string"),
        ("CN=" + "x" * 65, "common_name"),
        ("CN=", "common_name"),
    ],
)
def test_parse_rfc4514_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_rfc4514(text)


@pytest.mark.parametrize(
    "value",
    [
        "plain",
        "Acme, Inc.",
        "a+b",
        " lead",
        "trail ",
        "#hash",
        'q"uote',
        "back\\slash",
        "a;b<c>d",
        "ünï",
    ],
)
def test_parse_rfc4514_reads_pyca_output(value: str) -> None:
    """pyca's RFC 4514 serialiser escapes independently of us; we must read it back."""
    name = cx509.Name(
        [
            cx509.NameAttribute(NameOID.COUNTRY_NAME, "GB"),
            cx509.NameAttribute(NameOID.ORGANIZATION_NAME, value),
            cx509.NameAttribute(NameOID.COMMON_NAME, "cn"),
        ]
    )
    assert parse_rfc4514(name.rfc4514_string()) == {
        "country": "GB",
        "organization": value,
        "common_name": "cn",
    }


def test_name_fields_rejects_unsupported_attributes() -> None:
    name = x509.Name.build({"domain_component": "example"})
    with pytest.raises(ValueError, match="unsupported"):
        name_fields(name)
