"""The process's connection to the PKCS#11 token that holds the CA keys.

Constraints that shape this module (the daemon-facing rules are in the
package docstring):

* A PKCS#11 library initialised before ``fork()`` is unusable in the child.
  gunicorn forks its workers from a master, so a :class:`Token` opens nothing
  in ``__init__`` and each worker opens lazily on first use.  A token (or
  library) opened in another pid is refused with :class:`HsmUnavailable`.
* python-pkcs11 calls ``C_Initialize`` without OS locking, so SoftHSM is not
  thread-safe even across sessions.  Every PKCS#11 call of the process is
  serialised by one process-wide :class:`threading.RLock`.
* PKCS#11 login state belongs to the application, not to a session: a second
  ``C_Login`` answers ``CKR_USER_ALREADY_LOGGED_IN`` whatever the PIN, and
  python-pkcs11's ``Session.close()`` calls ``C_Logout``, which logs out every
  session of the process.  So all :class:`Token` objects of one process that
  name the same module and label share ONE logged-in read-write session; a
  Token whose PIN differs from the one that logged in is refused without
  asking the token.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import pkcs11
from asn1crypto.core import Null, OctetString
from asn1crypto.keys import ECDomainParameters, PublicKeyInfo, RSAPublicKey
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11 import exceptions as p11e

from .errors import (
    HsmError,
    HsmKeyNotFound,
    HsmModuleError,
    HsmPinIncorrect,
    HsmPinUnavailable,
    HsmTokenNotFound,
    HsmUnavailable,
)
from . import secret_keys
from .secret_keys import require_bytes
from .signer import Signer, resolve_algorithm

__all__ = ["GeneratedKey", "Token"]

log = logging.getLogger(__name__)

RSA_KEY_SIZES = frozenset({2048, 3072, 4096})
EC_CURVES: dict[int, str] = {256: "secp256r1", 384: "secp384r1"}
# Coordinate length in bytes, to recognise an uncompressed point (0x04 || X || Y).
_EC_FIELD_BYTES: dict[str, int] = {"secp256r1": 32, "secp384r1": 48, "secp521r1": 66}
_RSA_PUBLIC_EXPONENT = b"\x01\x00\x01"  # 65537, big-endian CK_BIGINTEGER
_KEY_ID_BYTES = 16

# Errors after which the session cannot be trusted any more: drop it so that
# the next call opens and logs in again (e.g. HSM rebooted, someone logged out).
_SESSION_LOST: tuple[type[Exception], ...] = (
    p11e.SessionClosed,
    p11e.SessionHandleInvalid,
    p11e.DeviceRemoved,
    p11e.DeviceError,
    p11e.TokenNotPresent,
    p11e.TokenNotRecognised,
    p11e.UserNotLoggedIn,
    p11e.GeneralError,
)
_PIN_REJECTED: dict[type[Exception], str] = {
    p11e.PinIncorrect: "wrong PIN",
    p11e.PinInvalid: "PIN has invalid characters",
    p11e.PinLenRange: "PIN has the wrong length",
}
_PIN_STATE: dict[type[Exception], str] = {
    p11e.PinLocked: "the user PIN of token {label!r} is locked; unlock it with the SO PIN",
    p11e.PinExpired: "the user PIN of token {label!r} has expired; set a new one",
    p11e.UserPinNotInitialized: "token {label!r} has no user PIN yet; initialise it with the SO PIN",
}


# --------------------------------------------------------------------------
# Process-wide state.  Guarded by _lock; never shared across fork (see pids).
# --------------------------------------------------------------------------

_process_lock = threading.RLock()


def _lock() -> threading.RLock:
    return _process_lock


def _fresh_lock_in_child() -> None:
    # A thread of the parent may have held the lock at fork() time; that
    # thread does not exist in the child, so the inherited lock could never be
    # released.  Tokens opened before fork() are refused anyway.
    global _process_lock
    _process_lock = threading.RLock()


os.register_at_fork(after_in_child=_fresh_lock_in_child)


@dataclass
class _Library:
    lib: Any  # pkcs11.lib; untyped in python-pkcs11's stubs
    pid: int
    softhsm_conf: str | None


@dataclass(eq=False)
class _Login:
    """The one logged-in read-write session of this process on one token."""

    key: tuple[str, str]  # (real module path, token label)
    token: Any  # pkcs11.Token
    session: Any  # pkcs11.Session
    pin_digest: bytes
    pid: int
    holders: weakref.WeakSet[Token] = field(default_factory=weakref.WeakSet)
    # Private key objects found in this session, by hex key id.  Object
    # handles die with the session, and live here rather than in each Token
    # so that destroy_key_pair through one Token clears them for all.
    private_keys: dict[str, Any] = field(default_factory=dict)
    # AES key objects (KEKs) found in this session, by hex key id; see secret_keys.py.
    secret_keys: dict[str, Any] = field(default_factory=dict)


_libraries: dict[str, _Library] = {}
_logins: dict[tuple[str, str], _Login] = {}
# Digest of the last PIN the token rejected, per token.  The same PIN is not
# sent again (each try spends one of the HSM's PIN retries, and the health
# check would otherwise lock the token within minutes); a changed PIN file is
# tried again at once.
_rejected_pins: dict[tuple[str, str], bytes] = {}


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _forked_message(what: str, opened_pid: int) -> str:
    return (
        f"{what} was opened in process {opened_pid} before fork() and cannot be used "
        f"in process {os.getpid()}; open the token lazily in each worker after fork, "
        "never in the master process"
    )


def _load_library(module_path: str, softhsm_conf: str | None) -> Any:
    """Load (once per process) and return the pkcs11.lib for ``module_path``."""
    real = os.path.realpath(module_path)
    loaded = _libraries.get(real)
    if loaded is not None:
        if loaded.pid != os.getpid():
            raise HsmUnavailable(_forked_message(f"PKCS#11 module {module_path}", loaded.pid))
        if (
            softhsm_conf is not None
            and loaded.softhsm_conf is not None
            and os.path.realpath(softhsm_conf) != loaded.softhsm_conf
        ):
            raise HsmModuleError(
                f"PKCS#11 module {module_path} is already loaded in this process with "
                f"SOFTHSM2_CONF={loaded.softhsm_conf}; it cannot be reloaded with "
                f"{softhsm_conf} (one SoftHSM configuration per process)"
            )
        return loaded.lib

    if not os.path.isfile(real):
        raise HsmModuleError(f"PKCS#11 module {module_path} does not exist")
    if softhsm_conf is not None:
        if not os.path.isfile(softhsm_conf):
            raise HsmModuleError(f"SoftHSM configuration file {softhsm_conf} does not exist")
        # SoftHSM reads this in C_Initialize, i.e. inside pkcs11.lib() below.
        os.environ["SOFTHSM2_CONF"] = softhsm_conf
    try:
        # Always the real path: python-pkcs11 caches libraries by the string it
        # is given, and a second C_Initialize through an alias would fail.
        lib = pkcs11.lib(real)
    except p11e.PKCS11Error as exc:
        hint = ""
        if "softhsm" in os.path.basename(real).lower():
            hint = f" (SOFTHSM2_CONF={os.environ.get('SOFTHSM2_CONF', '<unset>')}: check the file and its tokendir)"
        raise HsmModuleError(
            f"cannot load or initialise PKCS#11 module {module_path}: {_describe(exc)}{hint}"
        ) from exc
    conf = os.environ.get("SOFTHSM2_CONF")
    _libraries[real] = _Library(lib, os.getpid(), os.path.realpath(conf) if conf else None)
    log.info("loaded PKCS#11 module %s in pid %d", real, os.getpid())
    return lib


def _parse_key_id(key_id: str) -> bytes:
    if not isinstance(key_id, str) or not key_id:
        raise ValueError(f"key id must be a non-empty hex string, not {key_id!r}")
    try:
        return bytes.fromhex(key_id)
    except ValueError:
        raise ValueError(f"key id must be a hex string, not {key_id!r}") from None


def _decode_ec_point(value: bytes, curve: str) -> bytes:
    """Return the uncompressed point 0x04||X||Y from a CKA_EC_POINT value."""
    expected = 1 + 2 * _EC_FIELD_BYTES[curve]
    # PKCS#11 specifies a DER OCTET STRING (what SoftHSM returns); some older
    # modules return the bare point.  The lengths differ, so both are safe.
    if len(value) == expected and value[0] == 0x04:
        return value
    try:
        point = OctetString.load(value, strict=True).native
    except ValueError:
        point = None
    if isinstance(point, bytes) and len(point) == expected and point[0] == 0x04:
        return point
    raise HsmUnavailable(f"CKA_EC_POINT of a {curve} key is not an uncompressed point")


def _public_key_info(public_key: Any) -> PublicKeyInfo:
    """Build a SubjectPublicKeyInfo from a PKCS#11 public key object."""
    key_type = public_key[Attribute.KEY_TYPE]
    if key_type == KeyType.RSA:
        modulus, exponent = (
            public_key[Attribute.MODULUS],
            public_key[Attribute.PUBLIC_EXPONENT],
        )
        return PublicKeyInfo(
            {
                "algorithm": {"algorithm": "rsa", "parameters": Null()},
                "public_key": RSAPublicKey(
                    {
                        "modulus": int.from_bytes(modulus, "big"),
                        "public_exponent": int.from_bytes(exponent, "big"),
                    }
                ),
            }
        )
    if key_type == KeyType.EC:
        params = ECDomainParameters.load(public_key[Attribute.EC_PARAMS])
        curve = params.native if params.name == "named" else None
        if curve not in _EC_FIELD_BYTES:
            raise HsmUnavailable(f"EC key on unsupported curve {curve or 'explicit parameters'}")
        point = _decode_ec_point(public_key[Attribute.EC_POINT], curve)
        return PublicKeyInfo(
            {"algorithm": {"algorithm": "ec", "parameters": params}, "public_key": point}
        )
    raise HsmUnavailable(f"unsupported key type {key_type!r} (only RSA and EC)")


