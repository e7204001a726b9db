"""The secret store through the real app, SoftHSM token and SQLite: values sealed at rest, never listed or logged."""

from __future__ import annotations

import base64
import logging
import sqlite3

import pytest

from scaivault_pki.logs import JsonFormatter
from tests.conftest import auth
from tests.support.daemon import create_token

pytestmark = pytest.mark.needs_softhsm

VALUE = "cf-token-Zq8v1rT3xW9pL2mN"


@pytest.fixture(scope="module")
def writer(data_dir, admin_token) -> str:
    return create_token(data_dir, "default", "secrets:write")


@pytest.fixture(scope="module")
def reader(data_dir, admin_token) -> str:
    return create_token(data_dir, "default", "secrets:read")


def put(client, token, path, data):
    return client.simulate_put(f"/v1/secrets/{path}", json={"data": data}, headers=auth(token))


def rendered_logs(caplog) -> str:
    formatter = JsonFormatter()
    return "\n".join(formatter.format(record) for record in caplog.records)


def test_put_get_list_delete(client, writer, reader, caplog):
    caplog.set_level(logging.DEBUG)
    created = put(client, writer, "crud/dns/cloudflare", {"api_token": VALUE, "account": "acme"})
    assert created.status_code == 201, created.text
    assert created.json["path"] == "crud/dns/cloudflare" and created.json["version"] == 1
    assert "data" not in created.json and VALUE not in created.text

    got = client.simulate_get("/v1/secrets/crud/dns/cloudflare", headers=auth(reader))
    assert got.status_code == 200, got.text
    assert got.json["data"] == {"api_token": VALUE, "account": "acme"} and got.json["version"] == 1

    replaced = put(client, writer, "crud/dns/cloudflare", {"api_token": VALUE + "-2"})
    assert replaced.status_code == 200 and replaced.json["version"] == 2
    assert client.simulate_get("/v1/secrets/crud/dns/cloudflare", headers=auth(reader)).json["data"] == {"api_token": VALUE + "-2"}

    assert put(client, writer, "crud/dns/route53", {"secret_access_key": VALUE}).status_code == 201
    assert put(client, writer, "crud/smtp/relay", {"password": VALUE}).status_code == 201
    listed = client.simulate_get("/v1/secrets", params={"prefix": "crud/dns/"}, headers=auth(reader))
    assert listed.status_code == 200
    # Keyset order is (created_at, id): within one second, by id; compare as sets.
    assert sorted(i["path"] for i in listed.json["items"]) == ["crud/dns/cloudflare", "crud/dns/route53"]
    assert VALUE not in listed.text and all("data" not in i for i in listed.json["items"])
    everything = client.simulate_get("/v1/secrets", params={"prefix": "crud/"}, headers=auth(reader)).json["items"]
    assert {i["path"] for i in everything} == {"crud/dns/cloudflare", "crud/dns/route53", "crud/smtp/relay"}

    assert client.simulate_delete("/v1/secrets/crud/smtp/relay", headers=auth(writer)).status_code == 204
    assert client.simulate_get("/v1/secrets/crud/smtp/relay", headers=auth(reader)).status_code == 404
    assert client.simulate_delete("/v1/secrets/crud/smtp/relay", headers=auth(writer)).status_code == 404

    assert VALUE not in rendered_logs(caplog)


def test_prefix_is_exact_not_a_pattern(client, writer, reader):
    assert put(client, writer, "pfx_a/one", {"k": "v"}).status_code == 201
    assert put(client, writer, "pfxXa/two", {"k": "v"}).status_code == 201
    # '_' would match any character in SQL LIKE; the prefix must be taken literally.
    listed = client.simulate_get("/v1/secrets", params={"prefix": "pfx_"}, headers=auth(reader)).json["items"]
    assert [i["path"] for i in listed] == ["pfx_a/one"]


