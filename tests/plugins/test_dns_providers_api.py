"""/v1/pki/dns-providers through the real app: configs validated against the type's schema, secrets stored as
references and resolved only at use time, and an rfc2136 provider configured over the API that changes the real
BIND zone."""

from __future__ import annotations

import logging

import pytest

from scaivault_pki.errors import ApiError
from scaivault_pki.logs import JsonFormatter
from scaivault_pki.pki.dns_providers import resolve_provider
from scaivault_pki.plugins.builtin.dns_rfc2136 import Rfc2136Provider
from scaivault_pki.plugins.propagation import wait_for_propagation
from scaivault_pki.schema.models import DnsProviderConfig
from tests.conftest import auth
from tests.support.bind import UPDATABLE_ZONE
from tests.support.daemon import create_token

pytestmark = pytest.mark.needs_softhsm

BASE = "/v1/pki/dns-providers"
TOKEN_VALUE = "example-api-token-5bd0c1"


@pytest.fixture(scope="module")
def tokens(data_dir, admin_token) -> dict[str, str]:
    return {
        "admin": create_token(data_dir, "default", "pki:admin"),
        "read": create_token(data_dir, "default", "pki:read"),
        "secrets": create_token(data_dir, "default", "secrets:write"),
    }


def create(client, token, body):
    return client.simulate_post(BASE, json=body, headers=auth(token))


def example_body(name, **config):
    return {"name": name, "type": "example_memory",
            "config": {"zones": ["example.com"], "api_token": {"secret": "dns/example#api_token"}, **config}}


def resolve(services, provider_id):
    from scaivault_pki.schema.db import database

    with database.connection_context():
        tenant_id = DnsProviderConfig.get_by_id(provider_id).tenant_id
        return resolve_provider(tenant_id, provider_id, plugins=services.plugins, envelope=services.envelope)


def logs_text(caplog) -> str:
    return "\n".join(JsonFormatter().format(r) for r in caplog.records)


def test_types_list_installed_types_with_schemas(client, tokens):
    resp = client.simulate_get(f"{BASE}/types", headers=auth(tokens["read"]))
    assert resp.status_code == 200, resp.text
    types = {t["type"]: t for t in resp.json["items"]}
    assert types["rfc2136"]["plugin"] == "builtin"
    assert types["rfc2136"]["secret_fields"] == ["tsig_secret"]
    assert types["rfc2136"]["config_schema"] == Rfc2136Provider.config_schema
    assert types["example_memory"]["plugin"] == "example"
    assert client.simulate_get(f"{BASE}/types").status_code == 401


def test_create_read_update_delete(client, tokens, caplog):
    caplog.set_level(logging.DEBUG)
    created = create(client, tokens["admin"], example_body("crud"))
    assert created.status_code == 201, created.text
    provider = created.json
    assert provider["config"]["api_token"] == {"secret": "dns/example#api_token"}
    assert created.headers["Location"] == f"{BASE}/{provider['id']}"

    got = client.simulate_get(f"{BASE}/{provider['id']}", headers=auth(tokens["read"]))
    assert got.status_code == 200 and got.json == provider
    listed = client.simulate_get(BASE, headers=auth(tokens["read"])).json["items"]
    assert provider["id"] in [p["id"] for p in listed]

    renamed = client.simulate_patch(f"{BASE}/{provider['id']}", json={"name": "crud-renamed"}, headers=auth(tokens["admin"]))
    assert renamed.status_code == 200, renamed.text
    assert renamed.json["name"] == "crud-renamed" and renamed.json["config"] == provider["config"]
    assert renamed.json["updated_at"] > provider["updated_at"]

    new_config = {"zones": ["example.org"], "api_token": {"secret": "dns/other#token"}}
    patched = client.simulate_patch(f"{BASE}/{provider['id']}", json={"config": new_config}, headers=auth(tokens["admin"]))
    assert patched.status_code == 200 and patched.json["config"] == new_config

    assert client.simulate_delete(f"{BASE}/{provider['id']}", headers=auth(tokens["admin"])).status_code == 204
    assert client.simulate_get(f"{BASE}/{provider['id']}", headers=auth(tokens["read"])).status_code == 404


