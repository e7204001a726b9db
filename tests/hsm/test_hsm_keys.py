"""Key generation, public keys, signatures and key attributes on a real SoftHSM token."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

import pytest
from asn1crypto.algos import DSASignature
from asn1crypto.keys import PublicKeyInfo
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key

from scaivault_pki.hsm import (
    SIGNATURE_ALGORITHMS,
    GeneratedKey,
    HsmKeyNotFound,
    Signer,
    Token,
)

from tests.hsm.conftest import objects_by_id, run_pkcs11_tool

if TYPE_CHECKING:
    from conftest import SoftHsmSetup

_HASHES = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}
# Every algorithm of the table, with every key it applies to.
SIGNING_CASES = [
    ("sha256_rsa", "rsa2048"),
    ("sha384_rsa", "rsa3072"),
    ("sha512_rsa", "rsa4096"),
    ("sha256_rsa", "rsa4096"),
    ("sha256_ecdsa", "ec256"),
    ("sha384_ecdsa", "ec256"),
    ("sha512_ecdsa", "ec256"),  # digest longer than the curve order: truncated
    ("sha256_ecdsa", "ec384"),
    ("sha384_ecdsa", "ec384"),
    ("sha512_ecdsa", "ec384"),
]


def verify(public_key_info: PublicKeyInfo, algorithm: str, signature: bytes, data: bytes) -> None:
    """Verify with pyca/cryptography; raises InvalidSignature on mismatch."""
    public_key = load_der_public_key(public_key_info.dump())
    digest = _HASHES[algorithm.split("_")[0]]
    if isinstance(public_key, rsa.RSAPublicKey):
        public_key.verify(signature, data, padding.PKCS1v15(), digest)
    else:
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        public_key.verify(signature, data, ec.ECDSA(digest))


def test_table_covers_all_cases() -> None:
    assert {alg for alg, _ in SIGNING_CASES} == set(SIGNATURE_ALGORITHMS)


@pytest.mark.parametrize(
    ("name", "key_type", "size", "curve"),
    [
        ("rsa2048", "rsa", 2048, None),
        ("rsa3072", "rsa", 3072, None),
        ("rsa4096", "rsa", 4096, None),
        ("ec256", "ec", 256, "secp256r1"),
        ("ec384", "ec", 384, "secp384r1"),
    ],
)
def test_generated_key(
    token: Token, keys: dict[str, GeneratedKey], name: str, key_type: str, size: int, curve: str | None
) -> None:
    key = keys[name]
    assert re.fullmatch(r"[0-9a-f]{32}", key.key_id)
    assert (key.key_type, key.key_size) == (key_type, size)
    info = key.public_key_info
    assert info.algorithm == key_type
    assert info.bit_size == size
    if curve is not None:
        assert info.curve == ("named", curve)
    else:
        assert info["public_key"].parsed["public_exponent"].native == 65537
        assert info["algorithm"]["parameters"].dump() == b"\x05\x00"  # NULL, RFC 3279
    # The public key read back later is the same, and pyca accepts it.
    assert token.public_key_info(key.key_id).dump() == info.dump()
    assert token.public_key_info(key.key_id.upper()).dump() == info.dump()
    public_key = load_der_public_key(info.dump())
    assert isinstance(public_key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey))
    assert public_key.key_size == size


def test_key_ids_are_unique(keys: dict[str, GeneratedKey]) -> None:
    assert len({key.key_id for key in keys.values()}) == len(keys)


def test_generated_key_is_frozen(keys: dict[str, GeneratedKey]) -> None:
    with pytest.raises(AttributeError):
        keys["ec256"].key_id = "00"  # type: ignore[misc]


@pytest.mark.parametrize(("key_type", "size"), [("rsa", 1024), ("rsa", 2047), ("ec", 521), ("dsa", 2048), ("ec", "256")])
def test_generate_rejects_unsupported(token: Token, key_type: str, size: int) -> None:
    with pytest.raises(ValueError):
        token.generate_key_pair(key_type, size, "bad")


@pytest.mark.parametrize(("algorithm", "key_name"), SIGNING_CASES)
def test_signature_verifies(
    token: Token, keys: dict[str, GeneratedKey], algorithm: str, key_name: str
) -> None:
    key = keys[key_name]
    signer = token.signer(key.key_id, algorithm)
    assert isinstance(signer, Signer)
    assert (signer.algorithm, signer.key_id) == (algorithm, key.key_id)
    assert signer.public_key_info.dump() == key.public_key_info.dump()

    data = b"tbsCertificate stand-in " + os.urandom(1000)
    signature = signer.sign(data)
    verify(key.public_key_info, algorithm, signature, data)

    if key.key_type == "ec":
        # DER Ecdsa-Sig-Value, not raw r||s.
        assert DSASignature.load(signature).dump() == signature
    else:
        assert len(signature) == key.key_size // 8


def test_algorithm_identifier(token: Token, keys: dict[str, GeneratedKey]) -> None:
    rsa_id = token.signer(keys["rsa2048"].key_id, "sha256_rsa").algorithm_identifier
    assert rsa_id["algorithm"].dotted == "1.2.840.113549.1.1.11"
    assert rsa_id["parameters"].dump() == b"\x05\x00"
    ec_id = token.signer(keys["ec256"].key_id, "sha256_ecdsa").algorithm_identifier
    assert ec_id.dump() == bytes.fromhex("300a06082a8648ce3d040302")  # no parameters


def test_signer_is_cached(token: Token, keys: dict[str, GeneratedKey]) -> None:
    key_id = keys["ec384"].key_id
    assert token.signer(key_id, "sha384_ecdsa") is token.signer(key_id, "sha384_ecdsa")
    assert token.signer(key_id, "sha384_ecdsa") is not token.signer(key_id, "sha256_ecdsa")


@pytest.mark.parametrize("algorithm", ["sha1_rsa", "sha256_rsa_pss", "ed25519", "", "SHA256_RSA"])
def test_unknown_algorithm(token: Token, keys: dict[str, GeneratedKey], algorithm: str) -> None:
    with pytest.raises(ValueError, match="unsupported signature algorithm"):
        token.signer(keys["rsa2048"].key_id, algorithm)


@pytest.mark.parametrize(("algorithm", "key_name"), [("sha256_rsa", "ec256"), ("sha256_ecdsa", "rsa2048")])
def test_algorithm_key_type_mismatch(
    token: Token, keys: dict[str, GeneratedKey], algorithm: str, key_name: str
) -> None:
    with pytest.raises(ValueError, match="needs an"):
        token.signer(keys[key_name].key_id, algorithm)


def test_unknown_key(token: Token) -> None:
    with pytest.raises(HsmKeyNotFound, match="no private key with id"):
        token.signer("00" * 16, "sha256_ecdsa")
    with pytest.raises(HsmKeyNotFound, match="no public key with id"):
        token.public_key_info("00" * 16)
    with pytest.raises(HsmKeyNotFound):
        token.key_attributes("00" * 16)


@pytest.mark.parametrize("bad", ["xyz", "abc", "", "0x01"])
def test_malformed_key_id(token: Token, bad: str) -> None:
    with pytest.raises(ValueError):
        token.public_key_info(bad)


@pytest.mark.parametrize("key_name", ["rsa2048", "rsa3072", "rsa4096", "ec256", "ec384"])
def test_private_key_attributes(token: Token, keys: dict[str, GeneratedKey], key_name: str) -> None:
    attributes = token.key_attributes(keys[key_name].key_id)
    assert attributes == {
        "sensitive": True,
        "always_sensitive": True,
        "extractable": False,
        "never_extractable": True,
        "token": True,
        "private": True,
        "sign": True,
        "decrypt": False,
        "unwrap": False,
        "derive": False,
        "local": True,
        "modifiable": False,
    }


def test_attributes_seen_by_pkcs11_tool(
    softhsm: SoftHsmSetup, pkcs11_tool: str, keys: dict[str, GeneratedKey]
) -> None:
    """An independent PKCS#11 client agrees that the keys cannot leave the token."""
    listing = objects_by_id(run_pkcs11_tool(softhsm, pkcs11_tool, "--list-objects", "--type", "privkey"))
    for name, key in keys.items():
        [block] = listing[key.key_id]
        assert f"label:      test-{name}" in block
        assert re.search(r"Access:\s+sensitive, always sensitive, never extractable, local\s*$", block, re.MULTILINE), block
        usage = re.search(r"Usage:\s+(.*)$", block, re.MULTILINE)
        assert usage is not None and usage.group(1).strip() == "sign", block


