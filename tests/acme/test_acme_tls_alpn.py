"""ACME tls-alpn-01 (RFC 8737) and the dedicated http-01 port: the challenge certificate, the challenge listener
in this process, and both through a real ``scaivault-pki serve`` against Pebble validating for real."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.conftest import auth
from tests.support.acme import create_account, drive_until_done, sqlite_rows
from tests.support.daemon import free_port, init_data_dir, start_daemon
from tests.support.lint import openssl_verify
from tests.support.pebble import start_pebble

ACME_IDENTIFIER = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.31")


def _digest_der(key_authorization: str) -> bytes:
    """extnValue of acmeIdentifier: the DER OCTET STRING of SHA-256(key authorization)."""
    return b"\x04\x20" + hashlib.sha256(key_authorization.encode("ascii")).digest()


def _assert_challenge_certificate(der: bytes, domain: str, key_authorization: str) -> None:
    cert = x509.load_der_x509_certificate(der)
    extension = cert.extensions.get_extension_for_oid(ACME_IDENTIFIER)
    assert extension.critical
    assert extension.value.value == _digest_der(key_authorization)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert list(san) == [x509.DNSName(domain)]


def _alpn_handshake(port: int, server_name: str | None, protocols: tuple[str, ...] = ("acme-tls/1",)) -> bytes:
    """A TLS handshake as a validator makes it; returns the server's certificate (DER). OSError when refused."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the certificate is self-signed; validators check its content
    if protocols:
        context.set_alpn_protocols(list(protocols))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=server_name) as tls:
            assert tls.selected_alpn_protocol() == "acme-tls/1"
            return tls.getpeercert(binary_form=True)


def _client_hello(server_name: str | None, protocols: list[str]) -> bytes:
    """The first record a Python TLS client sends."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if protocols:
        context.set_alpn_protocols(protocols)
    outgoing = ssl.MemoryBIO()
    tls = context.wrap_bio(ssl.MemoryBIO(), outgoing, server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


# -- the certificate -----------------------------------------------------------------------------------------


def test_challenge_certificate_carries_the_digest_critically_and_only_the_domain(tmp_path):
    from scaivault_pki.pki.acme_tls_alpn import challenge_certificate

    made = challenge_certificate("www.alpn-test.example", "token-abc.thumbprint-xyz")
    _assert_challenge_certificate(made.certificate.dump(), "www.alpn-test.example", "token-abc.thumbprint-xyz")

    # Self-signed with the key that comes with it, a fresh EC P-256 key.
    cert = x509.load_der_x509_certificate(made.certificate.dump())
    key = serialization.load_pem_private_key(made.private_key_pem.encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert key.public_key() == cert.public_key() and cert.issuer == cert.subject
    cert.public_key().verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(hashes.SHA256()))
    assert cert.not_valid_before_utc < dt.datetime.now(dt.timezone.utc) < cert.not_valid_after_utc
    assert challenge_certificate("www.alpn-test.example", "token-abc.thumbprint-xyz").private_key_pem != made.private_key_pem

    (tmp_path / "cert.pem").write_text(made.certificate_pem)
    text = subprocess.run(["openssl", "x509", "-in", str(tmp_path / "cert.pem"), "-noout", "-text"],
                          capture_output=True, text=True, check=True).stdout
    assert "1.3.6.1.5.5.7.1.31: critical" in text and "DNS:www.alpn-test.example" in text


@pytest.mark.parametrize("domain,key_authorization", [
    ("*.alpn-test.example", "t.k"), ("WWW.alpn-test.example", "t.k"), ("www.alpn-test.example.", "t.k"),
    ("www.alpn-test.example", "t\u00e9.k"),
])
def test_challenge_certificate_refuses_what_it_cannot_certify(domain, key_authorization):
    from scaivault_pki.pki.acme_tls_alpn import challenge_certificate

    with pytest.raises(ValueError):
        challenge_certificate(domain, key_authorization)


# -- the ClientHello parser ----------------------------------------------------------------------------------


def test_client_hello_names_sni_and_alpn():
    from scaivault_pki.challenge_listener import MalformedClientHello, parse_client_hello

    hello = parse_client_hello(_client_hello("www.alpn-test.example", ["h2", "acme-tls/1"]))
    assert hello.server_name == "www.alpn-test.example" and hello.alpn_protocols == ("h2", "acme-tls/1")
    assert parse_client_hello(_client_hello(None, [])).server_name is None
    record = _client_hello("www.alpn-test.example", ["acme-tls/1"])
    for bad in (record[:-1], record[:4], b"\x17" + record[1:], b"GET / HTTP/1.1\r\n\r\n"):
        with pytest.raises(MalformedClientHello):
            parse_client_hello(bad)


# -- the listener in this process ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def listener(services):
    """Both listeners in this process on free ports, over the session's database."""
    from scaivault_pki.challenge_listener import ChallengeListener

    running = ChallengeListener(http01=("127.0.0.1", 0), tls_alpn01=("127.0.0.1", 0))
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def alpn_pebble(tmp_path_factory, challtestsrv, listener):
    """Pebble validating http-01 and tls-alpn-01 against the listener."""
    server = start_pebble(tmp_path_factory.mktemp("pebble-alpn"), dns_port=challtestsrv.dns_port,
                          http_port=listener.port("http-01"), tls_port=listener.port("tls-alpn-01"))
    yield server
    server.stop()


