"""PKCS#10 CSRs: strict parsing of foreign requests, the immutable CsrBuilder, and signing."""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from asn1crypto import algos, core, keys, pem, x509
from asn1crypto import csr as asn1_csr
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, padding, rsa
from cryptography.x509.oid import NameOID

from scaivault_pki.pki.builder import SignatureVerificationError
from scaivault_pki.pki.csr import (
    MAX_CSR_SIZE,
    CsrBuilder,
    CsrError,
    ParsedCsr,
    csr_pem,
    parse_csr,
    sign_csr,
)
from scaivault_pki.pki.names import build_name
from tests.support.openssl_csr import (
    HAVE_OPENSSL,
    openssl_key,
    openssl_req,
    openssl_text,
    openssl_verify,
)
from tests.support.software_signer import SoftwareSigner

needs_openssl = pytest.mark.skipif(not HAVE_OPENSSL, reason="the openssl command is not installed")

SAN_EXT = "subjectAltName=DNS:a.example.com,IP:192.0.2.1,URI:spiffe://x/y,email:a@example.com"


def refused(data: object, match: str, field: str = "csr_pem") -> CsrError:
    """Assert parse_csr refuses ``data`` with a CsrError for ``field`` matching ``match``."""
    with pytest.raises(CsrError, match=match) as info:
        parse_csr(data)  # type: ignore[arg-type]
    assert info.value.field == field
    assert str(info.value) == info.value.message
    assert isinstance(info.value, ValueError)
    return info.value


def der_of(pem_bytes: bytes) -> bytes:
    return pem.unarmor(pem_bytes)[2]


def pem_of(der: bytes, label: str = "CERTIFICATE REQUEST") -> bytes:
    return pem.armor(label, der)


# -- fixtures: keys, signers, and CSRs made by other tools -------------------


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("csr")


@pytest.fixture(scope="module")
def openssl_keys(workdir: Path) -> dict[str, Path]:
    if not HAVE_OPENSSL:
        pytest.skip("the openssl command is not installed")
    specs = {
        "rsa2048": "rsa:2048",
        "rsa4096": "rsa:4096",
        "p256": "ec:prime256v1",
        "p384": "ec:secp384r1",
    }
    return {name: openssl_key(workdir, name, spec) for name, spec in specs.items()}


@pytest.fixture(scope="module")
def ec_signer() -> SoftwareSigner:
    return SoftwareSigner.generate("ec", 256)


@pytest.fixture(scope="module")
def rsa_signer() -> SoftwareSigner:
    return SoftwareSigner.generate("rsa", 2048)


@pytest.fixture(scope="module")
def rsa_csr(workdir: Path, openssl_keys: dict[str, Path]) -> bytes:
    """An openssl RSA 2048 CSR with a CN and all four SAN kinds (PEM)."""
    return openssl_req(workdir, openssl_keys["rsa2048"], "/CN=a.example.com", addext=[SAN_EXT])


@pytest.fixture(scope="module")
def ec_csr(workdir: Path, openssl_keys: dict[str, Path]) -> bytes:
    """An openssl P-256 CSR with only a CN (PEM)."""
    return openssl_req(workdir, openssl_keys["p256"], "/CN=ec.example.com")


def resign(info: asn1_csr.CertificationRequestInfo, signer: SoftwareSigner) -> bytes:
    """Sign an arbitrary (possibly invalid) request info, bypassing sign_csr's checks."""
    data = info.dump()
    return asn1_csr.CertificationRequest(
        {
            "certification_request_info": asn1_csr.CertificationRequestInfo.load(data),
            "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": signer.algorithm}),
            "signature": signer.sign(data),
        }
    ).dump()


def replace_in_request(der: bytes, old: bytes, new: bytes) -> bytes:
    """Replace ``old`` (once) in a CSR's DER and fix the outer SEQUENCE length.

    Only for parts outside the signed CertificationRequestInfo.
    """
    assert der[:2] == b"\x30\x82" and der.count(old) == 1
    body = der[4:].replace(old, new)
    return b"\x30\x82" + len(body).to_bytes(2, "big") + body


def pyca_csr(
    private_key: object,
    digest: hashes.HashAlgorithm | None = None,
    *,
    names: list[cx509.GeneralName] | None = None,
    rsa_padding: padding.AsymmetricPadding | None = None,
) -> bytes:
    """A DER CSR for CN=pyca.example.com made by pyca's CertificateSigningRequestBuilder."""
    builder = cx509.CertificateSigningRequestBuilder().subject_name(
        cx509.Name([cx509.NameAttribute(NameOID.COMMON_NAME, "pyca.example.com")])
    )
    if names:
        builder = builder.add_extension(cx509.SubjectAlternativeName(names), critical=False)
    request = builder.sign(private_key, digest, rsa_padding=rsa_padding)  # type: ignore[arg-type]
    return request.public_bytes(serialization.Encoding.DER)


# -- CSRs made by openssl req -------------------------------------------------


