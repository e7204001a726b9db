"""ACME accounts against a real Pebble: registration (with EAB where required), reading, key rollover,
deactivation."""

from __future__ import annotations

import datetime as dt

from tests.acme.conftest import EAB_KEYS
from tests.conftest import auth
from tests.support.acme import account_body




def test_eab_account_registers_and_deactivates(client, admin_token, eab_pebble):
    # Without EAB the CA refuses: the daemon says so before asking it.
    refused = client.simulate_post("/v1/pki/acme/accounts", headers=auth(admin_token), json=account_body(eab_pebble, "no-eab"))
    assert refused.status_code == 422 and refused.json["error"]["details"]["rule"] == "eab_required"

    # The HMAC key from the secret store, by reference.
    put = client.simulate_put("/v1/secrets/acme/pebble", headers=auth(admin_token),
                              json={"data": {"hmac": EAB_KEYS["kid-1"]}})
    assert put.status_code in (200, 201), put.text
    created = client.simulate_post("/v1/pki/acme/accounts", headers=auth(admin_token), json=account_body(
        eab_pebble, "eab", eab_kid="kid-1", eab_hmac_key={"secret": "acme/pebble#hmac"}))
    assert created.status_code == 201, created.text
    account = created.json
    assert account["status"] == "valid" and account["eab_kid"] == "kid-1"
    assert account["account_url"].startswith(eab_pebble.directory_url.rsplit("/", 1)[0])
    assert not {"key", "private_key", "eab_hmac_key", "key_ciphertext"} & set(account)

    listed = client.simulate_get("/v1/pki/acme/accounts", headers=auth(admin_token)).json["items"]
    assert account["id"] in [a["id"] for a in listed]

    gone = client.simulate_delete(f"/v1/pki/acme/accounts/{account['id']}", headers=auth(admin_token))
    assert gone.status_code == 200, gone.text
    assert gone.json["status"] == "deactivated" and gone.json["deactivated_at"]
    assert client.simulate_get(f"/v1/pki/acme/accounts/{account['id']}", headers=auth(admin_token)).json["status"] == "deactivated"
    # Deactivating again is a no-op answer, not an upstream error.
    assert client.simulate_delete(f"/v1/pki/acme/accounts/{account['id']}", headers=auth(admin_token)).status_code == 200


def test_wrong_eab_key_is_an_upstream_refusal(client, admin_token, eab_pebble):
    wrong = client.simulate_post("/v1/pki/acme/accounts", headers=auth(admin_token), json=account_body(
        eab_pebble, "wrong-eab", eab_kid="kid-1", eab_hmac_key="c2VjcmV0LWJ1dC13cm9uZw"))
    assert wrong.status_code == 502, wrong.text
    assert wrong.json["error"]["code"] == "acme_upstream_error"


def test_account_input_errors(client, admin_token, eab_pebble):
    def post(body):
        return client.simulate_post("/v1/pki/acme/accounts", headers=auth(admin_token), json=body)

    assert post({"name": "x", "provider": "nope", "email": "a@example.com"}).json["error"]["details"]["field"] == "provider"
    custom_without_url = post({"name": "x", "provider": "custom", "email": "a@example.com"})
    assert custom_without_url.status_code == 400 and custom_without_url.json["error"]["details"]["field"] == "directory_url"
    bundle_for_le = post({"name": "x", "provider": "letsencrypt", "email": "a@example.com", "ca_bundle": "x"})
    assert bundle_for_le.status_code == 400 and bundle_for_le.json["error"]["details"]["field"] == "ca_bundle"
    zerossl_without_eab = post({"name": "x", "provider": "zerossl", "email": "a@example.com"})
    assert zerossl_without_eab.status_code == 400 and zerossl_without_eab.json["error"]["details"]["field"] in ("eab_kid", "eab_hmac_key")
    half_eab = post(account_body(eab_pebble, "x", eab_kid="kid-1"))
    assert half_eab.status_code == 400 and half_eab.json["error"]["details"]["field"] == "eab_hmac_key"
    missing_secret = post(account_body(eab_pebble, "x", eab_kid="kid-1", eab_hmac_key={"secret": "nope/x#y"}))
    assert missing_secret.status_code == 422 and missing_secret.json["error"]["details"]["rule"] == "secret_not_found"
    assert post({"name": "x", "provider": "custom", "email": "not-an-email"}).status_code == 400
    assert client.simulate_get("/v1/pki/acme/accounts/nope", headers=auth(admin_token)).status_code == 404
    assert client.simulate_get("/v1/pki/acme/accounts").status_code == 401


