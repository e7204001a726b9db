"""Helpers for the embedded default deployment on SoftHSM2.

None of these load the PKCS#11 library in the calling process: the daemon's
gunicorn master calls them before forking workers, and a library initialised
before fork() is unusable in the children.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from .errors import HsmError, HsmModuleError, HsmPinUnavailable, HsmUnavailable

__all__ = ["ensure_softhsm_token", "is_softhsm_module", "write_softhsm_conf"]

_INIT_SCRIPT = Path(__file__).with_name("_softhsm_init.py")
_INIT_TIMEOUT_SECONDS = 120
_MAX_LABEL_BYTES = 32  # CK_TOKEN_INFO.label


def is_softhsm_module(module_path: str) -> bool:
    """True if ``module_path`` looks like SoftHSM (its file name contains "softhsm")."""
    return "softhsm" in os.path.basename(module_path).lower()


def _make_private_dir(path: str) -> None:
    os.makedirs(path, mode=0o700, exist_ok=True)
    # makedirs honours the umask and leaves existing directories alone.
    os.chmod(path, 0o700)


def write_softhsm_conf(conf_path: str, token_dir: str) -> None:
    """Write a SoftHSM2 config that keeps tokens in ``token_dir`` (created 0700).

    Rewritten atomically on every call; the content only depends on the
    arguments.
    """
    token_dir = os.path.abspath(token_dir)
    if "\n" in token_dir or "\r" in token_dir:
        raise ValueError("token directory path must not contain line breaks")
    _make_private_dir(token_dir)
    content = (
        "# Written by scaivault_pki.hsm.softhsm; changes are overwritten.\n"
        f"directories.tokendir = {token_dir}\n"
        "objectstore.backend = file\n"
        "log.level = ERROR\n"
        "slots.removable = false\n"
    )
    conf_dir = os.path.dirname(os.path.abspath(conf_path))
    os.makedirs(conf_dir, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(dir=conf_dir, prefix=".softhsm2.conf.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
        os.chmod(tmp_path, 0o600)
        os.replace(tmp_path, conf_path)
    except BaseException:
        try:
            os.unlink(tmp_path)
        except FileNotFoundError:
            pass
        raise


def ensure_softhsm_token(
    module_path: str,
    conf_path: str,
    token_dir: str,
    label: str,
    pin_file: str,
    so_pin_file: str,
) -> bool:
    """Make sure a SoftHSM token labelled ``label`` exists; True if it was created now.

    Writes ``conf_path`` (see :func:`write_softhsm_conf`) if it is missing.
    When the token has to be created, missing ``pin_file`` / ``so_pin_file``
    are filled with random PINs (mode 0600); existing PIN files are used
    as they are and never rewritten.  An existing token leaves everything
    untouched.

    The check and initialisation run in a subprocess, so the calling process
    never loads the PKCS#11 library and may fork workers afterwards.  PINs
    pass through the PIN files only, never a command line: python-pkcs11 0.10
    has no C_InitToken, so the subprocess calls it through ctypes instead of
    running ``softhsm2-util --init-token --pin ... --so-pin ...``.
    """
    if not label or len(label.encode("utf-8")) > _MAX_LABEL_BYTES:
        raise ValueError(f"token label must be 1 to {_MAX_LABEL_BYTES} bytes of UTF-8")
    if not os.path.isfile(module_path):
        raise HsmModuleError(f"PKCS#11 module {module_path} does not exist")
    _make_private_dir(token_dir)
    if not os.path.exists(conf_path):
        write_softhsm_conf(conf_path, token_dir)

    command = [
        sys.executable,
        "-I",  # keeps hsm/ off sys.path; see _softhsm_init's docstring
        str(_INIT_SCRIPT),
        os.path.abspath(module_path),
        label,
        os.path.abspath(pin_file),
        os.path.abspath(so_pin_file),
    ]
    env = dict(os.environ, SOFTHSM2_CONF=os.path.abspath(conf_path))
    # Serialise concurrent callers (e.g. two daemons starting at once) so that
    # they do not both create a token with the same label.
    with open(os.path.abspath(conf_path) + ".lock", "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            result = subprocess.run(
                command,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=_INIT_TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise HsmUnavailable(
                f"SoftHSM token initialisation did not finish within {_INIT_TIMEOUT_SECONDS}s"
            ) from None
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
    return _parse_result(result)


def _parse_result(result: subprocess.CompletedProcess[str]) -> bool:
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    try:
        answer = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        answer = {}
    if result.returncode == 0 and isinstance(answer.get("created"), bool):
        return bool(answer["created"])
    message = answer.get("error")
    if not message:
        tail = result.stderr.strip().splitlines()[-1:] or ["no output"]
        message = f"initialisation subprocess exited with status {result.returncode}: {tail[0]}"
    error_class: type[HsmError] = {
        "module": HsmModuleError,
        "pin": HsmPinUnavailable,
    }.get(answer.get("kind", ""), HsmUnavailable)
    raise error_class(f"cannot ensure SoftHSM token: {message}")
