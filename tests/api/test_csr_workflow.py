"""The CSR approval workflow through the real HTTP app, a real SoftHSM token and real SQLite.

Keys are checked in the token itself (``key_attributes`` and ``pkcs11-tool``), requests with ``openssl req``,
certificates with ``openssl verify`` and pkilint. The race between two approvers runs through
``scaivault-pki serve`` with two gunicorn workers.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import os
import re
import subprocess

import pytest
import requests
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import serialization

from tests.api.test_issuance import check_issued, spki, tamper
from tests.conftest import auth
from tests.e2e.test_postgres import pg_url  # noqa: F401  (a fixture: a fresh PostgreSQL database, or skip)
from tests.support.daemon import SOFTHSM_MODULE, create_token, init_data_dir, run_cli, start_daemon

pytestmark = pytest.mark.needs_softhsm

CSR = "/v1/pki/csr"


def post(client, path, token, body=None):
    return client.simulate_post(path, json=body, headers=auth(token))


def get(client, path, token):
    return client.simulate_get(path, headers=auth(token))


def token_id(secret: str) -> str:
    from scaivault_pki.auth import hash_token
    from scaivault_pki.schema.models import ApiToken

    return ApiToken.get(ApiToken.token_hash == hash_token(secret)).id


def hsm_key_id(csr_id: str) -> str | None:
    from scaivault_pki.schema.models import CsrRequest

    return CsrRequest.get_by_id(csr_id).hsm_key_id


def counts() -> tuple[int, int, int]:
    """Requests, recorded transitions and certificates in the database."""
    from scaivault_pki.schema.models import Certificate, CsrRequest, CsrTransition

    return CsrRequest.select().count(), CsrTransition.select().count(), Certificate.select().count()


def token_objects(data_dir, object_type: str) -> dict[str, tuple[str, str]]:
    """``pkcs11-tool --list-objects`` on the daemon's token: CKA_ID -> (label, access flags)."""
    pin = (data_dir / "hsm-pin").read_text().strip()
    out = subprocess.run(
        ["pkcs11-tool", "--module", SOFTHSM_MODULE, "--token-label", "scaivault-pki", "--login", "--pin", pin,
         "--list-objects", "--type", object_type],
        env={**os.environ, "SOFTHSM2_CONF": str(data_dir / "softhsm2.conf")}, capture_output=True, text=True, check=True,
    ).stdout
    found = {}
    for block in re.split(r"\n(?=\S)", out):
        key_id = re.search(r"ID:\s+([0-9a-f]+)", block)
        if key_id:
            label = re.search(r"label:\s+(.*)", block)
            access = re.search(r"Access:\s+(.*)", block)
            found[key_id.group(1)] = (label.group(1).strip() if label else "", access.group(1) if access else "")
    return found


@pytest.fixture(scope="module")
def ca(client, admin_token):
    """An EC root and the issuing intermediate under it, in the default tenant."""
    root = post(client, "/v1/pki/ca", admin_token, {
        "name": "csr-root", "common_name": "CSR Workflow Root", "ca_type": "root", "key_type": "ec", "key_size": 384,
        "organization": "ScaiVault Test", "country": "DE"})
    assert root.status_code == 201, root.text
    inter = post(client, "/v1/pki/ca", admin_token, {
        "name": "csr-issuing", "common_name": "CSR Workflow Issuing CA", "ca_type": "intermediate",
        "parent_ca_id": root.json["id"], "key_type": "ec", "key_size": 256, "organization": "ScaiVault Test",
        "country": "DE"})
    assert inter.status_code == 201, inter.text
    return inter.json


@pytest.fixture(scope="module")
def requester(data_dir, admin_token) -> str:
    """Requests CSRs: pki:issue may make, import, list and read them, nothing more."""
    return create_token(data_dir, "default", "pki:issue")


@pytest.fixture(scope="module")
def approver(data_dir, admin_token) -> str:
    """A second person with pki:admin."""
    return create_token(data_dir, "default", "pki:admin")


def new_csr(client, token, name="svc", **fields):
    body = {"subject": {"common_name": f"{name}.example.com"}, "san_dns": [f"{name}.example.com"], "key_type": "ec",
            "key_size": 256, **fields}
    resp = post(client, CSR, token, body)
    assert resp.status_code == 201, resp.text
    return resp.json


def sign(client, token, csr_id, ca_id, **fields):
    return post(client, f"{CSR}/{csr_id}/sign", token, {"ca_id": ca_id, **fields})


