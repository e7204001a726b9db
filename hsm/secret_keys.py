"""AES-256 secret keys on the token (key-encryption keys) and AES-GCM with them.

The PKCS#11 half of :meth:`Token.ensure_aes_key`, :meth:`Token.find_aes_key`,
:meth:`Token.encrypt`, :meth:`Token.decrypt` and
:meth:`Token.secret_key_attributes`.  Kept out of ``token.py`` so that the
session/login machinery stays in one place and the key kinds in others.

Every function here takes the shared ``_Login`` and must be called inside
``Token._session(...)``: that holds the process-wide lock, and translates
PKCS#11 errors (dropping the session when it is lost).  Functions raise
:class:`HsmError` subclasses themselves only where the meaning is known
here (missing key, failed authentication).

AES-GCM runs inside the token (``CKM_AES_GCM``, 96-bit IV, 128-bit tag,
one-shot ``C_Encrypt`` / ``C_Decrypt``); the IV is generated in software by
the caller with :mod:`secrets`, never by the token.  Random 96-bit IVs are
safe for up to 2**32 encryptions per key (NIST SP 800-38D 8.3); that is one
per :meth:`Envelope.seal`, so rotate the KEK long before.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as p11e
from pkcs11.mechanisms import GCMParams

from .errors import HsmDecryptError, HsmKeyNotFound, HsmUnavailable

if TYPE_CHECKING:
    from .token import _Login

__all__ = [
    "AES_KEY_BYTES",
    "GCM_NONCE_BYTES",
    "GCM_TAG_BYTES",
    "decrypt",
    "encrypt",
    "ensure_aes_key",
    "find_aes_key",
    "require_bytes",
    "secret_key_attributes",
]

log = logging.getLogger(__name__)

AES_KEY_BYTES = 32  # AES-256
GCM_NONCE_BYTES = 12
GCM_TAG_BYTES = 16
_KEY_ID_BYTES = 16

_T = TypeVar("_T")

# What a token answers when the GCM tag does not verify.  PKCS#11 2.40 says
# CKR_ENCRYPTED_DATA_INVALID; 3.0 added CKR_AEAD_DECRYPT_FAILED (0x35), which
# python-pkcs11 0.10 does not know and reports as a bare PKCS11Error.
# SoftHSM 2.6 answers CKR_GENERAL_ERROR instead: see _decrypt_once.
_AUTH_FAILED: tuple[type[Exception], ...] = (p11e.EncryptedDataInvalid, p11e.EncryptedDataLenRange)
_UNMAPPED_AEAD_DECRYPT_FAILED = "Unmapped error code 0x35"

_ATTRIBUTE_NAMES: dict[str, Attribute] = {
    "sensitive": Attribute.SENSITIVE,
    "always_sensitive": Attribute.ALWAYS_SENSITIVE,
    "extractable": Attribute.EXTRACTABLE,
    "never_extractable": Attribute.NEVER_EXTRACTABLE,
    "token": Attribute.TOKEN,
    "private": Attribute.PRIVATE,
    "encrypt": Attribute.ENCRYPT,
    "decrypt": Attribute.DECRYPT,
    "wrap": Attribute.WRAP,
    "unwrap": Attribute.UNWRAP,
    "sign": Attribute.SIGN,
    "verify": Attribute.VERIFY,
    "derive": Attribute.DERIVE,
    "local": Attribute.LOCAL,
    "modifiable": Attribute.MODIFIABLE,
}


def require_bytes(value: object, name: str) -> bytes:
    """``bytes(value)`` for bytes-like values; TypeError for anything else (str, None...)."""
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"{name} must be bytes, not {type(value).__name__}")
    return bytes(value)


def _token_label(login: _Login) -> str:
    return login.key[1]


def _init_hint(label: str) -> str:
    return f"run `scaivault-pki init` to create the key-encryption key {label!r}"


# ------------------------------------------------------------------ lookup


def _check_usable(login: _Login, key: Any, what: str) -> None:
    """Refuse a secret key that is not AES-256 or could leave the token."""
    values = key.get_attributes(
        [Attribute.KEY_TYPE, Attribute.VALUE_LEN, Attribute.SENSITIVE, Attribute.EXTRACTABLE]
    )
    problems = []
    if values.get(Attribute.KEY_TYPE) != KeyType.AES or values.get(Attribute.VALUE_LEN) != AES_KEY_BYTES:
        problems.append("not an AES-256 key")
    if not values.get(Attribute.SENSITIVE):
        problems.append("not sensitive")
    if values.get(Attribute.EXTRACTABLE):
        problems.append("extractable")
    if problems:
        raise HsmKeyNotFound(
            f"{what} on token {_token_label(login)!r} is {', '.join(problems)}; "
            "refusing to use it as a key-encryption key"
        )


def _by_label(login: _Login, label: str) -> list[Any]:
    if not isinstance(label, str) or not label:
        raise ValueError("key label must be a non-empty string")
    # No KEY_TYPE in the template: a non-AES key under our label must be
    # refused loudly, not ignored (ensure_aes_key would then add a second one).
    return list(login.session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: label}))


def _cache_found(login: _Login, label: str, found: list[Any]) -> str:
    """Validate exactly one key found under ``label``, cache it, return its hex id."""
    if len(found) > 1:
        raise HsmKeyNotFound(
            f"{len(found)} secret keys share label {label!r} on token {_token_label(login)!r}; "
            "refusing to guess which one to use"
        )
    [key] = found
    _check_usable(login, key, f"secret key {label!r}")
    raw_id = bytes(key[Attribute.ID])
    if not raw_id:
        raise HsmKeyNotFound(
            f"secret key {label!r} on token {_token_label(login)!r} has an empty CKA_ID; "
            "key ids are what encrypted data refers to, so it cannot be used"
        )
    hex_id = raw_id.hex()
    login.secret_keys[hex_id] = key
    return hex_id


def find_aes_key(login: _Login, label: str) -> str:
    """Hex CKA_ID of the one AES-256 key labelled ``label``; never creates it."""
    found = _by_label(login, label)
    if not found:
        raise HsmKeyNotFound(
            f"no secret key labelled {label!r} on token {_token_label(login)!r}; {_init_hint(label)}"
        )
    return _cache_found(login, label, found)


def ensure_aes_key(login: _Login, label: str) -> str:
    """Like :func:`find_aes_key`, but generate the key on the token if it is missing.

    Serialised within the process by the token lock; two *processes* creating
    the same label at the same moment would both succeed and every later
    lookup would refuse the duplicate, so only the one-off ``init`` calls this.
    """
    found = _by_label(login, label)
    if found:
        return _cache_found(login, label, found)

    key_id = secrets.token_bytes(_KEY_ID_BYTES)
    session = login.session
    if list(session.get_objects({Attribute.ID: key_id})):
        raise HsmUnavailable("freshly generated key id already exists on the token")
    # A complete template, so nothing depends on python-pkcs11's or the token's defaults.
    template: dict[Attribute, Any] = {
        Attribute.CLASS: ObjectClass.SECRET_KEY,
        Attribute.KEY_TYPE: KeyType.AES,
        Attribute.VALUE_LEN: AES_KEY_BYTES,
        Attribute.TOKEN: True,
        Attribute.PRIVATE: True,
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: False,
        Attribute.ENCRYPT: True,
        Attribute.DECRYPT: True,
        Attribute.WRAP: False,
        Attribute.UNWRAP: False,
        Attribute.SIGN: False,
        Attribute.VERIFY: False,
        Attribute.DERIVE: False,
        # As for the signing keys: usage flags and label are frozen, while
        # C_DestroyObject still works.
        Attribute.MODIFIABLE: False,
        Attribute.ID: key_id,
        Attribute.LABEL: label,
    }
    key = session.generate_key(
        KeyType.AES,
        AES_KEY_BYTES * 8,
        id=key_id,
        label=label,
        store=True,
        mechanism=Mechanism.AES_KEY_GEN,
        template=template,
    )
    hex_id = key_id.hex()
    login.secret_keys[hex_id] = key
    log.info("generated AES-256 key %s (%r) on token %r", hex_id, label, _token_label(login))
    return hex_id


def _secret_key(login: _Login, hex_id: str) -> Any:
    key = login.secret_keys.get(hex_id)
    if key is not None:
        return key
    found = list(
        login.session.get_objects(
            {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.AES, Attribute.ID: bytes.fromhex(hex_id)}
        )
    )
    if not found:
        raise HsmKeyNotFound(
            f"no AES key with id {hex_id} on token {_token_label(login)!r} (destroyed, or the "
            "data was encrypted on another token)"
        )
    if len(found) > 1:
        raise HsmKeyNotFound(
            f"{len(found)} AES keys share id {hex_id} on token {_token_label(login)!r}; "
            "refusing to guess which one to use"
        )
    [key] = found
    _check_usable(login, key, f"AES key {hex_id}")
    login.secret_keys[hex_id] = key
    return key


def _with_key(login: _Login, hex_id: str, operation: Callable[[Any], _T]) -> _T:
    key = _secret_key(login, hex_id)
    try:
        return operation(key)
    except (p11e.ObjectHandleInvalid, p11e.KeyHandleInvalid):
        # The cached handle went stale (key destroyed elsewhere): look again,
        # which raises HsmKeyNotFound if the key is really gone.
        login.secret_keys.pop(hex_id, None)
        return operation(_secret_key(login, hex_id))


def secret_key_attributes(login: _Login, hex_id: str) -> dict[str, bool]:
    """Security attributes of an AES key, by name (see ``_ATTRIBUTE_NAMES``)."""
    values = _secret_key(login, hex_id).get_attributes(list(_ATTRIBUTE_NAMES.values()))
    return {name: bool(values[attr]) for name, attr in _ATTRIBUTE_NAMES.items()}


# ---------------------------------------------------------------- AES-GCM


def _gcm_params(nonce: bytes, aad: bytes) -> GCMParams:
    # python-pkcs11 0.10 fills CK_GCM_PARAMS (PKCS#11 2.40 layout: pIv,
    # ulIvLen, ulIvBits, pAAD, ulAADLen, ulTagBits) from this object.
    return GCMParams(nonce, aad or None, GCM_TAG_BYTES * 8)


def encrypt(login: _Login, hex_id: str, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """CKM_AES_GCM encryption; returns ciphertext || 16-byte tag."""
    params = _gcm_params(nonce, aad)  # kept alive by this frame during the call
    return _with_key(
        login,
        hex_id,
        lambda key: bytes(key.encrypt(plaintext, mechanism=Mechanism.AES_GCM, mechanism_param=params)),
    )


def decrypt(login: _Login, hex_id: str, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    """CKM_AES_GCM decryption of ciphertext || tag; HsmDecryptError if it does not verify."""
    failed = HsmDecryptError(
        f"AES-GCM authentication failed with key {hex_id} on token {_token_label(login)!r}: "
        "the ciphertext, nonce or associated data is not what was encrypted under this key"
    )
    if len(ciphertext) < GCM_TAG_BYTES:
        raise failed
    params = _gcm_params(nonce, aad)

    def attempt(key: Any) -> bytes:
        try:
            return bytes(key.decrypt(ciphertext, mechanism=Mechanism.AES_GCM, mechanism_param=params))
        except _AUTH_FAILED:
            raise failed from None
        except p11e.GeneralError:
            # SoftHSM 2.6 reports a wrong tag as CKR_GENERAL_ERROR, which
            # otherwise means the session is lost (Token._session drops it).
            # Tell the two apart with a harmless call on the same session:
            # if that fails too, its error propagates and the session is dropped.
            login.session.generate_random(64)
            raise failed from None
        except p11e.PKCS11Error as exc:
            if exc.args == (_UNMAPPED_AEAD_DECRYPT_FAILED,):
                raise failed from None
            raise

    return _with_key(login, hex_id, attempt)
