"""Revocation, CRLs and OCSP through the real HTTP app, SoftHSM token and SQLite; checked with openssl, pkilint, pyca.

The job thread does not run in-process: tests publish dirty CRLs with ``run_jobs_once`` (the real thread is
tested through gunicorn in tests/e2e/test_revocation_serve.py).
"""

from __future__ import annotations

import base64
import datetime as dt
import time
import urllib.parse
import uuid
from dataclasses import dataclass

import pytest
from asn1crypto import crl as asn1_crl
from asn1crypto import x509
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp as cocsp
from cryptography.x509.oid import NameOID

from tests.conftest import PUBLIC_BASE_URL, auth
from tests.support.daemon import create_token
from tests.support.revocation import (
    as_der,
    cert_id,
    check_crl,
    crl_entries,
    crl_number,
    ocsp_request,
    openssl_verify_with_crls,
)

pytestmark = pytest.mark.needs_softhsm


def post(client, path, token, body=None):
    return client.simulate_post(path, json=body, headers=auth(token)) if body is not None else \
        client.simulate_post(path, headers=auth(token))


@dataclass
class Ca:
    id: str
    pem: str
    serial: int
    role: str


def make_ca(client, token, name, parent: Ca | None = None, key_type="ec", key_size=256, **extra) -> Ca:
    body = {"name": name, "common_name": f"{name} CA", "ca_type": "intermediate" if parent else "root",
            "key_type": key_type, "key_size": key_size, **extra}
    if parent:
        body["parent_ca_id"] = parent.id
    resp = post(client, "/v1/pki/ca", token, body)
    assert resp.status_code == 201, resp.text
    role = f"{name}-role"
    made = post(client, "/v1/pki/roles", token, {
        "name": role, "ca_id": resp.json["id"], "allowed_domains": ["example.com"], "allow_subdomains": True,
        "key_type": "ec", "key_bits": 256, "max_ttl": "30d"})
    assert made.status_code == 201, made.text
    return Ca(resp.json["id"], resp.json["certificate"], int(resp.json["serial_number"], 16), role)


def hierarchy(client, token, key_type="ec", key_size=256) -> tuple[Ca, Ca, Ca]:
    """root -> int1 -> int2, each with a role."""
    prefix = f"rv-{uuid.uuid4().hex[:8]}"
    root = make_ca(client, token, f"{prefix}-root", key_type=key_type, key_size=384 if key_type == "ec" else key_size)
    int1 = make_ca(client, token, f"{prefix}-int1", root, key_type, key_size, max_path_length=1)
    int2 = make_ca(client, token, f"{prefix}-int2", int1, key_type, key_size)
    return root, int1, int2


def issue(client, token, ca: Ca, name: str = "www", **extra) -> dict:
    resp = post(client, f"/v1/pki/issue/{ca.role}", token, {"common_name": f"{name}.example.com", **extra})
    assert resp.status_code == 201, resp.text
    return resp.json


def revoke(client, token, **body):
    return post(client, "/v1/pki/revoke", token, body)


def get_crl(client, ca: Ca, delta: bool = False) -> bytes:
    resp = client.simulate_get(f"/v1/pki/ca/{ca.id}/crl" + ("/delta" if delta else ""))
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/pkix-crl"
    return resp.content


def publish_dirty(services) -> None:
    from scaivault_pki.jobs import run_jobs_once

    assert "crl.publish-dirty" in run_jobs_once(services)


@pytest.fixture(scope="module")
def pki(client, admin_token):
    return hierarchy(client, admin_token)


# -- POST /v1/pki/revoke ---------------------------------------------------------------------------------------------


def test_revoke_by_serial_then_again(client, admin_token, pki):
    _, int1, _ = pki
    leaf = issue(client, admin_token, int1, "twice")
    colon_upper = ":".join(leaf["serial_number"][i:i + 2] for i in range(0, len(leaf["serial_number"]), 2)).upper()
    first = revoke(client, admin_token, serial_number=colon_upper, reason="keyCompromise")
    assert first.status_code == 200, first.text
    assert first.json["id"] == leaf["id"] and first.json["serial_number"] == leaf["serial_number"]
    assert first.json["status"] == "revoked" and first.json["reason"] == "keyCompromise"
    assert first.json["ca_id"] == int1.id and first.json["revoked_at"].endswith("Z")
    time.sleep(1.1)
    again = revoke(client, admin_token, serial_number=leaf["serial_number"], reason="superseded")
    assert again.status_code == 200 and again.json == first.json
    shown = client.simulate_get(f"/v1/pki/certificates/{leaf['id']}", headers=auth(admin_token)).json
    assert shown["status"] == "revoked" and shown["revocation_reason"] == "keyCompromise"
    assert shown["revoked_at"] == first.json["revoked_at"]


