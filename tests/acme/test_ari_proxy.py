"""The ARI proxy (tests/support/ari_proxy.py) in front of Pebble 2.4.0: ACME goes through it unchanged, and it adds
RFC 9773 renewal information. The renewal tests rely on both, so both are checked here against the real Pebble,
with the daemon's own ACME client (certbot's ``acme`` underneath)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import josepy as jose
import pytest
import requests
from acme import crypto_util, messages
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from scaivault_pki.pki.acme_client import Connection, connect, generate_account_key, register
from tests.support.ari_proxy import AriProxy, ari_cert_id, start_ari_proxy

# The `pebble` fixture validates against the daemon's app, which opens the SoftHSM token.
pytestmark = pytest.mark.needs_softhsm

UTC = dt.timezone.utc

#: RFC 9773 section 4.1's example: this AKI keyIdentifier and serial number give this certID.
RFC_AKI = bytes.fromhex("69885B6B87464041E1B37B847BA0AE2CDE01C8D4")
RFC_SERIAL = 0x0087654321
RFC_CERT_ID = "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"


class NewOrderReplacing(messages.NewOrder):
    """A newOrder naming the certificate it replaces (RFC 9773 section 5); ``acme`` 5.x has no such field."""

    replaces: str = jose.field("replaces", omitempty=True)


@pytest.fixture
def ari(pebble) -> Iterator[AriProxy]:
    proxy = start_ari_proxy(pebble)
    yield proxy
    proxy.stop()


@pytest.fixture
def conn(ari) -> Connection:
    """An account registered at Pebble through the proxy."""
    connection = connect(ari.directory_url, generate_account_key(), ca_bundle_pem=ari.ca_bundle.read_text())
    register(connection, "ari-proxy@example.com", None)  # ClientV2 signs as the new account from now on
    return connection


def certificate_pem(serial: int, key_identifier: bytes) -> bytes:
    """A self-signed certificate, valid for a day, with this serial number and AKI keyIdentifier."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ari test")])
    now = dt.datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.AuthorityKeyIdentifier(key_identifier, None, None), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def test_cert_id_matches_rfc_9773_example():
    assert ari_cert_id(certificate_pem(RFC_SERIAL, RFC_AKI)) == RFC_CERT_ID
    # A serial whose high bit is clear gets no leading zero octet; the str form of the PEM is accepted too.
    assert ari_cert_id(certificate_pem(0x7F01, b"\x01\x02\x03").decode()) == "AQID.fwE"


def test_directory_offers_renewal_info_and_every_url_points_at_the_proxy(ari, conn):
    directory = requests.get(ari.directory_url, verify=str(ari.ca_bundle), timeout=10).json()
    assert directory["renewalInfo"] == f"{ari.base_url}/renewal-info"
    urls = [value for value in directory.values() if isinstance(value, str)]
    assert len(urls) >= 6 and all(url.startswith(ari.base_url + "/") for url in urls)
    # The account's URL comes from Pebble's Location header, built from the proxy's Host.
    assert conn.client.net.account.uri.startswith(ari.base_url + "/")


def test_orders_go_through_the_proxy_and_their_payloads_are_recorded(ari, conn):
    key_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    orderr = conn.client.new_order(crypto_util.make_csr(key_pem, ["ari-proxy.example.com"]))

    assert [payload["identifiers"] for payload in ari.new_order_payloads] == [
        [{"type": "dns", "value": "ari-proxy.example.com"}]]
    # new_order also fetched each authorization by POST-as-GET: Pebble accepted JWS urls naming the proxy.
    order_urls = [orderr.uri, orderr.body.finalize, *orderr.body.authorizations,
                  *(challenge.uri for authzr in orderr.authorizations for challenge in authzr.body.challenges)]
    assert len(orderr.authorizations) == 1 and all(url.startswith(ari.base_url + "/") for url in order_urls)

    # Pebble 2.4.0 does not know `replaces` and ignores it: the order is created all the same.
    replaced = ari_cert_id(certificate_pem(RFC_SERIAL, RFC_AKI))
    identifier = messages.Identifier(typ=messages.IDENTIFIER_FQDN, value="ari-proxy.example.com")
    response = conn.client.net.post(conn.client.directory["newOrder"],
                                    NewOrderReplacing(identifiers=[identifier], replaces=replaced),
                                    new_nonce_url=conn.client.directory["newNonce"])
    assert response.status_code == 201 and response.headers["Location"].startswith(ari.base_url + "/")
    assert ari.new_order_payloads[-1]["replaces"] == replaced


def test_renewal_info_serves_the_window_set(ari, conn):
    cert_a, cert_b = certificate_pem(RFC_SERIAL, RFC_AKI), certificate_pem(0x1234, b"\x05" * 20)
    id_a, id_b = ari_cert_id(cert_a), ari_cert_id(cert_b)
    start, end = dt.datetime(2030, 1, 1, 8, tzinfo=UTC), dt.datetime(2030, 1, 2, 8, tzinfo=UTC)
    ari.set_window(start, end, cert_id=id_a, retry_after=120)

    def get(cert_id: str) -> requests.Response:
        return requests.get(f"{conn.client.directory['renewalInfo']}/{cert_id}", verify=str(ari.ca_bundle), timeout=10)

    # The `acme` library computes the certID itself and picks a time inside the window.
    renew_at, _ = conn.client.renewal_time(cert_a)
    assert start <= renew_at <= end
    assert ari.renewal_info_requests == [id_a] == [RFC_CERT_ID]

    answer = get(id_a)
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/json"
    assert answer.json() == {"suggestedWindow": {"start": "2030-01-01T08:00:00Z", "end": "2030-01-02T08:00:00Z"}}
    assert answer.headers["Retry-After"] == "120"

    unknown = get(id_b)
    assert unknown.status_code == 404 and unknown.headers["Content-Type"] == "application/problem+json"
    assert id_b in unknown.json()["detail"]

    # A window for every certID: cert_b gets it, cert_a keeps its own.
    ari.set_window(end, end + dt.timedelta(days=1))
    assert get(id_b).json()["suggestedWindow"]["start"] == "2030-01-02T08:00:00Z"
    assert get(id_b).headers["Retry-After"] == "60"
    assert get(id_a).json()["suggestedWindow"]["start"] == "2030-01-01T08:00:00Z"
    assert ari.renewal_info_requests == [id_a, id_a, id_b, id_b, id_b, id_a]
