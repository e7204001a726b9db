"""PKCS#11 key custody for ScaiVault PKI (``scaivault_pki.hsm``).

The only package of the daemon that talks PKCS#11: everything else uses
:class:`Token` (keys, health), :class:`Signer` (signatures) and
:class:`Envelope` (data at rest sealed under the KEK ``KEK_LABEL``), and
catches :class:`HsmError` (token trouble) and :class:`EnvelopeError` (a
stored blob that does not open: corrupt, tampered, or the wrong record).

Deployment rules the daemon must follow:

* Construct :class:`Token` anywhere, but let it open (first use, or
  :meth:`Token.open`) only inside a gunicorn worker, after fork.  A token
  opened in one process raises :class:`HsmUnavailable` in a forked child.
* For the embedded SoftHSM deployment, call :func:`write_softhsm_conf` and
  :func:`ensure_softhsm_token` in the master; they never load the library in
  the calling process.  Then pass ``softhsm_conf=`` to :class:`Token`.
* One SoftHSM configuration per process: the library reads SOFTHSM2_CONF
  once, when first loaded.
* ``scaivault-pki init`` creates the KEK with
  ``Token.ensure_aes_key(KEK_LABEL)``; workers only look it up (an
  :class:`Envelope` raises :class:`HsmKeyNotFound` if it is missing).
"""

from .envelope import KEK_LABEL, Envelope
from .errors import (
    EnvelopeError,
    HsmDecryptError,
    HsmError,
    HsmKeyNotFound,
    HsmModuleError,
    HsmPinIncorrect,
    HsmPinUnavailable,
    HsmTokenNotFound,
    HsmUnavailable,
)
from .signer import SIGNATURE_ALGORITHMS, Signer
from .softhsm import ensure_softhsm_token, is_softhsm_module, write_softhsm_conf
from .token import GeneratedKey, Token

__all__ = [
    "KEK_LABEL",
    "SIGNATURE_ALGORITHMS",
    "Envelope",
    "EnvelopeError",
    "GeneratedKey",
    "HsmDecryptError",
    "HsmError",
    "HsmKeyNotFound",
    "HsmModuleError",
    "HsmPinIncorrect",
    "HsmPinUnavailable",
    "HsmTokenNotFound",
    "HsmUnavailable",
    "Signer",
    "Token",
    "ensure_softhsm_token",
    "is_softhsm_module",
    "write_softhsm_conf",
]