def test_revoke_by_pem_defaults_to_unspecified(client, admin_token, pki):
    _, int1, _ = pki
    leaf = issue(client, admin_token, int1, "by-pem")
    resp = revoke(client, admin_token, certificate_pem=leaf["certificate"])
    assert resp.status_code == 200, resp.text
    assert resp.json["id"] == leaf["id"] and resp.json["reason"] == "unspecified"


def test_expired_certificate_can_be_revoked(client, admin_token, services, pki):
    _, int1, _ = pki
    leaf = issue(client, admin_token, int1, "short", ttl="1s")
    time.sleep(2.1)
    listed = client.simulate_get(f"/v1/pki/certificates/{leaf['id']}", headers=auth(admin_token)).json
    assert listed["status"] == "expired"
    resp = revoke(client, admin_token, serial_number=leaf["serial_number"], reason="keyCompromise")
    assert resp.status_code == 200 and resp.json["status"] == "revoked"
    publish_dirty(services)
    assert crl_entries(get_crl(client, int1))[int(leaf["serial_number"], 16)] == "key_compromise"


@pytest.mark.parametrize(
    "body,status,code,field",
    [
        ({}, 400, "missing_field", "serial_number"),
        ({"reason": "keyCompromise"}, 400, "missing_field", "serial_number"),
        ({"serial_number": "zz"}, 400, "invalid_field", "serial_number"),
        ({"serial_number": "0x12"}, 400, "invalid_field", "serial_number"),
        ({"serial_number": "00"}, 400, "invalid_field", "serial_number"),
        ({"serial_number": "1234", "reason": "removeFromCRL"}, 400, "invalid_field", "reason"),
        ({"serial_number": "1234", "reason": "stolen"}, 400, "invalid_field", "reason"),
        ({"serial_number": "1234", "reason": 1}, 400, "invalid_field", "reason"),
        ({"serial_number": "1234", "colour": "red"}, 400, "unknown_field", "colour"),
        ({"serial_number": "1234", "use_acme": "yes"}, 400, "invalid_field", "use_acme"),
        ({"certificate_pem": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}, 400, "invalid_pem", "certificate_pem"),
        ({"certificate_pem": "not pem"}, 400, "invalid_pem", "certificate_pem"),
        ({"certificate_pem": "x", "ca_id": "y"}, 400, "invalid_field", "ca_id"),
        ({"serial_number": "0a1b2c3d4e5f", "certificate_pem": "x"}, 400, "invalid_request", "serial_number"),
        ({"serial_number": "0a1b2c3d4e5f"}, 404, "not_found", None),
    ],
)
def test_revoke_refusals(client, admin_token, body, status, code, field):
    resp = revoke(client, admin_token, **body)
    assert resp.status_code == status, resp.text
    assert resp.json["error"]["code"] == code
    if field:
        assert resp.json["error"]["details"]["field"] == field


def test_use_acme_refuses_certificates_that_no_acme_ca_issued(client, admin_token, pki):
    # ACME revocation itself is tested against Pebble in tests/acme.
    _, int1, _ = pki
    leaf = issue(client, admin_token, int1, "acme")
    resp = revoke(client, admin_token, serial_number=leaf["serial_number"], use_acme=True)
    assert resp.status_code == 422 and resp.json["error"]["details"]["rule"] == "use_acme"
    assert "ACME order" in resp.json["error"]["message"]
    assert revoke(client, admin_token, serial_number=leaf["serial_number"], use_acme=False).status_code == 200


def test_a_ca_certificate_is_revoked_through_its_ca(client, admin_token, pki):
    root, int1, _ = pki
    for ca in (root, int1):
        resp = revoke(client, admin_token, serial_number=format(ca.serial, "x"))
        assert resp.status_code == 409, resp.text
        assert resp.json["error"]["details"]["ca_id"] == ca.id and "/revoke" in resp.json["error"]["message"]
        assert revoke(client, admin_token, certificate_pem=ca.pem).status_code == 409
    assert client.simulate_get(f"/v1/pki/ca/{int1.id}", headers=auth(admin_token)).json["status"] == "active"


def test_a_serial_of_several_cas_needs_ca_id(client, admin_token, pki):
    """Serials are unique per CA, not per tenant: the same serial under two CAs is a real (if rare) case."""
    from scaivault_pki.schema.models import Certificate

    root, int1, int2 = pki
    leaf = issue(client, admin_token, int1, "dup-serial")
    twin = Certificate.get_by_id(leaf["id"])
    twin_id = str(uuid.uuid4())
    Certificate.create(**{**twin.__data__, "id": twin_id, "ca": int2.id, "fingerprint_sha256": "0" * 64})
    resp = revoke(client, admin_token, serial_number=leaf["serial_number"])
    assert resp.status_code == 409, resp.text
    assert resp.json["error"]["details"]["ca_ids"] == sorted([int1.id, int2.id])
    resp = revoke(client, admin_token, serial_number=leaf["serial_number"], ca_id=int2.id, reason="superseded")
    assert resp.status_code == 200 and resp.json["id"] == twin_id
    assert Certificate.get_by_id(leaf["id"]).status == "valid"
    assert revoke(client, admin_token, serial_number=leaf["serial_number"], ca_id=root.id).status_code == 404