def test_destroy_key_pair(token: Token) -> None:
    key = token.generate_key_pair("ec", 256, "doomed")
    signer = token.signer(key.key_id, "sha256_ecdsa")
    signer.sign(b"still here")

    token.destroy_key_pair(key.key_id)

    with pytest.raises(HsmKeyNotFound):
        token.signer(key.key_id, "sha256_ecdsa")
    with pytest.raises(HsmKeyNotFound):
        token.public_key_info(key.key_id)
    with pytest.raises(HsmKeyNotFound):
        signer.sign(b"gone")  # a Signer kept by the caller fails cleanly too
    token.destroy_key_pair(key.key_id)  # missing key is not an error


def test_destroy_through_another_token_object(softhsm: SoftHsmSetup, token: Token) -> None:
    key = token.generate_key_pair("ec", 384, "doomed-too")
    signer = token.signer(key.key_id, "sha384_ecdsa")
    signer.sign(b"cached handle")
    other = softhsm.token()
    other.destroy_key_pair(key.key_id)
    other.close()
    with pytest.raises(HsmKeyNotFound):
        signer.sign(b"gone")


def test_duplicate_key_id_is_refused(
    softhsm: SoftHsmSetup, pkcs11_tool: str, token: Token
) -> None:
    """Lookups must match exactly one object: a second key with the same id is refused."""

    def intruder(key_id: str) -> None:
        run_pkcs11_tool(softhsm, pkcs11_tool, "--keypairgen", "--key-type", "EC:prime256v1",
                     "--id", key_id, "--label", "intruder")

    # Two pairs made by another client with one id: the private lookup fails.
    twin_id = os.urandom(16).hex()
    try:
        intruder(twin_id)
        token.public_key_info(twin_id)  # exactly one so far
        intruder(twin_id)
        with pytest.raises(HsmKeyNotFound, match="2 private keys share id"):
            token.signer(twin_id, "sha256_ecdsa")
        with pytest.raises(HsmKeyNotFound, match="2 public keys share id"):
            token.public_key_info(twin_id)
    finally:
        token.destroy_key_pair(twin_id)  # removes every object with the id

    # Our own key, whose private handle is cached since generation: the
    # public lookup still notices the intruder.
    key = token.generate_key_pair("ec", 256, "twin")
    try:
        intruder(key.key_id)
        with pytest.raises(HsmKeyNotFound, match="2 public keys share id"):
            token.signer(key.key_id, "sha256_ecdsa")
    finally:
        token.destroy_key_pair(key.key_id)
    listing = objects_by_id(run_pkcs11_tool(softhsm, pkcs11_tool, "--list-objects"))
    assert twin_id not in listing and key.key_id not in listing
