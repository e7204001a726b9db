"""Checking CRLs and OCSP answers with independent tools: openssl, pkilint and pyca."""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from asn1crypto import core, crl, ocsp, pem, x509

from tests.support.lint import pkilint_errors


def as_pem(document: bytes | str, label: str = "CERTIFICATE") -> bytes:
    data = document.encode() if isinstance(document, str) else document
    return data if pem.detect(data) else pem.armor(label, data)


def as_der(document: bytes | str) -> bytes:
    data = document.encode() if isinstance(document, str) else document
    return pem.unarmor(data)[2] if pem.detect(data) else data


def crl_entries(der: bytes) -> dict[int, str]:
    """serial -> asn1crypto reason name (``unspecified`` when the entry has no reasonCode)."""
    listed = crl.CertificateList.load(as_der(der))["tbs_cert_list"]["revoked_certificates"]
    return {
        entry["user_certificate"].native: entry.crl_reason_value.native if entry.crl_reason_value else "unspecified"
        for entry in listed or []
    }


def crl_number(der: bytes) -> int:
    return crl.CertificateList.load(as_der(der)).crl_number_value.native


def check_crl(der: bytes, issuer_pem: bytes | str) -> None:
    """`openssl crl -verify` against the issuing CA and pkilint's RFC 5280 CRL lint both accept the CRL."""
    with tempfile.TemporaryDirectory() as folder:
        crl_file = Path(folder, "crl.pem")
        crl_file.write_bytes(as_pem(der, "X509 CRL"))
        ca_file = Path(folder, "ca.pem")
        ca_file.write_bytes(as_pem(issuer_pem))
        result = subprocess.run(
            ["openssl", "crl", "-in", str(crl_file), "-noout", "-verify", "-CAfile", str(ca_file)],
            capture_output=True, text=True, timeout=60,
        )
    assert result.returncode == 0 and "verify OK" in result.stderr, result.stderr
    errors = pkilint_errors(as_der(der), "crl")
    assert errors == [], errors


def openssl_verify_with_crls(
    root_pem: bytes | str,
    untrusted: Sequence[bytes | str],
    leaf_pem: bytes | str,
    crls: Sequence[bytes],
    *,
    check_all: bool = False,
    use_deltas: bool = False,
) -> tuple[bool, str]:
    """`openssl verify -crl_check` (or `-crl_check_all`) with the CRLs given; returns (ok, output)."""
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        (folder / "root.pem").write_bytes(as_pem(root_pem))
        (folder / "leaf.pem").write_bytes(as_pem(leaf_pem))
        command = ["openssl", "verify", "-x509_strict", "-CAfile", str(folder / "root.pem"),
                   "-crl_check_all" if check_all else "-crl_check"]
        if use_deltas:
            command.append("-use_deltas")
        if untrusted:
            (folder / "untrusted.pem").write_bytes(b"".join(as_pem(c) for c in untrusted))
            command += ["-untrusted", str(folder / "untrusted.pem")]
        for i, document in enumerate(crls):
            (folder / f"crl{i}.pem").write_bytes(as_pem(document, "X509 CRL"))
            command += ["-CRLfile", str(folder / f"crl{i}.pem")]
        command.append(str(folder / "leaf.pem"))
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    output = (result.stdout + result.stderr).strip()
    return result.returncode == 0 and output.endswith("OK"), output


def cert_id(issuer_pem: bytes | str, serial: int, algorithm: str = "sha1") -> ocsp.CertId:
    """An OCSP CertID for ``serial`` under the issuer, computed here (independently of the daemon)."""
    issuer = x509.Certificate.load(as_der(issuer_pem))
    return ocsp.CertId({
        "hash_algorithm": {"algorithm": algorithm},
        "issuer_name_hash": hashlib.new(algorithm, issuer.subject.dump()).digest(),
        "issuer_key_hash": hashlib.new(algorithm, issuer.public_key["public_key"].contents[1:]).digest(),
        "serial_number": serial,
    })


def ocsp_request(cert_ids: Sequence[ocsp.CertId], nonce: bytes | None = None) -> bytes:
    tbs: dict = {"request_list": [{"req_cert": c} for c in cert_ids]}
    if nonce is not None:
        tbs["request_extensions"] = [{"extn_id": "nonce", "critical": False, "extn_value": core.OctetString(nonce)}]
    return ocsp.OCSPRequest({"tbs_request": tbs}).dump()