def test_list_pages(client, writer, reader):
    for n in range(5):
        assert put(client, writer, f"paged/s{n}", {"k": str(n)}).status_code == 201
    seen, cursor = [], None
    while True:
        params = {"prefix": "paged/", "limit": "2", **({"cursor": cursor} if cursor else {})}
        page = client.simulate_get("/v1/secrets", params=params, headers=auth(reader)).json
        seen += [i["path"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == [f"paged/s{n}" for n in range(5)] and len(seen) == 5


def test_database_holds_only_ciphertext(client, writer, data_dir, services):
    marker = "plaintext-marker-9f3a61c2"
    assert put(client, writer, "raw/check", {"value": marker}).status_code == 201
    with sqlite3.connect(data_dir / "scaivault-pki.db") as db:
        (tenant_id, ciphertext), = db.execute("SELECT tenant_id, ciphertext FROM secrets WHERE path = 'raw/check'")
        whole_rows = [repr(row) for row in db.execute("SELECT * FROM secrets")]
    ciphertext = bytes(ciphertext)
    for form in (marker.encode(), base64.b64encode(marker.encode()), marker.encode().hex().encode()):
        assert form not in ciphertext
    assert not any(marker in row for row in whole_rows)
    # It is the envelope over the JSON, bound to tenant and path: it opens for its row only.
    from scaivault_pki.hsm import EnvelopeError
    from scaivault_pki.secret_store import secret_context

    assert marker in services.envelope.open(ciphertext, secret_context(tenant_id, "raw/check")).decode()
    with pytest.raises(EnvelopeError):
        services.envelope.open(ciphertext, secret_context(tenant_id, "raw/other"))


@pytest.mark.parametrize("path", [
    "a//b", "a/./b", "../x", "a/..", "sp ace", "a/" + "x" * 300, "/".join(["s"] * 9), "bad%21char",
])
def test_bad_paths_are_400_naming_path(client, writer, path):
    resp = client.simulate_put(f"/v1/secrets/{path}", json={"data": {"k": "v"}}, headers=auth(writer))
    assert resp.status_code == 400, resp.text
    assert resp.json["error"]["details"]["field"] == "path"


@pytest.mark.parametrize("body, field", [
    ({}, "data"),
    ({"data": {}}, "data"),
    ({"data": {"k": 5}}, "data.k"),
    ({"data": {"bad key": "v"}}, "data"),
    ({"data": {"k": "v"}, "extra": 1}, "extra"),
])
def test_bad_bodies_are_400_naming_the_field(client, writer, body, field):
    resp = client.simulate_put("/v1/secrets/body/check", json=body, headers=auth(writer))
    assert resp.status_code == 400, resp.text
    assert resp.json["error"]["details"]["field"] == field


def test_scopes(client, data_dir, reader, writer):
    assert put(client, writer, "scoped/one", {"k": "v"}).status_code == 201
    # PKI scopes do not grant the secret store, not even pki:admin.
    admin_token = create_token(data_dir, "default", "pki:admin")
    for method in ("GET", "DELETE"):
        assert client.simulate_request(method, "/v1/secrets/scoped/one", headers=auth(admin_token)).status_code == 403
    assert client.simulate_get("/v1/secrets", headers=auth(admin_token)).status_code == 403
    assert put(client, admin_token, "scoped/one", {"k": "v"}).status_code == 403
    assert put(client, reader, "scoped/one", {"k": "v"}).status_code == 403
    assert client.simulate_delete("/v1/secrets/scoped/one", headers=auth(reader)).status_code == 403
    assert client.simulate_get("/v1/secrets/scoped/one").status_code == 401


def test_tenants_are_isolated(client, writer, data_dir, other_tenant_token):
    other = create_token(data_dir, "other", "secrets:write")
    assert put(client, writer, "shared/name", {"k": "default-tenant"}).status_code == 201
    assert client.simulate_get("/v1/secrets/shared/name", headers=auth(other)).status_code == 404
    assert client.simulate_delete("/v1/secrets/shared/name", headers=auth(other)).status_code == 404
    assert not client.simulate_get("/v1/secrets", params={"prefix": "shared/"}, headers=auth(other)).json["items"]
    # The same path in the other tenant is its own secret.
    assert put(client, other, "shared/name", {"k": "other-tenant"}).status_code == 201
    assert client.simulate_get("/v1/secrets/shared/name", headers=auth(other)).json["data"] == {"k": "other-tenant"}
    assert client.simulate_get("/v1/secrets/shared/name", headers=auth(writer)).json["data"] == {"k": "default-tenant"}
