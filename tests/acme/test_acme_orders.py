"""ACME orders with http-01 against a real Pebble that validates through challtestsrv's DNS and our responder."""

from __future__ import annotations

import subprocess

import requests

from tests.conftest import auth
from tests.support.acme import create_account, drive_until_done
from tests.support.lint import openssl_verify






def test_http01_issues_a_certificate_chaining_to_pebbles_root(client, admin_token, services, pebble, challtestsrv,
                                                               app_listener, tmp_path):
    domains = ["www.acme-test.example", "api.acme-test.example"]
    for name in domains:
        challtestsrv.add_a(name)
    account_id = create_account(client, admin_token, pebble, "http01")

    placed = client.simulate_post("/v1/pki/acme/issue", headers=auth(admin_token),
                                  json={"account_id": account_id, "domains": domains, "challenge_type": "http-01"})
    assert placed.status_code == 202, placed.text
    order = placed.json
    assert order["status"] == "pending" and order["order_id"] == order["id"]
    assert sorted(c["domain"] for c in order["challenges"]) == sorted(domains)
    challenge = order["challenges"][0]
    assert challenge["type"] == "http-01" and challenge["http01_path"] == f"/.well-known/acme-challenge/{challenge['token']}"

    # The responder is public, serves repeats, and knows nothing else.
    url = f"http://127.0.0.1:{app_listener}{challenge['http01_path']}"
    first, again = requests.get(url, timeout=5), requests.get(url, timeout=5)
    assert first.status_code == again.status_code == 200 and first.text == again.text
    assert first.text.startswith(challenge["token"] + ".")
    assert requests.get(f"http://127.0.0.1:{app_listener}/.well-known/acme-challenge/unknown", timeout=5).status_code == 404

    done = drive_until_done(client, admin_token, services, order["id"])
    assert done["status"] == "valid", done
    assert all(c["status"] == "valid" for c in done["challenges"])
    # Cleaned up: the token is no longer served.
    assert requests.get(url, timeout=5).status_code == 404

    cert = client.simulate_get(f"/v1/pki/certificates/{done['certificate_id']}", headers=auth(admin_token)).json
    assert cert["source"] == "acme" and cert["tags"]["acme_order_id"] == order["id"]
    assert sorted(cert["sans"]["dns"]) == sorted(domains)
    leaf_pem = client.simulate_get(f"/v1/pki/certificates/{done['certificate_id']}/pem", headers=auth(admin_token)).text
    # The chain as Pebble delivered it (stored with the certificate), against the root from Pebble's management API.
    assert done["chain_pem"] and "BEGIN CERTIFICATE" in done["chain_pem"]
    ok, output = openssl_verify([pebble.root_pem().encode()], [done["chain_pem"].encode()], leaf_pem.encode(),
                                purpose="sslserver")
    assert ok, output

    # The key the daemon made is stored sealed and belongs to the certificate.
    key = client.simulate_post(f"/v1/pki/certificates/{done['certificate_id']}/private-key", headers=auth(admin_token))
    assert key.status_code == 200, key.text
    (tmp_path / "key.pem").write_text(key.json["private_key"])
    (tmp_path / "leaf.pem").write_text(leaf_pem)
    public_keys = [
        subprocess.run(["openssl", "pkey", "-in", str(tmp_path / "key.pem"), "-pubout"], capture_output=True, text=True).stdout,
        subprocess.run(["openssl", "x509", "-in", str(tmp_path / "leaf.pem"), "-pubkey", "-noout"], capture_output=True, text=True).stdout,
    ]
    assert public_keys[0] and public_keys[0] == public_keys[1]

    listed = client.simulate_get(f"/v1/pki/acme/orders?status=valid&account_id={account_id}", headers=auth(admin_token)).json
    assert [o["id"] for o in listed["items"]] == [order["id"]]
    # A page shows each order exactly as its GET does (challenges and chain fetched for the page at once).
    assert listed["items"][0] == client.simulate_get(f"/v1/pki/acme/orders/{order['id']}", headers=auth(admin_token)).json


def test_issue_input_errors(client, admin_token, pebble):
    account_id = create_account(client, admin_token, pebble, "errors")

    def issue(**body):
        return client.simulate_post("/v1/pki/acme/issue", headers=auth(admin_token), json={"account_id": account_id, **body})

    refused = issue(domains=["a.example"], challenge_type="tls-sni-01")
    assert refused.status_code == 400 and refused.json["error"]["details"]["field"] == "challenge_type"
    # dns-01 needs a DNS provider of the tenant, and only dns-01 takes one.
    missing = issue(domains=["a.example"], challenge_type="dns-01")
    assert missing.status_code == 400 and missing.json["error"]["details"]["field"] == "dns_provider_id"
    assert issue(domains=["a.example"], challenge_type="dns-01", dns_provider_id="nope").status_code == 404
    stray = issue(domains=["a.example"], challenge_type="http-01", dns_provider_id="nope")
    assert stray.status_code == 400 and stray.json["error"]["details"]["field"] == "dns_provider_id"
    assert issue(domains=["*.a.example"]).json["error"]["details"]["rule"] == "challenge_type"
    bad = issue(domains=["a.example", "no spaces.example"])
    assert bad.status_code == 400 and bad.json["error"]["details"]["field"] == "domains[1]"
    assert issue(domains=[]).status_code == 400
    assert client.simulate_post("/v1/pki/acme/issue", headers=auth(admin_token),
                                json={"account_id": "nope", "domains": ["a.example"]}).status_code == 404
    assert client.simulate_get("/v1/pki/acme/orders?status=bogus", headers=auth(admin_token)).status_code == 400
    assert client.simulate_get("/v1/pki/acme/orders/nope", headers=auth(admin_token)).status_code == 404


