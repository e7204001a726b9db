"""The CRL builder and the OCSP request/response code, with software keys, checked by openssl, pkilint and pyca."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import urllib.parse
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import core, crl, ocsp, pem
from cryptography import x509 as cx509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp as cocsp

from scaivault_pki.pki.crl import CRL_REASONS, CrlBuilder, RevokedEntry, asn1_reason, known_reason, sign_crl
from scaivault_pki.pki.ocsp import (
    MAX_REQUESTS_PER_QUERY,
    OcspRequestError,
    SingleAnswer,
    build_response,
    decode_get_request,
    error_response,
    issuer_matches,
    parse_request,
)
from scaivault_pki.errors import ApiError
from scaivault_pki.pki.revocation import cascade_reason, parse_reason
from scaivault_pki.pki.signing import SignatureVerificationError
from tests.support.chains import build_chain
from tests.support.lint import pkilint_report
from tests.support.software_signer import SoftwareSigner

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module", params=[("ec", 256), ("rsa", 2048)], ids=["ec", "rsa"])
def chain(request):
    return build_chain(("ec", 384), request.param, ("ec", 256))


def base_builder(chain, number: int = 7) -> CrlBuilder:
    return (
        CrlBuilder()
        .issuer_name(chain.intermediate.subject)
        .authority_key_identifier(chain.intermediate.key_identifier)
        .this_update(NOW)
        .next_update(NOW + timedelta(hours=24))
        .crl_number(number)
    )


def write_pem(folder: Path, name: str, label: str, der: bytes) -> Path:
    path = folder / name
    path.write_bytes(pem.armor(label, der))
    return path


def openssl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, timeout=60)


# -- CRL builder -----------------------------------------------------------------------------------------------------


def test_builder_is_immutable_and_fields_are_set_once(chain):
    builder = CrlBuilder()
    named = builder.issuer_name(chain.intermediate.subject)
    assert named is not builder
    with pytest.raises(ValueError, match="only be set once"):
        named.issuer_name(chain.intermediate.subject)
    with pytest.raises(AttributeError, match="immutable"):
        builder._number = 3  # type: ignore[misc]
    with pytest.raises(ValueError, match="missing issuer name, authority key identifier, this update, next update, CRL number"):
        builder.build("sha256_ecdsa")


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda b: b.crl_number(-1), "non-negative"),
        (lambda b: b.crl_number(2**160), "20 octets"),
        (lambda b: b.crl_number(True), "non-negative"),
        (lambda b: b.issuer_name(core.Null()), "x509.Name"),
        (lambda b: b.authority_key_identifier(b""), "non-empty"),
        (lambda b: b.this_update(datetime(2026, 1, 1)), "timezone-aware"),
        (lambda b: b.this_update(NOW).next_update(NOW), "later than this update"),
        (lambda b: b.next_update(NOW).this_update(NOW + timedelta(seconds=1)), "earlier than next update"),
        (lambda b: b.revoked_certificates([RevokedEntry(5, NOW), RevokedEntry(5, NOW)]), "only once"),
        (lambda b: b.revoked_certificates(["5"]), "RevokedEntry"),
        (lambda b: b.freshest_crl(["mailto:x@example.com"]), "scheme"),
        (lambda b: b.delta_of(-3), "non-negative"),
    ],
)
def test_builder_refuses_bad_values(mutate, message):
    with pytest.raises(ValueError, match=message):
        mutate(CrlBuilder())


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"serial": 0, "revoked_at": NOW}, "positive"),
        ({"serial": 2**159, "revoked_at": NOW}, "20 octets"),
        ({"serial": 5, "revoked_at": NOW, "reason": "removeFromCRL"}, "unknown revocation reason"),
        ({"serial": 5, "revoked_at": NOW, "reason": "key_compromise"}, "unknown revocation reason"),
        ({"serial": 5, "revoked_at": datetime(2026, 1, 1)}, "timezone-aware"),
    ],
)
def test_revoked_entry_refuses_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RevokedEntry(**kwargs)


def test_delta_rules(chain):
    with pytest.raises(ValueError, match="must exceed its base"):
        base_builder(chain, 7).delta_of(7).build(chain.intermediate_signer.algorithm)
    with pytest.raises(ValueError, match="freshestCRL belongs in full CRLs"):
        base_builder(chain, 8).delta_of(7).freshest_crl(["http://pki.example.com/d"]).build(chain.intermediate_signer.algorithm)


def test_full_crl_fields(chain):
    entries = [RevokedEntry(0x1234, NOW - timedelta(hours=1), "keyCompromise"), RevokedEntry(0xABCDEF, NOW)]
    tbs = (
        base_builder(chain, 12)
        .revoked_certificates(entries)
        .freshest_crl(["http://pki.example.com/v1/pki/ca/x/crl/delta"])
        .build(chain.intermediate_signer.algorithm)
    )
    document = crl.CertificateList.load(sign_crl(tbs, chain.intermediate_signer).dump())
    assert document["tbs_cert_list"]["version"].native == "v2"
    assert document.issuer.dump() == chain.intermediate.subject.dump()
    assert document.crl_number_value.native == 12
    assert document.authority_key_identifier == chain.intermediate.key_identifier
    assert document.delta_crl_indicator_value is None
    assert document.freshest_crl_value[0]["distribution_point"].native == ["http://pki.example.com/v1/pki/ca/x/crl/delta"]
    revoked = {entry["user_certificate"].native: entry for entry in document["tbs_cert_list"]["revoked_certificates"]}
    assert revoked[0x1234].crl_reason_value.native == "key_compromise"
    # RFC 5280 5.3.1: reasonCode is left out rather than saying unspecified.
    assert revoked[0xABCDEF]["crl_entry_extensions"].native is None
    critical = {ext["extn_id"].native: ext["critical"].native for ext in document["tbs_cert_list"]["crl_extensions"]}
    assert critical == {"authority_key_identifier": False, "crl_number": False, "freshest_crl": False}


def test_empty_crl_has_no_revoked_list(chain):
    tbs = base_builder(chain).revoked_certificates([]).build(chain.intermediate_signer.algorithm)
    # RFC 5280 5.1.2.6: absent, not an empty SEQUENCE.
    assert crl.TbsCertList.load(tbs.dump())["revoked_certificates"].native is None


def test_delta_crl_indicator_is_critical(chain):
    tbs = base_builder(chain, 9).delta_of(4).build(chain.intermediate_signer.algorithm)
    document = crl.CertificateList.load(sign_crl(tbs, chain.intermediate_signer).dump())
    assert document.delta_crl_indicator_value.native == 4
    assert "delta_crl_indicator" in document.critical_extensions


def test_every_reason_encodes_and_decodes(chain):
    entries = [RevokedEntry(100 + i, NOW, reason) for i, reason in enumerate(CRL_REASONS)]
    document = sign_crl(base_builder(chain).revoked_certificates(entries).build(chain.intermediate_signer.algorithm),
                        chain.intermediate_signer)
    parsed = crl.CertificateList.load(document.dump())
    got = {e["user_certificate"].native: (e.crl_reason_value.native if e.crl_reason_value else "unspecified")
           for e in parsed["tbs_cert_list"]["revoked_certificates"]}
    assert got == {100 + i: asn1_reason(reason) for i, reason in enumerate(CRL_REASONS)}
    assert "removeFromCRL" not in CRL_REASONS
    assert known_reason("nonsense") == known_reason(None) == "unspecified"


def test_signer_with_the_wrong_key_is_caught(chain):
    class WrongKey:
        algorithm = chain.intermediate_signer.algorithm
        public_key_info = chain.intermediate_signer.public_key_info

        def sign(self, data: bytes) -> bytes:
            return SoftwareSigner.generate(*{"ec": ("ec", 256), "rsa": ("rsa", 2048)}[self.public_key_info.algorithm]).sign(data)

    with pytest.raises(SignatureVerificationError):
        sign_crl(base_builder(chain).build(chain.intermediate_signer.algorithm), WrongKey())
    with pytest.raises(ValueError, match="does not match"):
        sign_crl(base_builder(chain).build("sha512_rsa" if chain.intermediate_signer.algorithm != "sha512_rsa" else "sha256_rsa"),
                 chain.intermediate_signer)


@pytest.mark.parametrize("kind", ["full", "delta", "empty"])
def test_openssl_and_pkilint_accept_our_crls(chain, kind, tmp_path):
    builder = base_builder(chain, 20)
    if kind != "empty":
        builder = builder.revoked_certificates(
            [RevokedEntry(chain.leaf.serial_number, NOW, "superseded"), RevokedEntry(2**100 + 1, NOW - timedelta(days=2))]
        )
    builder = builder.delta_of(19) if kind == "delta" else builder.freshest_crl(["http://pki.example.com/x/crl/delta"])
    der = sign_crl(builder.build(chain.intermediate_signer.algorithm), chain.intermediate_signer).dump()
    crl_file = write_pem(tmp_path, "c.crl", "X509 CRL", der)
    ca_file = write_pem(tmp_path, "ca.pem", "CERTIFICATE", chain.intermediate.dump())
    result = openssl("crl", "-in", crl_file, "-noout", "-verify", "-CAfile", ca_file)
    assert result.returncode == 0 and "verify OK" in result.stderr, result.stderr
    for lint in ("crl", "crl_br"):
        assert pkilint_report(der, lint).errors == []
    # pyca parses it the same way.
    parsed = cx509.load_der_x509_crl(der)
    assert parsed.is_signature_valid(chain.intermediate_signer.public_key)
    assert parsed.extensions.get_extension_for_class(cx509.CRLNumber).value.crl_number == 20


# -- reasons --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given,expected",
    [(None, "unspecified"), ("keyCompromise", "keyCompromise"), ("KEYCOMPROMISE", "keyCompromise"),
     ("cacompromise", "cACompromise"), ("aACompromise", "aACompromise"), ("certificateHold", "certificateHold")],
)
def test_parse_reason(given, expected):
    assert parse_reason(given) == expected


@pytest.mark.parametrize("given,message", [("removeFromCRL", "not a reason to revoke"), ("lost", "not an RFC 5280 reason"),
                                           ("key_compromise", "not an RFC 5280 reason")])
def test_parse_reason_refusals(given, message):
    with pytest.raises(ApiError, match=message) as info:
        parse_reason(given)
    assert info.value.status == 400 and info.value.details == {"field": "reason"}


def test_cascade_reason():
    assert cascade_reason("keyCompromise") == "cACompromise"
    assert cascade_reason("cACompromise") == "cACompromise"
    assert cascade_reason("cessationOfOperation") == "cessationOfOperation"
    assert cascade_reason("unspecified") == "unspecified"


# -- OCSP -----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ec_chain():
    return build_chain(("ec", 384), ("ec", 256), ("ec", 256))


@pytest.fixture(scope="module")
def files(ec_chain, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ocsp")
    return {
        "issuer": write_pem(folder, "issuer.pem", "CERTIFICATE", ec_chain.intermediate.dump()),
        "root": write_pem(folder, "root.pem", "CERTIFICATE", ec_chain.root.dump()),
        "leaf": write_pem(folder, "leaf.pem", "CERTIFICATE", ec_chain.leaf.dump()),
        "folder": folder,
    }


def openssl_request(files, *args: str) -> bytes:
    out = files["folder"] / "req.der"
    result = openssl("ocsp", "-issuer", files["issuer"], *args, "-reqout", out)
    assert result.returncode == 0, result.stderr
    return out.read_bytes()


def test_parse_openssl_requests(ec_chain, files):
    query = parse_request(openssl_request(files, "-cert", files["leaf"]))
    assert len(query.cert_ids) == 1 and query.nonce is not None
    assert query.cert_ids[0]["serial_number"].native == ec_chain.leaf.serial_number
    assert issuer_matches(query.cert_ids[0], ec_chain.intermediate)
    assert not issuer_matches(query.cert_ids[0], ec_chain.root)

    several = parse_request(openssl_request(files, "-no_nonce", "-sha256", "-cert", files["leaf"], "-serial", "0x1234"))
    assert several.nonce is None and [c["serial_number"].native for c in several.cert_ids] == [ec_chain.leaf.serial_number, 0x1234]
    assert all(c["hash_algorithm"]["algorithm"].native == "sha256" for c in several.cert_ids)
    assert all(issuer_matches(c, ec_chain.intermediate) for c in several.cert_ids)


def cert_id_for(chain, serial: int, algorithm: str = "sha1") -> ocsp.CertId:
    return ocsp.CertId({
        "hash_algorithm": {"algorithm": algorithm},
        "issuer_name_hash": hashlib.new(algorithm, chain.intermediate.subject.dump()).digest(),
        "issuer_key_hash": hashlib.new(algorithm, chain.intermediate.public_key["public_key"].contents[1:]).digest(),
        "serial_number": serial,
    })


def request_der(cert_ids, nonce: bytes | None = None, critical_extension: bool = False) -> bytes:
    tbs: dict = {"request_list": [{"req_cert": cert_id} for cert_id in cert_ids]}
    extensions = []
    if nonce is not None:
        extensions.append({"extn_id": "nonce", "critical": False, "extn_value": core.OctetString(nonce)})
    if critical_extension:
        extensions.append({"extn_id": "1.2.3.4.5", "critical": True, "extn_value": core.ParsableOctetString(core.Null().dump())})
    if extensions:
        tbs["request_extensions"] = extensions
    return ocsp.OCSPRequest({"tbs_request": tbs}).dump()


def test_md5_cert_ids_match_nothing(ec_chain):
    assert issuer_matches(cert_id_for(ec_chain, 5, "sha256"), ec_chain.intermediate)
    assert not issuer_matches(cert_id_for(ec_chain, 5, "md5"), ec_chain.intermediate)


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda c: b"", "not a DER OCSP request"),
        (lambda c: b"\x30\x03\x02\x01\x01", "not a DER OCSP request"),
        (lambda c: b"garbage" * 10, "not a DER OCSP request"),
        (lambda c: request_der([cert_id_for(c, 5)]) + b"\x00", "not a DER OCSP request"),
        (lambda c: request_der([]), "lists no certificates"),
        (lambda c: request_der([cert_id_for(c, 5)], nonce=b""), "nonce must be 1 to 32"),
        (lambda c: request_der([cert_id_for(c, 5)], nonce=b"n" * 33), "nonce must be 1 to 32"),
        (lambda c: request_der([cert_id_for(c, 5)], critical_extension=True), "unsupported critical"),
        (lambda c: request_der([cert_id_for(c, i) for i in range(1, MAX_REQUESTS_PER_QUERY + 2)]), "at most"),
    ],
)
def test_malformed_requests(ec_chain, make, message):
    with pytest.raises(OcspRequestError, match=message):
        parse_request(make(ec_chain))


def test_nonce_of_32_octets_is_fine(ec_chain):
    assert parse_request(request_der([cert_id_for(ec_chain, 5)], nonce=b"n" * 32)).nonce is not None


def test_decode_get_request():
    der = bytes(range(256)) * 2
    plain = base64.b64encode(der).decode()
    assert "/" in plain and "+" in plain
    assert decode_get_request(plain) == der
    assert decode_get_request(urllib.parse.quote(plain, safe="")) == der  # encoded once more than needed
    assert decode_get_request(base64.urlsafe_b64encode(der).decode().rstrip("=")) == der
    for bad in ("", "%%%", "abc$", "ab=c=", "é"):
        with pytest.raises(OcspRequestError):
            decode_get_request(bad)


def test_response_parsed_by_pyca(ec_chain):
    revoked_at = NOW - timedelta(hours=2)
    answers = [
        SingleAnswer(cert_id_for(ec_chain, ec_chain.leaf.serial_number), "good"),
        SingleAnswer(cert_id_for(ec_chain, 0x77, "sha256"), "revoked", revoked_at, "keyCompromise"),
        SingleAnswer(cert_id_for(ec_chain, 0x78), "revoked", revoked_at, "unspecified"),
        SingleAnswer(cert_id_for(ec_chain, 0x79), "unknown"),
    ]
    nonce_request = parse_request(request_der([cert_id_for(ec_chain, 1)], nonce=b"0123456789abcdef"))
    der = build_response(
        answers, responder_certificate=ec_chain.intermediate, signer=ec_chain.intermediate_signer,
        produced_at=NOW, this_update=NOW, next_update=NOW + timedelta(hours=24), nonce=nonce_request.nonce,
    )
    response = cocsp.load_der_ocsp_response(der)
    assert response.response_status == cocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.responder_key_hash == ec_chain.intermediate.key_identifier
    assert response.responder_name is None
    cert = cx509.load_der_x509_certificate(ec_chain.intermediate.dump())
    cert.public_key().verify(response.signature, response.tbs_response_bytes,
                             ec.ECDSA(response.signature_hash_algorithm))
    assert [c.serial_number for c in response.certificates] == [ec_chain.intermediate.serial_number]
    singles = list(response.responses)
    assert [s.certificate_status for s in singles] == [
        cocsp.OCSPCertStatus.GOOD, cocsp.OCSPCertStatus.REVOKED, cocsp.OCSPCertStatus.REVOKED, cocsp.OCSPCertStatus.UNKNOWN]
    assert singles[1].revocation_time_utc == revoked_at and singles[1].revocation_reason == cx509.ReasonFlags.key_compromise
    assert singles[2].revocation_reason is None
    assert singles[1].hash_algorithm.name == "sha256" and singles[0].hash_algorithm.name == "sha1"
    assert all(s.next_update_utc == NOW + timedelta(hours=24) for s in singles)
    nonce = response.extensions.get_extension_for_class(cx509.OCSPNonce).value.nonce
    assert nonce == b"0123456789abcdef"


@pytest.mark.parametrize("status", ["malformed_request", "unauthorized", "try_later", "internal_error"])
def test_error_responses(status):
    parsed = ocsp.OCSPResponse.load(error_response(status))
    assert parsed["response_status"].native == status and parsed["response_bytes"].native is None
