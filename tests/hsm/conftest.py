"""Fixtures for the key-custody tests: one real SoftHSM token per pytest process.

SoftHSM reads SOFTHSM2_CONF once, when the library is first loaded, and a
process can load it only once, so every test in this pytest process shares the
session's token directory (the one `scaivault-pki init` made for the API tests,
under pytest's tmp_path_factory, so runs never share tokens). These tests get a
token of their own in it, under another label.  Tests needing a clean process
use subprocesses or fork.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from scaivault_pki.hsm import GeneratedKey, Token, ensure_softhsm_token

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
from tests.conftest import HSM_TEST_LABEL as TOKEN_LABEL


@dataclass(frozen=True)
class SoftHsmSetup:
    module: str
    conf: Path
    token_dir: Path
    label: str
    pin_file: Path
    so_pin_file: Path

    @property
    def pin(self) -> str:
        return self.pin_file.read_text().strip()

    def token(self, *, label: str | None = None, pin_file: Path | None = None) -> Token:
        """A new Token object on this setup (not opened)."""
        return Token(
            self.module,
            label or self.label,
            str(pin_file or self.pin_file),
            softhsm_conf=str(self.conf),
        )


@pytest.fixture(scope="session")
def softhsm(data_dir: Path, admin_token: str) -> SoftHsmSetup:
    """A freshly initialised SoftHSM token of its own in the session's token directory."""
    if not os.path.exists(SOFTHSM_MODULE):
        pytest.skip(f"SoftHSM2 not installed ({SOFTHSM_MODULE} missing)")
    base = data_dir / "hsm-tests"
    setup = SoftHsmSetup(
        module=SOFTHSM_MODULE,
        conf=data_dir / "softhsm2.conf",
        token_dir=data_dir / "tokens",
        label=TOKEN_LABEL,
        pin_file=base / "user.pin",
        so_pin_file=base / "so.pin",
    )
    # The root conftest made this token before anything in this process loaded SoftHSM.
    created = ensure_softhsm_token(
        setup.module,
        str(setup.conf),
        str(setup.token_dir),
        setup.label,
        str(setup.pin_file),
        str(setup.so_pin_file),
    )
    assert created is False and setup.pin_file.exists()
    return setup


@pytest.fixture(scope="session")
def token(softhsm: SoftHsmSetup) -> Iterator[Token]:
    """The process's open Token on the test token."""
    tok = softhsm.token()
    tok.open()
    yield tok
    tok.close()


@pytest.fixture(scope="session")
def keys(token: Token) -> dict[str, GeneratedKey]:
    """One key pair of every supported type/size, generated once (RSA-4096 is slow)."""
    specs = {
        "rsa2048": ("rsa", 2048),
        "rsa3072": ("rsa", 3072),
        "rsa4096": ("rsa", 4096),
        "ec256": ("ec", 256),
        "ec384": ("ec", 384),
    }
    return {
        name: token.generate_key_pair(key_type, size, f"test-{name}")
        for name, (key_type, size) in specs.items()
    }


@pytest.fixture(scope="session")
def pkcs11_tool() -> str:
    tool = shutil.which("pkcs11-tool")
    if tool is None:
        pytest.skip("opensc pkcs11-tool not installed")
    return tool


def run_pkcs11_tool(softhsm: SoftHsmSetup, tool: str, *args: str) -> str:
    """Run opensc's pkcs11-tool, logged in to the test token (PIN via the environment)."""
    env = dict(os.environ, SOFTHSM2_CONF=str(softhsm.conf), SCAIVAULT_TEST_PIN=softhsm.pin)
    result = subprocess.run(
        [tool, "--module", softhsm.module, "--token-label", softhsm.label,
         "--login", "--pin", "env:SCAIVAULT_TEST_PIN", *args],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def objects_by_id(listing: str) -> dict[str, list[str]]:
    """Split `pkcs11-tool --list-objects` output into object blocks, by hex CKA_ID."""
    blocks: dict[str, list[str]] = {}
    for block in re.split(r"\n(?=\S)", listing):
        match = re.search(r"^\s*ID:\s*([0-9a-f]+)\s*$", block, re.MULTILINE)
        if match:
            blocks.setdefault(match.group(1), []).append(block)
    return blocks