@pytest.mark.parametrize("key_type,key_size", [("ec", 256), ("rsa", 2048)])
def test_in_vault_csr_from_request_to_certificate(client, services, data_dir, ca, requester, approver, admin_token,
                                                  tmp_path, key_type, key_size):
    made = post(client, CSR, requester, {
        "subject": {"common_name": f"vault-{key_type}.example.com", "organization": "ScaiVault Test",
                    "country": "DE", "locality": "Berlin", "province": "Berlin"},
        "san_dns": [f"vault-{key_type}.example.com", f"api-{key_type}.example.com"], "san_ip": ["8.8.8.9"],
        "key_type": key_type, "key_size": key_size})
    assert made.status_code == 201, made.text
    csr = made.json
    assert made.headers["location"] == f"{CSR}/{csr['id']}"
    assert csr["status"] == "pending" and csr["key_in_vault"] is True
    assert (csr["key_type"], csr["key_size"]) == (key_type, key_size)
    assert csr["subject"] == f"CN=vault-{key_type}.example.com,O=ScaiVault Test,L=Berlin,ST=Berlin,C=DE"
    assert csr["subject_fields"]["province"] == "Berlin" and csr["common_name"] == f"vault-{key_type}.example.com"
    assert csr["san_dns"] == [f"vault-{key_type}.example.com", f"api-{key_type}.example.com"]
    assert csr["san_ip"] == ["8.8.8.9"] and csr["requested_by"] == token_id(requester)
    assert "PRIVATE KEY" not in made.text

    # openssl checks the request's self-signature, made by the key inside the token.
    (tmp_path / "req.pem").write_text(csr["csr_pem"])
    verified = subprocess.run(["openssl", "req", "-in", str(tmp_path / "req.pem"), "-noout", "-verify"],
                              capture_output=True, text=True)
    assert verified.returncode == 0 and "verify OK" in verified.stdout + verified.stderr, verified.stderr
    request = cx509.load_pem_x509_csr(csr["csr_pem"].encode())
    expected_hash = "sha256" if key_type == "rsa" or key_size == 256 else "sha384"
    assert request.signature_hash_algorithm.name == expected_hash

    # The key is a token object, sensitive and never extractable, and it is the request's key.
    key_id = hsm_key_id(csr["id"])
    attributes = services.hsm.key_attributes(key_id)
    assert attributes["token"] and attributes["sensitive"] and attributes["always_sensitive"], attributes
    assert not attributes["extractable"] and attributes["never_extractable"] and attributes["local"], attributes
    assert attributes["sign"] and not attributes["decrypt"] and not attributes["unwrap"], attributes
    label, access = token_objects(data_dir, "privkey")[key_id]
    assert label == f"scaivault-csr-{csr['id']}"
    assert "never extractable" in access and "extractable" not in access.replace("never extractable", ""), access
    token_key = services.hsm.public_key_info(key_id).dump()
    assert spki(request) == token_key

    approved = post(client, f"{CSR}/{csr['id']}/approve", approver, {"reason": "looks right"})
    assert approved.status_code == 200, approved.text
    assert approved.json["status"] == "approved" and approved.json["approved_by"] == token_id(approver)
    assert approved.json["approved_at"].endswith("Z") and approved.json["reason"] == "looks right"

    signed = sign(client, admin_token, csr["id"], ca["id"])
    assert signed.status_code == 201, signed.text
    body = signed.json
    assert "private_key" not in body and body["csr_id"] == csr["id"]
    assert signed.headers["location"] == f"/v1/pki/certificates/{body['id']}"
    cert = check_issued(body)
    assert spki(cert) == token_key
    san = cert.extensions.get_extension_for_class(cx509.SubjectAlternativeName).value
    assert san.get_values_for_type(cx509.DNSName) == csr["san_dns"]
    assert [str(ip) for ip in san.get_values_for_type(cx509.IPAddress)] == ["8.8.8.9"]
    policies = cert.extensions.get_extension_for_class(cx509.CertificatePolicies).value
    assert [p.policy_identifier.dotted_string for p in policies] == ["2.23.140.1.2.2"]  # OV: O, C and L are there
    assert cert.subject.rfc4514_string() == csr["subject"]
    # No validity asked for: a year, but never more than the CA/B Forum allow a TLS server certificate today.
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days <= 365

    listed = get(client, "/v1/pki/certificates?source=csr&limit=1000", approver).json["items"]
    assert body["id"] in [item["id"] for item in listed]
    stored = get(client, f"/v1/pki/certificates/{body['id']}", requester).json
    assert stored["source"] == "csr" and stored["role"] is None

    view = get(client, f"{CSR}/{csr['id']}", requester).json
    assert view["status"] == "signed" and view["certificate_id"] == body["id"]
    assert [(t["from"], t["to"], t["actor"]) for t in view["transitions"]] == [
        (None, "pending", token_id(requester)),
        ("pending", "approved", token_id(approver)),
        ("approved", "signed", token_id(admin_token)),
    ]
    assert view["transitions"][1]["reason"] == "looks right" and all(t["at"].endswith("Z") for t in view["transitions"])
    # The key stays in the token: a certificate now stands for it.
    assert services.hsm.key_attributes(key_id)["never_extractable"]


