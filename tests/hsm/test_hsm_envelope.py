"""AES key-encryption keys on a real SoftHSM token, AES-GCM on the token, and Envelope sealing."""

from __future__ import annotations

import os
import re
import struct
import subprocess
import threading
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from scaivault_pki.hsm import (
    KEK_LABEL,
    Envelope,
    EnvelopeError,
    HsmDecryptError,
    HsmError,
    HsmKeyNotFound,
    Token,
)
from tests.hsm.conftest import objects_by_id, run_pkcs11_tool

if TYPE_CHECKING:
    from conftest import SoftHsmSetup

OTHER_KEK_LABEL = "scaivault-kek-other"
CONTEXT = b"certificate:42"
# version, id length, 16-byte id, DEK nonce, wrapped length, 48-byte wrapped DEK, data nonce, tag
OVERHEAD = 1 + 1 + 16 + 12 + 2 + 48 + 12 + 16
KEK_ID_SPAN = range(1, 18)  # the id-length byte and the 16 id bytes

KEK_ATTRIBUTES = {
    "sensitive": True,
    "always_sensitive": True,
    "extractable": False,
    "never_extractable": True,
    "token": True,
    "private": True,
    "encrypt": True,
    "decrypt": True,
    "wrap": False,
    "unwrap": False,
    "sign": False,
    "verify": False,
    "derive": False,
    "local": True,
    "modifiable": False,
}


@pytest.fixture(scope="module")
def kek(token: Token) -> str:
    return token.ensure_aes_key(KEK_LABEL)


@pytest.fixture(scope="module")
def other_kek(token: Token) -> str:
    return token.ensure_aes_key(OTHER_KEK_LABEL)


@pytest.fixture(scope="module")
def envelope(token: Token, kek: str) -> Envelope:
    return Envelope(token)


def _unique_label(prefix: str) -> str:
    return f"{prefix}-{os.urandom(4).hex()}"


# ------------------------------------------------------------------ keys


def test_kek_attributes(token: Token, kek: str) -> None:
    assert re.fullmatch(r"[0-9a-f]{32}", kek)
    assert token.secret_key_attributes(kek) == KEK_ATTRIBUTES