def test_key_rollover_replaces_the_key_at_the_ca_and_here(client, admin_token, services, pebble):
    from scaivault_pki.pki import acme_accounts, acme_client
    from scaivault_pki.schema.models import AcmeAccount

    created = client.simulate_post("/v1/pki/acme/accounts", headers=auth(admin_token), json=account_body(pebble, "rolling"))
    assert created.status_code == 201, created.text
    account = created.json
    assert account["key_rolled_at"] is None
    old_key = acme_accounts.open_account_key(services.envelope, AcmeAccount.get_by_id(account["id"]))

    rolled = client.simulate_post(f"/v1/pki/acme/accounts/{account['id']}/key-rollover", headers=auth(admin_token))
    assert rolled.status_code == 200, rolled.text
    assert rolled.json["key_rolled_at"] and rolled.json["account_url"] == account["account_url"]
    new_key = acme_accounts.open_account_key(services.envelope, AcmeAccount.get_by_id(account["id"]))
    assert acme_client.account_key_der(new_key) != acme_client.account_key_der(old_key)

    # Pebble's view: the old key belongs to no account any more, the new one to this account.
    def owner(key):
        return acme_client.account_url_for_key(pebble.directory_url, key, ca_bundle_pem=pebble.ca_bundle.read_text())

    assert owner(old_key) is None and owner(new_key) == account["account_url"]
    # The account goes on working with the new key (deactivation is a signed request).
    assert client.simulate_delete(f"/v1/pki/acme/accounts/{account['id']}", headers=auth(admin_token)).status_code == 200
    deactivated = client.simulate_post(f"/v1/pki/acme/accounts/{account['id']}/key-rollover", headers=auth(admin_token))
    assert deactivated.status_code == 409
    assert client.simulate_post("/v1/pki/acme/accounts/nope/key-rollover", headers=auth(admin_token)).status_code == 404


def test_an_interrupted_key_rollover_is_settled_on_next_use(client, admin_token, services, pebble):
    """A crash after the CA changed the key but before the record did: the next use asks the CA and keeps the
    key the CA has. A pending key the CA never saw is dropped."""
    from scaivault_pki.pki import acme_accounts, acme_client
    from scaivault_pki.schema.models import AcmeAccount, utcnow

    account_id = client.simulate_post("/v1/pki/acme/accounts", headers=auth(admin_token),
                                      json=account_body(pebble, "interrupted")).json["id"]
    before = AcmeAccount.get_by_id(account_id)

    def leave_pending(reach_the_ca: bool, began: dt.datetime) -> bytes:
        key = acme_client.generate_account_key()
        sealed = services.envelope.seal(acme_client.account_key_der(key), acme_accounts.account_context(account_id))
        AcmeAccount.update(next_key_ciphertext=sealed, next_key_at=began).where(AcmeAccount.id == account_id).execute()
        if reach_the_ca:  # the CA's side of the rollover, signed with the key still on record
            current = acme_client.connect(pebble.directory_url, acme_accounts.open_account_key(services.envelope, before),
                                          account_url=before.account_url, ca_bundle_pem=pebble.ca_bundle.read_text())
            acme_client.change_key(current, key)
        return sealed

    interrupted = utcnow() - acme_accounts.ROLLOVER_STALE_AFTER - dt.timedelta(seconds=1)
    # In flight (just begun, perhaps in another worker): left alone, its own request decides.
    in_flight = leave_pending(False, utcnow())
    acme_accounts.connect_account(services.envelope, AcmeAccount.get_by_id(account_id))
    assert bytes(AcmeAccount.get_by_id(account_id).next_key_ciphertext) == bytes(in_flight)

    # Never reached the CA: dropped, the old key stays.
    leave_pending(False, interrupted)
    conn = acme_accounts.connect_account(services.envelope, AcmeAccount.get_by_id(account_id))
    row = AcmeAccount.get_by_id(account_id)
    assert row.next_key_ciphertext is None and bytes(row.key_ciphertext) == bytes(before.key_ciphertext)
    assert conn.client.net.account.uri == before.account_url

    # Reached the CA: kept.
    sealed = leave_pending(True, interrupted)
    acme_accounts.connect_account(services.envelope, AcmeAccount.get_by_id(account_id))
    row = AcmeAccount.get_by_id(account_id)
    assert row.next_key_ciphertext is None and bytes(row.key_ciphertext) == bytes(sealed) and row.key_rolled_at
    assert client.simulate_delete(f"/v1/pki/acme/accounts/{account_id}", headers=auth(admin_token)).status_code == 200
