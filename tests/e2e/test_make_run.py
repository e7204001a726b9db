"""The README's run command: `make run` initialises the embedded default, prints an admin token and serves."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.support.daemon import free_port

pytestmark = [pytest.mark.needs_softhsm, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def test_make_run_prints_a_token_and_serves(tmp_path):
    port = free_port()
    venv = Path(sys.executable).parent.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCAIVAULT_PKI_")}
    env["SCAIVAULT_PKI_LISTEN"] = f"127.0.0.1:{port}"
    # `deps` and `venv` are what this very test run already stands on; -o keeps make from redoing them.
    process = subprocess.Popen(
        ["make", "-s", "-o", "deps", "-o", "venv", "run", f"DATA_DIR={tmp_path / 'data'}", f"VENV={venv}"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    output, token = b"", None
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and token is None:
            ready, _, _ = select.select([process.stdout], [], [], 1)
            if ready:
                chunk = os.read(process.stdout.fileno(), 65536)
                if not chunk:
                    break
                output += chunk
                if match := re.search(rb"svp_[A-Za-z0-9_-]{40,}", output):
                    token = match.group().decode()
        assert token, output.decode(errors="replace")
        while time.monotonic() < deadline:
            try:
                health = requests.get(f"http://127.0.0.1:{port}/v1/sys/health", timeout=2)
                break
            except requests.ConnectionError:
                time.sleep(0.3)
        assert health.status_code == 200, health.text
        listed = requests.get(f"http://127.0.0.1:{port}/v1/pki/ca", headers={"Authorization": f"Bearer {token}"}, timeout=5)
        assert listed.status_code == 200 and listed.json() == {"items": [], "next_cursor": None}
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    assert (tmp_path / "data" / "tokens").is_dir() and (tmp_path / "data" / "scaivault-pki.db").exists()