@dataclass(frozen=True)
class GeneratedKey:
    """A key pair just generated on the token."""

    key_id: str  # lower-case hex of CKA_ID, shared by both halves
    key_type: Literal["rsa", "ec"]
    key_size: int  # RSA modulus bits or EC curve bits
    public_key_info: PublicKeyInfo


class Token:
    """Lazy handle on one PKCS#11 token, used by one process (one gunicorn worker).

    Nothing is loaded in ``__init__``; the module is loaded, the token found
    and the user logged in on first use (or :meth:`open`).  All methods are
    thread-safe and raise :class:`HsmError` subclasses for token problems and
    :class:`ValueError` for bad arguments.
    """

    def __init__(
        self,
        module_path: str,
        token_label: str,
        pin_file: str,
        *,
        softhsm_conf: str | None = None,
    ) -> None:
        self._module_path = module_path
        self._label = token_label
        self._pin_file = pin_file
        self._softhsm_conf = softhsm_conf
        self._login: _Login | None = None
        self._opened_pid: int | None = None
        # Signers hold no object handle, so they survive a session reset.
        self._signers: dict[tuple[str, str], Signer] = {}

    # ---------------------------------------------------------------- basics

    @property
    def label(self) -> str:
        """Label of the token this object talks to."""
        return self._label

    @property
    def module_path(self) -> str:
        """Path of the PKCS#11 module."""
        return self._module_path

    @property
    def lock(self) -> threading.RLock:
        """The lock held around every PKCS#11 call.

        It is process-wide, not per Token: the library is not thread-safe even
        across sessions, so two Token objects must not call it concurrently.
        """
        return _lock()

    def __repr__(self) -> str:
        state = "open" if self._login is not None else "closed"
        return f"<Token label={self._label!r} module={self._module_path!r} {state}>"

    def __enter__(self) -> Token:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _key(self) -> tuple[str, str]:
        return (os.path.realpath(self._module_path), self._label)

    def _check_pid(self) -> None:
        if self._opened_pid is not None and self._opened_pid != os.getpid():
            raise HsmUnavailable(_forked_message(f"PKCS#11 token {self._label!r}", self._opened_pid))

    # ------------------------------------------------------ open/close/ping

    def open(self) -> None:
        """Load the module, find the token, open one R/W session and log in.

        Idempotent.  Failures are not remembered (except that a PIN the token
        rejected is not re-sent until the PIN file changes), so a later call
        retries after the operator fixed the problem.
        """
        self._check_pid()
        with _lock():
            self._ensure_open()

    def close(self) -> None:
        """Release this Token's use of the session; the last user logs out and closes it.

        In a process forked after the token was opened, only forgets the
        session: the inherited library must not be called.
        """
        if self._opened_pid is not None and self._opened_pid != os.getpid():
            self._forget()
            return
        with _lock():
            login = self._login
            self._forget()
            if login is None:
                return
            login.holders.discard(self)
            if not login.holders and _logins.get(login.key) is login:
                _drop_login(login)

    def ping(self) -> None:
        """Cheap liveness check for the health endpoint; raises HsmError if unusable."""
        with self._session("health check") as login:
            # C_GetTokenInfo proves the token is present, C_GenerateRandom that
            # our session handle is still valid.
            login.token.slot.get_token()
            login.session.generate_random(64)

    def _forget(self) -> None:
        self._login = None
        self._opened_pid = None

    def _read_pin(self) -> str:
        try:
            with open(self._pin_file, encoding="utf-8") as handle:
                pin = handle.read().strip()
        except FileNotFoundError:
            raise HsmPinUnavailable(f"PIN file {self._pin_file} does not exist") from None
        except UnicodeDecodeError:
            # The exception text would quote PIN bytes.
            raise HsmPinUnavailable(f"PIN file {self._pin_file} is not UTF-8 text") from None
        except OSError as exc:
            raise HsmPinUnavailable(
                f"cannot read PIN file {self._pin_file}: {exc.strerror or type(exc).__name__}"
            ) from None
        if not pin:
            raise HsmPinUnavailable(f"PIN file {self._pin_file} is empty")
        return pin

    def _ensure_open(self) -> _Login:
        """Return the live shared login, opening it if needed.  Caller holds the lock."""
        self._check_pid()
        key = self._key()
        current = _logins.get(key)
        if self._login is not None and current is self._login:
            return self._login
        # Our login was dropped (error, or another Token closed it): start over.
        self._forget()

        _load_library(self._module_path, self._softhsm_conf)
        pin = self._read_pin()
        digest = hashlib.sha256(pin.encode("utf-8")).digest()

        if current is not None:
            # The process is already logged in to this token, and the token
            # would not check a second login; compare with the PIN that worked.
            if not hmac.compare_digest(current.pin_digest, digest):
                raise HsmPinIncorrect(
                    f"the PIN in {self._pin_file} differs from the PIN this process is "
                    f"logged in to token {self._label!r} with"
                )
            login = current
        else:
            login = self._login_new(key, pin, digest)

        login.holders.add(self)
        self._login = login
        self._opened_pid = os.getpid()
        return login

    def _login_new(self, key: tuple[str, str], pin: str, digest: bytes) -> _Login:
        if hmac.compare_digest(_rejected_pins.get(key, b""), digest):
            raise HsmPinIncorrect(
                f"token {self._label!r} rejected the PIN in {self._pin_file} before; "
                "it is not sent again until the PIN file changes (to avoid locking the token)"
            )
        lib = _libraries[key[0]].lib
        try:
            p11_token = lib.get_token(token_label=self._label)
        except p11e.NoSuchToken:
            raise HsmTokenNotFound(
                f"no token labelled {self._label!r} in PKCS#11 module {self._module_path}"
            ) from None
        except p11e.MultipleTokensReturned:
            raise HsmTokenNotFound(
                f"more than one token is labelled {self._label!r} in PKCS#11 module "
                f"{self._module_path}; labels must be unique"
            ) from None
        except p11e.PKCS11Error as exc:
            raise HsmUnavailable(
                f"cannot list the tokens of PKCS#11 module {self._module_path}: {_describe(exc)}"
            ) from exc

        try:
            # python-pkcs11 opens the session and logs in in one call; if the
            # login fails it leaks the (unauthenticated) session handle.  The
            # rejected-PIN memory above bounds that to one per wrong PIN.
            session = p11_token.open(rw=True, user_pin=pin)
        except tuple(_PIN_REJECTED) as exc:
            _rejected_pins[key] = digest
            raise HsmPinIncorrect(
                f"token {self._label!r} rejected the PIN in {self._pin_file} "
                f"({_PIN_REJECTED[type(exc)]})"
            ) from None
        except tuple(_PIN_STATE) as exc:
            raise HsmPinIncorrect(_PIN_STATE[type(exc)].format(label=self._label)) from None
        except p11e.UserAlreadyLoggedIn:
            raise HsmUnavailable(
                f"token {self._label!r} is already logged in by code outside "
                "scaivault_pki.hsm in this process; the PIN cannot be verified"
            ) from None
        except p11e.PKCS11Error as exc:
            raise HsmUnavailable(
                f"cannot open a session on token {self._label!r}: {_describe(exc)}"
            ) from exc

        _rejected_pins.pop(key, None)
        login = _Login(key, p11_token, session, digest, os.getpid())
        _logins[key] = login
        log.info("logged in to token %r in pid %d", self._label, os.getpid())
        return login

    @contextmanager
    def _session(self, action: str) -> Iterator[_Login]:
        """Hold the lock, make sure we are logged in, translate PKCS#11 errors."""
        self._check_pid()
        with _lock():
            login = self._ensure_open()
            try:
                yield login
            except HsmError:
                raise
            except _SESSION_LOST as exc:
                if _logins.get(login.key) is login:
                    _drop_login(login)
                self._forget()
                raise HsmUnavailable(
                    f"{action} failed on token {self._label!r}: {_describe(exc)}; "
                    "the session was dropped and will be reopened on the next request"
                ) from exc
            except p11e.PKCS11Error as exc:
                raise HsmUnavailable(
                    f"{action} failed on token {self._label!r}: {_describe(exc)}"
                ) from exc

    # ---------------------------------------------------------- key lookup

    def _find_one(self, session: Any, object_class: ObjectClass, key_id: bytes) -> Any:
        what = "private key" if object_class == ObjectClass.PRIVATE_KEY else "public key"
        found = list(session.get_objects({Attribute.CLASS: object_class, Attribute.ID: key_id}))
        if len(found) == 1:
            return found[0]
        if not found:
            raise HsmKeyNotFound(f"no {what} with id {key_id.hex()} on token {self._label!r}")
        raise HsmKeyNotFound(
            f"{len(found)} {what}s share id {key_id.hex()} on token {self._label!r}; "
            "refusing to guess which one to use"
        )

    def _private_key(self, login: _Login, key_id: str) -> Any:
        key = login.private_keys.get(key_id)
        if key is None:
            key = self._find_one(login.session, ObjectClass.PRIVATE_KEY, bytes.fromhex(key_id))
            login.private_keys[key_id] = key
        return key

    # ------------------------------------------------------------- keys

    def generate_key_pair(self, key_type: str, key_size: int, label: str) -> GeneratedKey:
        """Generate a non-extractable signing key pair on the token.

        ``key_type`` "rsa" (2048/3072/4096 bits, e=65537) or "ec" (256 = P-256,
        384 = P-384).  Both halves get the same fresh random 16-byte CKA_ID
        and ``label``.
        """
        kind: Literal["rsa", "ec"]
        if key_type == "rsa":
            kind = "rsa"
            if key_size not in RSA_KEY_SIZES:
                raise ValueError(f"RSA key size must be one of {sorted(RSA_KEY_SIZES)}, not {key_size!r}")
            p11_type, mechanism = KeyType.RSA, Mechanism.RSA_PKCS_KEY_PAIR_GEN
            type_attrs: dict[Attribute, Any] = {
                Attribute.MODULUS_BITS: key_size,
                Attribute.PUBLIC_EXPONENT: _RSA_PUBLIC_EXPONENT,
            }
        elif key_type == "ec":
            kind = "ec"
            if key_size not in EC_CURVES:
                raise ValueError(f"EC key size must be one of {sorted(EC_CURVES)}, not {key_size!r}")
            p11_type, mechanism = KeyType.EC, Mechanism.EC_KEY_PAIR_GEN
            params = ECDomainParameters(name="named", value=EC_CURVES[key_size]).dump()
            type_attrs = {Attribute.EC_PARAMS: params}
        else:
            raise ValueError(f"key type must be 'rsa' or 'ec', not {key_type!r}")
        if not isinstance(label, str) or not label:
            raise ValueError("key label must be a non-empty string")

        key_id = secrets.token_bytes(_KEY_ID_BYTES)
        # Complete templates, so nothing depends on python-pkcs11's defaults
        # (which it merges underneath) or on the token's own defaults.
        public_template: dict[Attribute, Any] = {
            Attribute.CLASS: ObjectClass.PUBLIC_KEY,
            Attribute.KEY_TYPE: p11_type,
            Attribute.TOKEN: True,
            Attribute.PRIVATE: False,
            Attribute.VERIFY: True,
            Attribute.ENCRYPT: False,
            Attribute.WRAP: False,
            Attribute.ID: key_id,
            Attribute.LABEL: label,
            **type_attrs,
        }
        private_template: dict[Attribute, Any] = {
            Attribute.CLASS: ObjectClass.PRIVATE_KEY,
            Attribute.KEY_TYPE: p11_type,
            Attribute.TOKEN: True,
            Attribute.PRIVATE: True,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.SIGN: True,
            Attribute.DECRYPT: False,
            Attribute.UNWRAP: False,
            Attribute.DERIVE: False,
            # SoftHSM 2.6 accepts this; it freezes the key's usage flags and
            # label (C_SetAttributeValue fails), while C_DestroyObject still works.
            Attribute.MODIFIABLE: False,
            Attribute.ID: key_id,
            Attribute.LABEL: label,
        }

        with self._session("key generation") as login:
            session = login.session
            if list(session.get_objects({Attribute.ID: key_id})):
                # 128 random bits never collide unless the RNG is broken; a
                # duplicate id would make both keys unusable (lookups need one match).
                raise HsmUnavailable("freshly generated key id already exists on the token")
            public, private = session.generate_keypair(
                p11_type,
                key_size if key_type == "rsa" else None,
                id=key_id,
                label=label,
                store=True,
                capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
                mechanism=mechanism,
                public_template=public_template,
                private_template=private_template,
            )
            try:
                info = _public_key_info(public)
            except BaseException:
                for obj in (private, public):
                    try:
                        obj.destroy()
                    except p11e.PKCS11Error:
                        log.warning("could not destroy half-made key %s", key_id.hex())
                raise
            hex_id = key_id.hex()
            login.private_keys[hex_id] = private
        log.info("generated %s-%d key %s (%r) on token %r", key_type, key_size, hex_id, label, self._label)
        return GeneratedKey(hex_id, kind, key_size, info)

    def public_key_info(self, key_id: str) -> PublicKeyInfo:
        """SubjectPublicKeyInfo of the public key object with CKA_ID ``key_id``."""
        raw_id = _parse_key_id(key_id)
        with self._session("public key lookup") as login:
            return _public_key_info(self._find_one(login.session, ObjectClass.PUBLIC_KEY, raw_id))

    def signer(self, key_id: str, algorithm: str) -> Signer:
        """Return the (cached) :class:`Signer` for ``key_id`` under ``algorithm``.

        Raises ValueError for an unknown algorithm or one that does not fit
        the key type, HsmKeyNotFound unless exactly one private and one public
        key carry the id.
        """
        resolve_algorithm(algorithm)
        hex_id = _parse_key_id(key_id).hex()
        cached = self._signers.get((hex_id, algorithm))
        if cached is not None:
            return cached
        with self._session("signer lookup") as login:
            private = self._private_key(login, hex_id)
            public = self._find_one(login.session, ObjectClass.PUBLIC_KEY, bytes.fromhex(hex_id))
            if private[Attribute.KEY_TYPE] != public[Attribute.KEY_TYPE]:
                raise HsmKeyNotFound(
                    f"private and public key with id {hex_id} on token {self._label!r} "
                    "are of different types"
                )
            signer = Signer(self, hex_id, algorithm, _public_key_info(public))
            self._signers[(hex_id, algorithm)] = signer
            return signer

    def destroy_key_pair(self, key_id: str) -> None:
        """Destroy every private and public key object with CKA_ID ``key_id``.

        Meant for cleaning up after a failed CA creation; a missing key is not
        an error.
        """
        raw_id = _parse_key_id(key_id)
        hex_id = raw_id.hex()
        with self._session("key destruction") as login:
            login.private_keys.pop(hex_id, None)
            for (cached_id, algorithm) in list(self._signers):
                if cached_id == hex_id:
                    del self._signers[(cached_id, algorithm)]
            for object_class in (ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY):
                for obj in list(login.session.get_objects({Attribute.CLASS: object_class, Attribute.ID: raw_id})):
                    obj.destroy()
        log.info("destroyed key pair %s on token %r", hex_id, self._label)

    def key_attributes(self, key_id: str) -> dict[str, bool]:
        """Security attributes of the private key, for tests and diagnostics.

        Keys: sensitive, always_sensitive, extractable, never_extractable,
        token, private, sign, decrypt, unwrap, derive, plus local (generated
        on the token) and modifiable.
        """
        hex_id = _parse_key_id(key_id).hex()
        names = {
            "sensitive": Attribute.SENSITIVE,
            "always_sensitive": Attribute.ALWAYS_SENSITIVE,
            "extractable": Attribute.EXTRACTABLE,
            "never_extractable": Attribute.NEVER_EXTRACTABLE,
            "token": Attribute.TOKEN,
            "private": Attribute.PRIVATE,
            "sign": Attribute.SIGN,
            "decrypt": Attribute.DECRYPT,
            "unwrap": Attribute.UNWRAP,
            "derive": Attribute.DERIVE,
            "local": Attribute.LOCAL,
            "modifiable": Attribute.MODIFIABLE,
        }
        with self._session("key attribute lookup") as login:
            values = self._private_key(login, hex_id).get_attributes(list(names.values()))
        return {name: bool(values[attr]) for name, attr in names.items()}

    # ------------------------------------------- secret keys (see secret_keys.py)

    def ensure_aes_key(self, label: str) -> str:
        """Hex CKA_ID of the AES-256 key labelled ``label``, generated on the token if missing.

        The key is sensitive, never extractable, usable for encrypt/decrypt
        only (no wrap/unwrap/sign/verify/derive) and unmodifiable.  Only
        ``scaivault-pki init`` should call this; workers use :meth:`find_aes_key`.
        Raises HsmKeyNotFound if several secret keys carry the label, or the
        one found is not a sensitive, non-extractable AES-256 key.
        """
        with self._session("AES key creation") as login:
            return secret_keys.ensure_aes_key(login, label)

    def find_aes_key(self, label: str) -> str:
        """Hex CKA_ID of the AES-256 key labelled ``label``.

        Never creates it: HsmKeyNotFound (telling the operator to run
        ``scaivault-pki init``) if it is missing, and as for
        :meth:`ensure_aes_key` if it is ambiguous or unfit.
        """
        with self._session("AES key lookup") as login:
            return secret_keys.find_aes_key(login, label)

    def encrypt(self, key_id: str, plaintext: bytes, aad: bytes) -> tuple[bytes, bytes]:
        """AES-256-GCM-encrypt ``plaintext`` inside the token with AES key ``key_id``.

        Returns ``(nonce, ciphertext || tag)``: a fresh random 12-byte nonce
        (from :mod:`secrets`) and a 16-byte tag.  ``aad`` is authenticated, not
        encrypted, and must be passed to :meth:`decrypt` unchanged.
        """
        hex_id = _parse_key_id(key_id).hex()
        plaintext, aad = require_bytes(plaintext, "plaintext"), require_bytes(aad, "aad")
        nonce = secrets.token_bytes(secret_keys.GCM_NONCE_BYTES)
        with self._session("encryption") as login:
            return nonce, secret_keys.encrypt(login, hex_id, nonce, plaintext, aad)

    def decrypt(self, key_id: str, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        """Inverse of :meth:`encrypt`.

        Raises HsmDecryptError if the tag does not verify (tampered data,
        wrong ``aad``, another key), HsmKeyNotFound if the key is gone, and
        ValueError if ``nonce`` is not 12 bytes.
        """
        hex_id = _parse_key_id(key_id).hex()
        nonce = require_bytes(nonce, "nonce")
        if len(nonce) != secret_keys.GCM_NONCE_BYTES:
            raise ValueError(f"AES-GCM nonce must be {secret_keys.GCM_NONCE_BYTES} bytes, not {len(nonce)}")
        ciphertext, aad = require_bytes(ciphertext, "ciphertext"), require_bytes(aad, "aad")
        with self._session("decryption") as login:
            return secret_keys.decrypt(login, hex_id, nonce, ciphertext, aad)

    def secret_key_attributes(self, key_id: str) -> dict[str, bool]:
        """Security attributes of an AES key, for tests and diagnostics.

        Keys: sensitive, always_sensitive, extractable, never_extractable,
        token, private, encrypt, decrypt, wrap, unwrap, sign, verify, derive,
        local, modifiable.
        """
        hex_id = _parse_key_id(key_id).hex()
        with self._session("AES key attribute lookup") as login:
            return secret_keys.secret_key_attributes(login, hex_id)

    # ------------------------------------------------------------ signing

    def _sign_with_key(self, key_id: str, mechanism: Mechanism, payload: bytes) -> bytes:
        """Raw C_Sign for :class:`Signer`; ``key_id`` is already normalised."""
        with self._session("signing") as login:
            key = self._private_key(login, key_id)
            try:
                return bytes(key.sign(payload, mechanism=mechanism))
            except (p11e.ObjectHandleInvalid, p11e.KeyHandleInvalid):
                # Destroyed (maybe by another worker) since we looked it up:
                # look again, which raises HsmKeyNotFound if it is really gone.
                login.private_keys.pop(key_id, None)
                key = self._private_key(login, key_id)
                return bytes(key.sign(payload, mechanism=mechanism))


def _drop_login(login: _Login) -> None:
    """Forget and close a shared login.  Caller holds the lock."""
    del _logins[login.key]
    try:
        login.session.close()  # C_Logout + C_CloseSession
    except p11e.PKCS11Error as exc:
        log.warning("closing the session on token %r failed: %s", login.key[1], _describe(exc))
