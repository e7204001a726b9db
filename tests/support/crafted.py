"""Crafted certificate chains for path-validation tests, built with pyca ``cryptography``.

Our own builder refuses to make broken certificates, which is right for the daemon and wrong for tests that need
a CA:FALSE intermediate or an unknown critical extension. Every subject carries a per-``Crafter`` tag, so chains
of different tests never chain into each other in a shared tenant.
"""

from __future__ import annotations

import ipaddress
import subprocess
import tempfile
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from asn1crypto import algos
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

UNKNOWN_EXTENSION_OID = x509.ObjectIdentifier("1.3.6.1.4.1.55555.1.1")
_DEFAULT = object()


def new_key(kind: str = "ec256") -> PrivateKey:
    """A fresh key: ``ec256``, ``ec384`` or ``rsa2048``. Never shared: two CAs with one key would make
    key-identifier based path building see them as the same CA."""
    if kind == "ec256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ec384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind == "rsa2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError(kind)


@dataclass(frozen=True)
class Node:
    """A crafted certificate and its private key."""

    cert: x509.Certificate
    key: PrivateKey

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode("ascii")

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def key_pem(self) -> str:
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()).decode("ascii")

    @property
    def subject(self) -> str:
        return self.cert.subject.rfc4514_string()


def bundle(nodes: Iterable[Node]) -> str:
    """Concatenated PEM of ``nodes`` in the given order."""
    return "".join(node.pem for node in nodes)


def _hash_for(key: PrivateKey) -> hashes.HashAlgorithm:
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()


def _is_dns(text: str) -> bool:
    return "." in text and " " not in text


class Crafter:
    """Makes certificates for one family of chains; ``now`` anchors every default validity period."""

    def __init__(self, tag: str | None = None, now: datetime | None = None):
        self.tag = tag or uuid.uuid4().hex[:10]
        self.now = (now or datetime.now(UTC)).replace(microsecond=0)

    def name(self, common_name: str) -> x509.Name:
        return x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"Crafted {self.tag}"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ])

    def cert(
        self,
        common_name: str,
        *,
        issuer: Node | None = None,
        key: PrivateKey | str = "ec256",
        ca: bool | None = False,
        path_len: int | None = None,
        key_usage: Any = _DEFAULT,
        eku: Sequence[x509.ObjectIdentifier] | None | Any = _DEFAULT,
        dns: Sequence[str] | Any = _DEFAULT,
        ips: Sequence[str] = (),
        emails: Sequence[str] = (),
        uris: Sequence[str] = (),
        san: bool = True,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        permitted: Sequence[x509.GeneralName] | None = None,
        excluded: Sequence[x509.GeneralName] | None = None,
        extra: Sequence[tuple[x509.ExtensionType, bool]] = (),
        sign_with: PrivateKey | None = None,
        hash_algorithm: hashes.HashAlgorithm | None = None,
        rsa_pss: bool = False,
        corrupt_signature: bool = False,
        subject: x509.Name | None = None,
        policies: Sequence[str] | None = None,
        aki: bool = True,
    ) -> Node:
        """One certificate. ``ca=None`` leaves basicConstraints out; defaults follow our profiles: CA keyUsage
        keyCertSign+cRLSign+digitalSignature, leaf digitalSignature with serverAuth+clientAuth and the CN as SAN."""
        private = new_key(key) if isinstance(key, str) else key
        subject = subject or self.name(common_name)
        issuer_name = issuer.cert.subject if issuer is not None else subject
        signer = sign_with or (issuer.key if issuer is not None else private)
        is_ca = bool(ca)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer_name)
            .public_key(private.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or self.now - timedelta(hours=1))
            .not_valid_after(not_after or self.now + timedelta(days=3650 if is_ca else 90))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(private.public_key()), critical=False)
        )
        if aki:
            authority_key = issuer.key.public_key() if issuer is not None else private.public_key()
            builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(authority_key), critical=False)
        if ca is not None:
            builder = builder.add_extension(x509.BasicConstraints(ca=is_ca, path_length=path_len if is_ca else None), critical=True)
        if key_usage is _DEFAULT:
            key_usage = {"key_cert_sign", "crl_sign", "digital_signature"} if is_ca else (
                {"digital_signature", "key_encipherment"} if isinstance(private, rsa.RSAPrivateKey) else {"digital_signature"})
        if key_usage is not None:
            flags = {name: name in key_usage for name in (
                "digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
                "key_cert_sign", "crl_sign")}
            builder = builder.add_extension(x509.KeyUsage(**flags, encipher_only=False, decipher_only=False), critical=True)
        if eku is _DEFAULT:
            eku = None if is_ca else [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
        if eku is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
        if dns is _DEFAULT:
            dns = [common_name] if not is_ca and _is_dns(common_name) else []
        names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        names += [x509.RFC822Name(e) for e in emails]
        names += [x509.UniformResourceIdentifier(u) for u in uris]
        if san and names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        if permitted is not None or excluded is not None:
            builder = builder.add_extension(x509.NameConstraints(permitted_subtrees=permitted, excluded_subtrees=excluded), critical=True)
        if policies is not None:
            builder = builder.add_extension(x509.CertificatePolicies(
                [x509.PolicyInformation(x509.ObjectIdentifier(p), None) for p in policies]), critical=False)
        for extension, critical in extra:
            builder = builder.add_extension(extension, critical=critical)
        algorithm = hash_algorithm or _hash_for(signer)
        if isinstance(algorithm, hashes.SHA1):
            # pyca no longer signs certificates with SHA-1; sign with SHA-256 and redo the signature below.
            return Node(resign(builder.sign(signer, hashes.SHA256()), signer, sha1=True), private)
        if rsa_pss:
            cert = builder.sign(signer, algorithm, rsa_padding=padding.PSS(padding.MGF1(algorithm), padding.PSS.DIGEST_LENGTH))
        else:
            cert = builder.sign(signer, algorithm)
        if corrupt_signature:
            der = bytearray(cert.public_bytes(serialization.Encoding.DER))
            der[-1] ^= 0x01  # the last octet of the signature value
            cert = x509.load_der_x509_certificate(bytes(der))
        return Node(cert, private)

    def root(self, common_name: str = "Root CA", **kwargs: Any) -> Node:
        return self.cert(common_name, ca=kwargs.pop("ca", True), **kwargs)

    def intermediate(self, common_name: str, issuer: Node, **kwargs: Any) -> Node:
        return self.cert(common_name, issuer=issuer, ca=kwargs.pop("ca", True), **kwargs)

    def leaf(self, common_name: str, issuer: Node, **kwargs: Any) -> Node:
        return self.cert(common_name, issuer=issuer, ca=kwargs.pop("ca", False), **kwargs)

    def crl(
        self,
        issuer: Node,
        revoked: Sequence[tuple[Node, x509.ReasonFlags | None]] = (),
        *,
        this_update: datetime | None = None,
        next_update: datetime | None = None,
        number: int = 1,
        sign_with: PrivateKey | None = None,
    ) -> x509.CertificateRevocationList:
        """A CRL of ``issuer`` listing ``revoked`` certificates (with optional reason codes)."""
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(issuer.cert.subject)
            .last_update(this_update or self.now - timedelta(hours=1))
            .next_update(next_update or self.now + timedelta(days=1))
            .add_extension(x509.CRLNumber(number), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False)
        )
        for node, reason in revoked:
            entry = x509.RevokedCertificateBuilder().serial_number(node.cert.serial_number).revocation_date(self.now - timedelta(minutes=30))
            if reason is not None:
                entry = entry.add_extension(x509.CRLReason(reason), critical=False)
            builder = builder.add_revoked_certificate(entry.build())
        signer = sign_with or issuer.key
        return builder.sign(signer, _hash_for(signer))