def test_kek_attributes_seen_by_pkcs11_tool(
    softhsm: SoftHsmSetup, pkcs11_tool: str, kek: str
) -> None:
    """An independent PKCS#11 client agrees: AES-256, encrypt/decrypt only, never leaves the token."""
    listing = objects_by_id(run_pkcs11_tool(softhsm, pkcs11_tool, "--list-objects", "--type", "secrkey"))
    [block] = listing[kek]
    assert block.startswith("Secret Key Object; AES length 32"), block
    assert f"label:      {KEK_LABEL}\n" in block
    usage = re.search(r"Usage:\s+(.*)$", block, re.MULTILINE)
    assert usage is not None and usage.group(1).strip() == "encrypt, decrypt", block
    assert re.search(r"Access:\s+sensitive, always sensitive, never extractable, local\s*$", block, re.MULTILINE), block

    # CKA_PRIVATE: without logging in, the key is not even listed.
    env = dict(os.environ, SOFTHSM2_CONF=str(softhsm.conf))
    anonymous = subprocess.run(
        [pkcs11_tool, "--module", softhsm.module, "--token-label", softhsm.label, "--list-objects", "--type", "secrkey"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert anonymous.returncode == 0, anonymous.stderr
    assert kek not in anonymous.stdout


def test_ensure_aes_key_is_idempotent(softhsm: SoftHsmSetup, token: Token, kek: str) -> None:
    assert token.ensure_aes_key(KEK_LABEL) == kek
    assert token.ensure_aes_key(KEK_LABEL) == kek
    assert token.find_aes_key(KEK_LABEL) == kek
    other = softhsm.token()  # another Token object, no cached handles of its own
    try:
        assert other.find_aes_key(KEK_LABEL) == kek
    finally:
        other.close()


def test_find_never_creates(token: Token) -> None:
    label = _unique_label("never-made")
    for _ in range(2):
        with pytest.raises(HsmKeyNotFound, match=r"scaivault-pki init") as info:
            token.find_aes_key(label)
        assert label in str(info.value)


def test_bad_labels_and_ids(token: Token, kek: str) -> None:
    with pytest.raises(ValueError):
        token.ensure_aes_key("")
    with pytest.raises(ValueError):
        token.find_aes_key("")
    with pytest.raises(ValueError):
        token.encrypt("not hex", b"x", b"")
    with pytest.raises(TypeError):
        token.encrypt(kek, "text", b"")  # type: ignore[arg-type]
    with pytest.raises(HsmKeyNotFound, match="no AES key with id"):
        token.encrypt(os.urandom(16).hex(), b"x", b"")
    with pytest.raises(ValueError):
        Envelope(token, "")


def test_duplicate_label_is_refused(softhsm: SoftHsmSetup, pkcs11_tool: str, token: Token) -> None:
    label = _unique_label("twin-kek")
    key_id = token.ensure_aes_key(label)
    intruder = os.urandom(16).hex()
    run_pkcs11_tool(softhsm, pkcs11_tool, "--keygen", "--key-type", "AES:32", "--sensitive",
                    "--label", label, "--id", intruder)
    try:
        with pytest.raises(HsmKeyNotFound, match="2 secret keys share label"):
            token.find_aes_key(label)
        with pytest.raises(HsmKeyNotFound, match="2 secret keys share label"):
            token.ensure_aes_key(label)  # and does not add a third
    finally:
        run_pkcs11_tool(softhsm, pkcs11_tool, "--delete-object", "--type", "secrkey", "--id", intruder)
    assert token.find_aes_key(label) == key_id


@pytest.mark.parametrize(
    ("key_args", "problem"),
    [
        (("--key-type", "AES:16", "--sensitive"), "not an AES-256 key"),
        (("--key-type", "AES:32", "--extractable"), "not sensitive, extractable"),
        (("--key-type", "GENERIC:32", "--sensitive"), "not an AES-256 key"),
    ],
)
def test_unfit_key_under_the_label_is_refused(
    softhsm: SoftHsmSetup, pkcs11_tool: str, token: Token, key_args: tuple[str, ...], problem: str
) -> None:
    label = _unique_label("unfit")
    key_id = os.urandom(16).hex()
    run_pkcs11_tool(softhsm, pkcs11_tool, "--keygen", *key_args, "--label", label, "--id", key_id)
    try:
        with pytest.raises(HsmKeyNotFound, match=problem):
            token.find_aes_key(label)
        with pytest.raises(HsmKeyNotFound, match=problem):
            token.ensure_aes_key(label)  # refuses rather than adding a second key
        if "AES" in key_args[1]:
            with pytest.raises(HsmKeyNotFound, match=problem):
                token.encrypt(key_id, b"x", b"")  # by id too
    finally:
        run_pkcs11_tool(softhsm, pkcs11_tool, "--delete-object", "--type", "secrkey", "--id", key_id)


def test_key_destroyed_by_another_client(softhsm: SoftHsmSetup, pkcs11_tool: str, token: Token) -> None:
    key_id = token.ensure_aes_key(_unique_label("doomed-kek"))  # handle cached from here on
    token.encrypt(key_id, b"still here", b"")
    run_pkcs11_tool(softhsm, pkcs11_tool, "--delete-object", "--type", "secrkey", "--id", key_id)
    with pytest.raises(HsmKeyNotFound, match=f"no AES key with id {key_id}"):
        token.encrypt(key_id, b"gone", b"")
    token.ping()  # the session survived


# ---------------------------------------------------------- token AES-GCM


def test_token_gcm_round_trip(token: Token, kek: str) -> None:
    for plaintext, aad in [(b"", b""), (b"k" * 32, b"ctx"), (os.urandom(5000), b"")]:
        nonce, ciphertext = token.encrypt(kek, plaintext, aad)
        assert len(nonce) == 12 and len(ciphertext) == len(plaintext) + 16
        assert token.decrypt(kek, nonce, ciphertext, aad) == plaintext
    nonces = {token.encrypt(kek, b"same", b"")[0] for _ in range(20)}
    assert len(nonces) == 20


def test_token_gcm_failures_are_typed_and_keep_the_session(token: Token, kek: str, other_kek: str) -> None:
    nonce, ciphertext = token.encrypt(kek, b"k" * 32, b"ctx")
    login = token._login
    flipped = ciphertext[:-1] + bytes([ciphertext[-1] ^ 1])
    bad_cases = [
        (kek, nonce, ciphertext, b"cty"),  # wrong AAD
        (kek, nonce, ciphertext, b""),
        (kek, nonce, flipped, b"ctx"),  # tampered tag
        (kek, bytes(12), ciphertext, b"ctx"),  # wrong nonce
        (kek, nonce, ciphertext[:15], b"ctx"),  # shorter than a tag
        (kek, nonce, ciphertext[:16], b"ctx"),  # tag only
        (other_kek, nonce, ciphertext, b"ctx"),  # another key
    ]
    for key_id, n, c, aad in bad_cases:
        with pytest.raises(HsmDecryptError, match="authentication failed"):
            token.decrypt(key_id, n, c, aad)
    # SoftHSM reports a bad tag as CKR_GENERAL_ERROR; that must not have been
    # taken for a lost session.
    assert token._login is login
    assert token.decrypt(kek, nonce, ciphertext, b"ctx") == b"k" * 32
    with pytest.raises(ValueError, match="12 bytes"):
        token.decrypt(kek, nonce[:8], ciphertext, b"ctx")


# --------------------------------------------------------------- envelope


@pytest.mark.parametrize("size", [0, 1, 100 * 1024])
def test_seal_open_round_trip(envelope: Envelope, kek: str, size: int) -> None:
    plaintext = os.urandom(size)
    blob = envelope.seal(plaintext, CONTEXT)
    assert len(blob) == OVERHEAD + size
    assert envelope.open(blob, CONTEXT) == plaintext


def test_blob_layout_matches_the_documented_format(envelope: Envelope, kek: str) -> None:
    blob = envelope.seal(b"hello", CONTEXT)
    version, id_length = struct.unpack(">BB", blob[:2])
    assert (version, id_length) == (1, 16)
    assert blob[2:18].hex() == kek == envelope.kek_id()
    (wrapped_length,) = struct.unpack(">H", blob[30:32])
    assert wrapped_length == 48
    assert len(blob[32 + 48 + 12:]) == 5 + 16


def _hand_sealed(token: Token, kek: str, plaintext: bytes, dek_aad: bytes, data_aad: bytes) -> bytes:
    """A blob built here from the documented format, independently of Envelope.seal."""
    dek = os.urandom(32)
    dek_nonce, wrapped = token.encrypt(kek, dek, dek_aad)
    data_nonce = os.urandom(12)
    kek_raw = bytes.fromhex(kek)
    return b"".join([
        bytes([1, len(kek_raw)]), kek_raw, dek_nonce, struct.pack(">H", len(wrapped)), wrapped,
        data_nonce, AESGCM(dek).encrypt(data_nonce, plaintext, data_aad),
    ])


def test_both_layers_bind_the_context(token: Token, envelope: Envelope, kek: str) -> None:
    assert envelope.open(_hand_sealed(token, kek, b"by hand", CONTEXT, CONTEXT), CONTEXT) == b"by hand"
    # Right context on the DEK, another on the data: the software layer refuses.
    with pytest.raises(EnvelopeError, match="data does not authenticate"):
        envelope.open(_hand_sealed(token, kek, b"by hand", CONTEXT, b"certificate:1"), CONTEXT)
    with pytest.raises(EnvelopeError, match="does not open"):
        envelope.open(_hand_sealed(token, kek, b"by hand", b"certificate:1", CONTEXT), CONTEXT)


def test_ciphertext_differs_every_time(envelope: Envelope) -> None:
    blobs = [envelope.seal(b"the same secret", CONTEXT) for _ in range(5)]
    assert len(set(blobs)) == 5
    # Nonces, wrapped DEKs and ciphertexts all differ; only the header repeats.
    for start, end in [(18, 30), (32, 80), (80, 92), (92, None)]:
        assert len({blob[start:end] for blob in blobs}) == 5


def test_plaintext_does_not_appear_in_blob(envelope: Envelope) -> None:
    plaintext = b"-----BEGIN PRIVATE KEY-----\n" + b"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg" * 20
    blob = envelope.seal(plaintext, CONTEXT)
    for start in range(0, len(plaintext) - 8, 8):
        assert plaintext[start:start + 8] not in blob
    assert CONTEXT not in blob  # the AAD is not stored either


def test_wrong_context_fails(envelope: Envelope) -> None:
    blob = envelope.seal(b"secret", CONTEXT)
    for context in (b"certificate:43", b"certificate:4", CONTEXT + b"\x00", b"acme-account:42"):
        with pytest.raises(EnvelopeError, match="does not open") as info:
            envelope.open(blob, context)
        assert isinstance(info.value.__cause__, HsmDecryptError)
    with pytest.raises(ValueError, match="context"):
        envelope.open(blob, b"")
    with pytest.raises(ValueError, match="context"):
        envelope.seal(b"secret", b"")
    with pytest.raises(TypeError):
        envelope.seal(b"secret", "certificate:42")  # type: ignore[arg-type]
    assert envelope.open(blob, CONTEXT) == b"secret"


def test_every_byte_flip_fails(envelope: Envelope) -> None:
    blob = envelope.seal(b"tiny", CONTEXT)
    for position in range(len(blob)):
        for bit in range(8):
            tampered = bytearray(blob)
            tampered[position] ^= 1 << bit
            try:
                envelope.open(bytes(tampered), CONTEXT)
            except EnvelopeError:
                pass
            except HsmKeyNotFound:
                # A changed KEK id names no key on the token.
                assert position in KEK_ID_SPAN, (position, bit)
            else:
                pytest.fail(f"blob with bit {bit} of byte {position} flipped opened")
    assert envelope.open(blob, CONTEXT) == b"tiny"


def test_truncated_and_garbage_blobs_fail(envelope: Envelope) -> None:
    blob = envelope.seal(b"tiny", CONTEXT)
    for length in range(len(blob)):
        with pytest.raises(EnvelopeError):
            envelope.open(blob[:length], CONTEXT)
    with pytest.raises(EnvelopeError):
        envelope.open(blob + b"\x00", CONTEXT)
    with pytest.raises(EnvelopeError, match="unsupported version 2"):
        envelope.open(b"\x02" + blob[1:], CONTEXT)
    with pytest.raises(EnvelopeError, match="names no KEK"):
        envelope.open(b"\x01\x00" + blob[2:], CONTEXT)
    for garbage in (b"", b"\x01", os.urandom(200), b"\x00" * 200):
        with pytest.raises((EnvelopeError, HsmKeyNotFound)):
            envelope.open(garbage, CONTEXT)
    with pytest.raises(TypeError):
        envelope.open("blob", CONTEXT)  # type: ignore[arg-type]


def test_another_kek_cannot_open(token: Token, envelope: Envelope, kek: str, other_kek: str) -> None:
    blob = envelope.seal(b"secret", CONTEXT)
    # Point the blob at the other KEK (same id length): its tag does not verify.
    swapped = blob[:2] + bytes.fromhex(other_kek) + blob[18:]
    with pytest.raises(EnvelopeError, match="does not open") as info:
        envelope.open(swapped, CONTEXT)
    assert isinstance(info.value.__cause__, HsmDecryptError)

    # Blobs name their KEK by id, so an Envelope sealing under another KEK
    # (after a rotation) still opens them, and seals under its own.
    rotated = Envelope(token, OTHER_KEK_LABEL)
    assert rotated.open(blob, CONTEXT) == b"secret"
    new_blob = rotated.seal(b"new", CONTEXT)
    assert new_blob[2:18].hex() == other_kek
    assert envelope.open(new_blob, CONTEXT) == b"new"


def test_missing_kek(token: Token, envelope: Envelope) -> None:
    label = _unique_label("missing-kek")
    orphan = Envelope(token, label)  # constructing looks nothing up
    with pytest.raises(HsmKeyNotFound, match=r"scaivault-pki init") as info:
        orphan.seal(b"secret", CONTEXT)
    assert isinstance(info.value, HsmError) and label in str(info.value)
    with pytest.raises(HsmKeyNotFound):
        orphan.kek_id()
    with pytest.raises(HsmKeyNotFound):
        token.find_aes_key(label)  # still not created


def test_concurrent_seal_open(token: Token, envelope: Envelope) -> None:
    """Four threads sealing and opening at once share the one session safely."""
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def worker(number: int) -> None:
        try:
            barrier.wait(timeout=30)
            for round_ in range(25):
                context = f"certificate:{number}-{round_}".encode()
                plaintext = os.urandom(64 + number * 100 + round_)
                blob = envelope.seal(plaintext, context)
                assert envelope.open(blob, context) == plaintext
                with pytest.raises(EnvelopeError):
                    envelope.open(blob, b"certificate:elsewhere")
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    token.ping()