def test_refresh_steps_an_order_and_a_fresh_runner_finishes_it(client, admin_token, services, pebble, challtestsrv):
    """All of an order's state is in the database: any runner (here a new one after each step) carries it on."""
    challtestsrv.add_a("resume.acme-test.example")
    account_id = create_account(client, admin_token, pebble, "resume")
    order = client.simulate_post("/v1/pki/acme/issue", headers=auth(admin_token), json={
        "account_id": account_id, "domains": ["resume.acme-test.example"], "key_type": "rsa", "auto_renew": False}).json
    refreshed = client.simulate_post(f"/v1/pki/acme/orders/{order['id']}/refresh", headers=auth(admin_token))
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json["challenges"][0]["answered_at"] is not None and refreshed.json["attempts"] >= 1

    done = drive_until_done(client, admin_token, services, order["id"])
    assert done["status"] == "valid" and done["auto_renew"] is False and done["key_type"] == "rsa"
    cert = client.simulate_get(f"/v1/pki/certificates/{done['certificate_id']}", headers=auth(admin_token)).json
    assert cert["key_type"] == "rsa" and cert["key_size"] == 2048
    # Refreshing a finished order changes nothing.
    again = client.simulate_post(f"/v1/pki/acme/orders/{order['id']}/refresh", headers=auth(admin_token)).json
    assert again["status"] == "valid" and again["certificate_id"] == done["certificate_id"]


def test_failed_validation_fails_the_order_visibly_and_cleans_up(client, admin_token, services, pebble, challtestsrv,
                                                                 app_listener):
    # The name resolves where nobody answers, so Pebble's validation fails.
    challtestsrv.add_a("nobody.acme-test.example", "127.0.0.2")
    account_id = create_account(client, admin_token, pebble, "fails")
    order = client.simulate_post("/v1/pki/acme/issue", headers=auth(admin_token), json={
        "account_id": account_id, "domains": ["nobody.acme-test.example"]}).json
    path = order["challenges"][0]["http01_path"]
    assert requests.get(f"http://127.0.0.1:{app_listener}{path}", timeout=5).status_code == 200

    done = drive_until_done(client, admin_token, services, order["id"])
    assert done["status"] == "invalid" and done["certificate_id"] is None
    assert "nobody.acme-test.example" in done["error"] and "connection" in done["error"].lower(), done["error"]
    assert done["next_attempt_at"] is None, done["error"]
    assert requests.get(f"http://127.0.0.1:{app_listener}{path}", timeout=5).status_code == 404
    invalid = client.simulate_get("/v1/pki/acme/orders?status=invalid", headers=auth(admin_token)).json["items"]
    assert order["id"] in [o["id"] for o in invalid]


def test_revoke_with_use_acme_revokes_at_the_ca_and_here(client, admin_token, services, pebble, challtestsrv):
    from tests.support.pebble import pebble_cert_status

    challtestsrv.add_a("revoke.acme-test.example")
    account_id = create_account(client, admin_token, pebble, "revoker")
    order = client.simulate_post("/v1/pki/acme/issue", headers=auth(admin_token), json={
        "account_id": account_id, "domains": ["revoke.acme-test.example"]}).json
    done = drive_until_done(client, admin_token, services, order["id"])
    cert = client.simulate_get(f"/v1/pki/certificates/{done['certificate_id']}", headers=auth(admin_token)).json
    assert pebble_cert_status(pebble, cert["serial_number"])["Status"] == "Valid"

    # Without use_acme nothing of ours could revoke it: say how.
    local_only = client.simulate_post("/v1/pki/revoke", headers=auth(admin_token), json={
        "serial_number": cert["serial_number"], "reason": "keyCompromise"})
    assert local_only.status_code == 409 and local_only.json["error"]["details"]["field"] == "use_acme"

    revoked = client.simulate_post("/v1/pki/revoke", headers=auth(admin_token), json={
        "serial_number": cert["serial_number"], "reason": "keyCompromise", "use_acme": True})
    assert revoked.status_code == 200, revoked.text
    assert revoked.json["status"] == "revoked" and revoked.json["reason"] == "keyCompromise"
    status = pebble_cert_status(pebble, cert["serial_number"])
    assert status["Status"] == "Revoked" and status["Reason"] == 1, status
    again = client.simulate_post("/v1/pki/revoke", headers=auth(admin_token), json={
        "serial_number": cert["serial_number"], "use_acme": True})
    assert again.status_code == 200 and again.json["revoked_at"] == revoked.json["revoked_at"]