def resign(cert: x509.Certificate, signer: PrivateKey, *, sha1: bool = False,
           extensions: Sequence[tuple[str, Any, bool]] = ()) -> x509.Certificate:
    """``cert`` changed where pyca's builder will not go, and signed again by ``signer``.

    ``sha1`` signs with SHA-1 (pyca refuses to); ``extensions`` appends (asn1crypto extension name or dotted
    OID, asn1crypto value, critical), e.g. ``policy_mappings``, which pyca cannot build.
    """
    parsed = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    digest: hashes.HashAlgorithm = hashes.SHA1() if sha1 else _hash_for(signer)
    kind = "rsa" if isinstance(signer, rsa.RSAPrivateKey) else "ecdsa"
    algorithm = algos.SignedDigestAlgorithm({"algorithm": f"{digest.name}_{kind}"})
    tbs = parsed["tbs_certificate"].copy()
    tbs["signature"] = algorithm
    if extensions:
        current = list(tbs["extensions"])
        current += [asn1_x509.Extension({"extn_id": oid, "critical": critical, "extn_value": value})
                    for oid, value, critical in extensions]
        tbs["extensions"] = asn1_x509.Extensions(current)
    data = tbs.dump(force=True)
    if isinstance(signer, rsa.RSAPrivateKey):
        signature = signer.sign(data, padding.PKCS1v15(), digest)
    else:
        signature = signer.sign(data, ec.ECDSA(digest))
    resigned = asn1_x509.Certificate({"tbs_certificate": tbs, "signature_algorithm": algorithm, "signature_value": signature})
    return x509.load_der_x509_certificate(resigned.dump())


def crl_pem(crl: x509.CertificateRevocationList) -> str:
    return crl.public_bytes(serialization.Encoding.PEM).decode("ascii")


def openssl_verdict(
    anchors: Sequence[Node],
    untrusted: Sequence[Node],
    target: Node,
    *,
    at: datetime | None = None,
    hostname: str | None = None,
    crls: Sequence[x509.CertificateRevocationList] = (),
    strict: bool = False,
    partial_chain: bool = False,
) -> tuple[bool, str]:
    """``openssl verify`` as an independent judge: (accepted, output).

    With a ``hostname`` it checks the TLS server purpose and the name (``-verify_hostname``, or ``-verify_ip``
    for an IP literal); with CRLs it checks every certificate's revocation (``-crl_check_all``).
    """
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        (folder / "ca.pem").write_text(bundle(anchors))
        (folder / "leaf.pem").write_text(target.pem)
        command = ["openssl", "verify", "-CAfile", str(folder / "ca.pem")]
        if untrusted:
            (folder / "untrusted.pem").write_text(bundle(untrusted))
            command += ["-untrusted", str(folder / "untrusted.pem")]
        if at is not None:
            command += ["-attime", str(int(at.timestamp()))]
        if hostname is not None:
            try:
                ipaddress.ip_address(hostname)
                command += ["-verify_ip", hostname]
            except ValueError:
                command += ["-verify_hostname", hostname]
            command += ["-purpose", "sslserver"]
        if crls:
            (folder / "crls.pem").write_text("".join(crl_pem(c) for c in crls))
            command += ["-CRLfile", str(folder / "crls.pem"), "-crl_check_all"]
        if strict:
            command.append("-x509_strict")
        if partial_chain:
            command.append("-partial_chain")
        command.append(str(folder / "leaf.pem"))
        process = subprocess.run(command, capture_output=True, text=True, timeout=60)
    output = (process.stdout + process.stderr).strip()
    return process.returncode == 0 and output.endswith("OK"), output