def _place(client, admin_token, account_id, domains, challenge_type="tls-alpn-01"):
    placed = client.simulate_post("/v1/pki/acme/issue", headers=auth(admin_token), json={
        "account_id": account_id, "domains": domains, "challenge_type": challenge_type})
    assert placed.status_code == 202, placed.text
    return placed.json


def test_listener_refuses_unless_acme_tls_alpn_and_a_pending_name(client, admin_token, services, alpn_pebble,
                                                                    challtestsrv, listener):
    domain = "refuse.alpn-test.example"
    challtestsrv.add_a(domain)
    order = _place(client, admin_token, create_account(client, admin_token, alpn_pebble, "alpn-refusals"), [domain])
    challenge = order["challenges"][0]
    assert challenge["type"] == "tls-alpn-01"
    port = listener.port("tls-alpn-01")

    refused = [
        (domain, ()),  # no ALPN
        (domain, ("h2", "http/1.1")),  # ALPN without acme-tls/1
        ("unknown.alpn-test.example", ("acme-tls/1",)),  # no challenge for the name
        (None, ("acme-tls/1",)),  # no SNI
    ]
    for server_name, protocols in refused:
        with pytest.raises(OSError):
            _alpn_handshake(port, server_name, protocols)
    # Not TLS at all: closed, and the listener carries on.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(b"GET / HTTP/1.0\r\n\r\n")
        with contextlib.suppress(ConnectionResetError):
            assert raw.recv(100) == b""

    # SNI is matched without regard to case or a trailing dot, as DNS names are.
    for server_name in (domain, domain.upper()):
        der = _alpn_handshake(port, server_name)
        _assert_challenge_certificate(der, domain, challenge["tls_alpn01_key_authorization"])

    done = drive_until_done(client, admin_token, services, order["id"])
    assert done["status"] == "valid", done
    # The order is finished: its name is no longer answered.
    with pytest.raises(OSError):
        _alpn_handshake(port, domain)


def test_tls_alpn01_order_issues_a_certificate_chaining_to_pebbles_root(client, admin_token, services, alpn_pebble,
                                                                         challtestsrv, listener):
    domains = ["www.alpn-test.example", "api.alpn-test.example"]
    for name in domains:
        challtestsrv.add_a(name)
    order = _place(client, admin_token, create_account(client, admin_token, alpn_pebble, "alpn-e2e"), domains)
    assert order["challenge_type"] == "tls-alpn-01"
    for challenge in order["challenges"]:
        der = _alpn_handshake(listener.port("tls-alpn-01"), challenge["domain"])
        _assert_challenge_certificate(der, challenge["domain"], challenge["tls_alpn01_key_authorization"])

    done = drive_until_done(client, admin_token, services, order["id"])
    assert done["status"] == "valid", done
    assert all(c["status"] == "valid" for c in done["challenges"])
    cert = client.simulate_get(f"/v1/pki/certificates/{done['certificate_id']}", headers=auth(admin_token)).json
    assert sorted(cert["sans"]["dns"]) == sorted(domains)
    leaf_pem = client.simulate_get(f"/v1/pki/certificates/{done['certificate_id']}/pem", headers=auth(admin_token)).text
    ok, output = openssl_verify([alpn_pebble.root_pem().encode()], [done["chain_pem"].encode()], leaf_pem.encode(),
                                purpose="sslserver")
    assert ok, output