@needs_openssl
@pytest.mark.parametrize(
    ("key", "key_type", "key_size", "algorithm"),
    [
        ("rsa2048", "rsa", 2048, "sha256_rsa"),
        ("rsa4096", "rsa", 4096, "sha256_rsa"),
        ("p256", "ec", 256, "sha256_ecdsa"),
        ("p384", "ec", 384, "sha256_ecdsa"),
    ],
)
def test_openssl_csrs_with_all_san_kinds(
    workdir: Path,
    openssl_keys: dict[str, Path],
    key: str,
    key_type: str,
    key_size: int,
    algorithm: str,
) -> None:
    data = openssl_req(
        workdir, openssl_keys[key], "/C=US/O=Acme/CN=a.example.com", addext=[SAN_EXT]
    )
    parsed = parse_csr(data)
    assert isinstance(parsed, ParsedCsr)
    assert parsed.key_type == key_type
    assert parsed.key_size == key_size
    assert parsed.signature_algorithm == algorithm
    assert parsed.common_name == "a.example.com"
    assert parsed.subject_fields == {
        "country": "US",
        "organization": "Acme",
        "common_name": "a.example.com",
    }
    assert parsed.subject.native == {
        "country_name": "US",
        "organization_name": "Acme",
        "common_name": "a.example.com",
    }
    assert parsed.dns_names == ("a.example.com",)
    assert parsed.ip_addresses == ("192.0.2.1",)
    assert parsed.uris == ("spiffe://x/y",)
    assert parsed.emails == ("a@example.com",)
    assert parsed.requested_extensions == ()
    assert parsed.der == der_of(data)
    # The key is exactly the one in the file.
    private = serialization.load_pem_private_key(openssl_keys[key].read_bytes(), None)
    assert parsed.public_key_info.dump() == private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@needs_openssl
def test_openssl_sha384_and_sha512_signatures(workdir: Path, openssl_keys: dict[str, Path]) -> None:
    for key, digest, expected in (
        ("p384", "-sha384", "sha384_ecdsa"),
        ("p256", "-sha512", "sha512_ecdsa"),
        ("rsa2048", "-sha384", "sha384_rsa"),
        ("rsa2048", "-sha512", "sha512_rsa"),
    ):
        data = openssl_req(workdir, openssl_keys[key], "/CN=x.example.com", extra=[digest])
        assert parse_csr(data).signature_algorithm == expected


@needs_openssl
def test_openssl_csr_without_cn(workdir: Path, openssl_keys: dict[str, Path]) -> None:
    data = openssl_req(
        workdir, openssl_keys["p256"], "/", addext=["subjectAltName=DNS:only-san.example.com"]
    )
    parsed = parse_csr(data)
    assert parsed.common_name is None
    assert parsed.subject_fields == {}
    assert len(parsed.subject.chosen) == 0
    assert parsed.dns_names == ("only-san.example.com",)


@needs_openssl
def test_openssl_csr_without_anything_parses(workdir: Path, openssl_keys: dict[str, Path]) -> None:
    # Useless, but well-formed: policy (not the parser) refuses to issue for it.
    parsed = parse_csr(openssl_req(workdir, openssl_keys["p256"], "/"))
    assert parsed.common_name is None
    assert parsed.dns_names == parsed.ip_addresses == parsed.uris == parsed.emails == ()


@needs_openssl
def test_openssl_der_output(workdir: Path, openssl_keys: dict[str, Path]) -> None:
    data = openssl_req(workdir, openssl_keys["p384"], "/CN=der.example.com", der=True)
    assert data[:1] == b"\x30"
    parsed = parse_csr(data)
    assert parsed.der == data
    assert parsed.key_size == 384


def test_legacy_new_certificate_request_armor(ec_csr: bytes) -> None:
    legacy = pem_of(der_of(ec_csr), "NEW CERTIFICATE REQUEST")
    assert legacy.startswith(b"-----BEGIN NEW CERTIFICATE REQUEST-----")
    assert parse_csr(legacy).der == der_of(ec_csr)
    assert parse_csr(legacy.decode()).common_name == "ec.example.com"


def test_pem_as_str_and_bytes_crlf_and_surrounding_whitespace(ec_csr: bytes) -> None:
    text = ec_csr.decode()
    expected = der_of(ec_csr)
    assert parse_csr(text).der == expected
    assert parse_csr(ec_csr).der == expected
    assert parse_csr(text.replace("\n", "\r\n")).der == expected
    assert parse_csr("\n\n  " + text + "\n\n").der == expected
    assert parse_csr(b"\n" + ec_csr + b"  \n").der == expected
    # Base64 in one long line (some web forms do that) is fine too.
    body = base64.b64encode(expected).decode()
    one_line = f"-----BEGIN CERTIFICATE REQUEST-----\n{body}\n-----END CERTIFICATE REQUEST-----\n"
    assert parse_csr(one_line).der == expected


@needs_openssl
def test_other_requested_extensions_are_recorded_not_used(
    workdir: Path, openssl_keys: dict[str, Path]
) -> None:
    data = openssl_req(
        workdir,
        openssl_keys["p256"],
        "/CN=ext.example.com",
        addext=[
            "basicConstraints=critical,CA:TRUE",
            "keyUsage=keyCertSign",
            "subjectAltName=DNS:ext.example.com",
            "1.3.6.1.4.1.55555.1=ASN1:UTF8String:private",
        ],
    )
    parsed = parse_csr(data)
    assert parsed.dns_names == ("ext.example.com",)
    assert parsed.requested_extensions == ("basic_constraints", "key_usage", "1.3.6.1.4.1.55555.1")


@needs_openssl
def test_ipv6_san_is_normalised(workdir: Path, openssl_keys: dict[str, Path]) -> None:
    data = openssl_req(
        workdir,
        openssl_keys["p256"],
        "/CN=v6.example.com",
        addext=["subjectAltName=IP:2001:DB8:0:0:0:0:0:1,IP:10.0.0.1"],
    )
    assert parse_csr(data).ip_addresses == ("2001:db8::1", "10.0.0.1")