@pytest.mark.parametrize("body, status, field", [
    (example_body("bad-1", zones=[]), 400, "config.zones"),
    (example_body("bad-2", api_token=42), 400, "config.api_token"),
    (example_body("bad-3", api_token={"secret": "no-hash"}), 400, "config.api_token"),
    (example_body("bad-4", api_token={"secret": "../up#key"}), 400, "config.api_token"),
    (example_body("bad-5", surprise=True), 400, "config.surprise"),
    ({"name": "bad-6", "type": "example_memory", "config": {"zones": ["example.com"]}}, 400, "config.api_token"),
    ({"name": "bad-7", "type": "no_such_type", "config": {}}, 400, "type"),
    ({"name": "bad-8", "type": "Not-A-Type", "config": {}}, 400, "type"),
    ({"name": "bad-9", "type": "example_memory"}, 400, "config"),
    ({"type": "example_memory", "config": {}}, 400, "name"),
    ({"name": "bad-10", "type": "rfc2136", "config": {"server": "192.0.2.1", "tsig_key_name": "k",
                                                        "tsig_secret": {"secret": "dns/bind#k"}, "port": 0}}, 400, "config.port"),
])
def test_invalid_configs_are_400_naming_the_field(client, tokens, body, status, field):
    resp = create(client, tokens["admin"], body)
    assert resp.status_code == status, resp.text
    assert resp.json["error"]["details"]["field"] == field


def test_literal_secrets_are_refused_so_no_get_can_show_one(client, tokens):
    resp = create(client, tokens["admin"], example_body("literal", api_token=TOKEN_VALUE))
    assert resp.status_code == 400
    assert resp.json["error"]["details"]["field"] == "config.api_token"
    assert "secret reference" in resp.json["error"]["message"]


def test_patch_validates_against_the_type(client, tokens):
    provider = create(client, tokens["admin"], example_body("patch-check")).json
    url = f"{BASE}/{provider['id']}"
    bad = client.simulate_patch(url, json={"config": {"zones": ["example.com"]}}, headers=auth(tokens["admin"]))
    assert bad.status_code == 400 and bad.json["error"]["details"]["field"] == "config.api_token"
    # Changing the type alone checks the stored config against the new type.
    retyped = client.simulate_patch(url, json={"type": "rfc2136"}, headers=auth(tokens["admin"]))
    assert retyped.status_code == 400 and retyped.json["error"]["details"]["field"].startswith("config")
    empty = client.simulate_patch(url, json={}, headers=auth(tokens["admin"]))
    assert empty.status_code == 400
    assert client.simulate_get(url, headers=auth(tokens["read"])).json == provider  # nothing half-written


def test_duplicate_names_conflict(client, tokens):
    assert create(client, tokens["admin"], example_body("twice")).status_code == 201
    again = create(client, tokens["admin"], example_body("twice"))
    assert again.status_code == 409 and again.json["error"]["details"]["field"] == "name"
    other = create(client, tokens["admin"], example_body("twice-b")).json
    clash = client.simulate_patch(f"{BASE}/{other['id']}", json={"name": "twice"}, headers=auth(tokens["admin"]))
    assert clash.status_code == 409


def test_scopes_and_tenants(client, tokens, other_tenant_token):
    assert create(client, tokens["read"], example_body("by-reader")).status_code == 403
    assert create(client, tokens["secrets"], example_body("by-secrets")).status_code == 403
    provider = create(client, tokens["admin"], example_body("tenant-bound")).json
    url = f"{BASE}/{provider['id']}"
    assert client.simulate_patch(url, json={"name": "x"}, headers=auth(tokens["read"])).status_code == 403
    assert client.simulate_delete(url, headers=auth(tokens["read"])).status_code == 403
    for method in ("GET", "DELETE"):
        assert client.simulate_request(method, url, headers=auth(other_tenant_token)).status_code == 404
    assert client.simulate_patch(url, json={"name": "x"}, headers=auth(other_tenant_token)).status_code == 404
    listed = client.simulate_get(BASE, headers=auth(other_tenant_token)).json["items"]
    assert provider["id"] not in [p["id"] for p in listed]


