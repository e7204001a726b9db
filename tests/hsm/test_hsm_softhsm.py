"""SoftHSM deployment helpers: config file, idempotent token creation, no library in the caller."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from scaivault_pki.hsm import (
    HsmModuleError,
    ensure_softhsm_token,
    is_softhsm_module,
    write_softhsm_conf,
)

if TYPE_CHECKING:
    from conftest import SoftHsmSetup

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
needs_softhsm = pytest.mark.skipif(not os.path.exists(SOFTHSM_MODULE), reason="SoftHSM2 not installed")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/usr/lib/softhsm/libsofthsm2.so", True),
        ("/opt/SoftHSM/lib/LIBSOFTHSM2.so", True),
        ("/usr/lib/libCryptoki2_64.so", False),
        ("/opt/softhsm/libother.so", False),  # only the file name counts
    ],
)
def test_is_softhsm_module(path: str, expected: bool) -> None:
    assert is_softhsm_module(path) is expected


def test_write_softhsm_conf(tmp_path: Path) -> None:
    conf = tmp_path / "etc" / "softhsm2.conf"
    token_dir = tmp_path / "tokens"
    write_softhsm_conf(str(conf), str(token_dir))
    lines = {
        key.strip(): value.strip()
        for key, _, value in (
            line.partition("=") for line in conf.read_text().splitlines() if line and not line.startswith("#")
        )
    }
    assert lines == {
        "directories.tokendir": str(token_dir),
        "objectstore.backend": "file",
        "log.level": "ERROR",
        "slots.removable": "false",
    }
    assert mode(token_dir) == 0o700
    write_softhsm_conf(str(conf), str(token_dir))  # rewriting is fine
    assert list(conf.parent.iterdir()) == [conf]  # no temp files left


def test_ensure_is_idempotent(softhsm: SoftHsmSetup) -> None:
    """The session fixture created the token; a second call changes nothing."""
    pins_before = (softhsm.pin_file.read_bytes(), softhsm.so_pin_file.read_bytes())
    assert ensure_softhsm_token(
        softhsm.module, str(softhsm.conf), str(softhsm.token_dir), softhsm.label,
        str(softhsm.pin_file), str(softhsm.so_pin_file),
    ) is False
    assert (softhsm.pin_file.read_bytes(), softhsm.so_pin_file.read_bytes()) == pins_before
    assert mode(softhsm.pin_file) == 0o600
    assert mode(softhsm.so_pin_file) == 0o600
    assert mode(softhsm.token_dir) == 0o700
    assert len(softhsm.pin) >= 20 and softhsm.pin != softhsm.so_pin_file.read_text().strip()


@needs_softhsm
def test_ensure_never_loads_the_library_in_the_caller(tmp_path: Path) -> None:
    """Run in a fresh interpreter, which could then safely fork workers."""
    code = textwrap.dedent(
        """
        import json, sys
        from scaivault_pki.hsm import ensure_softhsm_token
        d = sys.argv[1]
        args = ("/usr/lib/softhsm/libsofthsm2.so", d + "/softhsm2.conf", d + "/tokens",
                "fresh", d + "/pins/user.pin", d + "/pins/so.pin")
        results = [ensure_softhsm_token(*args), ensure_softhsm_token(*args)]
        import pkcs11
        maps = open("/proc/self/maps").read()
        print(json.dumps({"results": results, "loaded": sorted(pkcs11._loaded),
                          "mapped": "softhsm" in maps}))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "SOFTHSM2_CONF"}
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], env=env,
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"results": [True, False], "loaded": [], "mapped": False}
    assert mode(tmp_path / "pins" / "user.pin") == 0o600
    assert mode(tmp_path / "pins" / "so.pin") == 0o600


@needs_softhsm
def test_ensure_uses_existing_pin_files(tmp_path: Path) -> None:
    """Pre-provisioned PINs are used as they are (checked with pkcs11-tool, another client)."""
    pkcs11_tool = shutil.which("pkcs11-tool")
    if pkcs11_tool is None:
        pytest.skip("opensc pkcs11-tool not installed")
    pin_file, so_pin_file = tmp_path / "user.pin", tmp_path / "so.pin"
    pin_file.write_text("operator-chosen-pin\n")
    so_pin_file.write_text("operator-chosen-so-pin\n")
    conf = tmp_path / "softhsm2.conf"
    assert ensure_softhsm_token(
        SOFTHSM_MODULE, str(conf), str(tmp_path / "tokens"), "provisioned", str(pin_file), str(so_pin_file)
    ) is True
    assert pin_file.read_text() == "operator-chosen-pin\n"
    env = dict(os.environ, SOFTHSM2_CONF=str(conf), TEST_PIN="operator-chosen-pin")
    listing = subprocess.run(
        [pkcs11_tool, "--module", SOFTHSM_MODULE, "--token-label", "provisioned",
         "--login", "--pin", "env:TEST_PIN", "--list-objects"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert listing.returncode == 0, listing.stderr


def test_ensure_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        ensure_softhsm_token(SOFTHSM_MODULE, str(tmp_path / "c"), str(tmp_path / "t"), "x" * 33,
                             str(tmp_path / "p"), str(tmp_path / "s"))
    with pytest.raises(HsmModuleError):
        ensure_softhsm_token("/nonexistent/libsofthsm2.so", str(tmp_path / "c"), str(tmp_path / "t"),
                             "label", str(tmp_path / "p"), str(tmp_path / "s"))