@needs_openssl
def test_idn_sans_are_kept_as_a_labels(workdir: Path, openssl_keys: dict[str, Path]) -> None:
    # asn1crypto's native value would decode these to Unicode; we must not.
    data = openssl_req(
        workdir,
        openssl_keys["p256"],
        "/CN=xn--caf-dma.example.com",
        addext=["subjectAltName=DNS:xn--caf-dma.example.com,email:ops@xn--caf-dma.example.com"],
    )
    parsed = parse_csr(data)
    assert parsed.common_name == "xn--caf-dma.example.com"
    assert parsed.dns_names == ("xn--caf-dma.example.com",)
    assert parsed.emails == ("ops@xn--caf-dma.example.com",)


@needs_openssl
def test_rsa_1024_parses_for_policy_to_refuse(workdir: Path) -> None:
    key = openssl_key(workdir, "rsa1024", "rsa:1024")
    parsed = parse_csr(openssl_req(workdir, key, "/CN=weak.example.com"))
    assert (parsed.key_type, parsed.key_size) == ("rsa", 1024)


# -- CSRs made by pyca cryptography ----------------------------------------------


@pytest.mark.parametrize(
    ("make_key", "digest", "key_type", "key_size", "algorithm"),
    [
        (lambda: rsa.generate_private_key(65537, 2048), hashes.SHA256(), "rsa", 2048, "sha256_rsa"),
        (lambda: rsa.generate_private_key(65537, 3072), hashes.SHA512(), "rsa", 3072, "sha512_rsa"),
        (
            lambda: ec.generate_private_key(ec.SECP256R1()),
            hashes.SHA256(),
            "ec",
            256,
            "sha256_ecdsa",
        ),
        (
            lambda: ec.generate_private_key(ec.SECP384R1()),
            hashes.SHA384(),
            "ec",
            384,
            "sha384_ecdsa",
        ),
        (
            lambda: ec.generate_private_key(ec.SECP521R1()),
            hashes.SHA512(),
            "ec",
            521,
            "sha512_ecdsa",
        ),
    ],
)
def test_pyca_csrs(
    make_key: Callable[[], object],
    digest: hashes.HashAlgorithm,
    key_type: str,
    key_size: int,
    algorithm: str,
) -> None:
    names: list[cx509.GeneralName] = [
        cx509.DNSName("pyca.example.com"),
        cx509.DNSName("*.pyca.example.com"),
        cx509.IPAddress(ipaddress.ip_address("2001:db8::7")),
        cx509.UniformResourceIdentifier("https://pyca.example.com/x"),
        cx509.RFC822Name("ops@example.com"),
    ]
    parsed = parse_csr(pyca_csr(make_key(), digest, names=names))
    assert (parsed.key_type, parsed.key_size, parsed.signature_algorithm) == (
        key_type,
        key_size,
        algorithm,
    )
    assert parsed.common_name == "pyca.example.com"
    assert parsed.dns_names == ("pyca.example.com", "*.pyca.example.com")
    assert parsed.ip_addresses == ("2001:db8::7",)
    assert parsed.uris == ("https://pyca.example.com/x",)
    assert parsed.emails == ("ops@example.com",)


# -- CsrBuilder + SoftwareSigner, checked by openssl ----------------------------


@pytest.mark.parametrize(
    ("key_type", "key_size", "algorithm"),
    [
        ("rsa", 2048, "sha256_rsa"),
        ("rsa", 2048, "sha512_rsa"),
        ("ec", 256, "sha256_ecdsa"),
        ("ec", 384, "sha384_ecdsa"),
    ],
)
def test_builder_and_signer_make_csrs_openssl_accepts(
    workdir: Path, key_type: str, key_size: int, algorithm: str
) -> None:
    signer = SoftwareSigner.generate(key_type, key_size, algorithm)
    info = (
        CsrBuilder()
        .subject_name(build_name(common_name="Vault Issuing CA", organization="Acme", country="US"))
        .public_key(signer.public_key_info)
        .subject_alt_names(
            dns=["vault.example.com"],
            ips=["192.0.2.9", "2001:db8::9"],
            uris=["spiffe://example.com/vault"],
            emails=["pki@example.com"],
        )
        .build(algorithm)
    )
    assert isinstance(info, asn1_csr.CertificationRequestInfo)
    request = sign_csr(info, signer)
    assert isinstance(request, asn1_csr.CertificationRequest)
    text = csr_pem(request)

    parsed = parse_csr(text)
    assert parsed.signature_algorithm == algorithm
    assert (parsed.key_type, parsed.key_size) == (key_type, key_size)
    assert parsed.subject_fields == {
        "country": "US",
        "organization": "Acme",
        "common_name": "Vault Issuing CA",
    }
    assert parsed.dns_names == ("vault.example.com",)
    assert parsed.ip_addresses == ("192.0.2.9", "2001:db8::9")
    assert parsed.uris == ("spiffe://example.com/vault",)
    assert parsed.emails == ("pki@example.com",)
    assert parsed.public_key_info.dump() == signer.public_key_info.dump()

    # pyca agrees, independently of our parser.
    loaded = cx509.load_pem_x509_csr(text.encode())
    assert loaded.is_signature_valid
    san = loaded.extensions.get_extension_for_class(cx509.SubjectAlternativeName)
    assert san.critical is False
    assert san.value.get_values_for_type(cx509.DNSName) == ["vault.example.com"]

    if HAVE_OPENSSL:
        ok, output = openssl_verify(workdir, text.encode())
        assert ok, output
        assert "verify OK" in output
        assert "Version: 1 (0x0)" in openssl_text(workdir, text.encode())