def test_secrets_resolve_at_use_time_only(client, tokens, services, caplog):
    caplog.set_level(logging.DEBUG)
    # A path no other test writes: this test starts with the secret absent.
    provider = create(client, tokens["admin"], example_body("resolved", api_token={"secret": "dns/resolve-test#api_token"})).json

    # No secret yet: a clear 422 naming the field and the reference, at use time (creation did not need it).
    with pytest.raises(ApiError) as missing:
        resolve(services, provider["id"])
    assert missing.value.status == 422 and missing.value.code == "secret_not_found"
    assert missing.value.details == {"rule": "secret_not_found", "field": "config.api_token",
                                     "secret": "dns/resolve-test#api_token"}

    # The secret exists but not that key: the same error.
    put = client.simulate_put("/v1/secrets/dns/resolve-test", json={"data": {"other": "x"}}, headers=auth(tokens["secrets"]))
    assert put.status_code in (200, 201)
    with pytest.raises(ApiError, match="key in the secret"):
        resolve(services, provider["id"])

    # A value that does not fit the schema is refused without quoting it.
    client.simulate_put("/v1/secrets/dns/resolve-test", json={"data": {"api_token": "short"}}, headers=auth(tokens["secrets"]))
    with pytest.raises(ApiError) as misfit:
        resolve(services, provider["id"])
    assert misfit.value.code == "dns_provider_misconfigured" and "short" not in misfit.value.message
    assert misfit.value.details["field"] == "config.api_token"

    client.simulate_put("/v1/secrets/dns/resolve-test", json={"data": {"api_token": TOKEN_VALUE}}, headers=auth(tokens["secrets"]))
    instance = resolve(services, provider["id"])
    assert type(instance).type_name == "example_memory" and instance.config["api_token"] == TOKEN_VALUE

    # Never resolved on the way out: the item, the list, the logs.
    for resp in (client.simulate_get(f"{BASE}/{provider['id']}", headers=auth(tokens["read"])),
                 client.simulate_get(BASE, headers=auth(tokens["read"])),
                 client.simulate_get(BASE, params={"limit": "1000"}, headers=auth(tokens["admin"]))):
        assert resp.status_code == 200 and TOKEN_VALUE not in resp.text
    assert TOKEN_VALUE not in logs_text(caplog)


def test_uninstalled_type_is_a_clear_422(client, tokens, services):
    from scaivault_pki.schema.db import database

    provider = create(client, tokens["admin"], example_body("orphan")).json
    with database.connection_context():
        DnsProviderConfig.update(type="uninstalled_type").where(DnsProviderConfig.id == provider["id"]).execute()
    with pytest.raises(ApiError) as gone:
        resolve(services, provider["id"])
    assert gone.value.status == 422 and gone.value.code == "dns_provider_type_unavailable"
    # Still readable, so an operator can see and fix it.
    assert client.simulate_get(f"{BASE}/{provider['id']}", headers=auth(tokens["read"])).json["type"] == "uninstalled_type"


def test_rfc2136_configured_over_the_api_changes_the_real_zone(client, tokens, services, bind_server, caplog):
    """Secret in the store, provider over the API, resolved at use time: present, served, cleanup, gone."""
    caplog.set_level(logging.DEBUG)
    stored = client.simulate_put("/v1/secrets/dns/bind", json={"data": {"tsig": bind_server.key_secret}},
                                 headers=auth(tokens["secrets"]))
    assert stored.status_code in (200, 201)
    created = create(client, tokens["admin"], {"name": "bind", "type": "rfc2136", "config": {
        "server": "127.0.0.1", "port": bind_server.port, "tsig_key_name": bind_server.key_name,
        "tsig_secret": {"secret": "dns/bind#tsig"}, "propagation_timeout": 5, "propagation_interval": 0.2}})
    assert created.status_code == 201, created.text

    provider = resolve(services, created.json["id"])
    name = f"_acme-challenge.api.{UPDATABLE_ZONE}"
    provider.present(None, name, "from-the-api", 60)
    wait_for_propagation(provider, name, "from-the-api", nameservers=[bind_server.nameserver])
    assert bind_server.txt(name) == {"from-the-api"}
    provider.cleanup(None, name, "from-the-api")
    assert bind_server.txt(name) == set()

    shown = client.simulate_get(f"{BASE}/{created.json['id']}", headers=auth(tokens["read"]))
    assert bind_server.key_secret not in shown.text
    assert bind_server.key_secret not in logs_text(caplog)