def test_scopes_and_tenants(client, admin_token, data_dir, other_tenant_token, pki):
    root, int1, _ = pki
    leaf = issue(client, admin_token, int1, "scopes")
    body = {"serial_number": leaf["serial_number"]}
    for scope in ("pki:issue", "pki:read"):
        token = create_token(data_dir, "default", scope)
        assert revoke(client, token, **body).status_code == 403
        assert post(client, f"/v1/pki/ca/{int1.id}/revoke", token, {}).status_code == 403
        assert post(client, f"/v1/pki/ca/{int1.id}/crl", token).status_code == 403
    assert client.simulate_post("/v1/pki/revoke", json=body).status_code == 401
    assert revoke(client, other_tenant_token, **body).status_code == 404
    assert revoke(client, other_tenant_token, certificate_pem=leaf["certificate"]).status_code == 404
    assert post(client, f"/v1/pki/ca/{int1.id}/revoke", other_tenant_token, {}).status_code == 404
    assert post(client, f"/v1/pki/ca/{int1.id}/crl", other_tenant_token).status_code == 404
    # ... while the CRL itself is public.
    assert client.simulate_get(f"/v1/pki/ca/{int1.id}/crl").status_code == 200
    shown = client.simulate_get(f"/v1/pki/certificates/{leaf['id']}", headers=auth(admin_token)).json
    assert shown["status"] == "valid"


# -- CA revocation ---------------------------------------------------------------------------------------------------


