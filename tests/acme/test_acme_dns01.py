"""dns-01 end to end: the rfc2136 provider writes to a real BIND on loopback, and Pebble resolves (and so
validates) through that same BIND."""

from __future__ import annotations

import base64
import datetime as dt
import re

import pytest

from tests.conftest import auth
from tests.support.acme import create_account, drive_until_done, parse_time
from tests.support.bind import UPDATABLE_ZONE, have_named, start_bind
from tests.support.daemon import free_port
from tests.support.lint import openssl_verify
from tests.support.pebble import start_pebble




@pytest.fixture(scope="module")
def bind(tmp_path_factory):
    if not have_named():
        pytest.fail("BIND's named is not installed (apt-get install bind9); the dns-01 tests need a real server")
    server = start_bind(tmp_path_factory.mktemp("bind-dns01"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def dns_pebble(tmp_path_factory, bind):
    """Pebble resolving through the BIND that serves the test zone: dns-01 answers are looked up there."""
    server = start_pebble(tmp_path_factory.mktemp("pebble-dns01"), dns_port=bind.port, http_port=free_port(),
                          tls_port=free_port())
    yield server
    server.stop()


def _bind_provider(client, admin_token, bind, name, secret_path, **config):
    """An rfc2136 provider of the test tenant for ``bind``, its TSIG key stored as the secret ``secret_path``."""
    stored = client.simulate_put(f"/v1/secrets/{secret_path}", headers=auth(admin_token),
                                 json={"data": {"tsig": bind.key_secret}})
    assert stored.status_code in (200, 201), stored.text
    created = client.simulate_post("/v1/pki/dns-providers", headers=auth(admin_token), json={
        "name": name, "type": "rfc2136", "config": {
            "server": "127.0.0.1", "port": bind.port, "tsig_key_name": bind.key_name,
            "tsig_secret": {"secret": f"{secret_path}#tsig"}, "timeout": 5,
            # BIND listens on a test port, not on the port 53 its NS record implies: check it there.
            "propagation_nameservers": [f"127.0.0.1:{bind.port}"], "propagation_timeout": 20,
            "propagation_interval": 0.5, **config}})
    assert created.status_code == 201, created.text
    return created.json["id"]


@pytest.fixture(scope="module")
def provider_id(client, admin_token, bind):
    return _bind_provider(client, admin_token, bind, "bind-dns01", "dns/bind-dns01")


def _issue(client, admin_token, account_id, provider_id, domains):
    placed = client.simulate_post("/v1/pki/acme/issue", headers=auth(admin_token), json={
        "account_id": account_id, "domains": domains, "challenge_type": "dns-01", "dns_provider_id": provider_id,
        "auto_renew": False})
    assert placed.status_code == 202, placed.text
    return placed.json


def test_dns01_through_rfc2136_issues_a_certificate_and_removes_the_records(
        client, admin_token, services, dns_pebble, bind, provider_id):
    base = f"dns01.{UPDATABLE_ZONE}"
    domains = [base, f"*.{base}"]  # two values at one TXT name: the wildcard's authorization is for the base name
    account_id = create_account(client, admin_token, dns_pebble, "dns01")
    order = _issue(client, admin_token, account_id, provider_id, domains)
    assert order["challenge_type"] == "dns-01" and order["dns_provider_id"] == provider_id
    assert len(order["challenges"]) == 2
    for challenge in order["challenges"]:
        assert challenge["type"] == "dns-01" and challenge["domain"] == base
        assert challenge["dns01_txt_name"] == f"_acme-challenge.{base}"
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", challenge["dns01_txt_value"])  # SHA-256, base64url, unpadded
    assert order["challenges"][0]["dns01_txt_value"] != order["challenges"][1]["dns01_txt_value"]

    done = drive_until_done(client, admin_token, services, order["id"], timeout=45)
    assert done["status"] == "valid", done
    assert all(c["status"] == "valid" and c["dns01_presented_at"] is None for c in done["challenges"])
    # Cleaned up: BIND itself no longer serves either value.
    assert bind.txt(f"_acme-challenge.{base}") == set()

    cert = client.simulate_get(f"/v1/pki/certificates/{done['certificate_id']}", headers=auth(admin_token)).json
    assert cert["source"] == "acme" and sorted(cert["sans"]["dns"]) == sorted(domains)
    leaf_pem = client.simulate_get(f"/v1/pki/certificates/{done['certificate_id']}/pem", headers=auth(admin_token)).text
    ok, output = openssl_verify([dns_pebble.root_pem().encode()], [done["chain_pem"].encode()], leaf_pem.encode(),
                                purpose="sslserver")
    assert ok, output


def test_complete_answers_at_once_and_failures_clean_up(client, admin_token, services, dns_pebble, bind, provider_id):
    name = f"complete.{UPDATABLE_ZONE}"
    account_id = create_account(client, admin_token, dns_pebble, "dns01-complete")
    order = _issue(client, admin_token, account_id, provider_id, [name])
    challenge = order["challenges"][0]

    completed = client.simulate_post(f"/v1/pki/acme/challenges/{challenge['id']}/complete", headers=auth(admin_token))
    assert completed.status_code == 200, completed.text
    answered = completed.json["challenges"][0]
    # Answered now, with the record put up first (no propagation wait).
    assert answered["answered_at"] is not None and answered["dns01_presented_at"] is not None
    assert challenge["dns01_txt_value"] in bind.txt(f"_acme-challenge.{name}")
    again = client.simulate_post(f"/v1/pki/acme/challenges/{challenge['id']}/complete", headers=auth(admin_token))
    assert again.status_code == 200 and again.json["challenges"][0]["answered_at"] == answered["answered_at"]

    done = drive_until_done(client, admin_token, services, order["id"], timeout=45)
    assert done["status"] == "valid", done
    assert bind.txt(f"_acme-challenge.{name}") == set()
    ended = client.simulate_post(f"/v1/pki/acme/challenges/{challenge['id']}/complete", headers=auth(admin_token))
    assert ended.status_code == 409, ended.text
    assert client.simulate_post("/v1/pki/acme/challenges/nope/complete", headers=auth(admin_token)).status_code == 404



def test_propagation_timeout_fails_the_order_and_removes_the_record(client, admin_token, services, dns_pebble, bind,
                                                                   provider_id):  # its secret
    # The record goes up at BIND, but the server to check is one that never answers: the deadline passes.
    unpropagated = _bind_provider(client, admin_token, bind, "bind-unpropagated", "dns/bind-dns01",
                                  propagation_nameservers=[f"127.0.0.1:{free_port()}"], propagation_timeout=1,
                                  propagation_interval=0.2)
    name = f"timeout.{UPDATABLE_ZONE}"
    account_id = create_account(client, admin_token, dns_pebble, "dns01-timeout")
    order = _issue(client, admin_token, account_id, unpropagated, [name])

    failed = drive_until_done(client, admin_token, services, order["id"], timeout=30)
    assert failed["status"] == "invalid" and "not served by every authoritative server" in failed["error"], failed
    assert failed["challenges"][0]["answered_at"] is None and failed["challenges"][0]["dns01_presented_at"] is None
    assert bind.txt(f"_acme-challenge.{name}") == set()


def test_manual_dns01_waits_for_the_operator(client, admin_token, services, pebble, challtestsrv):
    """No DNS provider: the operator publishes the TXT value (here in the DNS server Pebble asks) and completes."""
    name = "manual.acme-test.example"
    account_id = create_account(client, admin_token, pebble, "dns01-manual")

    def issue(**body):
        return client.simulate_post("/v1/pki/acme/issue", headers=auth(admin_token), json={
            "account_id": account_id, "domains": [name], "challenge_type": "dns-01", **body})

    renewing = issue(dns_manual=True, auto_renew=True)  # nobody would publish the renewal's values
    assert renewing.status_code == 422 and renewing.json["error"]["details"]["rule"] == "dns_manual", renewing.text
    both = issue(dns_manual=True, dns_provider_id="any")
    assert both.status_code == 400 and both.json["error"]["details"]["field"] == "dns_manual"
    wrong_type = client.simulate_post("/v1/pki/acme/issue", headers=auth(admin_token), json={
        "account_id": account_id, "domains": [name], "challenge_type": "http-01", "dns_manual": True})
    assert wrong_type.status_code == 400 and wrong_type.json["error"]["details"]["field"] == "dns_manual"

    placed = issue(dns_manual=True)
    assert placed.status_code == 202, placed.text
    order = placed.json
    assert order["dns_manual"] is True and order["auto_renew"] is False and order["dns_provider_id"] is None
    challenge = order["challenges"][0]
    assert challenge["dns01_txt_name"] == f"_acme-challenge.{name}"

    # The job does not answer for the operator; it looks again only every few minutes.
    from scaivault_pki.jobs import run_jobs_once

    run_jobs_once(services)
    waiting = client.simulate_get(f"/v1/pki/acme/orders/{order['id']}", headers=auth(admin_token)).json
    assert waiting["status"] == "pending" and waiting["challenges"][0]["answered_at"] is None
    assert parse_time(waiting["next_attempt_at"]) >= dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=4)

    challtestsrv.set_txt(challenge["dns01_txt_name"], challenge["dns01_txt_value"])
    completed = client.simulate_post(f"/v1/pki/acme/challenges/{challenge['id']}/complete", headers=auth(admin_token))
    assert completed.status_code == 200, completed.text
    assert completed.json["challenges"][0]["answered_at"] is not None
    assert completed.json["challenges"][0]["dns01_presented_at"] is None  # published by the operator, not by us

    done = drive_until_done(client, admin_token, services, order["id"], timeout=45)
    assert done["status"] == "valid", done
    leaf_pem = client.simulate_get(f"/v1/pki/certificates/{done['certificate_id']}/pem", headers=auth(admin_token)).text
    ok, output = openssl_verify([pebble.root_pem().encode()], [done["chain_pem"].encode()], leaf_pem.encode(),
                                purpose="sslserver")
    assert ok, output
    assert done["renew_after"] is None


def test_a_refused_cleanup_is_retried_later(client, admin_token, services, dns_pebble, bind):
    """The provider refuses to remove the record (its TSIG secret went wrong): the order still ends valid, the
    refusal is shown on the challenge, and the removal is tried again after a backoff, then succeeds."""
    from scaivault_pki.pki import acme_orders

    provider = _bind_provider(client, admin_token, bind, "bind-cleanup", "dns/bind-cleanup")
    secret_url = "/v1/secrets/dns/bind-cleanup"
    name = f"cleanup.{UPDATABLE_ZONE}"
    account_id = create_account(client, admin_token, dns_pebble, "dns01-cleanup")
    order = _issue(client, admin_token, account_id, provider, [name])
    challenge = order["challenges"][0]
    # Record up and answered at once; then the secret changes under the provider.
    assert client.simulate_post(f"/v1/pki/acme/challenges/{challenge['id']}/complete",
                                headers=auth(admin_token)).status_code == 200
    wrong = base64.b64encode(b"not the key BIND knows, 32 bytes").decode()
    assert client.simulate_put(secret_url, headers=auth(admin_token), json={"data": {"tsig": wrong}}).status_code == 200

    done = drive_until_done(client, admin_token, services, order["id"], timeout=45)
    assert done["status"] == "valid", done
    stuck = done["challenges"][0]
    assert stuck["dns01_presented_at"] is not None and stuck["dns01_cleanup_error"], stuck
    assert wrong not in stuck["dns01_cleanup_error"]
    retry_at = parse_time(stuck["dns01_cleanup_retry_at"])
    assert retry_at >= dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=50)  # a minute, not a tight loop
    assert challenge["dns01_txt_value"] in bind.txt(f"_acme-challenge.{name}")
    # Not due yet: nothing is tried.
    assert acme_orders.retry_cleanups(services.envelope, plugins=services.plugins) == 0

    assert client.simulate_put(secret_url, headers=auth(admin_token),
                               json={"data": {"tsig": bind.key_secret}}).status_code == 200
    assert acme_orders.retry_cleanups(services.envelope, retry_at + dt.timedelta(seconds=1), plugins=services.plugins) == 1
    assert bind.txt(f"_acme-challenge.{name}") == set()
    cleaned = client.simulate_get(f"/v1/pki/acme/orders/{order['id']}", headers=auth(admin_token)).json["challenges"][0]
    assert cleaned["dns01_presented_at"] is None and cleaned["dns01_cleanup_error"] is None
