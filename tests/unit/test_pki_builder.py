"""CertificateBuilder: immutability, validation, encoding, and signing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from asn1crypto import core, x509
from cryptography import x509 as cx509
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from scaivault_pki.pki import extensions as ext
from scaivault_pki.pki.builder import (
    CertificateBuilder,
    SignatureVerificationError,
    encode_validity_time,
    sign_certificate,
)
from scaivault_pki.pki.names import build_name
from scaivault_pki.pki.signing import Signer
from tests.support.software_signer import SoftwareSigner

UTC = UTC
NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
SUBJECT = build_name(common_name="leaf.example.com")
ISSUER = build_name(common_name="Issuer", organization="Acme", country="US")


@pytest.fixture(scope="module")
def signer() -> SoftwareSigner:
    return SoftwareSigner.generate("ec", 256)


@pytest.fixture(scope="module")
def rsa_signer() -> SoftwareSigner:
    return SoftwareSigner.generate("rsa", 2048)


def complete_builder(signer: SoftwareSigner, subject: x509.Name = SUBJECT) -> CertificateBuilder:
    return (
        CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ISSUER)
        .serial_number(0x1234)
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=30))
        .public_key(signer.public_key_info)
    )


# -- immutability and set-once -------------------------------------------


def test_setters_return_new_builders(signer: SoftwareSigner) -> None:
    empty = CertificateBuilder()
    with_subject = empty.subject_name(SUBJECT)
    assert with_subject is not empty
    # The original is untouched: it can still take a (different) subject.
    empty.subject_name(ISSUER)
    with pytest.raises(ValueError, match="missing subject name"):
        empty.build("sha256_ecdsa")
    with_ext = complete_builder(signer)
    with_ext.add_extension("basic_constraints", ext.basic_constraints(False), True)
    tbs = with_ext.build("sha256_ecdsa")
    assert tbs["extensions"].native is None


def test_builder_cannot_be_mutated() -> None:
    builder = CertificateBuilder()
    with pytest.raises(AttributeError):
        builder._subject = b"x"  # type: ignore[misc]


def test_mutating_inputs_afterwards_does_not_change_builder(signer: SoftwareSigner) -> None:
    subject = build_name(common_name="original.example.com")
    builder = complete_builder(signer, subject)
    subject.chosen[0][0]["value"] = x509.DirectoryString(name="utf8_string", value="changed")
    assert subject.native == {"common_name": "changed"}
    tbs = builder.build("sha256_ecdsa")
    assert tbs["subject"].native == {"common_name": "original.example.com"}


@pytest.mark.parametrize(
    ("setter", "argument"),
    [
        ("subject_name", SUBJECT),
        ("issuer_name", ISSUER),
        ("serial_number", 7),
        ("not_valid_before", NOW),
        ("not_valid_after", NOW + timedelta(days=400)),
    ],
)
def test_setting_twice_raises(signer: SoftwareSigner, setter: str, argument: object) -> None:
    builder = complete_builder(signer)
    with pytest.raises(ValueError, match="only be set once"):
        getattr(builder, setter)(argument)


def test_public_key_twice_raises(signer: SoftwareSigner) -> None:
    with pytest.raises(ValueError, match="only be set once"):
        complete_builder(signer).public_key(signer.public_key_info)


# -- field validation ------------------------------------------------------


@pytest.mark.parametrize("serial", [0, -5, 2**159, True, 1.5, "12"])
def test_bad_serials(serial: object) -> None:
    with pytest.raises(ValueError):
        CertificateBuilder().serial_number(serial)  # type: ignore[arg-type]


def test_largest_serial_accepted() -> None:
    CertificateBuilder().serial_number(2**159 - 1)


@pytest.mark.parametrize(
    "when",
    [
        datetime(2030, 1, 1),  # naive
        datetime(2030, 1, 1, tzinfo=timezone(timedelta(hours=2))),
        datetime(1949, 12, 31, 23, 59, 59, tzinfo=UTC),
        "2030-01-01T00:00:00Z",
    ],
)
def test_bad_times(when: object) -> None:
    with pytest.raises(ValueError):
        CertificateBuilder().not_valid_before(when)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        CertificateBuilder().not_valid_after(when)  # type: ignore[arg-type]


def test_not_after_must_follow_not_before() -> None:
    with pytest.raises(ValueError, match="later"):
        CertificateBuilder().not_valid_before(NOW).not_valid_after(NOW)
    with pytest.raises(ValueError, match="earlier"):
        CertificateBuilder().not_valid_after(NOW).not_valid_before(NOW + timedelta(seconds=1))
    # Sub-second differences vanish in the encoding, so they do not count.
    with pytest.raises(ValueError):
        CertificateBuilder().not_valid_before(NOW).not_valid_after(NOW.replace(microsecond=999))


def test_empty_issuer_rejected() -> None:
    with pytest.raises(ValueError, match="issuer name must not be empty"):
        CertificateBuilder().issuer_name(build_name())


@pytest.mark.parametrize("value", ["CN=x", b"\x30\x00", None])
def test_names_must_be_asn1crypto(value: object) -> None:
    with pytest.raises(ValueError):
        CertificateBuilder().subject_name(value)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        CertificateBuilder().issuer_name(value)  # type: ignore[arg-type]


def test_public_key_must_be_valid(signer: SoftwareSigner) -> None:
    with pytest.raises(ValueError):
        CertificateBuilder().public_key(b"not a key")  # type: ignore[arg-type]
    corrupt = signer.public_key_info.copy()
    point = bytearray(corrupt["public_key"].native)
    point[-1] ^= 0x01  # no longer on the curve
    corrupt["public_key"] = bytes(point)
    with pytest.raises(ValueError, match="cannot be parsed"):
        CertificateBuilder().public_key(corrupt)


def test_build_reports_all_missing_fields() -> None:
    with pytest.raises(ValueError) as info:
        CertificateBuilder().serial_number(5).build("sha256_rsa")
    message = str(info.value)
    for label in (
        "subject name",
        "issuer name",
        "not valid before",
        "not valid after",
        "public key",
    ):
        assert label in message
    assert "serial number" not in message


def test_build_rejects_unknown_signature_algorithm(signer: SoftwareSigner) -> None:
    with pytest.raises(ValueError, match="not supported"):
        complete_builder(signer).build("md5_rsa")


# -- encoding --------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "kind", "encoded"),
    [
        (datetime(1950, 1, 1, tzinfo=UTC), "utc_time", b"500101000000Z"),
        (datetime(2025, 6, 30, 12, 0, 0, 999999, tzinfo=UTC), "utc_time", b"250630120000Z"),
        (datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC), "utc_time", b"491231235959Z"),
        (datetime(2050, 1, 1, 0, 0, 0, tzinfo=UTC), "general_time", b"20500101000000Z"),
        (datetime(2050, 1, 1, 0, 0, 0, 500000, tzinfo=UTC), "general_time", b"20500101000000Z"),
        (datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC), "general_time", b"99991231235959Z"),
    ],
)
def test_validity_time_encoding(when: datetime, kind: str, encoded: bytes) -> None:
    value = encode_validity_time(when)
    assert value.name == kind
    assert value.chosen.contents == encoded


def test_tbs_across_2050(signer: SoftwareSigner) -> None:
    tbs = (
        CertificateBuilder()
        .subject_name(SUBJECT)
        .issuer_name(ISSUER)
        .serial_number(1)
        .not_valid_before(datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC))
        .not_valid_after(datetime(2050, 1, 1, tzinfo=UTC))
        .public_key(signer.public_key_info)
        .build("sha256_ecdsa")
    )
    validity = tbs["validity"]
    assert validity["not_before"].name == "utc_time"
    assert validity["not_after"].name == "general_time"
    # The raw DER tags: 0x17 UTCTime, 0x18 GeneralizedTime.
    assert validity["not_before"].dump()[0] == 0x17
    assert validity["not_after"].dump()[0] == 0x18


def test_build_produces_v3_with_fields(signer: SoftwareSigner) -> None:
    tbs = complete_builder(signer).build("sha256_ecdsa")
    assert tbs["version"].native == "v3"
    assert tbs["serial_number"].native == 0x1234
    assert tbs["signature"].dump() == bytes.fromhex("300a06082a8648ce3d040302")  # no parameters
    assert tbs["issuer"].dump() == ISSUER.dump()
    assert tbs["subject"].dump() == SUBJECT.dump()
    assert tbs["subject_public_key_info"].dump() == signer.public_key_info.dump()
    # No extensions: the field is omitted rather than an empty SEQUENCE.
    assert not tbs["extensions"].contents


def test_rsa_signature_algorithm_has_null_parameters(rsa_signer: SoftwareSigner) -> None:
    tbs = complete_builder(rsa_signer).build("sha256_rsa")
    assert tbs["signature"].dump() == bytes.fromhex("300d06092a864886f70d01010b0500")


def test_extensions_in_insertion_order(signer: SoftwareSigner) -> None:
    tbs = (
        complete_builder(signer)
        .add_extension("subject_alt_name", ext.subject_alt_name(dns=["leaf.example.com"]), False)
        .add_extension("key_usage", ext.key_usage({"digital_signature"}), True)
        .add_extension("basic_constraints", ext.basic_constraints(False), True)
        .add_extension("1.3.6.1.4.1.99999.1", core.UTF8String("private"), False)
        .build("sha256_ecdsa")
    )
    assert [e["extn_id"].native for e in tbs["extensions"]] == [
        "subject_alt_name",
        "key_usage",
        "basic_constraints",
        "1.3.6.1.4.1.99999.1",
    ]
    assert [e["critical"].native for e in tbs["extensions"]] == [False, True, True, False]
    assert tbs["extensions"][3]["extn_value"].native == core.UTF8String("private").dump()


def test_native_extension_values_accepted(signer: SoftwareSigner) -> None:
    tbs = (
        complete_builder(signer)
        .add_extension("basic_constraints", {"ca": False}, True)
        .build("sha256_ecdsa")
    )
    assert tbs["extensions"][0]["extn_value"].parsed.native == {
        "ca": False,
        "path_len_constraint": None,
    }


def test_duplicate_extension_rejected_also_by_oid(signer: SoftwareSigner) -> None:
    builder = complete_builder(signer).add_extension(
        "basic_constraints", ext.basic_constraints(False), True
    )
    with pytest.raises(ValueError, match="already been added"):
        builder.add_extension("basic_constraints", ext.basic_constraints(False), True)
    with pytest.raises(ValueError, match="already been added"):
        builder.add_extension("2.5.29.19", ext.basic_constraints(False), True)


@pytest.mark.parametrize(
    ("extn_id", "value", "critical"),
    [
        ("no_such_extension", b"", False),
        ("basic_constraints", ext.key_usage({"digital_signature"}), True),
        ("basic_constraints", "ca", True),
        ("key_usage", ext.key_usage({"digital_signature"}), "yes"),
    ],
)
def test_bad_extensions(
    signer: SoftwareSigner, extn_id: str, value: object, critical: object
) -> None:
    with pytest.raises(ValueError):
        complete_builder(signer).add_extension(extn_id, value, critical)  # type: ignore[arg-type]


# -- RFC 5280 structural rules at build time --------------------------------


def _ca_builder(signer: SoftwareSigner) -> CertificateBuilder:
    return complete_builder(signer, ISSUER)


@pytest.mark.parametrize(
    ("extensions", "message"),
    [
        ([("key_identifier", "ski", True)], "key_identifier must not be critical"),
        (
            [("authority_key_identifier", "aki", True)],
            "authority_key_identifier must not be critical",
        ),
        (
            [("basic_constraints", "ca", False), ("key_identifier", "ski", False)],
            "basic_constraints must be critical",
        ),
        ([("basic_constraints", "ca", True)], "subjectKeyIdentifier"),
        ([("key_usage", "cert_sign", True)], "keyCertSign requires"),
        (
            [
                ("basic_constraints", "ca_path", True),
                ("key_usage", "digital", True),
                ("key_identifier", "ski", False),
            ],
            "pathLenConstraint requires",
        ),
    ],
)
def test_build_rules(
    signer: SoftwareSigner, extensions: list[tuple[str, str, bool]], message: str
) -> None:
    values = {
        "ski": ext.subject_key_identifier(signer.public_key_info),
        "aki": ext.authority_key_identifier(b"\x01" * 20),
        "ca": ext.basic_constraints(True),
        "ca_path": ext.basic_constraints(True, 0),
        "cert_sign": ext.key_usage({"key_cert_sign"}),
        "digital": ext.key_usage({"digital_signature"}),
    }
    builder = _ca_builder(signer)
    for extn_id, value, critical in extensions:
        builder = builder.add_extension(extn_id, values[value], critical)
    with pytest.raises(ValueError, match=message):
        builder.build("sha256_ecdsa")


def test_empty_subject_requires_critical_san(signer: SoftwareSigner) -> None:
    builder = complete_builder(signer, build_name())
    with pytest.raises(ValueError, match="subjectAltName"):
        builder.build("sha256_ecdsa")
    san = ext.subject_alt_name(dns=["leaf.example.com"])
    with pytest.raises(ValueError, match="subject_alt_name must be critical"):
        builder.add_extension("subject_alt_name", san, False).build("sha256_ecdsa")
    builder.add_extension("subject_alt_name", san, True).build("sha256_ecdsa")


def test_ca_with_empty_subject_rejected(signer: SoftwareSigner) -> None:
    builder = (
        complete_builder(signer, build_name())
        .add_extension("basic_constraints", ext.basic_constraints(True), True)
        .add_extension("key_identifier", ext.subject_key_identifier(signer.public_key_info), False)
        .add_extension("subject_alt_name", ext.subject_alt_name(dns=["ca.example.com"]), True)
    )
    with pytest.raises(ValueError, match="non-empty subject"):
        builder.build("sha256_ecdsa")


# -- signing ---------------------------------------------------------------


def test_software_signer_satisfies_protocol(signer: SoftwareSigner) -> None:
    assert isinstance(signer, Signer)


@pytest.mark.parametrize(
    ("key_type", "size", "algorithm"),
    [
        ("rsa", 2048, "sha256_rsa"),
        ("rsa", 2048, "sha384_rsa"),
        ("rsa", 2048, "sha512_rsa"),
        ("ec", 256, "sha256_ecdsa"),
        ("ec", 384, "sha384_ecdsa"),
        ("ec", 384, "sha512_ecdsa"),
    ],
)
def test_sign_certificate_all_algorithms(key_type: str, size: int, algorithm: str) -> None:
    issuer_signer = SoftwareSigner.generate(key_type, size, algorithm)
    tbs = complete_builder(issuer_signer).build(algorithm)
    certificate = sign_certificate(tbs, issuer_signer)
    assert certificate["tbs_certificate"].dump() == tbs.dump()
    assert certificate["signature_algorithm"].dump() == tbs["signature"].dump()
    # pyca verifies the signature independently of our own check.
    loaded = cx509.load_der_x509_certificate(certificate.dump())
    assert loaded.tbs_certificate_bytes == tbs.dump()
    public_key = issuer_signer.public_key
    if isinstance(public_key, rsa.RSAPublicKey):
        public_key.verify(
            loaded.signature,
            loaded.tbs_certificate_bytes,
            padding.PKCS1v15(),
            loaded.signature_hash_algorithm,
        )
    else:
        public_key.verify(
            loaded.signature,
            loaded.tbs_certificate_bytes,
            ec.ECDSA(loaded.signature_hash_algorithm),
        )


def test_sign_rejects_algorithm_mismatch(signer: SoftwareSigner) -> None:
    tbs = complete_builder(signer).build("sha384_ecdsa")
    with pytest.raises(ValueError, match="does not match"):
        sign_certificate(tbs, signer)


def test_sign_rejects_algorithm_for_other_key_type(signer: SoftwareSigner) -> None:
    mismatched = SoftwareSigner.generate("ec", 256)
    object.__setattr__(mismatched, "algorithm", "sha256_rsa")
    tbs = complete_builder(signer).build("sha256_rsa")
    with pytest.raises(ValueError, match="needs a rsa key"):
        sign_certificate(tbs, mismatched)


class _WrongKeySigner:
    """Claims one public key but signs with another, like a mislabelled HSM key."""

    def __init__(self, claimed: SoftwareSigner, actual: SoftwareSigner) -> None:
        self.algorithm = claimed.algorithm
        self.public_key_info = claimed.public_key_info
        self._actual = actual

    def sign(self, data: bytes) -> bytes:
        return self._actual.sign(data)


def test_sign_detects_wrong_key(signer: SoftwareSigner) -> None:
    wrong = _WrongKeySigner(signer, SoftwareSigner.generate("ec", 256))
    tbs = complete_builder(signer).build("sha256_ecdsa")
    with pytest.raises(SignatureVerificationError):
        sign_certificate(tbs, wrong)
    # With verification off the bad certificate is returned (for diagnostics only).
    certificate = sign_certificate(tbs, wrong, verify=False)
    assert certificate["signature_value"].native