def test_subject_as_rfc4514_string_or_object_and_san_only_requests(client, requester):
    made = new_csr(client, requester, subject="CN=str.example.com,OU=Platform,O=Example\\, Inc.,ST=Bayern,C=DE",
                   san_dns=["str.example.com"])
    assert made["subject_fields"] == {"common_name": "str.example.com", "ou": "Platform", "organization": "Example, Inc.",
                                      "province": "Bayern", "country": "DE"}
    assert made["subject"] == "CN=str.example.com,OU=Platform,O=Example\\, Inc.,ST=Bayern,C=DE"
    same = new_csr(client, requester, subject=made["subject_fields"], san_dns=["str.example.com"])
    assert same["subject"] == made["subject"]
    bare = new_csr(client, requester, subject="", san_dns=["bare.example.com"], san_email=["ops@example.com"])
    assert bare["subject"] == "" and bare["common_name"] is None and bare["san_email"] == ["ops@example.com"]


def test_email_names_give_an_email_protection_certificate(client, ca, requester, approver):
    made = new_csr(client, requester, subject={"common_name": "Alice Example"}, san_dns=[], san_email=["alice@example.com"])
    post(client, f"{CSR}/{made['id']}/approve", approver)
    signed = sign(client, approver, made["id"], ca["id"], validity_days=30)
    assert signed.status_code == 201, signed.text
    cert = check_issued(signed.json, server_auth=False)
    eku = cert.extensions.get_extension_for_class(cx509.ExtendedKeyUsage).value
    assert list(eku) == [cx509.oid.ExtendedKeyUsageOID.CLIENT_AUTH, cx509.oid.ExtendedKeyUsageOID.EMAIL_PROTECTION]
    assert signed.json["sans"]["email"] == ["alice@example.com"]


CREATE_REFUSALS = [
    ({"key_type": "ec", "key_size": 2048}, "invalid_field", "key_size"),
    ({"key_type": "rsa", "key_size": 384}, "invalid_field", "key_size"),
    ({"key_type": "dsa"}, "invalid_field", "key_type"),
    ({"subject": {"common_name": "x.example.com", "country": "Germany"}}, "invalid_field", "subject"),
    ({"subject": "CN=x.example.com,DC=example"}, "invalid_field", "subject"),
    ({"subject": "CN=a,CN=b"}, "invalid_field", "subject"),
    ({"subject": {"common_name": "x" * 65}}, "invalid_field", "subject"),
    ({"subject": {"cn": "x"}}, "invalid_field", "subject"),
    ({"san_dns": ["bad_name.example.com"]}, "invalid_field", "san_dns"),
    ({"san_dns": ["a.example.com", "a.example.com"]}, "invalid_field", "san_dns"),
    ({"san_ip": ["999.1.1.1"]}, "invalid_field", "san_ip"),
    ({"san_email": ["not-an-email"]}, "invalid_field", "san_email"),
    ({"subject": "", "san_dns": []}, "invalid_field", "subject"),
    ({"extra": 1}, "unknown_field", "extra"),
]


@pytest.mark.parametrize("fields,code,field", CREATE_REFUSALS, ids=[f[2] + str(i) for i, f in enumerate(CREATE_REFUSALS)])
def test_bad_create_bodies_name_the_field_and_touch_no_key(client, requester, data_dir, fields, code, field):
    before, keys_before = counts(), token_objects(data_dir, "privkey")
    body = {"subject": {"common_name": "x.example.com"}, "key_type": "ec", **fields}
    resp = post(client, CSR, requester, body)
    assert resp.status_code == 400, resp.text
    assert resp.json["error"]["code"] == code and resp.json["error"]["details"]["field"] == field
    assert counts() == before and token_objects(data_dir, "privkey") == keys_before