def test_builder_empty_subject_gets_critical_san(ec_signer: SoftwareSigner, workdir: Path) -> None:
    info = (
        CsrBuilder()
        .subject_name(build_name())
        .public_key(ec_signer.public_key_info)
        .add_dns_names(["a.example.com", "b.example.com"])
        .build("sha256_ecdsa")
    )
    request = sign_csr(info, ec_signer)
    extension = request["certification_request_info"]["attributes"][0]["values"][0][0]
    assert extension["extn_id"].native == "subject_alt_name"
    assert extension["critical"].native is True
    parsed = parse_csr(request.dump())
    assert parsed.common_name is None
    assert parsed.dns_names == ("a.example.com", "b.example.com")
    if HAVE_OPENSSL:
        ok, output = openssl_verify(workdir, csr_pem(request).encode())
        assert ok, output


def test_builder_without_san_has_empty_attributes(
    rsa_signer: SoftwareSigner, workdir: Path
) -> None:
    info = (
        CsrBuilder()
        .subject_name(build_name(common_name="Root"))
        .public_key(rsa_signer.public_key_info)
        .build("sha256_rsa")
    )
    # RFC 2986: the [0] attributes field is present even when empty.
    assert info.dump().endswith(b"\xa0\x00")
    request = sign_csr(info, rsa_signer)
    # RSA signature algorithms carry explicit NULL parameters (RFC 4055 2.1).
    assert request["signature_algorithm"]["parameters"].dump() == b"\x05\x00"
    parsed = parse_csr(csr_pem(request))
    assert parsed.dns_names == ()
    assert parsed.requested_extensions == ()
    if HAVE_OPENSSL:
        ok, output = openssl_verify(workdir, csr_pem(request).encode())
        assert ok, output


def test_builder_keeps_the_subject_encoding(ec_signer: SoftwareSigner) -> None:
    # A PrintableString CN (as older CAs have) must survive byte for byte.
    subject = x509.Name.build({"common_name": "Legacy CA"}, use_printable=True)
    info = (
        CsrBuilder()
        .subject_name(subject)
        .public_key(ec_signer.public_key_info)
        .build("sha256_ecdsa")
    )
    assert info["subject"].dump() == subject.dump()
    assert parse_csr(sign_csr(info, ec_signer).dump()).subject.dump() == subject.dump()


# -- CsrBuilder: immutability and validation ------------------------------------


def test_builder_setters_return_new_builders(ec_signer: SoftwareSigner) -> None:
    empty = CsrBuilder()
    with_subject = empty.subject_name(build_name(common_name="a"))
    assert with_subject is not empty
    empty.subject_name(build_name(common_name="b"))  # the original is untouched
    with pytest.raises(ValueError, match="missing subject name, public key"):
        empty.build("sha256_ecdsa")
    with pytest.raises(ValueError, match="missing public key"):
        with_subject.build("sha256_ecdsa")


def test_builder_cannot_be_mutated() -> None:
    builder = CsrBuilder()
    with pytest.raises(AttributeError):
        builder._subject = b"x"  # type: ignore[misc]


def test_builder_setting_twice_raises(ec_signer: SoftwareSigner) -> None:
    builder = (
        CsrBuilder()
        .subject_name(build_name(common_name="a"))
        .public_key(ec_signer.public_key_info)
        .add_dns_names(["a.example.com"])
    )
    with pytest.raises(ValueError, match="subject name may only be set once"):
        builder.subject_name(build_name(common_name="b"))
    with pytest.raises(ValueError, match="public key may only be set once"):
        builder.public_key(ec_signer.public_key_info)
    with pytest.raises(ValueError, match="subject alternative names may only be set once"):
        builder.subject_alt_names(dns=["b.example.com"])
    with pytest.raises(ValueError, match="subject alternative names may only be set once"):
        builder.add_dns_names(["b.example.com"])


def test_builder_copies_inputs(ec_signer: SoftwareSigner) -> None:
    subject = build_name(common_name="original")
    builder = CsrBuilder().subject_name(subject).public_key(ec_signer.public_key_info)
    subject.chosen[0][0]["value"] = x509.DirectoryString(name="utf8_string", value="changed")
    assert builder.build("sha256_ecdsa")["subject"].native == {"common_name": "original"}


