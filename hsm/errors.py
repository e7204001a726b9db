"""Typed errors of the key-custody layer.

The daemon maps every :class:`HsmError` to HTTP 503 and shows ``message`` to
the client, so messages are written for a human operator and never contain a
PIN (only the path of the PIN file).
"""

from __future__ import annotations

__all__ = [
    "EnvelopeError",
    "HsmDecryptError",
    "HsmError",
    "HsmKeyNotFound",
    "HsmModuleError",
    "HsmPinIncorrect",
    "HsmPinUnavailable",
    "HsmTokenNotFound",
    "HsmUnavailable",
]


class HsmError(Exception):
    """Base class of all key-custody errors; ``message`` is operator-readable."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class HsmModuleError(HsmError):
    """The PKCS#11 module file is missing, cannot be loaded or cannot be initialised."""


class HsmTokenNotFound(HsmError):
    """No token (or more than one token) carries the configured label."""


class HsmPinIncorrect(HsmError):
    """The token rejected the user PIN (wrong, locked, expired or never set)."""


class HsmPinUnavailable(HsmError):
    """The PIN file is missing, unreadable or empty.

    Kept distinct from :class:`HsmPinIncorrect` because the fix differs: this
    one is a deployment problem (path, permissions) and the token was never
    asked, so no PIN retry counter was spent.
    """


class HsmKeyNotFound(HsmError):
    """No object, or more than one object, carries the requested key id."""


class HsmUnavailable(HsmError):
    """Any other failure: session lost, device error, token used after fork()."""


class HsmDecryptError(HsmError):
    """AES-GCM decryption on the token did not authenticate.

    The token worked, but the ciphertext, nonce or associated data differ from
    what was encrypted, or another key encrypted it: the stored data is
    corrupt, was tampered with, or was copied to another record.  Retrying
    does not help.  No plaintext is ever returned in that case.
    """


class EnvelopeError(ValueError):
    """A sealed blob cannot be opened: malformed, truncated, tampered, or wrong context.

    Deliberately not an :class:`HsmError` (which the daemon answers with 503,
    "try again later"): the token is fine, the stored data is not.  A token
    problem while opening (KEK missing, session lost) still raises the
    :class:`HsmError` subclass, so the two causes stay apart.
    """
