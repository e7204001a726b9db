"""Envelope encryption of data at rest under a key-encryption key (KEK) on the token.

Stored leaf private keys, secrets and ACME account keys are sealed with
:meth:`Envelope.seal` before they reach the database and opened with
:meth:`Envelope.open`.

Why an envelope rather than encrypting everything on the token: each
seal/open makes exactly ONE call to the token (for a 32-byte data key),
whatever the size of the data, so the process-wide token lock is held
briefly; the bulk AES-GCM runs in software (pyca ``cryptography``) outside
the lock.  The KEK itself is generated on the token, sensitive and never
extractable: it never leaves the token, and without the token (and its PIN)
a database dump is useless.

Blob format, version 1 (all lengths big-endian)::

    offset      size  field
    0           1     version = 0x01
    1           1     n = length of the KEK's CKA_ID (1..255)
    2           n     KEK CKA_ID
    2+n         12    DEK nonce (AES-GCM IV used on the token)
    14+n        2     m = length of the wrapped DEK, always 48 in version 1
    16+n        m     wrapped DEK = AES-256-GCM(KEK, DEK, aad=context): 32 + 16-byte tag
    16+n+m      12    data nonce
    28+n+m      rest  AES-256-GCM(DEK, plaintext, aad=context): len(plaintext) + 16-byte tag

Overhead: 108 bytes with a 16-byte KEK id.  Every field is authenticated:
the KEK id by the wrapped DEK's tag (another key does not verify it), the
DEK nonce and wrapped DEK by that tag, the data nonce and ciphertext by the
data tag; the version and lengths are checked strictly.  ``context`` names
the record the blob belongs to (e.g. ``b"certificate:<id>"``) and is the AAD
of both layers, so a blob copied to another record does not open.

The blob names its KEK by id, not label: after the KEK is rotated (a new
label for :class:`Envelope` to seal with), old blobs keep opening as long as
the old KEK stays on the token.  Each DEK is fresh and random, and every
nonce is random, so sealing the same plaintext twice gives unrelated blobs.
"""

from __future__ import annotations

import secrets
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import EnvelopeError, HsmDecryptError, HsmKeyNotFound, HsmUnavailable
from .secret_keys import AES_KEY_BYTES, GCM_NONCE_BYTES, GCM_TAG_BYTES, require_bytes
from .token import Token

__all__ = ["ENVELOPE_VERSION", "KEK_LABEL", "Envelope", "EnvelopeError"]

#: Label of the daemon's key-encryption key on the token (created by ``scaivault-pki init``).
KEK_LABEL = "scaivault-kek"
#: Version byte of the blobs :meth:`Envelope.seal` writes.
ENVELOPE_VERSION = 1

_WRAPPED_DEK_BYTES = AES_KEY_BYTES + GCM_TAG_BYTES
_MAX_KEY_ID_BYTES = 255


def _check_context(context: object) -> bytes:
    context = require_bytes(context, "context")
    if not context:
        # An empty context would let a blob open in any record.
        raise ValueError("context must name the record the data belongs to, e.g. b'certificate:<id>'")
    return context


class _Reader:
    """Strict cursor over a blob: every short read is an EnvelopeError."""

    def __init__(self, blob: bytes) -> None:
        self._blob = blob
        self._offset = 0

    def take(self, size: int, what: str) -> bytes:
        end = self._offset + size
        if end > len(self._blob):
            raise EnvelopeError(f"sealed blob is truncated (in the {what})")
        chunk = self._blob[self._offset:end]
        self._offset = end
        return chunk

    def rest(self) -> bytes:
        chunk = self._blob[self._offset:]
        self._offset = len(self._blob)
        return chunk