def test_missing_key_type_and_wrong_media(client, requester):
    resp = post(client, CSR, requester, {"subject": "CN=x.example.com"})
    assert resp.status_code == 400 and resp.json["error"]["details"]["field"] == "key_type"
    resp = client.simulate_post(CSR, body="subject=x", headers={**auth(requester), "Content-Type": "text/plain"})
    assert resp.status_code == 415


def test_a_failed_store_destroys_the_new_key(services, data_dir, client, requester):
    """Nothing may be left in the token when the database refuses the request (here: no such tenant)."""
    import peewee

    from scaivault_pki.pki.csr_workflow import create_request

    before = token_objects(data_dir, "privkey"), token_objects(data_dir, "pubkey")
    with pytest.raises(peewee.IntegrityError):
        create_request(services.hsm, "no-such-tenant", {"subject": "CN=orphan.example.com", "key_type": "ec"}, "actor")
    assert (token_objects(data_dir, "privkey"), token_objects(data_dir, "pubkey")) == before


@pytest.fixture(scope="module")
def in_state(client, ca, requester, approver, admin_token) -> dict[str, str]:
    """One in-vault CSR in every status."""
    made = {status: new_csr(client, requester, f"state-{status}")["id"] for status in ("pending", "approved", "rejected", "signed")}
    for status in ("approved", "signed"):
        assert post(client, f"{CSR}/{made[status]}/approve", approver).status_code == 200
    assert post(client, f"{CSR}/{made['rejected']}/reject", approver, {"reason": "not ours"}).status_code == 200
    assert sign(client, admin_token, made["signed"], ca["id"]).status_code == 201
    return made


ALLOWED = {("pending", "approve"), ("pending", "reject"), ("approved", "sign"), ("pending", "delete"), ("rejected", "delete")}
ILLEGAL = [pair for pair in itertools.product(("pending", "approved", "rejected", "signed"), ("approve", "reject", "sign", "delete"))
           if pair not in ALLOWED]


@pytest.mark.parametrize("status,action", ILLEGAL, ids=[f"{s}-{a}" for s, a in ILLEGAL])
def test_every_illegal_transition_answers_409_and_changes_nothing(client, services, ca, in_state, approver, status, action):
    csr_id = in_state[status]
    before, numbers = get(client, f"{CSR}/{csr_id}", approver).json, counts()
    if action == "delete":
        resp = client.simulate_delete(f"{CSR}/{csr_id}", headers=auth(approver))
    elif action == "sign":
        resp = sign(client, approver, csr_id, ca["id"])
    else:
        resp = post(client, f"{CSR}/{csr_id}/{action}", approver, {"reason": "try"})
    assert resp.status_code == 409, resp.text
    error = resp.json["error"]
    assert error["code"] == "invalid_state" and error["details"]["status"] == status and status in error["message"]
    assert get(client, f"{CSR}/{csr_id}", approver).json == before
    assert counts() == numbers
    assert services.hsm.key_attributes(hsm_key_id(csr_id))["never_extractable"]


def test_self_approval_is_refused_unless_the_tenant_allows_it(client, data_dir, admin_token):
    run_cli(data_dir, "tenant", "create", "csr-self")
    alone = create_token(data_dir, "csr-self", "pki:admin")
    csr = new_csr(client, alone, "self")
    refused = post(client, f"{CSR}/{csr['id']}/approve", alone)
    assert refused.status_code == 403, refused.text
    assert refused.json["error"]["code"] == "self_approval_refused" and refused.json["error"]["details"]["rule"] == "four_eyes"
    after = get(client, f"{CSR}/{csr['id']}", alone).json
    assert after["status"] == "pending" and len(after["transitions"]) == 1 and after["approved_by"] is None

    run_cli(data_dir, "tenant", "update", "csr-self", "--allow-self-approval", "true")
    allowed = post(client, f"{CSR}/{csr['id']}/approve", alone)
    assert allowed.status_code == 200 and allowed.json["approved_by"] == allowed.json["requested_by"] == token_id(alone)
    run_cli(data_dir, "tenant", "update", "csr-self", "--allow-self-approval", "false")
    again = new_csr(client, alone, "self-again")
    assert post(client, f"{CSR}/{again['id']}/approve", alone).status_code == 403
    assert run_cli(data_dir, "tenant", "update", "nope", "--allow-self-approval", "true", check=False).returncode == 1


