"""ACME accounts against a real Pebble: registration (with EAB where required), reading, deactivation."""

from __future__ import annotations

from tests.acme.conftest import EAB_KEYS
from tests.conftest import auth


def _account_body(pebble, name, **extra):
    return {"name": name, "provider": "custom", "email": f"{name}@example.com", "directory_url": pebble.directory_url,
            "ca_bundle": pebble.ca_bundle.read_text(), **extra}


def test_eab_account_registers_and_deactivates(client, admin_token, eab_pebble):
    # Without EAB the CA refuses: the daemon says so before asking it.
    refused = client.simulate_post("/v1/pki/acme/accounts", headers=auth(admin_token), json=_account_body(eab_pebble, "no-eab"))
    assert refused.status_code == 422 and refused.json["error"]["details"]["rule"] == "eab_required"

    # The HMAC key from the secret store, by reference.
    put = client.simulate_put("/v1/secrets/acme/pebble", headers=auth(admin_token),
                              json={"data": {"hmac": EAB_KEYS["kid-1"]}})
    assert put.status_code in (200, 201), put.text
    created = client.simulate_post("/v1/pki/acme/accounts", headers=auth(admin_token), json=_account_body(
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
    wrong = client.simulate_post("/v1/pki/acme/accounts", headers=auth(admin_token), json=_account_body(
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
    half_eab = post(_account_body(eab_pebble, "x", eab_kid="kid-1"))
    assert half_eab.status_code == 400 and half_eab.json["error"]["details"]["field"] == "eab_hmac_key"
    missing_secret = post(_account_body(eab_pebble, "x", eab_kid="kid-1", eab_hmac_key={"secret": "nope/x#y"}))
    assert missing_secret.status_code == 422 and missing_secret.json["error"]["details"]["rule"] == "secret_not_found"
    assert post({"name": "x", "provider": "custom", "email": "not-an-email"}).status_code == 400
    assert client.simulate_get("/v1/pki/acme/accounts/nope", headers=auth(admin_token)).status_code == 404
    assert client.simulate_get("/v1/pki/acme/accounts").status_code == 401
