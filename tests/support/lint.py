"""Run external checkers (pkilint, ``openssl verify``) over certificates in tests.

pkilint is run through its command-line tools, as a subprocess, so the tests
exercise exactly what an operator would run, and a pkilint crash cannot take
the test process down with it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import pem

#: pkilint command line per kind of document.  ``cabf_serverauth`` uses
#: ``--detect``: pkilint picks the certificate type (DV/OV/..., root, CA)
#: from the CA/B Forum policy OIDs, EKUs and basic constraints.
PKILINT_COMMANDS: dict[str, tuple[str, ...]] = {
    "pkix": ("lint_pkix_cert", "lint"),
    "cabf_serverauth": ("lint_cabf_serverauth_cert", "lint", "--detect"),
    "crl": ("lint_crl", "lint", "--type", "CRL", "--profile", "PKIX"),
    "crl_br": ("lint_crl", "lint", "--type", "CRL", "--profile", "BR"),
}

_BLOCKING_SEVERITIES = frozenset({"FATAL", "ERROR"})


@dataclass(frozen=True)
class LintReport:
    """pkilint findings split into blocking (ERROR/FATAL) and the rest."""

    errors: list[str]
    #: WARNING / NOTICE / INFO findings: worth printing, not failing on
    notes: list[str]


def _tool(name: str) -> Path:
    # The console scripts sit next to the interpreter of the venv running the
    # tests; no PATH lookup, so a system-wide pkilint can never be picked up.
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise FileNotFoundError(f"{name} not found next to {sys.executable}; install pkilint")
    return path


def _to_pem(der_or_pem: bytes, label: str = "CERTIFICATE") -> bytes:
    if pem.detect(der_or_pem):
        return der_or_pem
    return bytes(pem.armor(label, der_or_pem))


def pkilint_report(der_or_pem: bytes, kind: str, extra_args: Sequence[str] = ()) -> LintReport:
    """Lint a DER or PEM document with the pkilint tool for ``kind``.

    ``kind`` is a key of :data:`PKILINT_COMMANDS` (``"pkix"``,
    ``"cabf_serverauth"``, ``"crl"``, ``"crl_br"``).  Each finding is
    formatted as ``"SEVERITY code @ node.path: message"``.  Raises
    ``RuntimeError`` if the tool fails to run or to load the document.
    """
    if kind not in PKILINT_COMMANDS:
        raise ValueError(f"unknown lint kind {kind!r}; expected one of {sorted(PKILINT_COMMANDS)}")
    tool, *arguments = PKILINT_COMMANDS[kind]
    with tempfile.NamedTemporaryFile(suffix=".der") as document:
        document.write(der_or_pem)
        document.flush()
        process = subprocess.run(
            [
                str(_tool(tool)),
                *arguments,
                *extra_args,
                "--severity",
                "ALL",
                "--format",
                "JSON",
                document.name,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    # The exit status is the number of findings, so only unparsable output
    # (or a traceback on stderr) means the tool itself failed.
    try:
        output = json.loads(process.stdout)
    except json.JSONDecodeError as exc:
        raise RuntimeError(
            f"{tool} failed (exit {process.returncode}): {process.stderr or process.stdout}"
        ) from exc
    errors: list[str] = []
    notes: list[str] = []
    for result in output["results"]:
        for finding in result["finding_descriptions"]:
            severity = finding["severity"]
            if severity == "DEBUG":
                continue
            text = f"{severity} {finding['code']} @ {result['node_path']}"
            if finding.get("message"):
                text += f": {finding['message']}"
            (errors if severity in _BLOCKING_SEVERITIES else notes).append(text)
    return LintReport(errors=errors, notes=notes)


def pkilint_errors(der_or_pem: bytes, kind: str) -> list[str]:
    """Return only the ERROR/FATAL pkilint findings (see :func:`pkilint_report`)."""
    return pkilint_report(der_or_pem, kind).errors


def openssl_verify(
    ca_file_pems: Sequence[bytes],
    untrusted: Sequence[bytes],
    leaf: bytes,
    *,
    x509_strict: bool = True,
    purpose: str | None = None,
) -> tuple[bool, str]:
    """Run ``openssl verify`` on ``leaf`` with trust anchors and untrusted intermediates.

    Inputs may be DER or PEM.  ``x509_strict`` (default on) makes OpenSSL
    also enforce RFC 5280 profile rules such as AKI/SKI presence and
    basicConstraints criticality.  ``purpose`` is an OpenSSL purpose such as
    ``"sslserver"``.  Returns ``(ok, combined output)``.
    """
    if not ca_file_pems:
        raise ValueError("at least one trust anchor is required")
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        ca_file = folder / "ca.pem"
        ca_file.write_bytes(b"".join(_to_pem(c) for c in ca_file_pems))
        leaf_file = folder / "leaf.pem"
        leaf_file.write_bytes(_to_pem(leaf))
        command = ["openssl", "verify", "-CAfile", str(ca_file)]
        if untrusted:
            untrusted_file = folder / "untrusted.pem"
            untrusted_file.write_bytes(b"".join(_to_pem(c) for c in untrusted))
            command += ["-untrusted", str(untrusted_file)]
        if x509_strict:
            command.append("-x509_strict")
        if purpose:
            command += ["-purpose", purpose]
        command.append(str(leaf_file))
        process = subprocess.run(command, capture_output=True, text=True, timeout=60)
    output = (process.stdout + process.stderr).strip()
    return process.returncode == 0 and output.endswith("OK"), output