def test_reject_needs_a_reason_and_records_it(client, requester, approver):
    csr = new_csr(client, requester, "reject-me")
    missing = post(client, f"{CSR}/{csr['id']}/reject", approver, {})
    assert missing.status_code == 400 and missing.json["error"]["details"]["field"] == "reason"
    rejected = post(client, f"{CSR}/{csr['id']}/reject", approver, {"reason": "wrong team"})
    assert rejected.status_code == 200, rejected.text
    body = rejected.json
    assert body["status"] == "rejected" and body["reason"] == "wrong team" and body["rejected_by"] == token_id(approver)
    assert body["transitions"][-1] == {"from": "pending", "to": "rejected", "actor": token_id(approver),
                                       "at": body["rejected_at"], "reason": "wrong team"}


def openssl_csr(tmp_path, subject: str, san: str, algorithm: tuple[str, ...] = ("-newkey", "ec",
                "-pkeyopt", "ec_paramgen_curve:P-384")) -> tuple[str, bytes]:
    """A request and its key made by openssl, not by us."""
    key = tmp_path / "client.key"
    csr = subprocess.run(["openssl", "req", "-new", *algorithm, "-nodes", "-keyout", str(key), "-subj", subject,
                          "-addext", f"subjectAltName={san}"], check=True, capture_output=True, text=True).stdout
    private = serialization.load_pem_private_key(key.read_bytes(), None)
    return csr, spki(private)


