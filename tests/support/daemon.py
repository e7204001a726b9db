"""Starting the real daemon for tests: `scaivault-pki` as a subprocess with its own data dir."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

CLI = str(Path(sys.executable).with_name("scaivault-pki"))
SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"


def have_softhsm() -> bool:
    return os.path.exists(SOFTHSM_MODULE) and shutil.which("softhsm2-util") is not None


def daemon_env(data_dir: Path, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCAIVAULT_PKI_") and k != "SOFTHSM2_CONF"}
    env["SCAIVAULT_PKI_DATA_DIR"] = str(data_dir)
    env.update({f"SCAIVAULT_PKI_{k.upper()}": v for k, v in overrides.items()})
    return env


def run_cli(data_dir: Path, *args: str, check: bool = True, **overrides: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [CLI, *args], env=daemon_env(data_dir, **overrides), capture_output=True, text=True, timeout=120
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"scaivault-pki {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc


def init_data_dir(data_dir: Path, **overrides: str) -> str:
    """Run `scaivault-pki init --json` and return the bootstrap admin token."""
    out = json.loads(run_cli(data_dir, "init", "--json", **overrides).stdout)
    assert out["tenant"] == "default" and out["token"].startswith("svp_")
    return out["token"]


def create_token(data_dir: Path, tenant: str, *scopes: str, **overrides: str) -> str:
    out = json.loads(run_cli(data_dir, "token", "create", "--tenant", tenant, "--scope", *scopes, "--json", **overrides).stdout)
    return out["token"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningDaemon:
    url: str
    process: subprocess.Popen
    log_path: Path
    data_dir: Path
    env: dict = field(default_factory=dict)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_daemon(data_dir: Path, workers: int = 2, port: int | None = None, **overrides: str) -> RunningDaemon:
    """`scaivault-pki serve` on ``port`` (default: a free loopback port); returns once /v1/sys/health answers (200 or 503)."""
    port = port or free_port()
    env = daemon_env(data_dir, listen=f"127.0.0.1:{port}", workers=str(workers), **overrides)
    log_path = data_dir / f"serve-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([CLI, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    daemon = RunningDaemon(f"http://127.0.0.1:{port}", process, log_path, data_dir, env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"daemon exited with {process.returncode}:\n{daemon.log()}")
        try:
            requests.get(daemon.url + "/v1/sys/health", timeout=2)
            return daemon
        except requests.ConnectionError:
            time.sleep(0.2)
    daemon.stop()
    raise AssertionError(f"daemon did not answer within 60 s:\n{daemon.log()}")
