"""Pebble (Let's Encrypt's test ACME server) and pebble-challtestsrv on loopback, for the ACME client's tests.

Debian packages ``pebble`` (2.4.0): ``/usr/bin/pebble`` and ``/usr/bin/pebble-challtestsrv``. Pebble really
validates challenges (no ``PEBBLE_VA_ALWAYS_VALID``): it resolves names through challtestsrv's DNS server, where
the tests add A records pointing at 127.0.0.1, and connects to ``http_port`` (http-01) and ``tls_port``
(tls-alpn-01) there. Its HTTPS listener uses a certificate made here for 127.0.0.1/localhost; ``ca_bundle`` is
the file a client must trust to talk to it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.daemon import free_port

PEBBLE = "/usr/bin/pebble"
CHALLTESTSRV = "/usr/bin/pebble-challtestsrv"


def have_pebble() -> bool:
    """Whether Debian's pebble package is installed."""
    return shutil.which(PEBBLE) is not None and shutil.which(CHALLTESTSRV) is not None


def write_tls_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed EC certificate for 127.0.0.1 and localhost: (certificate path, key path)."""
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pebble test listener")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "listener.pem", directory / "listener.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _wait_for_port(port: int, process: subprocess.Popen, log_path: Path, what: str) -> None:
    import socket

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{what} exited with {process.returncode}:\n{log_path.read_text(errors='replace')}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"{what} did not listen on {port}:\n{log_path.read_text(errors='replace')}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class ChallTestSrv:
    """pebble-challtestsrv: the DNS server Pebble resolves through, with its management API."""

    dns_port: int
    management_url: str
    process: subprocess.Popen

    def add_a(self, host: str, address: str = "127.0.0.1") -> None:
        """Answer A queries for ``host`` with ``address`` (only: an earlier address is removed)."""
        requests.post(f"{self.management_url}/clear-a", json={"host": host}, timeout=5).raise_for_status()
        response = requests.post(f"{self.management_url}/add-a", json={"host": host, "addresses": [address]}, timeout=5)
        response.raise_for_status()

    def set_txt(self, fqdn: str, value: str) -> None:
        """Serve ``value`` as a TXT record at ``fqdn`` (what an operator does by hand for manual dns-01)."""
        response = requests.post(f"{self.management_url}/set-txt", json={"host": fqdn.rstrip(".") + ".", "value": value},
                                 timeout=5)
        response.raise_for_status()

    def stop(self) -> None:
        _stop(self.process)


def start_challtestsrv(directory: Path) -> ChallTestSrv:
    """challtestsrv with DNS on a free loopback port and its own http-01/tls-alpn-01 responders switched off."""
    dns_port, management_port = free_port(), free_port()
    log_path = directory / "challtestsrv.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [CHALLTESTSRV, "-dns01", f"127.0.0.1:{dns_port}", "-management", f"127.0.0.1:{management_port}",
             "-http01", "", "-https01", "", "-tlsalpn01", "", "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""],
            stdout=log, stderr=subprocess.STDOUT,
        )
    _wait_for_port(management_port, process, log_path, "pebble-challtestsrv")
    return ChallTestSrv(dns_port, f"http://127.0.0.1:{management_port}", process)


@dataclass
class Pebble:
    """A running Pebble: its directory URL, the CA bundle to trust for it, and its management API."""

    directory_url: str
    management_url: str
    ca_bundle: Path
    process: subprocess.Popen
    log_path: Path
    eab_keys: dict[str, str] = field(default_factory=dict)

    def root_pem(self) -> str:
        """The current root of Pebble's issuance chain (it makes a new one at every start)."""
        return self._management("/roots/0")

    def intermediate_pem(self) -> str:
        return self._management("/intermediates/0")

    def _management(self, path: str) -> str:
        response = requests.get(self.management_url + path, verify=str(self.ca_bundle), timeout=5)
        response.raise_for_status()
        return response.text

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        _stop(self.process)


def start_pebble(directory: Path, *, dns_port: int, http_port: int, tls_port: int,
                 eab_keys: dict[str, str] | None = None, validity_seconds: int | None = None,
                 extra_env: dict[str, str] | None = None) -> Pebble:
    """Pebble on free loopback ports, resolving through ``127.0.0.1:dns_port``; EAB required when ``eab_keys``.

    ``validity_seconds`` shortens the certificates Pebble issues (renewal tests).
    """
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = write_tls_certificate(directory)
    port, management_port = free_port(), free_port()
    config = {
        "pebble": {
            "listenAddress": f"127.0.0.1:{port}",
            "managementListenAddress": f"127.0.0.1:{management_port}",
            "certificate": str(cert_path),
            "privateKey": str(key_path),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": bool(eab_keys),
            "externalAccountMACKeys": eab_keys or {},
        }
    }
    if validity_seconds is not None:
        config["pebble"]["certificateValidityPeriod"] = validity_seconds
    config_path = directory / "pebble-config.json"
    config_path.write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PEBBLE_")}
    # Every request carries a valid nonce (the client is tested, not its nonce-retry), validation without the
    # random sleeps; the VA itself really connects to our challenge responders.
    env.update({"PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_AUTHZREUSE": "0"})
    env.update(extra_env or {})
    log_path = directory / "pebble.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [PEBBLE, "-config", str(config_path), "-dnsserver", f"127.0.0.1:{dns_port}"],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=directory,
        )
    _wait_for_port(port, process, log_path, "pebble")
    _wait_for_port(management_port, process, log_path, "pebble management")
    return Pebble(f"https://127.0.0.1:{port}/dir", f"https://127.0.0.1:{management_port}", cert_path, process,
                  log_path, dict(eab_keys or {}))


def pebble_cert_status(pebble: Pebble, serial_hex: str) -> dict:
    """Pebble's view of one of its certificates (management API ``/cert-status-by-serial``)."""
    response = requests.get(f"{pebble.management_url}/cert-status-by-serial/{serial_hex}", verify=str(pebble.ca_bundle),
                            timeout=5)
    response.raise_for_status()
    return response.json()
