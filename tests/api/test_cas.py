"""Certificate authorities through the real HTTP app, a real SoftHSM token and real SQLite."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess

import pytest
from asn1crypto import pem, x509

from tests.conftest import auth
from tests.support.daemon import SOFTHSM_MODULE, create_token, run_cli
from tests.support.lint import openssl_verify, pkilint_errors

pytestmark = pytest.mark.needs_softhsm

KEY_SPECS = [("ec", 256), ("ec", 384), ("rsa", 2048), ("rsa", 4096)]


def make_ca(client, token, ca_name, **fields):
    body = {"name": ca_name, "common_name": f"{ca_name} CA", "ca_type": "root", **fields}
    return client.simulate_post("/v1/pki/ca", json=body, headers=auth(token))


def load_cert(pem_text: str) -> x509.Certificate:
    return x509.Certificate.load(pem.unarmor(pem_text.encode())[2])


@pytest.fixture(scope="module")
def hierarchies(client, admin_token):
    """Root and intermediate for every key shape, made once through the API."""
    made = {}
    for key_type, size in KEY_SPECS:
        tag = f"{key_type}{size}"
        root = make_ca(client, admin_token, f"root-{tag}", key_type=key_type, key_size=size, organization="ScaiVault Test", country="DE")
        assert root.status_code == 201, root.text
        inter = make_ca(
            client, admin_token, f"inter-{tag}", ca_type="intermediate", parent_ca_id=root.json["id"],
            key_type=key_type, key_size=size,
        )
        assert inter.status_code == 201, inter.text
        made[tag] = (root.json, inter.json)
    return made


@pytest.mark.parametrize("key_type,size", KEY_SPECS)
def test_chain_verifies_with_openssl_and_passes_pkilint(hierarchies, client, key_type, size):
    root, inter = hierarchies[f"{key_type}{size}"]
    # What relying parties download, unauthenticated.
    root_pem = client.simulate_get(f"/v1/pki/ca/{root['id']}/certificate")
    assert root_pem.status_code == 200 and root_pem.headers["content-type"] == "application/x-pem-file"
    inter_pem = client.simulate_get(f"/v1/pki/ca/{inter['id']}/certificate").text
    ok, output = openssl_verify([root_pem.text.encode()], [], inter_pem.encode())
    assert ok, output
    for pem_text in (root_pem.text, inter_pem):
        errors = pkilint_errors(pem_text.encode(), "pkix")
        assert errors == [], errors


@pytest.mark.parametrize("key_type,size", KEY_SPECS)
def test_ca_profile(hierarchies, key_type, size):
    root, inter = hierarchies[f"{key_type}{size}"]
    root_cert, inter_cert = load_cert(root["certificate"]), load_cert(inter["certificate"])
    expected_alg = {"rsa": "sha256_rsa", "ec": "sha256_ecdsa" if size == 256 else "sha384_ecdsa"}[key_type]
    assert root_cert.signature_algo == ("rsassa_pkcs1v15" if key_type == "rsa" else "ecdsa")
    assert root_cert["signature_algorithm"]["algorithm"].native == expected_alg
    for cert in (root_cert, inter_cert):
        assert cert.ca is True
        assert "basic_constraints" in cert.critical_extensions and "key_usage" in cert.critical_extensions
        assert {"key_cert_sign", "crl_sign", "digital_signature"} == cert.key_usage_value.native
        assert cert.key_identifier
        assert cert.serial_number >= 2**63
    assert root_cert.self_signed == "maybe" or root_cert.self_signed == "yes"
    assert inter_cert.authority_key_identifier == root_cert.key_identifier
    assert inter_cert.max_path_length == 0
    assert inter_cert.public_key.algorithm == key_type
    assert inter["parent_ca_id"] == root["id"] and inter["max_path_length"] == 0
    assert re.fullmatch(r"[0-9a-f]+", inter["serial_number"])
    # AIA and CRL distribution point point at the issuing CA's public endpoints.
    assert any(root["id"] in url for url in inter_cert.crl_distribution_points[0]["distribution_point"].native)
    assert f"/v1/pki/ca/{root['id']}/certificate.der" in str(inter_cert.authority_information_access_value.native)


def test_ca_private_keys_are_locked_in_the_token(hierarchies, services, data_dir):
    key_ids = set()
    for root, inter in hierarchies.values():
        for ca in (root, inter):
            row = services_ca_key(ca["id"])
            key_ids.add(row)
            attrs = services.hsm.key_attributes(row)
            assert attrs["sensitive"] and attrs["always_sensitive"], attrs
            assert not attrs["extractable"] and attrs["never_extractable"], attrs
            assert attrs["sign"] and not attrs["decrypt"], attrs
    # The same seen by an independent tool.
    pin = (data_dir / "hsm-pin").read_text().strip()
    out = subprocess.run(
        ["pkcs11-tool", "--module", SOFTHSM_MODULE, "--token-label", "scaivault-pki", "--login", "--pin", pin,
         "--list-objects", "--type", "privkey"],
        env={**os.environ, "SOFTHSM2_CONF": str(data_dir / "softhsm2.conf")}, capture_output=True, text=True, check=True,
    ).stdout
    blocks = out.split("Private Key Object")[1:]
    seen = {}
    for block in blocks:
        key_id = re.search(r"ID:\s+([0-9a-f]+)", block).group(1)
        seen[key_id] = re.search(r"Access:\s+(.*)", block).group(1)
    for key_id in key_ids:
        access = seen[key_id]
        assert "sensitive" in access and "always sensitive" in access and "never extractable" in access, access
        assert "extractable" not in access.replace("never extractable", ""), access


def services_ca_key(ca_id: str) -> str:
    from scaivault_pki.schema.models import CertificateAuthority

    return CertificateAuthority.get_by_id(ca_id).hsm_key_id


def test_full_subject(client, admin_token):
    resp = make_ca(client, admin_token, "full-subject", key_type="ec", organization="Example", ou="PKI", country="DE",
                   locality="Berlin", province="Berlin")
    assert resp.status_code == 201, resp.text
    assert load_cert(resp.json["certificate"]).subject.native == {
        "country_name": "DE", "state_or_province_name": "Berlin", "locality_name": "Berlin",
        "organization_name": "Example", "organizational_unit_name": "PKI", "common_name": "full-subject CA"}


def test_intermediate_validity_is_cut_to_parent(client, admin_token):
    root = make_ca(client, admin_token, "short-root", key_type="ec", validity_days=30).json
    inter = make_ca(
        client, admin_token, "long-inter", ca_type="intermediate", parent_ca_id=root["id"], key_type="ec",
        validity_days=3650,
    )
    assert inter.status_code == 201, inter.text
    assert inter.json["not_after"] == root["not_after"]


def test_path_length_below_parent(client, admin_token):
    root = make_ca(client, admin_token, "pl-root", key_type="ec").json
    level1 = make_ca(client, admin_token, "pl-1", ca_type="intermediate", parent_ca_id=root["id"], key_type="ec",
                     max_path_length=1).json
    assert level1["max_path_length"] == 1
    level2 = make_ca(client, admin_token, "pl-2", ca_type="intermediate", parent_ca_id=level1["id"], key_type="ec")
    assert level2.status_code == 201 and level2.json["max_path_length"] == 0
    too_deep = make_ca(client, admin_token, "pl-3", ca_type="intermediate", parent_ca_id=level2.json["id"], key_type="ec")
    assert too_deep.status_code == 422 and too_deep.json["error"]["details"]["rule"] == "path_len"
    over = make_ca(client, admin_token, "pl-over", ca_type="intermediate", parent_ca_id=level1["id"], key_type="ec",
                   max_path_length=1)
    assert over.status_code == 422 and "max_path_length" in over.json["error"]["message"]


@pytest.mark.parametrize(
    "fields,status,code,field",
    [
        ({"key_type": "rsa", "key_size": 256}, 400, "invalid_field", "key_size"),
        ({"key_type": "ec", "key_size": 2048}, 400, "invalid_field", "key_size"),
        ({"key_type": "dsa"}, 400, "invalid_field", "key_type"),
        ({"key_size": 1024}, 400, "invalid_field", "key_size"),
        ({"validity_days": 0}, 400, "invalid_field", "validity_days"),
        ({"validity_days": "10"}, 400, "invalid_field", "validity_days"),
        ({"ca_type": "leaf"}, 400, "invalid_field", "ca_type"),
        ({"ca_type": "intermediate"}, 400, "missing_field", "parent_ca_id"),
        ({"parent_ca_id": "x"}, 400, "invalid_field", "parent_ca_id"),
        ({"country": "Germany"}, 400, "invalid_field", "country"),
        ({"colour": "blue"}, 400, "unknown_field", "colour"),
        ({"common_name": ""}, 400, "invalid_field", "common_name"),
        ({"name": "has space"}, 400, "invalid_field", "name"),
    ],
)
def test_bad_ca_requests_name_the_field(client, admin_token, fields, status, code, field):
    resp = make_ca(client, admin_token, "bad-request", **fields)
    assert resp.status_code == status, resp.text
    assert resp.json["error"]["code"] == code
    assert resp.json["error"]["details"]["field"] == field
    assert field in resp.json["error"]["message"]


def test_missing_required_field(client, admin_token):
    resp = client.simulate_post("/v1/pki/ca", json={"name": "x", "ca_type": "root"}, headers=auth(admin_token))
    assert resp.status_code == 400 and resp.json["error"]["details"]["field"] == "common_name"


def test_duplicate_name_conflicts_and_leaves_no_key(client, admin_token, services):
    from scaivault_pki.schema.models import CertificateAuthority

    assert make_ca(client, admin_token, "dup", key_type="ec").status_code == 201
    count = CertificateAuthority.select().count()
    again = make_ca(client, admin_token, "dup", key_type="ec")
    assert again.status_code == 409 and again.json["error"]["code"] == "already_exists"
    assert CertificateAuthority.select().count() == count


@pytest.mark.parametrize(
    "kwargs,status,code",
    [
        ({"body": b"{not json", "headers": {"Content-Type": "application/json"}}, 400, "invalid_json"),
        ({"body": b"[1,2]", "headers": {"Content-Type": "application/json"}}, 400, "invalid_json"),
        ({"body": b"name=x", "headers": {"Content-Type": "application/x-www-form-urlencoded"}}, 415, "unsupported_media_type"),
        ({"body": b"{" + b" " * (2 * 1024 * 1024) + b"}", "headers": {"Content-Type": "application/json"}}, 413, "payload_too_large"),
    ],
)
def test_malformed_bodies(client, admin_token, kwargs, status, code):
    headers = {**kwargs["headers"], **auth(admin_token)}
    resp = client.simulate_post("/v1/pki/ca", body=kwargs["body"], headers=headers)
    assert resp.status_code == status and resp.json["error"]["code"] == code


def test_unknown_route_and_method_answer_json(client, admin_token):
    missing = client.simulate_get("/v1/pki/nothing-here", headers=auth(admin_token))
    assert missing.status_code == 404 and missing.json["error"]["code"] == "not_found"
    wrong = client.simulate_delete("/v1/pki/ca", headers=auth(admin_token))
    assert wrong.status_code == 405 and wrong.json["error"]["code"] == "method_not_allowed"


def test_get_and_list_with_paging(client, admin_token):
    ids = {make_ca(client, admin_token, f"page-{i}", key_type="ec").json["id"] for i in range(5)}
    seen, cursor = [], None
    while True:
        params = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
        page = client.simulate_get("/v1/pki/ca", params=params, headers=auth(admin_token)).json
        assert len(page["items"]) <= 2
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) and ids <= set(seen)
    one = client.simulate_get(f"/v1/pki/ca/{sorted(ids)[0]}", headers=auth(admin_token))
    assert one.status_code == 200 and one.json["id"] == sorted(ids)[0] and "hsm_key_id" not in one.json
    assert client.simulate_get("/v1/pki/ca", params={"limit": "0"}, headers=auth(admin_token)).status_code == 400
    assert client.simulate_get("/v1/pki/ca", params={"cursor": "!!"}, headers=auth(admin_token)).status_code == 400
    der = client.simulate_get(f"/v1/pki/ca/{sorted(ids)[0]}/certificate.der")
    assert der.headers["content-type"] == "application/pkix-cert"
    assert x509.Certificate.load(der.content).ca


class TestAuth:
    def test_no_token_is_401(self, client):
        for resp in (client.simulate_get("/v1/pki/ca"), client.simulate_post("/v1/pki/ca", json={})):
            assert resp.status_code == 401 and resp.json["error"]["code"] == "unauthenticated"

    def test_garbage_token_is_401(self, client):
        for header in ("Bearer svp_nope", "Basic abc", "Bearer", "svp_x"):
            resp = client.simulate_get("/v1/pki/ca", headers={"Authorization": header})
            assert resp.status_code == 401

    def test_wrong_scope_is_403(self, client, data_dir, admin_token):
        reader = create_token(data_dir, "default", "pki:read")
        assert client.simulate_get("/v1/pki/ca", headers=auth(reader)).status_code == 200
        resp = make_ca(client, reader, "reader-made")
        assert resp.status_code == 403 and resp.json["error"]["code"] == "forbidden"
        assert "pki:admin" in resp.json["error"]["message"]
        secrets_only = create_token(data_dir, "default", "secrets:read")
        assert client.simulate_get("/v1/pki/ca", headers=auth(secrets_only)).status_code == 403

    def test_other_tenants_ca_is_404(self, client, admin_token, other_tenant_token):
        mine = make_ca(client, admin_token, "tenant-mine", key_type="ec").json
        theirs = client.simulate_get(f"/v1/pki/ca/{mine['id']}", headers=auth(other_tenant_token))
        assert theirs.status_code == 404 and theirs.json["error"]["code"] == "not_found"
        listing = client.simulate_get("/v1/pki/ca", headers=auth(other_tenant_token)).json
        assert mine["id"] not in [item["id"] for item in listing["items"]]
        # Nor may another tenant hang an intermediate under it.
        sub = make_ca(client, other_tenant_token, "steal", ca_type="intermediate", parent_ca_id=mine["id"], key_type="ec")
        assert sub.status_code == 404
        # The same name is free in another tenant.
        assert make_ca(client, other_tenant_token, "tenant-mine", key_type="ec").status_code == 201

    def test_revoked_token_is_401(self, client, data_dir):
        token = create_token(data_dir, "default", "pki:admin")
        assert client.simulate_get("/v1/pki/ca", headers=auth(token)).status_code == 200
        run_cli(data_dir, "token", "revoke", token)
        resp = client.simulate_get("/v1/pki/ca", headers=auth(token))
        assert resp.status_code == 401 and resp.json["error"]["code"] == "unauthenticated"

    def test_public_endpoints_need_no_token(self, client, admin_token):
        ca = make_ca(client, admin_token, "public-ca", key_type="ec").json
        assert client.simulate_get(f"/v1/pki/ca/{ca['id']}/certificate").status_code == 200
        assert client.simulate_get("/v1/sys/health").status_code == 200
        assert client.simulate_get("/v1/pki/ca/nope/certificate").status_code == 404


def test_every_route_declares_a_scope_for_every_method(services):
    from scaivault_pki.app import routes

    for template, resource in routes(services):
        responders = {name[3:].upper() for name in dir(resource) if name.startswith("on_")}
        declared = set(getattr(resource, "scopes", {}))
        assert responders == declared, f"{template}: responders {responders} vs declared {declared}"


def test_undeclared_method_fails_closed(services, admin_token):
    import falcon.testing

    from scaivault_pki.app import create_app

    class Undeclared:
        scopes = {"GET": ("pki:read",)}

        def on_get(self, req, resp):
            resp.media = {"ok": True}

        def on_post(self, req, resp):
            resp.media = {"ok": True}

    app = create_app(services)
    app.add_route("/v1/test/undeclared", Undeclared())
    client = falcon.testing.TestClient(app)
    assert client.simulate_get("/v1/test/undeclared", headers=auth(admin_token)).status_code == 200
    resp = client.simulate_post("/v1/test/undeclared", json={}, headers=auth(admin_token))
    assert resp.status_code == 403 and "declares no scope" in resp.json["error"]["message"]


def test_health(client):
    resp = client.simulate_get("/v1/sys/health")
    assert resp.status_code == 200
    assert resp.json["checks"] == {"database": {"status": "ok"}, "hsm": {"status": "ok"}}


def test_ca_validity_defaults(hierarchies):
    root, inter = hierarchies["ec256"]
    def days(ca):
        parse = lambda s: dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
        return (parse(ca["not_after"]) - parse(ca["not_before"])).days
    assert days(root) == 3650 and days(inter) == 1825