def test_imported_csr_with_a_tampered_signature_is_refused(client, requester, tmp_path):
    csr_pem, _ = openssl_csr(tmp_path, "/CN=tampered.example.com", "DNS:tampered.example.com")
    before = counts()
    resp = post(client, f"{CSR}/import", requester, {"csr_pem": tamper(csr_pem)})
    assert resp.status_code == 400, resp.text
    assert resp.json["error"]["code"] == "invalid_csr" and resp.json["error"]["details"]["field"] == "csr_pem"
    assert "signature" in resp.json["error"]["message"]
    garbage = post(client, f"{CSR}/import", requester, {"csr_pem": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"})
    assert garbage.status_code == 400 and garbage.json["error"]["code"] == "invalid_csr"
    weak, _ = openssl_csr(tmp_path, "/CN=weak.example.com", "DNS:weak.example.com", ("-newkey", "rsa:1024"))
    refused = post(client, f"{CSR}/import", requester, {"csr_pem": weak})
    assert refused.status_code == 422 and refused.json["error"]["details"]["rule"] == "key_size"
    assert counts() == before


def test_imported_csr_goes_through_the_whole_flow(client, ca, requester, approver, admin_token, tmp_path):
    csr_pem, client_key = openssl_csr(tmp_path, "/CN=imported.example.com/O=Client Org/L=Munich/C=DE",
                                      "DNS:imported.example.com,DNS:evil.example.net")
    imported = post(client, f"{CSR}/import", requester, {"csr_pem": csr_pem})
    assert imported.status_code == 201, imported.text
    csr = imported.json
    assert csr["status"] == "pending" and csr["key_in_vault"] is False and (csr["key_type"], csr["key_size"]) == ("ec", 384)
    assert csr["san_dns"] == ["imported.example.com", "evil.example.net"] and csr["subject"] == "C=DE,L=Munich,O=Client Org,CN=imported.example.com"  # as openssl ordered it
    assert hsm_key_id(csr["id"]) is None
    assert post(client, f"{CSR}/{csr['id']}/approve", approver).status_code == 200
    # The signer narrows the names: the override replaces what the request asked for.
    signed = sign(client, admin_token, csr["id"], ca["id"], validity_days=30, san={"dns": ["imported.example.com", "www.imported.example.com"]})
    assert signed.status_code == 201, signed.text
    cert = check_issued(signed.json)
    assert spki(cert) == client_key
    san = cert.extensions.get_extension_for_class(cx509.SubjectAlternativeName).value
    assert san.get_values_for_type(cx509.DNSName) == ["imported.example.com", "www.imported.example.com"]
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds() == 30 * 86400 + 30
    view = get(client, f"{CSR}/{csr['id']}", requester).json
    assert view["status"] == "signed" and view["certificate_id"] == signed.json["id"]
    assert [t["to"] for t in view["transitions"]] == ["pending", "approved", "signed"]


def test_a_cn_only_request_gets_its_cn_as_san(client, ca, requester, approver, tmp_path):
    key = tmp_path / "k.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(key)],
                   check=True, capture_output=True)
    csr_pem = subprocess.run(["openssl", "req", "-new", "-key", str(key), "-subj", "/CN=cn-only.example.com"],
                             check=True, capture_output=True, text=True).stdout
    csr = post(client, f"{CSR}/import", requester, {"csr_pem": csr_pem}).json
    post(client, f"{CSR}/{csr['id']}/approve", approver)
    signed = sign(client, approver, csr["id"], ca["id"], validity_days=10)
    assert signed.status_code == 201, signed.text
    cert = check_issued(signed.json)
    assert cert.extensions.get_extension_for_class(cx509.SubjectAlternativeName).value.get_values_for_type(
        cx509.DNSName) == ["cn-only.example.com"]


def test_sign_checks_the_ca_and_the_names(client, admin_token, other_tenant_token, ca, requester, approver):
    from scaivault_pki.schema.models import CertificateAuthority

    csr = new_csr(client, requester, "sign-checks")
    post(client, f"{CSR}/{csr['id']}/approve", approver)
    numbers = counts()
    other_ca = post(client, "/v1/pki/ca", other_tenant_token, {"name": "csr-other", "common_name": "Other CA",
                                                                "ca_type": "root", "key_type": "ec"}).json
    short = post(client, "/v1/pki/ca", admin_token, {"name": "csr-short", "common_name": "Short Root",
                                                     "ca_type": "root", "key_type": "ec", "validity_days": 20}).json
    revoked = post(client, "/v1/pki/ca", admin_token, {"name": "csr-revoked", "common_name": "Revoked Root",
                                                       "ca_type": "root", "key_type": "ec"}).json
    CertificateAuthority.update(status="revoked").where(CertificateAuthority.id == revoked["id"]).execute()
    numbers = (numbers[0], numbers[1], counts()[2])
    cases = [
        ({"ca_id": "no-such-ca"}, 404, "not_found", None),
        ({"ca_id": other_ca["id"]}, 404, "not_found", None),
        ({"ca_id": revoked["id"]}, 422, "ca_cannot_issue", None),
        ({"ca_id": ca["id"], "san": {"dns": ["Bad_Name.example.com"]}}, 400, "invalid_field", "san.dns"),
        ({"ca_id": ca["id"], "san": {"ip": ["10.0.0.300"]}}, 400, "invalid_field", "san.ip"),
        ({"ca_id": ca["id"], "validity_days": 0}, 400, "invalid_field", "validity_days"),
        ({}, 400, "missing_field", "ca_id"),
    ]
    for body, status, code, field in cases:
        resp = post(client, f"{CSR}/{csr['id']}/sign", approver, body)
        assert (resp.status_code, resp.json["error"]["code"]) == (status, code), (body, resp.text)
        if field:
            assert resp.json["error"]["details"]["field"] == field
        assert get(client, f"{CSR}/{csr['id']}", approver).json["status"] == "approved"
        assert counts() == numbers
    # A validity beyond the CA's own is cut to it; a DNS-name CN joins the names an override gives.
    signed = sign(client, approver, csr["id"], short["id"], validity_days=3650, san={"dns": ["other.example.com"]})
    assert signed.status_code == 201, signed.text
    assert signed.json["not_after"] == short["not_after"]
    assert signed.json["sans"]["dns"] == ["sign-checks.example.com", "other.example.com"]
    check_issued(signed.json)


def test_a_free_form_cn_cannot_be_a_tls_server(client, ca, requester, approver):
    csr = new_csr(client, requester, subject={"common_name": "Build Agent 7"}, san_dns=["agent7.example.com"])
    post(client, f"{CSR}/{csr['id']}/approve", approver)
    numbers = counts()
    refused = sign(client, approver, csr["id"], ca["id"])
    assert refused.status_code == 422 and refused.json["error"]["details"]["rule"] == "profile", refused.text
    assert "Build Agent 7" in refused.json["error"]["message"]
    assert counts() == numbers and get(client, f"{CSR}/{csr['id']}", approver).json["status"] == "approved"


def test_deleting_a_pending_in_vault_csr_removes_its_key_from_the_token(client, services, data_dir, requester, approver):
    from scaivault_pki.hsm import HsmKeyNotFound

    pending = new_csr(client, requester, "delete-pending")
    rejected = new_csr(client, requester, "delete-rejected")
    post(client, f"{CSR}/{rejected['id']}/reject", approver, {"reason": "no"})
    for csr in (pending, rejected):
        key_id = hsm_key_id(csr["id"])
        assert key_id in token_objects(data_dir, "privkey") and key_id in token_objects(data_dir, "pubkey")
        assert client.simulate_delete(f"{CSR}/{csr['id']}", headers=auth(requester)).status_code == 403
        resp = client.simulate_delete(f"{CSR}/{csr['id']}", headers=auth(approver))
        assert resp.status_code == 204, resp.text
        with pytest.raises(HsmKeyNotFound):
            services.hsm.key_attributes(key_id)
        assert key_id not in token_objects(data_dir, "privkey") and key_id not in token_objects(data_dir, "pubkey")
        assert get(client, f"{CSR}/{csr['id']}", approver).status_code == 404
        assert client.simulate_delete(f"{CSR}/{csr['id']}", headers=auth(approver)).status_code == 404


def test_delete_keeps_a_key_that_a_certificate_uses(client, services, ca, requester, approver, admin_token):
    """The PEM of an in-vault request can be signed elsewhere (here by a role): that certificate keeps the key."""
    role = post(client, "/v1/pki/roles", admin_token, {"name": "csr-keep", "ca_id": ca["id"], "key_type": "any",
                                                      "allowed_domains": ["example.com"], "allow_subdomains": True})
    assert role.status_code == 201, role.text
    csr = new_csr(client, requester, "keep-key")
    by_role = post(client, "/v1/pki/sign/csr-keep", requester, {"csr_pem": csr["csr_pem"], "ttl": "1h"})
    assert by_role.status_code == 201, by_role.text
    key_id = hsm_key_id(csr["id"])
    assert client.simulate_delete(f"{CSR}/{csr['id']}", headers=auth(approver)).status_code == 204
    assert services.hsm.key_attributes(key_id)["never_extractable"]
    assert get(client, f"{CSR}/{csr['id']}", approver).status_code == 404


def test_scopes(client, data_dir, ca, requester, in_state):
    reader = create_token(data_dir, "default", "pki:read")
    csr_id = in_state["pending"]
    assert get(client, CSR, requester).status_code == 200
    assert get(client, f"{CSR}/{csr_id}", requester).status_code == 200
    for path, body in ((f"{CSR}/{csr_id}/approve", {}), (f"{CSR}/{csr_id}/reject", {"reason": "r"}),
                       (f"{CSR}/{in_state['approved']}/sign", {"ca_id": ca["id"]})):
        resp = post(client, path, requester, body)
        assert resp.status_code == 403 and resp.json["error"]["details"]["required_scopes"] == ["pki:admin"], path
    assert client.simulate_delete(f"{CSR}/{csr_id}", headers=auth(requester)).status_code == 403
    for resp in (get(client, CSR, reader), get(client, f"{CSR}/{csr_id}", reader),
                 post(client, CSR, reader, {"subject": "CN=r.example.com", "key_type": "ec"}),
                 post(client, f"{CSR}/import", reader, {"csr_pem": "x"})):
        assert resp.status_code == 403, resp.text
    assert client.simulate_get(CSR).status_code == 401
    assert client.simulate_post(f"{CSR}/{csr_id}/approve").status_code == 401


def test_another_tenants_csr_is_not_found(client, other_tenant_token, approver, ca, in_state):
    bodies = {"approve": {}, "reject": {"reason": "x"}, "sign": {"ca_id": ca["id"]}}
    for csr_id in in_state.values():
        before = get(client, f"{CSR}/{csr_id}", approver).json
        assert get(client, f"{CSR}/{csr_id}", other_tenant_token).status_code == 404
        for action, body in bodies.items():
            resp = post(client, f"{CSR}/{csr_id}/{action}", other_tenant_token, body)
            assert resp.status_code == 404 and resp.json["error"]["code"] == "not_found", resp.text
        assert client.simulate_delete(f"{CSR}/{csr_id}", headers=auth(other_tenant_token)).status_code == 404
        assert get(client, f"{CSR}/{csr_id}", approver).json == before
    listed = get(client, f"{CSR}?limit=1000", other_tenant_token).json["items"]
    assert not set(in_state.values()) & {item["id"] for item in listed}


def test_list_filters_by_status_and_pages(client, requester, in_state):
    made = {new_csr(client, requester, f"page-{i}")["id"] for i in range(5)}
    seen, cursor = [], None
    while True:
        page = get(client, f"{CSR}?status=pending&limit=2" + (f"&cursor={cursor}" if cursor else ""), requester).json
        assert len(page["items"]) <= 2
        seen += [item["id"] for item in page["items"]]
        assert all(item["status"] == "pending" and "transitions" not in item and "csr_pem" not in item
                   for item in page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) and made <= set(seen) and in_state["pending"] in seen
    assert in_state["approved"] not in seen
    signed = get(client, f"{CSR}?status=signed&limit=1000", requester).json["items"]
    assert in_state["signed"] in [item["id"] for item in signed] and all(i["status"] == "signed" for i in signed)
    bad = get(client, f"{CSR}?status=done", requester)
    assert bad.status_code == 400 and bad.json["error"]["details"]["field"] == "status"
    assert get(client, f"{CSR}?cursor=zzz", requester).status_code == 400


def test_a_stale_transition_is_refused_by_the_conditional_update(client, requester, approver):
    """Two approvers both saw 'pending'; the second write finds the status moved on and writes nothing."""
    from scaivault_pki.errors import ApiError
    from scaivault_pki.pki.csr_workflow import plan_transition, record_transition
    from scaivault_pki.schema.db import write_transaction
    from scaivault_pki.schema.models import CsrRequest

    csr = new_csr(client, requester, "stale")
    stale = CsrRequest.get_by_id(csr["id"])
    transition = plan_transition("reject", stale.status, actor="late", requested_by=stale.requested_by, reason="late")
    assert post(client, f"{CSR}/{csr['id']}/approve", approver).status_code == 200
    before = get(client, f"{CSR}/{csr['id']}", approver).json
    with pytest.raises(ApiError) as refused, write_transaction():
        record_transition(stale, transition, "late", reason="late")
    assert refused.value.code == "invalid_state" and refused.value.details["status"] == "approved"
    assert get(client, f"{CSR}/{csr['id']}", approver).json == before


@pytest.mark.slow
@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_concurrent_decisions_and_signatures_have_exactly_one_winner(tmp_path, request, database):
    """Through gunicorn with two workers: approve races reject, and sign races sign, on the same CSRs."""
    overrides = {"database_url": request.getfixturevalue("pg_url")} if database == "postgresql" else {}
    admin = init_data_dir(tmp_path, **overrides)
    requester_token = create_token(tmp_path, "default", "pki:issue", **overrides)
    daemon = start_daemon(tmp_path, workers=2, **overrides)
    url = daemon.url + CSR
    try:
        def call(method, path, token, body=None):
            return requests.request(method, path, json=body, headers=auth(token), timeout=60)

        root = call("POST", daemon.url + "/v1/pki/ca", admin, {"name": "race", "common_name": "Race Root",
                                                               "ca_type": "root", "key_type": "ec"})
        assert root.status_code == 201, root.text
        ids = [call("POST", url, requester_token, {"subject": f"CN=race{i}.example.com", "san_dns": [f"race{i}.example.com"],
                                                   "key_type": "ec"}).json()["id"] for i in range(12)]
        jobs = [(csr_id, action) for csr_id in ids for action in ("approve", "reject")]
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(lambda job: call("POST", f"{url}/{job[0]}/{job[1]}", admin, {"reason": "race"}), jobs))
        status = {}
        for index, csr_id in enumerate(ids):
            approve, reject = results[2 * index], results[2 * index + 1]
            assert sorted([approve.status_code, reject.status_code]) == [200, 409], (approve.text, reject.text)
            loser = approve if approve.status_code == 409 else reject
            status[csr_id] = "approved" if approve.status_code == 200 else "rejected"
            assert loser.json()["error"]["details"]["status"] == status[csr_id]
            view = call("GET", f"{url}/{csr_id}", admin).json()
            assert view["status"] == status[csr_id] and [t["to"] for t in view["transitions"]] == ["pending", status[csr_id]]

        extra = [call("POST", url, requester_token, {"subject": f"CN=more{i}.example.com", "key_type": "ec"}).json()["id"]
                 for i in range(3)]
        for csr_id in extra:
            assert call("POST", f"{url}/{csr_id}/approve", admin).status_code == 200
        approved = [csr_id for csr_id in ids if status[csr_id] == "approved"] + extra
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            signs = list(pool.map(lambda csr_id: call("POST", f"{url}/{csr_id}/sign", admin, {"ca_id": root.json()["id"]}),
                                  [csr_id for csr_id in approved for _ in range(2)]))
        for index, csr_id in enumerate(approved):
            pair = signs[2 * index: 2 * index + 2]
            assert sorted(r.status_code for r in pair) == [201, 409], [r.text for r in pair]
            view = call("GET", f"{url}/{csr_id}", admin).json()
            assert view["certificate_id"] == next(r for r in pair if r.status_code == 201).json()["id"]
        listed = call("GET", daemon.url + "/v1/pki/certificates?source=csr&limit=1000", admin).json()["items"]
        assert len(listed) == len(approved)
        # Deleting looks for certificates that use the request's key (a database-specific query): none here.
        for csr_id in ids:
            if status[csr_id] == "rejected":
                assert call("DELETE", f"{url}/{csr_id}", admin).status_code == 204
    finally:
        daemon.stop()
    assert "Traceback" not in daemon.log()
