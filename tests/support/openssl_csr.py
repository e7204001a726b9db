"""The ``openssl`` command line as an independent CSR producer and verifier, for tests only."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

HAVE_OPENSSL = shutil.which("openssl") is not None


def _run(args: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, check=False, timeout=120
    )


def openssl_key(directory: Path, name: str, spec: str, *, pkeyopts: Sequence[str] = ()) -> Path:
    """Generate a private key with ``openssl genpkey``.

    ``spec`` is ``"rsa:BITS"`` or ``"ec:CURVE"`` (an OpenSSL curve name, e.g.
    ``prime256v1``); ``pkeyopts`` are extra ``-pkeyopt`` values.
    """
    kind, _, value = spec.partition(":")
    path = directory / f"{name}.key"
    if kind == "rsa":
        options = ["-algorithm", "RSA", "-pkeyopt", f"rsa_keygen_bits:{value}"]
    elif kind == "ec":
        options = ["-algorithm", "EC", "-pkeyopt", f"ec_paramgen_curve:{value}"]
    else:
        raise ValueError(f"unknown key spec {spec!r}")
    for value in pkeyopts:
        options += ["-pkeyopt", value]
    result = _run(["genpkey", *options, "-out", str(path)], directory)
    if result.returncode != 0:
        raise RuntimeError(f"openssl genpkey failed: {result.stderr.decode(errors='replace')}")
    return path


def openssl_req(
    directory: Path,
    key: Path,
    subject: str,
    *,
    addext: Sequence[str] = (),
    extra: Sequence[str] = (),
    der: bool = False,
) -> bytes:
    """Return a CSR made by ``openssl req -new`` for ``key`` (PEM, or DER if ``der``).

    ``subject`` is in OpenSSL's ``/CN=x/O=y`` form (``"/"`` for the empty
    name); each ``addext`` is passed as ``-addext``.
    """
    out = directory / f"req-{len(list(directory.iterdir()))}.{'der' if der else 'pem'}"
    args = ["req", "-new", "-key", str(key), "-subj", subject, "-out", str(out)]
    for value in addext:
        args += ["-addext", value]
    if der:
        args += ["-outform", "DER"]
    result = _run([*args, *extra], directory)
    if result.returncode != 0:
        raise RuntimeError(f"openssl req failed: {result.stderr.decode(errors='replace')}")
    return out.read_bytes()


def openssl_verify(directory: Path, csr: bytes) -> tuple[bool, str]:
    """Return whether ``openssl req -verify`` accepts the PEM ``csr``, and its output."""
    path = directory / f"verify-{len(list(directory.iterdir()))}.pem"
    path.write_bytes(csr)
    result = _run(["req", "-verify", "-noout", "-in", str(path)], directory)
    output = (result.stdout + result.stderr).decode(errors="replace")
    return result.returncode == 0, output


def openssl_text(directory: Path, csr: bytes) -> str:
    """Return ``openssl req -text -noout`` for the PEM ``csr``."""
    path = directory / f"text-{len(list(directory.iterdir()))}.pem"
    path.write_bytes(csr)
    result = _run(["req", "-text", "-noout", "-in", str(path)], directory)
    if result.returncode != 0:
        raise RuntimeError(f"openssl req -text failed: {result.stderr.decode(errors='replace')}")
    return result.stdout.decode()