def test_http01_port_answers_only_challenge_tokens(client, admin_token, alpn_pebble, challtestsrv, listener):
    from scaivault_pki.challenge_listener import MAX_CONNECTIONS

    base = f"http://127.0.0.1:{listener.port('http-01')}"
    domain = "plain.alpn-test.example"
    challtestsrv.add_a(domain)
    order = _place(client, admin_token, create_account(client, admin_token, alpn_pebble, "http01-port"), [domain], "http-01")
    path = order["challenges"][0]["http01_path"]

    answer = requests.get(base + path, timeout=5)
    assert answer.status_code == 200 and answer.text.startswith(order["challenges"][0]["token"] + ".")
    assert answer.headers["Content-Type"] == "application/octet-stream"
    head = requests.head(base + path, timeout=5)
    assert head.status_code == 200 and head.headers["Content-Length"] == str(len(answer.content)) and not head.content
    for method, url in [("GET", base + "/.well-known/acme-challenge/unknown"), ("GET", base + "/v1/pki/ca"),
                        ("GET", base + "/v1/sys/health"), ("GET", base + path + "/more"), ("POST", base + path),
                        ("DELETE", base + path)]:
        response = requests.request(method, url, timeout=5)
        assert response.status_code == 404, (method, url)
        assert response.json()["error"]["code"] == "not_found"
    # A request line http.server cannot parse gets its own error answer; the port carries on.
    with socket.create_connection(("127.0.0.1", listener.port("http-01")), timeout=10) as raw:
        raw.sendall(b"NONSENSE\r\n\r\n")
        assert b"Bad request syntax" in raw.recv(4096)
    assert requests.get(base + path, timeout=5).status_code == 200

    # At most MAX_CONNECTIONS at once: one more is closed at once, and the port serves again once they are gone.
    idle = [socket.create_connection(("127.0.0.1", listener.port("http-01")), timeout=10) for _ in range(MAX_CONNECTIONS)]
    try:
        with socket.create_connection(("127.0.0.1", listener.port("http-01")), timeout=10) as extra:
            with contextlib.suppress(ConnectionResetError):
                assert extra.recv(100) == b""
    finally:
        for sock in idle:
            sock.close()
    deadline = time.monotonic() + 10
    while True:
        try:
            if requests.get(base + path, timeout=5).status_code == 200:
                break
        except requests.ConnectionError:
            pass  # a slot not yet given back
        assert time.monotonic() < deadline, "the http-01 port did not recover"
        time.sleep(0.05)


# -- through scaivault-pki serve -----------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    return [int(c) for task in Path(f"/proc/{pid}/task").iterdir() for c in (task / "children").read_text().split()]


def _wait_closed(port: int) -> None:
    deadline = time.monotonic() + 30
    while _port_open(port):
        assert time.monotonic() < deadline, f"port {port} still open"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def served_setup(tmp_path_factory, challtestsrv):
    """A data dir, the two challenge ports, and Pebble validating against them."""
    data_dir = tmp_path_factory.mktemp("serve-challenges")
    token = init_data_dir(data_dir)
    http_port, tls_port = free_port(), free_port()
    pebble = start_pebble(tmp_path_factory.mktemp("pebble-serve"), dns_port=challtestsrv.dns_port,
                          http_port=http_port, tls_port=tls_port)
    yield data_dir, token, http_port, tls_port, pebble
    pebble.stop()


def _start(data_dir: Path, http_port: int, tls_port: int):
    return start_daemon(data_dir, workers=1, acme_http01_listen=f"127.0.0.1:{http_port}",
                        acme_tls_alpn01_listen=f"127.0.0.1:{tls_port}")


