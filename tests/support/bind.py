"""A real BIND 9 (`named`, Debian package bind9) on loopback for DNS tests: generated config, zones and TSIG key."""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import dns.exception

from scaivault_pki.plugins.propagation import Nameserver, query_direct, txt_values
from tests.support.daemon import free_port

NAMED = shutil.which("named") or "/usr/sbin/named"

#: Zone that accepts TXT updates signed with the test key.
UPDATABLE_ZONE = "example.test"
#: Zone without any update permission: every UPDATE is REFUSED.
LOCKED_ZONE = "locked.test"
KEY_NAME = "svp-test-key"


def have_named() -> bool:
    return os.path.exists(NAMED)


@dataclass
class BindServer:
    """A running `named` serving the test zones on 127.0.0.1:``port``."""

    port: int
    key_name: str
    key_secret: str
    directory: Path
    process: subprocess.Popen

    @property
    def nameserver(self) -> Nameserver:
        return Nameserver("127.0.0.1", self.port)

    def txt(self, fqdn: str) -> set[str]:
        """The TXT values the server itself answers for ``fqdn`` (asked directly, no recursion)."""
        return txt_values(query_direct(fqdn, "TXT", self.nameserver, 3.0), fqdn)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        return (self.directory / "named.log").read_text(errors="replace") if (self.directory / "named.log").exists() else ""


def _zone_file(zone: str) -> str:
    return f"""$TTL 60
@ IN SOA ns1.{zone}. hostmaster.{zone}. ( 1 60 60 3600 60 )
@ IN NS ns1.{zone}.
ns1 IN A 127.0.0.1
www IN A 192.0.2.10
"""


def start_bind(directory: Path) -> BindServer:
    """Write a config and zones under ``directory`` and start `named` in the foreground on a free port."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    secret = base64.b64encode(secrets.token_bytes(32)).decode()
    for zone in (UPDATABLE_ZONE, LOCKED_ZONE):
        (directory / f"db.{zone}").write_text(_zone_file(zone))
    (directory / "named.conf").write_text(f"""
options {{
    directory "{directory}";
    pid-file "{directory}/named.pid";
    session-keyfile "{directory}/session.key";
    managed-keys-directory "{directory}";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    notify no;
    dnssec-validation no;
}};
controls {{ }};
logging {{
    channel file {{ file "{directory}/named.log"; severity info; print-time yes; }};
    category default {{ file; }};
}};
key "{KEY_NAME}" {{ algorithm hmac-sha256; secret "{secret}"; }};
zone "{UPDATABLE_ZONE}" {{
    type primary;
    file "{directory}/db.{UPDATABLE_ZONE}";
    update-policy {{ grant {KEY_NAME} zonesub TXT; }};
}};
zone "{LOCKED_ZONE}" {{
    type primary;
    file "{directory}/db.{LOCKED_ZONE}";
}};
""")
    process = subprocess.Popen(
        [NAMED, "-g", "-n", "1", "-c", str(directory / "named.conf")],
        stdout=subprocess.DEVNULL, stderr=(directory / "named.stderr").open("w"),
    )
    server = BindServer(port, KEY_NAME, secret, directory, process)
    deadline = time.monotonic() + 20
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"named exited: {(directory / 'named.stderr').read_text()}")
        try:
            if query_direct(UPDATABLE_ZONE, "SOA", server.nameserver, 0.5).answer:
                return server
        except (dns.exception.DNSException, OSError):
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"named did not answer on port {port}: {(directory / 'named.stderr').read_text()}")
        time.sleep(0.1)