class Envelope:
    """Seals and opens data at rest under the KEK labelled ``kek_label`` on ``token``.

    Construct anywhere (nothing touches the token until the first seal);
    thread-safe; share one per process.  The KEK must exist already
    (``scaivault-pki init`` creates it with :meth:`Token.ensure_aes_key`):
    a missing KEK raises :class:`HsmKeyNotFound`.
    """

    def __init__(self, token: Token, kek_label: str = KEK_LABEL) -> None:
        if not isinstance(kek_label, str) or not kek_label:
            raise ValueError("KEK label must be a non-empty string")
        self._token = token
        self._kek_label = kek_label
        self._kek_id: str | None = None

    @property
    def kek_label(self) -> str:
        """Label of the KEK new blobs are sealed under."""
        return self._kek_label

    def kek_id(self) -> str:
        """Hex CKA_ID of the KEK new blobs are sealed under (looked up once)."""
        kek_id = self._kek_id
        if kek_id is None:
            kek_id = self._kek_id = self._token.find_aes_key(self._kek_label)
        return kek_id

    def __repr__(self) -> str:
        return f"<Envelope kek_label={self._kek_label!r} token={self._token.label!r}>"

    def seal(self, plaintext: bytes, context: bytes) -> bytes:
        """Encrypt ``plaintext`` for the record named by ``context``; returns the blob.

        Raises HsmError subclasses if the token cannot encrypt (HsmKeyNotFound
        if the KEK is missing), TypeError/ValueError for bad arguments.
        """
        plaintext = require_bytes(plaintext, "plaintext")
        context = _check_context(context)
        kek_id = self.kek_id()
        kek_raw = bytes.fromhex(kek_id)
        if not 0 < len(kek_raw) <= _MAX_KEY_ID_BYTES:
            raise HsmKeyNotFound(
                f"KEK {self._kek_label!r} has a CKA_ID of {len(kek_raw)} bytes; blobs can name 1 to "
                f"{_MAX_KEY_ID_BYTES}"
            )

        dek = secrets.token_bytes(AES_KEY_BYTES)
        data_nonce = secrets.token_bytes(GCM_NONCE_BYTES)
        ciphertext = AESGCM(dek).encrypt(data_nonce, plaintext, context)
        try:
            dek_nonce, wrapped_dek = self._token.encrypt(kek_id, dek, context)
        except HsmKeyNotFound:
            self._kek_id = None  # maybe replaced since: look it up again next time
            raise
        if len(dek_nonce) != GCM_NONCE_BYTES or len(wrapped_dek) != _WRAPPED_DEK_BYTES:
            raise HsmUnavailable("the token returned a wrapped data key of unexpected size")
        return b"".join(
            (
                struct.pack(">BB", ENVELOPE_VERSION, len(kek_raw)),
                kek_raw,
                dek_nonce,
                struct.pack(">H", len(wrapped_dek)),
                wrapped_dek,
                data_nonce,
                ciphertext,
            )
        )

    def open(self, blob: bytes, context: bytes) -> bytes:
        """Decrypt a blob made by :meth:`seal` with the same ``context``.

        Raises EnvelopeError if the blob is malformed or truncated, or does not
        authenticate (tampered, wrong context, another KEK); HsmKeyNotFound if
        the KEK it names is not on the token (destroyed, another token, or a
        corrupted id); other HsmError subclasses if the token cannot decrypt.
        """
        blob = require_bytes(blob, "blob")
        context = _check_context(context)
        reader = _Reader(blob)
        version, id_length = struct.unpack(">BB", reader.take(2, "header"))
        if version != ENVELOPE_VERSION:
            raise EnvelopeError(f"sealed blob has unsupported version {version}")
        if id_length == 0:
            raise EnvelopeError("sealed blob names no KEK")
        kek_id = reader.take(id_length, "KEK id").hex()
        dek_nonce = reader.take(GCM_NONCE_BYTES, "data key nonce")
        (wrapped_length,) = struct.unpack(">H", reader.take(2, "wrapped data key length"))
        if wrapped_length != _WRAPPED_DEK_BYTES:
            raise EnvelopeError(
                f"sealed blob has a {wrapped_length}-byte wrapped data key, expected {_WRAPPED_DEK_BYTES}"
            )
        wrapped_dek = reader.take(wrapped_length, "wrapped data key")
        data_nonce = reader.take(GCM_NONCE_BYTES, "data nonce")
        ciphertext = reader.rest()
        if len(ciphertext) < GCM_TAG_BYTES:
            raise EnvelopeError("sealed blob is truncated (in the ciphertext)")

        try:
            dek = self._token.decrypt(kek_id, dek_nonce, wrapped_dek, context)
        except HsmDecryptError as exc:
            raise EnvelopeError(
                "sealed blob does not open: wrong context, tampered data, or sealed under another KEK"
            ) from exc
        if len(dek) != AES_KEY_BYTES:  # cannot happen after a verified tag of a blob we wrote
            raise EnvelopeError("sealed blob holds a data key of the wrong size")
        try:
            return AESGCM(dek).decrypt(data_nonce, ciphertext, context)
        except InvalidTag:
            raise EnvelopeError("sealed blob does not open: the data does not authenticate") from None