@pytest.mark.needs_softhsm
@pytest.mark.slow
def test_serve_runs_the_listeners_and_orders_complete_through_them(served_setup, challtestsrv):
    data_dir, token, http_port, tls_port, pebble = served_setup
    for name in ("alpn.serve-test.example", "http.serve-test.example"):
        challtestsrv.add_a(name)
    # This test holds the order driver's lease at first, so the orders wait, unfinished, until it lets go.
    until = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).replace(tzinfo=None, microsecond=0)
    sqlite_rows(data_dir, "INSERT INTO job_leases (name, holder, expires_at) VALUES (?, ?, ?)", "acme.orders", "test", str(until))
    daemon = _start(data_dir, http_port, tls_port)
    try:
        api, plain = daemon.url, f"http://127.0.0.1:{http_port}"
        account = requests.post(f"{api}/v1/pki/acme/accounts", headers=auth(token), timeout=30, json={
            "name": "serve", "provider": "custom", "email": "ops@example.com", "directory_url": pebble.directory_url,
            "ca_bundle": pebble.ca_bundle.read_text()})
        assert account.status_code == 201, account.text
        orders = {}
        for challenge_type, domain in (("tls-alpn-01", "alpn.serve-test.example"), ("http-01", "http.serve-test.example")):
            placed = requests.post(f"{api}/v1/pki/acme/issue", headers=auth(token), timeout=30, json={
                "account_id": account.json()["id"], "domains": [domain], "challenge_type": challenge_type})
            assert placed.status_code == 202, placed.text
            orders[challenge_type] = placed.json()

        # The dedicated http-01 port: the unfinished order's token, and nothing else of the daemon.
        http01 = orders["http-01"]["challenges"][0]
        answer = requests.get(plain + http01["http01_path"], timeout=5)
        assert answer.status_code == 200 and answer.text.startswith(http01["token"] + ".")
        for path in ("/v1/pki/ca", "/v1/sys/health", "/.well-known/acme-challenge/unknown"):
            assert requests.get(plain + path, timeout=5).status_code == 404, path
        assert requests.get(api + "/v1/sys/health", timeout=5).status_code in (200, 503)
        alpn = orders["tls-alpn-01"]["challenges"][0]
        _assert_challenge_certificate(_alpn_handshake(tls_port, alpn["domain"]), alpn["domain"],
                                      alpn["tls_alpn01_key_authorization"])

        # Let the daemon's job drive both: Pebble validates through the serve-spawned listener's two ports.
        sqlite_rows(data_dir, "DELETE FROM job_leases WHERE name = 'acme.orders'")
        deadline = time.monotonic() + 60
        done = {}
        while len(done) < 2:
            assert time.monotonic() < deadline, f"orders not finished: {done}"
            for kind, order in orders.items():
                current = requests.get(f"{api}/v1/pki/acme/orders/{order['id']}", headers=auth(token), timeout=30).json()
                if current["status"] in ("valid", "invalid"):
                    done[kind] = current
            time.sleep(0.3)
        assert [o["status"] for o in done.values()] == ["valid", "valid"], done
        issued = done["tls-alpn-01"]
        leaf = requests.get(f"{api}/v1/pki/certificates/{issued['certificate_id']}/pem", headers=auth(token), timeout=30)
        ok, output = openssl_verify([pebble.root_pem().encode()], [issued["chain_pem"].encode()], leaf.content,
                                    purpose="sslserver")
        assert ok, output
        assert requests.get(plain + http01["http01_path"], timeout=5).status_code == 404
    finally:
        daemon.stop()
    # serve stopped: so did its listener.
    assert not _port_open(http_port) and not _port_open(tls_port)


@pytest.mark.needs_softhsm
@pytest.mark.slow
def test_listener_exits_when_serve_dies(served_setup):
    data_dir, _, http_port, tls_port, _ = served_setup
    daemon = _start(data_dir, http_port, tls_port)
    children = _children(daemon.process.pid)
    try:
        assert _port_open(http_port) and _port_open(tls_port)
        os.kill(daemon.process.pid, signal.SIGKILL)  # no shutdown hook runs
        daemon.process.wait()
        _wait_closed(http_port)
        _wait_closed(tls_port)
    finally:
        for pid in children:  # gunicorn's orphaned workers leave by themselves only after their timeout
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
