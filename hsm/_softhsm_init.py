"""Subprocess half of :func:`scaivault_pki.hsm.softhsm.ensure_softhsm_token`.

Run as ``python -I _softhsm_init.py MODULE LABEL PIN_FILE SO_PIN_FILE`` with
SOFTHSM2_CONF set.  It exists so that the PKCS#11 library is loaded (and
C_Initialize'd) in a throw-away process and never in the daemon's master,
which forks workers later.  Missing PIN files are generated here (mode 0600)
right before the token is created; PINs only travel through those files and
never appear on a command line.

``-I`` matters: without it the directory of this file would be sys.path[0],
and the sibling ``token.py`` would shadow the standard library's ``token``.

Prints one JSON object: {"created": bool} on success, {"error": str,
"kind": str} on failure (exit status 1).  Self-contained on purpose: it must
not import the daemon package.
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import sys
from typing import Any

import pkcs11
from pkcs11 import TokenFlag
from pkcs11 import exceptions as p11e

_CKR_OK = 0


class _Failure(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _read_pin(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            pin = handle.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise _Failure("pin", f"cannot read PIN file {path}: {type(exc).__name__}") from None
    if not pin:
        raise _Failure("pin", f"PIN file {path} is empty")
    return pin


def _init_token(module_path: str, slot_id: int, so_pin: str, label: str) -> None:
    # python-pkcs11 0.10 declares C_InitToken but does not expose it, so call
    # it through ctypes.  dlopen() of the already-loaded module returns the
    # same handle, hence the same (initialised) library state.
    library = ctypes.CDLL(module_path)
    init_token = library.C_InitToken
    init_token.argtypes = [ctypes.c_ulong, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    init_token.restype = ctypes.c_ulong
    pin = so_pin.encode("utf-8")
    # CK_TOKEN_INFO.label is exactly 32 bytes, blank padded, not NUL terminated.
    padded_label = label.encode("utf-8").ljust(32, b" ")
    rv = init_token(slot_id, pin, len(pin), padded_label)
    if rv != _CKR_OK:
        raise _Failure("init", f"C_InitToken failed with CKR 0x{rv:08x}")


def _create_pin_file(path: str) -> None:
    """Write a fresh random PIN to ``path`` (mode 0600) unless the file exists."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(secrets.token_urlsafe(24) + "\n")


def _init_user_pin(lib: Any, label: str, so_pin: str, user_pin: str) -> None:
    token = lib.get_token(token_label=label)
    session = token.open(rw=True, so_pin=so_pin)
    try:
        session.init_pin(user_pin)
    finally:
        session.close()


def ensure(module_path: str, label: str, pin_file: str, so_pin_file: str) -> bool:
    """Create the token unless one with ``label`` exists; True if created.

    PIN files are only generated when a token is about to be created: fresh
    PINs for an existing token would not match it.
    """
    try:
        lib: Any = pkcs11.lib(module_path)
    except p11e.PKCS11Error as exc:
        raise _Failure("module", f"cannot load PKCS#11 module {module_path}: {exc!r}") from None

    free_slot = None
    for slot in lib.get_slots(token_present=True):
        token = slot.get_token()
        if not token.flags & TokenFlag.TOKEN_INITIALIZED:
            if free_slot is None:
                free_slot = slot
        elif token.label == label:
            if not token.flags & TokenFlag.USER_PIN_INITIALIZED:
                # A previous run died between C_InitToken and C_InitPIN.
                _init_user_pin(lib, label, _read_pin(so_pin_file), _read_pin(pin_file))
            return False
    if free_slot is None:
        raise _Failure("init", "SoftHSM offers no free slot to initialise a token in")

    _create_pin_file(so_pin_file)
    _create_pin_file(pin_file)
    so_pin = _read_pin(so_pin_file)
    _init_token(module_path, free_slot.slot_id, so_pin, label)
    _init_user_pin(lib, label, so_pin, _read_pin(pin_file))
    return True


def main(argv: list[str]) -> int:
    """Entry point; see the module docstring."""
    if len(argv) != 4:
        print(json.dumps({"kind": "usage", "error": "usage: MODULE LABEL PIN_FILE SO_PIN_FILE"}))
        return 2
    try:
        created = ensure(*argv)
    except _Failure as exc:
        print(json.dumps({"kind": exc.kind, "error": str(exc)}))
        return 1
    except p11e.PKCS11Error as exc:
        print(json.dumps({"kind": "init", "error": f"PKCS#11 error: {type(exc).__name__} {exc}"}))
        return 1
    except OSError as exc:
        print(json.dumps({"kind": "pin", "error": f"cannot write PIN file {exc.filename}: {exc.strerror}"}))
        return 1
    print(json.dumps({"created": created}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