def test_builder_validates_inputs(ec_signer: SoftwareSigner) -> None:
    builder = CsrBuilder()
    with pytest.raises(ValueError, match=r"asn1crypto x509\.Name"):
        builder.subject_name("CN=x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unsupported name attribute"):
        builder.subject_name(x509.Name.build({"email_address": "a@example.com"}))
    with pytest.raises(ValueError, match=r"keys\.PublicKeyInfo"):
        builder.public_key(b"der")  # type: ignore[arg-type]
    ed_key = ed25519.Ed25519PrivateKey.generate().public_key()
    ed_info = keys.PublicKeyInfo.load(
        ed_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    with pytest.raises(ValueError, match="unsupported public key type 'ed25519'"):
        builder.public_key(ed_info)
    with pytest.raises(ValueError, match="invalid label"):
        builder.subject_alt_names(dns=["Upper.Example.com"])
    with pytest.raises(ValueError, match="must be given as a list"):
        builder.add_dns_names("a.example.com")
    with pytest.raises(ValueError, match="must be given as a list"):
        builder.subject_alt_names(ips="192.0.2.1")
    with pytest.raises(ValueError, match="at least one name"):
        builder.subject_alt_names()
    with pytest.raises(ValueError, match="duplicate DNS name"):
        builder.add_dns_names(name for name in ["a.example.com", "a.example.com"])


def test_builder_empty_subject_needs_san(ec_signer: SoftwareSigner) -> None:
    builder = CsrBuilder().subject_name(build_name()).public_key(ec_signer.public_key_info)
    with pytest.raises(ValueError, match="empty subject requires subject alternative names"):
        builder.build("sha256_ecdsa")


def test_builder_algorithm_must_fit_the_key(ec_signer: SoftwareSigner) -> None:
    builder = (
        CsrBuilder().subject_name(build_name(common_name="a")).public_key(ec_signer.public_key_info)
    )
    with pytest.raises(ValueError, match="needs a rsa key"):
        builder.build("sha256_rsa")
    with pytest.raises(ValueError, match="not supported"):
        builder.build("sha1_ecdsa")


# -- sign_csr ------------------------------------------------------------------


def test_sign_csr_refuses_a_signer_for_another_key(
    ec_signer: SoftwareSigner, rsa_signer: SoftwareSigner
) -> None:
    info = (
        CsrBuilder()
        .subject_name(build_name(common_name="a"))
        .public_key(ec_signer.public_key_info)
        .build("sha256_ecdsa")
    )
    other = SoftwareSigner.generate("ec", 256)
    with pytest.raises(ValueError, match="not the public key of the request"):
        sign_csr(info, other)
    with pytest.raises(ValueError, match="not the public key of the request"):
        sign_csr(info, rsa_signer)
    with pytest.raises(ValueError, match="CertificationRequestInfo"):
        sign_csr(info.dump(), ec_signer)  # type: ignore[arg-type]


class LyingSigner:
    """Claims one key but signs with another, like an HSM with a mislabelled key."""

    def __init__(self, claimed: SoftwareSigner, actual: SoftwareSigner) -> None:
        self.algorithm = claimed.algorithm
        self.public_key_info = claimed.public_key_info
        self._actual = actual

    def sign(self, data: bytes) -> bytes:
        return self._actual.sign(data)


class EmptySigner(LyingSigner):
    def sign(self, data: bytes) -> bytes:
        return b""


def test_sign_csr_detects_a_wrong_signature(ec_signer: SoftwareSigner) -> None:
    info = (
        CsrBuilder()
        .subject_name(build_name(common_name="a"))
        .public_key(ec_signer.public_key_info)
        .build("sha256_ecdsa")
    )
    other = SoftwareSigner.generate("ec", 256)
    with pytest.raises(SignatureVerificationError, match="does not verify"):
        sign_csr(info, LyingSigner(ec_signer, other))
    with pytest.raises(SignatureVerificationError, match="no signature"):
        sign_csr(info, EmptySigner(ec_signer, other))


def test_sign_csr_refuses_info_that_parse_csr_would_refuse(ec_signer: SoftwareSigner) -> None:
    # Built by hand, bypassing CsrBuilder: an unsupported subject attribute.
    info = asn1_csr.CertificationRequestInfo(
        {
            "version": "v1",
            "subject": x509.Name.build({"email_address": "a@example.com"}),
            "subject_pk_info": ec_signer.public_key_info,
            "attributes": [],
        }
    )
    with pytest.raises(ValueError, match="would be refused: subject: unsupported name attribute"):
        sign_csr(info, ec_signer)


# -- csr_pem ---------------------------------------------------------------------


def test_csr_pem_accepts_request_parsed_and_der(ec_csr: bytes) -> None:
    parsed = parse_csr(ec_csr)
    request = asn1_csr.CertificationRequest.load(parsed.der)
    for value in (parsed, request, parsed.der):
        text = csr_pem(value)
        assert text.startswith("-----BEGIN CERTIFICATE REQUEST-----\n")
        assert text.endswith("-----END CERTIFICATE REQUEST-----\n")
        assert parse_csr(text).der == parsed.der
    with pytest.raises(ValueError, match="CertificationRequest"):
        csr_pem("not a csr")  # type: ignore[arg-type]


# -- refusals: tampering and malformed DER ------------------------------------------


def test_tampered_signature_is_refused(rsa_csr: bytes, ec_csr: bytes) -> None:
    for data in (rsa_csr, ec_csr):
        der = bytearray(der_of(data))
        der[-1] ^= 0x01  # the last byte is inside the signature BIT STRING
        refused(pem_of(bytes(der)), "^signature does not verify$")


def test_tampered_subject_is_refused(rsa_csr: bytes, ec_csr: bytes) -> None:
    for data, name in ((rsa_csr, b"a.example.com"), (ec_csr, b"ec.example.com")):
        der = der_of(data)
        position = der.index(name)  # the CN, the first occurrence (SANs come later)
        tampered = der[:position] + b"z" + der[position + 1 :]
        refused(tampered, "signature does not verify")


def test_signature_of_another_key_is_refused(ec_signer: SoftwareSigner) -> None:
    info = (
        CsrBuilder()
        .subject_name(build_name(common_name="a"))
        .public_key(ec_signer.public_key_info)
        .build("sha256_ecdsa")
    )
    refused(resign(info, SoftwareSigner.generate("ec", 256)), "signature does not verify")


def test_truncated_der_is_refused(rsa_csr: bytes) -> None:
    der = der_of(rsa_csr)
    for length in (1, 2, 10, len(der) // 2, len(der) - 1):
        refused(der[:length], "not a valid DER certificate request")
        refused(pem_of(der[:length]), "not a valid DER certificate request")


def test_trailing_data_is_refused(rsa_csr: bytes) -> None:
    der = der_of(rsa_csr)
    refused(der + b"\x00", "not a valid DER certificate request")
    refused(der + der, "not a valid DER certificate request")
    refused(pem_of(der + b"junk"), "not a valid DER certificate request")


def test_non_der_encoding_is_refused(ec_csr: bytes) -> None:
    der = der_of(ec_csr)
    assert der[1] == 0x81 or der[1] == 0x82
    # Same content, outer length in a non-minimal long form: valid BER, not DER.
    length = int.from_bytes(der[2 : 2 + (der[1] & 0x7F)], "big")
    ber = b"\x30\x84" + length.to_bytes(4, "big") + der[2 + (der[1] & 0x7F) :]
    refused(ber, "not a valid DER certificate request")


def test_wrong_version_is_refused(ec_signer: SoftwareSigner) -> None:
    info = (
        CsrBuilder()
        .subject_name(build_name(common_name="a"))
        .public_key(ec_signer.public_key_info)
        .build("sha256_ecdsa")
    )
    info["version"] = 1
    refused(resign(info, ec_signer), r"version must be v1 \(0\), got 1")


def test_missing_attributes_field_is_refused(ec_signer: SoftwareSigner) -> None:
    info = (
        CsrBuilder()
        .subject_name(build_name(common_name="a"))
        .public_key(ec_signer.public_key_info)
        .build("sha256_ecdsa")
    )
    without = asn1_csr.CertificationRequestInfo(
        {"version": "v1", "subject": info["subject"], "subject_pk_info": info["subject_pk_info"]}
    )
    refused(resign(without, ec_signer), "not a valid DER certificate request")


def test_garbage_is_refused() -> None:
    refused(b"\x30\x03\x02\x01\x00", "not a valid DER certificate request")
    refused(b"\x30\x00", "not a valid DER certificate request")
    refused(b"\x30" + bytes(range(256)), "not a valid DER certificate request")
    refused(b"hello world", "is not a PEM or DER certificate request")
    refused("hello world", "is not a PEM or DER certificate request")
    refused(b"\xff\xfe\x00\x01garbage", "is not a PEM or DER certificate request")


def test_empty_input_is_refused() -> None:
    for data in ("", b"", "   \n\t", b"\n\n"):
        refused(data, "^is empty$")


def test_non_ascii_junk_is_refused(ec_csr: bytes) -> None:
    refused("Grüße, 証明書要求", "non-ASCII")
    refused(
        "-----BEGIN CERTIFICATE REQUEST-----\nMIIé\n-----END CERTIFICATE REQUEST-----", "non-ASCII"
    )
    refused(ec_csr.replace(b"\n", "\n\u00e9".encode(), 1), "non-ASCII")
    refused("\u00e9".encode("utf-8") * 10, "is not a PEM or DER certificate request")


def test_wrong_input_type_is_refused() -> None:
    refused(None, "must be PEM text or DER bytes")
    refused(1234, "must be PEM text or DER bytes")
    refused(bytearray(b"\x30\x00"), "must be PEM text or DER bytes")


def test_oversized_input_is_refused(ec_csr: bytes) -> None:
    padding_text = " " * MAX_CSR_SIZE
    refused(ec_csr.decode() + padding_text, "larger than")
    refused(ec_csr + padding_text.encode(), "larger than")


def test_error_field_can_be_renamed() -> None:
    with pytest.raises(CsrError) as info:
        parse_csr("", field="request.csr")
    assert info.value.field == "request.csr"
    assert str(info.value) == info.value.message == "is empty"


# -- refusals: PEM armour ----------------------------------------------------------


def test_two_pem_blocks_are_refused(rsa_csr: bytes, ec_csr: bytes) -> None:
    refused(rsa_csr + ec_csr, "contains 2 PEM blocks")
    refused(ec_csr + b"\n" + ec_csr, "contains 2 PEM blocks")


def test_certificate_pem_is_refused(ec_signer: SoftwareSigner) -> None:
    certificate = (
        cx509.CertificateBuilder()
        .subject_name(cx509.Name([cx509.NameAttribute(NameOID.COMMON_NAME, "c")]))
        .issuer_name(cx509.Name([cx509.NameAttribute(NameOID.COMMON_NAME, "c")]))
        .public_key(ec_signer.public_key)
        .serial_number(1)
        .not_valid_before(datetime(2030, 1, 1))
        .not_valid_after(datetime(2031, 1, 1))
        .sign(ec_signer.private_key, hashes.SHA256())
    )
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
    refused(cert_pem, "PEM block is a 'CERTIFICATE', not a CERTIFICATE REQUEST")
    # The same DER relabelled as a CSR is still not a CSR.
    cert_der = certificate.public_bytes(serialization.Encoding.DER)
    refused(pem_of(cert_der), "not a valid DER certificate request")
    refused(cert_der, "not a valid DER certificate request")


def test_text_around_the_pem_block_is_refused(ec_csr: bytes) -> None:
    refused(b"Certificate Request:\n    Data: ...\n" + ec_csr, "text before the PEM block")
    refused(ec_csr + b"trailing words\n", "text after it")
    refused(ec_csr.rstrip() + b"-----", "END line does not match")


def test_malformed_pem_is_refused(ec_csr: bytes) -> None:
    text = ec_csr.decode()
    body_start = text.index("\n") + 1
    refused(
        text.replace("-----END CERTIFICATE REQUEST-----", "-----END CERTIFICATE-----"),
        "does not match",
    )
    refused(text.replace("-----END CERTIFICATE REQUEST-----\n", ""), "incomplete")
    refused(
        "-----BEGIN CERTIFICATE REQUEST-----\n-----END CERTIFICATE REQUEST-----\n", "incomplete"
    )
    refused(
        "-----BEGIN CERTIFICATE REQUEST-----\n\n-----END CERTIFICATE REQUEST-----\n",
        "PEM block is empty",
    )
    refused(text[:body_start] + "Proc-Type: 4,ENCRYPTED\n" + text[body_start:], "not valid base64")
    refused(text[:body_start] + "!!!!" + text[body_start:], "not valid base64")
    last_line_end = text.index("\n-----END")
    refused(text[: last_line_end - 1] + text[last_line_end:], "not valid base64")  # bad padding
    refused("-----BEGIN CERTIFICATE REQUEST-----", "incomplete")


# -- refusals: keys and signature algorithms ---------------------------------------


def test_ed25519_csr_is_refused() -> None:
    error = refused(
        pyca_csr(ed25519.Ed25519PrivateKey.generate(), None),
        "unsupported public key type 'ed25519'",
    )
    assert "RSA and EC" in error.message


def test_dsa_csr_is_refused() -> None:
    key = dsa.generate_private_key(2048)
    refused(pyca_csr(key, hashes.SHA256()), "unsupported public key type 'dsa'")


def test_unsupported_curve_is_refused() -> None:
    refused(
        pyca_csr(ec.generate_private_key(ec.SECP256K1()), hashes.SHA256()),
        "unsupported EC curve 'secp256k1'",
    )
    refused(
        pyca_csr(ec.generate_private_key(ec.BrainpoolP256R1()), hashes.SHA256()),
        "unsupported EC curve 'brainpoolp256r1'",
    )


def test_rsa_pss_csr_is_refused() -> None:
    key = rsa.generate_private_key(65537, 2048)
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    refused(pyca_csr(key, hashes.SHA256(), rsa_padding=pss), "RSA-PSS signatures are not supported")


@needs_openssl
def test_sha1_csr_is_refused(workdir: Path, openssl_keys: dict[str, Path]) -> None:
    data = openssl_req(workdir, openssl_keys["rsa2048"], "/CN=old.example.com", extra=["-sha1"])
    refused(data, "'sha1_rsa' is refused: SHA-1 is broken")


@needs_openssl
def test_explicit_curve_parameters_are_refused(workdir: Path) -> None:
    key = openssl_key(workdir, "explicit", "ec:P-256", pkeyopts=["ec_param_enc:explicit"])
    refused(openssl_req(workdir, key, "/CN=x.example.com"), "named curve, not explicit parameters")


@needs_openssl
def test_tiny_rsa_key_is_refused(workdir: Path) -> None:
    key = openssl_key(workdir, "rsa512", "rsa:512")
    refused(openssl_req(workdir, key, "/CN=tiny.example.com"), "RSA key of 512 bits is too small")


def test_even_rsa_exponent_is_refused(rsa_signer: SoftwareSigner) -> None:
    # Forge an SPKI with e=4 (no private key exists for it, so the signature
    # is bogus, but the key check comes first).
    assert isinstance(rsa_signer.public_key, rsa.RSAPublicKey)
    modulus = rsa_signer.public_key.public_numbers().n
    bad_key = keys.PublicKeyInfo(
        {
            "algorithm": {"algorithm": "rsa"},
            "public_key": keys.RSAPublicKey({"modulus": modulus, "public_exponent": 4}),
        }
    )
    info = asn1_csr.CertificationRequestInfo(
        {
            "version": "v1",
            "subject": build_name(common_name="a"),
            "subject_pk_info": bad_key,
            "attributes": [],
        }
    )
    refused(resign(info, rsa_signer), "RSA public exponent must be odd")


def test_signature_algorithm_must_fit_the_key(ec_signer: SoftwareSigner, rsa_csr: bytes) -> None:
    request = asn1_csr.CertificationRequest.load(der_of(rsa_csr))
    request["signature_algorithm"] = algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"})
    refused(request.dump(), "'sha256_ecdsa' does not fit the rsa key")


def test_unknown_signature_algorithm_is_refused(rsa_csr: bytes) -> None:
    request = asn1_csr.CertificationRequest.load(der_of(rsa_csr))
    request["signature_algorithm"] = algos.SignedDigestAlgorithm({"algorithm": "sha224_rsa"})
    refused(request.dump(), "'sha224_rsa' is not supported")


def test_signature_algorithm_parameters(ec_csr: bytes, rsa_csr: bytes) -> None:
    # The outer AlgorithmIdentifier is not covered by the signature, so it can be edited.
    ec_request = asn1_csr.CertificationRequest.load(der_of(ec_csr))
    ec_request["signature_algorithm"] = algos.SignedDigestAlgorithm(
        {"algorithm": "sha256_ecdsa", "parameters": core.Null()}
    )
    refused(ec_request.dump(), "ECDSA signature algorithm must not have parameters")

    # asn1crypto will not build RSA parameters other than NULL: splice them in.
    with_null = bytes.fromhex("300d06092a864886f70d01010b0500")
    with_integer = bytes.fromhex("300e06092a864886f70d01010b020105")
    absent = bytes.fromhex("300b06092a864886f70d01010b")
    der = der_of(rsa_csr)
    refused(replace_in_request(der, with_null, with_integer), "not a valid DER certificate request")
    # Absent RSA parameters are tolerated (RFC 4055 2.1).
    assert parse_csr(replace_in_request(der, with_null, absent)).signature_algorithm == "sha256_rsa"


@needs_openssl
def test_unsupported_subject_attributes_are_refused(
    workdir: Path, openssl_keys: dict[str, Path]
) -> None:
    key = openssl_keys["p256"]
    refused(
        openssl_req(workdir, key, "/CN=a.example.com/emailAddress=a@example.com"),
        "subject: unsupported name attribute 'email_address'",
    )
    refused(
        openssl_req(workdir, key, "/CN=a.example.com+O=Acme", extra=["-multivalue-rdn"]),
        "subject: multi-valued RDNs are not supported",
    )
    refused(
        openssl_req(workdir, key, "/OU=a/OU=b/CN=x"), "organizational_unit: appears more than once"
    )
    refused(openssl_req(workdir, key, "/C=us/CN=x"), "country: must be a two-letter upper-case")


def test_overlong_subject_value_is_refused(ec_signer: SoftwareSigner) -> None:
    # openssl itself refuses to write this, so build it by hand.
    info = asn1_csr.CertificationRequestInfo(
        {
            "version": "v1",
            "subject": x509.Name.build({"common_name": "x" * 65}),
            "subject_pk_info": ec_signer.public_key_info,
            "attributes": [],
        }
    )
    refused(
        resign(info, ec_signer), "common_name: 65 characters exceeds the RFC 5280 upper bound of 64"
    )


@needs_openssl
def test_unsupported_or_invalid_sans_are_refused(
    workdir: Path, openssl_keys: dict[str, Path]
) -> None:
    key = openssl_keys["p256"]
    refused(
        openssl_req(
            workdir,
            key,
            "/CN=x",
            addext=["subjectAltName=otherName:1.3.6.1.4.1.311.20.2.3;UTF8:u@x"],
        ),
        "unsupported name type 'other_name'",
    )
    refused(
        openssl_req(workdir, key, "/CN=x", addext=["subjectAltName=RID:1.2.3.4"]),
        "unsupported name type 'registered_id'",
    )
    refused(
        openssl_req(workdir, key, "/CN=x", addext=["subjectAltName=DNS:Upper.Example.com"]),
        "subjectAltName: DNS name 'Upper.Example.com' has an invalid label",
    )
    refused(
        openssl_req(
            workdir, key, "/CN=x", addext=["subjectAltName=DNS:a.example.com,DNS:a.example.com"]
        ),
        "subjectAltName: duplicate DNS name",
    )
    refused(
        openssl_req(workdir, key, "/CN=x", addext=["subjectAltName=URI:relative/path"]),
        "must be absolute",
    )


def _info_with_attributes(
    signer: SoftwareSigner, attributes: list[asn1_csr.CRIAttribute]
) -> asn1_csr.CertificationRequestInfo:
    return asn1_csr.CertificationRequestInfo(
        {
            "version": "v1",
            "subject": build_name(common_name="a"),
            "subject_pk_info": signer.public_key_info,
            "attributes": attributes,
        }
    )


def _san_extension(*names: x509.GeneralName) -> x509.Extension:
    return x509.Extension(
        {
            "extn_id": "subject_alt_name",
            "critical": False,
            "extn_value": x509.GeneralNames(list(names)),
        }
    )


def _extension_request(*extensions: x509.Extension) -> asn1_csr.CRIAttribute:
    return asn1_csr.CRIAttribute(
        {"type": "extension_request", "values": [x509.Extensions(list(extensions))]}
    )


def test_challenge_password_is_ignored(ec_signer: SoftwareSigner) -> None:
    password = asn1_csr.CRIAttribute(
        {
            "type": "challenge_password",
            "values": [x509.DirectoryString(name="utf8_string", value="s3cret")],
        }
    )
    dns = x509.GeneralName(name="dns_name", value="a.example.com")
    parsed = parse_csr(
        resign(
            _info_with_attributes(ec_signer, [password, _extension_request(_san_extension(dns))]),
            ec_signer,
        )
    )
    assert parsed.dns_names == ("a.example.com",)


def test_malformed_extension_requests_are_refused(ec_signer: SoftwareSigner) -> None:
    dns = x509.GeneralName(name="dns_name", value="a.example.com")
    twice = [_extension_request(_san_extension(dns)), _extension_request(_san_extension(dns))]
    refused(
        resign(_info_with_attributes(ec_signer, twice), ec_signer), "at most one extensionRequest"
    )

    duplicate = [_extension_request(_san_extension(dns), _san_extension(dns))]
    refused(
        resign(_info_with_attributes(ec_signer, duplicate), ec_signer),
        "'subject_alt_name' appears twice",
    )

    empty = [_extension_request(_san_extension())]
    refused(resign(_info_with_attributes(ec_signer, empty), ec_signer), "subjectAltName is empty")

    masked_ip = x509.GeneralName(name="ip_address", value="192.0.2.0/24")
    refused(
        resign(
            _info_with_attributes(ec_signer, [_extension_request(_san_extension(masked_ip))]),
            ec_signer,
        ),
        "IP address must be 4 or 16 octets",
    )

    latin1 = x509.GeneralName(name="dns_name", value=x509.DNSName("x"))
    latin1.chosen.contents = b"caf\xe9.example.com"
    refused(
        resign(
            _info_with_attributes(ec_signer, [_extension_request(_san_extension(latin1))]),
            ec_signer,
        ),
        "not a valid DER certificate request",  # IA5String holds ASCII only
    )


def test_malformed_ignored_extension_is_refused(ec_signer: SoftwareSigner) -> None:
    # A keyUsage whose value is NULL instead of a BIT STRING, encoded by hand
    # (asn1crypto will not build it): ignored extensions must still parse.
    broken = x509.Extension.load(bytes.fromhex("300c0603551d0f0101ff04020500"))
    data = resign(_info_with_attributes(ec_signer, [_extension_request(broken)]), ec_signer)
    refused(data, "not a valid DER certificate request")