def make_csr() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (cx509.CertificateSigningRequestBuilder()
           .subject_name(cx509.Name([cx509.NameAttribute(NameOID.COMMON_NAME, "csr.example.com")]))
           .add_extension(cx509.SubjectAlternativeName([cx509.DNSName("csr.example.com")]), critical=False)
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def test_ca_revocation_cascades_through_three_levels(client, admin_token, services):
    root, int1, int2 = hierarchy(client, admin_token)
    root_leaf = issue(client, admin_token, root, "root-leaf")
    leaf1 = issue(client, admin_token, int1, "leaf1")
    leaf2 = issue(client, admin_token, int2, "leaf2")
    leaf2_early = issue(client, admin_token, int2, "leaf2-early")
    assert revoke(client, admin_token, serial_number=leaf2_early["serial_number"], reason="superseded").status_code == 200
    chain = [int2.pem, int1.pem]
    crls = lambda: [get_crl(client, ca) for ca in (root, int1, int2)]  # noqa: E731
    ok, out = openssl_verify_with_crls(root.pem, chain, leaf2["certificate"], crls(), check_all=True)
    assert ok, out

    resp = post(client, f"/v1/pki/ca/{int1.id}/revoke", admin_token, {"reason": "keyCompromise"})
    assert resp.status_code == 200, resp.text
    assert resp.json["status"] == "revoked" and resp.json["revocation_reason"] == "keyCompromise"
    revoked_at = resp.json["revoked_at"]

    def ca(c: Ca) -> dict:
        return client.simulate_get(f"/v1/pki/ca/{c.id}", headers=auth(admin_token)).json

    def cert(body: dict) -> dict:
        return client.simulate_get(f"/v1/pki/certificates/{body['id']}", headers=auth(admin_token)).json

    assert ca(root)["status"] == "active"
    assert (ca(int2)["status"], ca(int2)["revocation_reason"], ca(int2)["revoked_at"]) == ("revoked", "cACompromise", revoked_at)
    for body in (leaf1, leaf2):
        assert (cert(body)["status"], cert(body)["revocation_reason"], cert(body)["revoked_at"]) == ("revoked", "cACompromise", revoked_at)
    assert cert(leaf2_early)["revocation_reason"] == "superseded"  # an earlier revocation is kept
    assert cert(root_leaf)["status"] == "valid"

    publish_dirty(services)
    root_crl, int1_crl, int2_crl = crls()
    assert crl_entries(root_crl) == {int1.serial: "key_compromise"}
    assert crl_entries(int1_crl) == {int2.serial: "ca_compromise", int(leaf1["serial_number"], 16): "ca_compromise"}
    assert crl_entries(int2_crl) == {int(leaf2["serial_number"], 16): "ca_compromise",
                                     int(leaf2_early["serial_number"], 16): "superseded"}
    for document, issuer in ((root_crl, root), (int1_crl, int1), (int2_crl, int2)):
        check_crl(document, issuer.pem)
    ok, out = openssl_verify_with_crls(root.pem, chain, leaf2["certificate"], [root_crl, int1_crl, int2_crl], check_all=True)
    assert not ok and "revoked" in out
    ok, out = openssl_verify_with_crls(root.pem, [], root_leaf["certificate"], [root_crl], check_all=True)
    assert ok, out

    # Nothing under a revoked CA is issued: issue, sign, sub-CAs.
    for c in (int1, int2):
        refused = post(client, f"/v1/pki/issue/{c.role}", admin_token, {"common_name": "late.example.com"})
        assert refused.status_code == 422 and refused.json["error"]["details"]["rule"] == "ca_status"
        refused = post(client, f"/v1/pki/sign/{c.role}", admin_token, {"csr_pem": make_csr()})
        assert refused.status_code == 422 and refused.json["error"]["code"] == "ca_cannot_issue"
        refused = post(client, "/v1/pki/ca", admin_token, {"name": f"under-{uuid.uuid4().hex[:6]}", "common_name": "x",
                                                          "ca_type": "intermediate", "parent_ca_id": c.id, "key_type": "ec"})
        assert refused.status_code == 422 and refused.json["error"]["code"] == "ca_cannot_issue"
    assert post(client, f"/v1/pki/issue/{root.role}", admin_token, {"common_name": "still.example.com"}).status_code == 201

    # Revoking again answers the first revocation.
    again = post(client, f"/v1/pki/ca/{int1.id}/revoke", admin_token, {"reason": "superseded"})
    assert again.status_code == 200 and again.json == resp.json
    below = post(client, f"/v1/pki/ca/{int2.id}/revoke", admin_token)
    assert below.status_code == 200 and below.json["revocation_reason"] == "cACompromise"

    # OCSP at the root says int1 is revoked.
    status = ocsp_status(client, root, int1.serial)
    assert status.certificate_status == cocsp.OCSPCertStatus.REVOKED
    assert status.revocation_reason == cx509.ReasonFlags.key_compromise


def test_revoking_a_root(client, admin_token, services):
    root = make_ca(client, admin_token, f"rv-{uuid.uuid4().hex[:8]}-lone-root")
    leaf = issue(client, admin_token, root, "lone")
    resp = post(client, f"/v1/pki/ca/{root.id}/revoke", admin_token, {"reason": "cessationOfOperation"})
    assert resp.status_code == 200 and resp.json["revocation_reason"] == "cessationOfOperation"
    publish_dirty(services)
    # Its leaves are listed with the root's reason; the root itself never is (a self-signed revocation means nothing).
    assert crl_entries(get_crl(client, root)) == {int(leaf["serial_number"], 16): "cessation_of_operation"}
    refused = post(client, "/v1/pki/ca", admin_token, {"name": f"x-{uuid.uuid4().hex[:6]}", "common_name": "x",
                                                      "ca_type": "intermediate", "parent_ca_id": root.id})
    assert refused.status_code == 422


@pytest.mark.parametrize("body,field", [({"reason": "removeFromCRL"}, "reason"), ({"why": "x"}, "why")])
def test_ca_revoke_refusals(client, admin_token, pki, body, field):
    _, int1, _ = pki
    resp = post(client, f"/v1/pki/ca/{int1.id}/revoke", admin_token, body)
    assert resp.status_code == 400 and resp.json["error"]["details"]["field"] == field
    assert post(client, "/v1/pki/ca/no-such-ca/revoke", admin_token, {}).status_code == 404


# -- CRLs ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key_type,key_size", [("ec", 256), ("rsa", 2048)])
def test_crls_verify_lint_and_revoke_with_openssl(client, admin_token, services, key_type, key_size):
    root, int1, _ = hierarchy(client, admin_token, key_type, key_size)
    good = issue(client, admin_token, int1, "good")
    bad = issue(client, admin_token, int1, "bad")
    assert revoke(client, admin_token, serial_number=bad["serial_number"], reason="privilegeWithdrawn").status_code == 200
    publish_dirty(services)
    full, delta = get_crl(client, int1), get_crl(client, int1, delta=True)
    for document in (full, delta):
        check_crl(document, int1.pem)
    check_crl(get_crl(client, root), root.pem)
    check_crl(get_crl(client, root, delta=True), root.pem)

    ok, out = openssl_verify_with_crls(root.pem, [int1.pem], bad["certificate"], [full])
    assert not ok and "certificate revoked" in out
    ok, out = openssl_verify_with_crls(root.pem, [int1.pem], good["certificate"], [full])
    assert ok, out

    parsed = asn1_crl.CertificateList.load(full)
    issuer = x509.Certificate.load(as_der(int1.pem))
    assert parsed.issuer.dump() == issuer.subject.dump()
    assert parsed.authority_key_identifier == issuer.key_identifier
    tbs = parsed["tbs_cert_list"]
    lifetime = tbs["next_update"].native - tbs["this_update"].native
    assert lifetime == dt.timedelta(hours=24)
    root_tbs = asn1_crl.CertificateList.load(get_crl(client, root))["tbs_cert_list"]
    assert root_tbs["next_update"].native - root_tbs["this_update"].native == dt.timedelta(days=7)
    assert parsed.freshest_crl_value[0]["distribution_point"].native == [f"{PUBLIC_BASE_URL}/v1/pki/ca/{int1.id}/crl/delta"]
    # The URL certificates carry points at what we serve.
    leaf = x509.Certificate.load(as_der(good["certificate"]))
    assert leaf.crl_distribution_points[0]["distribution_point"].native == [f"{PUBLIC_BASE_URL}/v1/pki/ca/{int1.id}/crl"]


def test_crl_numbers_and_deltas(client, admin_token, services):
    root, int1, _ = hierarchy(client, admin_token)
    leaf = issue(client, admin_token, int1, "delta")
    other = issue(client, admin_token, int1, "delta-good")
    old_full = get_crl(client, int1)
    first = crl_number(old_full)
    forced = post(client, f"/v1/pki/ca/{int1.id}/crl", admin_token)
    assert forced.status_code == 200, forced.text
    assert set(forced.json) >= {"crl_pem", "next_update", "crl_number", "this_update"}
    assert forced.json["crl_number"] > first and crl_number(forced.json["crl_pem"]) == forced.json["crl_number"]
    assert crl_number(get_crl(client, int1)) == forced.json["crl_number"]

    assert revoke(client, admin_token, serial_number=leaf["serial_number"], reason="keyCompromise").status_code == 200
    publish_dirty(services)
    full, delta = get_crl(client, int1), get_crl(client, int1, delta=True)
    numbers = [first, forced.json["crl_number"], crl_number(full), crl_number(delta)]
    assert numbers == sorted(set(numbers)), numbers
    parsed = asn1_crl.CertificateList.load(delta)
    # The base is the oldest full CRL still valid, so whoever holds any current full CRL can use this delta.
    assert parsed.delta_crl_indicator_value.native == first
    assert "delta_crl_indicator" in parsed.critical_extensions
    assert crl_entries(delta) == {int(leaf["serial_number"], 16): "key_compromise"}
    assert int(leaf["serial_number"], 16) not in crl_entries(old_full)

    # A relying party with the old full CRL learns of the revocation from the delta.
    ok, out = openssl_verify_with_crls(root.pem, [int1.pem], leaf["certificate"], [old_full])
    assert ok, out
    ok, out = openssl_verify_with_crls(root.pem, [int1.pem], leaf["certificate"], [old_full, delta], use_deltas=True)
    assert not ok and "revoked" in out
    ok, out = openssl_verify_with_crls(root.pem, [int1.pem], other["certificate"], [old_full, delta], use_deltas=True)
    assert ok, out


def test_crl_formats_and_conditional_get(client, admin_token, pki):
    _, int1, _ = pki
    url = f"/v1/pki/ca/{int1.id}/crl"
    der = client.simulate_get(url)
    as_pem = client.simulate_get(url, headers={"Accept": "application/x-pem-file"})
    assert as_pem.headers["content-type"] == "application/x-pem-file"
    assert as_der(as_pem.content) == der.content
    assert der.headers["etag"] != as_pem.headers["etag"] and "Accept" in der.headers["vary"]
    assert client.simulate_get(url, headers={"Accept": "text/html"}).content == der.content

    etag, modified = der.headers["etag"], der.headers["last-modified"]
    assert client.simulate_get(url, headers={"If-None-Match": etag}).status_code == 304
    assert client.simulate_get(url, headers={"If-None-Match": f'"other", {etag}'}).status_code == 304
    assert client.simulate_get(url, headers={"If-None-Match": "*"}).status_code == 304
    assert client.simulate_get(url, headers={"If-None-Match": '"other"'}).status_code == 200
    # If-None-Match wins over If-Modified-Since (RFC 9110 13.1.3).
    assert client.simulate_get(url, headers={"If-None-Match": '"other"', "If-Modified-Since": modified}).status_code == 200
    assert client.simulate_get(url, headers={"If-Modified-Since": "Thu, 01 Jan 2099 00:00:00 GMT"}).status_code == 304
    assert client.simulate_get(url, headers={"If-Modified-Since": "Thu, 01 Jan 2015 00:00:00 GMT"}).status_code == 200
    assert client.simulate_get(url, headers={"If-Modified-Since": "yesterday"}).status_code == 200
    not_modified = client.simulate_get(url, headers={"If-None-Match": etag})
    assert not_modified.content == b"" and not_modified.headers["etag"] == etag


def test_crls_of_the_same_second_are_not_confused_by_if_modified_since(client, admin_token, pki):
    _, int1, _ = pki
    url = f"/v1/pki/ca/{int1.id}/crl"
    for _ in range(5):
        before = post(client, f"/v1/pki/ca/{int1.id}/crl", admin_token).json
        after = post(client, f"/v1/pki/ca/{int1.id}/crl", admin_token).json
        if before["this_update"] == after["this_update"]:
            break
    else:
        pytest.fail("could not publish two CRLs within one second")
    served = client.simulate_get(url)
    assert crl_number(served.content) == after["crl_number"]
    # A client holding `before` sends its Last-Modified, which is also the current one's: it must get the new CRL.
    assert client.simulate_get(url, headers={"If-Modified-Since": served.headers["last-modified"]}).status_code == 200


def test_crl_is_built_on_demand(client, admin_token):
    ca = make_ca(client, admin_token, f"rv-{uuid.uuid4().hex[:8]}-fresh")
    delta = get_crl(client, ca, delta=True)
    full = get_crl(client, ca)
    assert crl_number(full) == 1 and crl_number(delta) == 2 and crl_entries(full) == {}
    assert asn1_crl.CertificateList.load(delta).delta_crl_indicator_value.native == 1
    missing = client.simulate_get("/v1/pki/ca/no-such-ca/crl")
    assert missing.status_code == 404 and missing.json["error"]["code"] == "not_found"
    assert client.simulate_get("/v1/pki/ca/no-such-ca/crl/delta").status_code == 404
    assert client.simulate_post("/v1/pki/ca/no-such-ca/crl").status_code == 401


def test_expired_entries_leave_the_crl_after_the_grace_period(client, admin_token, services, pki):
    """Grace (7 days by default) counts from the later of notAfter and the revocation."""
    from scaivault_pki.schema.models import Certificate

    _, _, int2 = pki
    long_gone, revoked_late, recent = (issue(client, admin_token, int2, name) for name in ("gone", "late", "recent"))
    for body in (long_gone, revoked_late, recent):
        assert revoke(client, admin_token, serial_number=body["serial_number"]).status_code == 200
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    Certificate.update(not_after=now - dt.timedelta(days=30), revoked_at=now - dt.timedelta(days=8)).where(
        Certificate.id == long_gone["id"]).execute()
    Certificate.update(not_after=now - dt.timedelta(days=30), revoked_at=now - dt.timedelta(days=1)).where(
        Certificate.id == revoked_late["id"]).execute()
    Certificate.update(not_after=now - dt.timedelta(days=6)).where(Certificate.id == recent["id"]).execute()
    publish_dirty(services)
    listed = crl_entries(get_crl(client, int2))
    assert int(long_gone["serial_number"], 16) not in listed
    assert int(revoked_late["serial_number"], 16) in listed and int(recent["serial_number"], 16) in listed


def test_the_job_publishes_dirty_cas(client, admin_token, services, pki):
    from scaivault_pki.schema.models import CertificateAuthority

    _, int1, _ = pki
    get_crl(client, int1)
    leaf = issue(client, admin_token, int1, "dirty")
    assert revoke(client, admin_token, serial_number=leaf["serial_number"]).status_code == 200
    assert CertificateAuthority.get_by_id(int1.id).crl_dirty
    assert int(leaf["serial_number"], 16) not in crl_entries(get_crl(client, int1))  # no thread in-process
    publish_dirty(services)
    assert not CertificateAuthority.get_by_id(int1.id).crl_dirty
    assert int(leaf["serial_number"], 16) in crl_entries(get_crl(client, int1))


# -- OCSP ------------------------------------------------------------------------------------------------------------


def ocsp_post(client, ca: Ca, der: bytes):
    resp = client.simulate_post(f"/v1/pki/ca/{ca.id}/ocsp", body=der, headers={"Content-Type": "application/ocsp-request"})
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/ocsp-response"
    return cocsp.load_der_ocsp_response(resp.content)


def ocsp_status(client, ca: Ca, serial: int, algorithm: str = "sha1") -> cocsp.OCSPResponse:
    response = ocsp_post(client, ca, ocsp_request([cert_id(ca.pem, serial, algorithm)]))
    assert response.response_status == cocsp.OCSPResponseStatus.SUCCESSFUL
    return response


def check_signed_by(response: cocsp.OCSPResponse, ca: Ca) -> None:
    issuer = cx509.load_pem_x509_certificate(ca.pem.encode())
    issuer.public_key().verify(response.signature, response.tbs_response_bytes, ec.ECDSA(response.signature_hash_algorithm))
    ski = issuer.extensions.get_extension_for_class(cx509.SubjectKeyIdentifier).value.digest
    assert response.responder_key_hash == ski


def test_ocsp_good_revoked_unknown(client, admin_token, services, pki):
    root, int1, _ = pki
    good = issue(client, admin_token, int1, "ocsp-good")
    bad = issue(client, admin_token, int1, "ocsp-bad")
    revoked = revoke(client, admin_token, serial_number=bad["serial_number"], reason="affiliationChanged").json
    publish_dirty(services)
    good_serial, bad_serial = int(good["serial_number"], 16), int(bad["serial_number"], 16)

    response = ocsp_status(client, int1, good_serial)
    check_signed_by(response, int1)
    assert response.certificate_status == cocsp.OCSPCertStatus.GOOD
    assert response.serial_number == good_serial
    crl_next = asn1_crl.CertificateList.load(get_crl(client, int1))["tbs_cert_list"]["next_update"].native
    assert response.next_update_utc == crl_next
    assert abs((response.this_update_utc - dt.datetime.now(dt.timezone.utc)).total_seconds()) < 5
    assert response.produced_at_utc == response.this_update_utc

    response = ocsp_status(client, int1, bad_serial, "sha256")
    assert response.certificate_status == cocsp.OCSPCertStatus.REVOKED
    assert response.revocation_reason == cx509.ReasonFlags.affiliation_changed
    assert response.revocation_time_utc.strftime("%Y-%m-%dT%H:%M:%SZ") == revoked["revoked_at"]
    assert response.hash_algorithm.name == "sha256"

    # Not issued by this CA, or asked of the wrong CA, or of a CA we do not have.
    assert ocsp_status(client, int1, 0x1234567).certificate_status == cocsp.OCSPCertStatus.UNKNOWN
    assert ocsp_status(client, root, good_serial).certificate_status == cocsp.OCSPCertStatus.UNKNOWN
    wrong_issuer = ocsp_post(client, root, ocsp_request([cert_id(int1.pem, good_serial)]))
    assert wrong_issuer.certificate_status == cocsp.OCSPCertStatus.UNKNOWN
    unknown_ca = client.simulate_post("/v1/pki/ca/no-such-ca/ocsp", body=ocsp_request([cert_id(int1.pem, 1)]),
                                      headers={"Content-Type": "application/ocsp-request"})
    assert cocsp.load_der_ocsp_response(unknown_ca.content).response_status == cocsp.OCSPResponseStatus.UNAUTHORIZED

    # Several in one: each answered, in order, in one signed response.
    several = ocsp_post(client, int1, ocsp_request([cert_id(int1.pem, s) for s in (good_serial, bad_serial, 77)]))
    assert [s.certificate_status for s in several.responses] == [
        cocsp.OCSPCertStatus.GOOD, cocsp.OCSPCertStatus.REVOKED, cocsp.OCSPCertStatus.UNKNOWN]
    check_signed_by(several, int1)


def test_ocsp_nonce(client, admin_token, pki):
    _, int1, _ = pki
    request = ocsp_request([cert_id(int1.pem, 5)], nonce=b"\x01" * 32)
    echoed = ocsp_post(client, int1, request).extensions.get_extension_for_class(cx509.OCSPNonce).value.nonce
    assert echoed == b"\x01" * 32
    assert len(ocsp_post(client, int1, ocsp_request([cert_id(int1.pem, 5)])).extensions) == 0
    too_long = ocsp_post(client, int1, ocsp_request([cert_id(int1.pem, 5)], nonce=b"\x01" * 33))
    assert too_long.response_status == cocsp.OCSPResponseStatus.MALFORMED_REQUEST


def get_form(client, ca: Ca, encoded: str):
    resp = client.simulate_get(f"/v1/pki/ca/{ca.id}/ocsp/{encoded}")
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/ocsp-response"
    return cocsp.load_der_ocsp_response(resp.content)


def test_ocsp_get_form(client, admin_token, pki):
    _, int1, _ = pki
    leaf = issue(client, admin_token, int1, "ocsp-get")
    serial = int(leaf["serial_number"], 16)
    # Nonces that put '/', '+' and '=' into the base64, one of them as the very last character.
    seen = set()
    for i in range(2000):
        # Three lengths (with and without base64 padding) crossed with every last byte (3 and 251 are coprime),
        # whatever length the random serial gives the request.
        nonce = bytes([i % 251]) * (14 + i % 3)
        request = ocsp_request([cert_id(int1.pem, serial)], nonce=nonce)
        encoded = base64.b64encode(request).decode()
        kinds = {c for c in "/+=" if c in encoded} | ({"trailing/"} if encoded.endswith("/") else set())
        if not kinds - seen:
            continue
        seen |= kinds
        for form in (encoded, urllib.parse.quote(encoded, safe="")):
            response = get_form(client, int1, form)
            assert response.certificate_status == cocsp.OCSPCertStatus.GOOD, (form, kinds)
            assert response.extensions.get_extension_for_class(cx509.OCSPNonce).value.nonce == nonce
        if seen == {"/", "+", "=", "trailing/"}:
            break
    assert seen == {"/", "+", "=", "trailing/"}
    for garbage in ("AAAA", "not-base64!", "%ZZ"):
        assert get_form(client, int1, garbage).response_status == cocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_ocsp_http_errors(client, pki):
    _, int1, _ = pki
    url = f"/v1/pki/ca/{int1.id}/ocsp"
    garbage = client.simulate_post(url, body=b"\x30\x00", headers={"Content-Type": "application/ocsp-request"})
    assert cocsp.load_der_ocsp_response(garbage.content).response_status == cocsp.OCSPResponseStatus.MALFORMED_REQUEST
    wrong_type = client.simulate_post(url, body=ocsp_request([cert_id(int1.pem, 5)]), headers={"Content-Type": "application/json"})
    assert wrong_type.status_code == 415 and wrong_type.json["error"]["code"] == "unsupported_media_type"
    huge = client.simulate_post(url, body=b"\x00" * (65 * 1024), headers={"Content-Type": "application/ocsp-request"})
    assert huge.status_code == 413
    assert client.simulate_get(url).status_code == 405


def test_a_ca_whose_key_is_gone(client, admin_token, services, caplog):
    """The HSM cannot sign for it: OCSP says tryLater, the CRL endpoint 503, the job logs it and carries on."""
    from scaivault_pki.jobs import run_jobs_once
    from scaivault_pki.schema.models import CertificateAuthority

    ca = make_ca(client, admin_token, f"rv-{uuid.uuid4().hex[:8]}-keyless")
    leaf = issue(client, admin_token, ca, "keyless")
    key_id = CertificateAuthority.get_by_id(ca.id).hsm_key_id
    CertificateAuthority.update(hsm_key_id="ab" * 16).where(CertificateAuthority.id == ca.id).execute()
    assert revoke(client, admin_token, serial_number=leaf["serial_number"]).status_code == 200
    response = ocsp_post(client, ca, ocsp_request([cert_id(ca.pem, 5)]))
    assert response.response_status == cocsp.OCSPResponseStatus.TRY_LATER
    resp = client.simulate_get(f"/v1/pki/ca/{ca.id}/crl")
    assert resp.status_code == 503 and resp.json["error"]["code"] == "hsm_unavailable"
    with caplog.at_level("WARNING", logger="scaivault_pki.jobs"):
        assert "crl.publish-dirty" in run_jobs_once(services)  # the job itself did not fail
    assert any(getattr(r, "ca_id", None) == ca.id and r.msg == "crl publication failed" for r in caplog.records)
    assert CertificateAuthority.get_by_id(ca.id).crl_dirty  # still to do
    CertificateAuthority.update(hsm_key_id=key_id).where(CertificateAuthority.id == ca.id).execute()
    assert "crl.publish-dirty" in run_jobs_once(services)
    assert int(leaf["serial_number"], 16) in crl_entries(get_crl(client, ca))


def test_crls_are_refreshed_well_before_next_update(client, admin_token, services):
    """The refresh job republishes at half the lifetime; a GET never serves an expired CRL."""
    from scaivault_pki.jobs import run_jobs_once
    from scaivault_pki.schema.models import CertificateRevocationList as Crl

    ca = make_ca(client, admin_token, f"rv-{uuid.uuid4().hex[:8]}-stale")
    first = crl_number(get_crl(client, ca))
    run_jobs_once(services)
    assert crl_number(get_crl(client, ca)) == first  # fresh: left alone

    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    # A root's CRL lives 7 days: with 3 days left it is past half its life.
    Crl.update(next_update=now + dt.timedelta(days=3)).where(Crl.ca == ca.id).execute()
    assert "crl.refresh" in run_jobs_once(services)
    refreshed = get_crl(client, ca)
    assert crl_number(refreshed) > first
    tbs = asn1_crl.CertificateList.load(refreshed)["tbs_cert_list"]
    assert tbs["next_update"].native - dt.datetime.now(dt.timezone.utc) > dt.timedelta(days=6)

    # Should every job be down, the GET itself replaces an expired CRL rather than serve it.
    Crl.update(next_update=now - dt.timedelta(seconds=1)).where(Crl.ca == ca.id).execute()
    assert crl_number(get_crl(client, ca)) > crl_number(refreshed)


def test_old_crls_are_pruned_but_the_latest_pair_stays(client, admin_token, services):
    from scaivault_pki.jobs import run_jobs_once
    from scaivault_pki.schema.models import CertificateRevocationList as Crl

    ca = make_ca(client, admin_token, f"rv-{uuid.uuid4().hex[:8]}-prune")
    for _ in range(3):
        assert post(client, f"/v1/pki/ca/{ca.id}/crl", admin_token).status_code == 200
    long_ago = dt.datetime(2020, 1, 1)
    Crl.update(next_update=long_ago).where(Crl.ca == ca.id).execute()
    run_jobs_once(services)  # refreshes the (now expired) CRLs, then prunes
    numbers = sorted(row.number for row in Crl.select().where(Crl.ca == ca.id))
    assert numbers == [7, 8], numbers  # the pair just published; 1..6 were superseded and expired long ago
