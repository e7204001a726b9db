"""Roles, issue, sign, renew and stored keys through the real HTTP app, SoftHSM token and SQLite."""

from __future__ import annotations

import logging
import subprocess

import pytest
from asn1crypto import pem, x509
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from tests.conftest import auth
from tests.support.daemon import create_token
from tests.support.lint import openssl_verify, pkilint_errors

pytestmark = pytest.mark.needs_softhsm


def post(client, path, token, body):
    return client.simulate_post(path, json=body, headers=auth(token))


@pytest.fixture(scope="module")
def cas(client, admin_token):
    """An EC and an RSA hierarchy: root -> issuing intermediate."""
    out = {}
    for key_type, size in (("ec", 256), ("rsa", 2048)):
        root = post(client, "/v1/pki/ca", admin_token, {
            "name": f"iss-root-{key_type}", "common_name": f"Issuance Root {key_type}", "ca_type": "root",
            "key_type": key_type, "key_size": size, "organization": "ScaiVault Test", "country": "DE"})
        assert root.status_code == 201, root.text
        inter = post(client, "/v1/pki/ca", admin_token, {
            "name": f"iss-int-{key_type}", "common_name": f"Issuance Intermediate {key_type}",
            "ca_type": "intermediate", "parent_ca_id": root.json["id"], "key_type": key_type, "key_size": size,
            "organization": "ScaiVault Test", "country": "DE"})
        assert inter.status_code == 201, inter.text
        out[key_type] = inter.json
    return out


def make_role(client, token, name, ca_id, **settings):
    resp = post(client, "/v1/pki/roles", token, {"name": name, "ca_id": ca_id, **settings})
    assert resp.status_code == 201, resp.text
    return resp.json


@pytest.fixture(scope="module")
def roles(client, admin_token, cas):
    return {
        "web-ec": make_role(client, admin_token, "web-ec", cas["ec"]["id"], allowed_domains=["example.com"],
                            allow_subdomains=True, allow_bare_domains=True, key_type="ec", key_bits=256, max_ttl="90d"),
        "web-rsa": make_role(client, admin_token, "web-rsa", cas["rsa"]["id"], allowed_domains=["example.com"],
                             allow_subdomains=True, key_type="rsa", key_bits=2048, max_ttl="720h", ttl="24h"),
        "strict": make_role(client, admin_token, "strict", cas["ec"]["id"], allowed_domains=["example.org"],
                            allow_subdomains=True, allow_wildcard_certificates=False, allow_ip_sans=False,
                            allow_localhost=False, key_type="ec", key_bits=256, max_ttl="7d"),
        "stored": make_role(client, admin_token, "stored", cas["ec"]["id"], allowed_domains=["example.net"],
                            allow_subdomains=True, key_type="ec", key_bits=384, store_private_keys=True),
        "csr-any": make_role(client, admin_token, "csr-any", cas["rsa"]["id"], allowed_domains=["example.com"],
                             allow_subdomains=True, key_type="any", allowed_ip_sans_cidr=["8.8.8.0/24"]),
        "clients": make_role(client, admin_token, "clients", cas["ec"]["id"], allow_any_name=True,
                             enforce_hostnames=False, ext_key_usage=["ClientAuth"], key_type="ec", key_bits=256,
                             allowed_uri_sans=["https://agents.example.org/*"]),
    }


def certificate_count() -> int:
    from scaivault_pki.schema.models import Certificate

    return Certificate.select().count()


def check_issued(body: dict, *, server_auth: bool = True, key_pem: str | None = None) -> cx509.Certificate:
    """openssl verify against the returned chain, pkilint, and (when given) the key matches."""
    chain = [c.encode() for c in body["ca_chain"]]
    ok, output = openssl_verify([chain[-1]], chain[:-1], body["certificate"].encode())
    assert ok, output
    assert pkilint_errors(body["certificate"].encode(), "pkix") == []
    if server_auth:
        assert pkilint_errors(body["certificate"].encode(), "cabf_serverauth") == []
    cert = cx509.load_pem_x509_certificate(body["certificate"].encode())
    if key_pem is not None:
        key = serialization.load_pem_private_key(key_pem.encode(), None)
        assert key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) == \
            cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert format(cert.serial_number, "x").rjust(len(body["serial_number"]), "0") == body["serial_number"]
    return cert


@pytest.mark.parametrize("role,key_class,size", [("web-ec", ec.EllipticCurvePrivateKey, 256),
                                                  ("web-rsa", rsa.RSAPrivateKey, 2048)])
def test_issue_verifies_and_lints(client, admin_token, roles, role, key_class, size):
    resp = post(client, f"/v1/pki/issue/{role}", admin_token,
                {"common_name": "www.example.com", "alt_names": ["api.example.com", "WWW.Example.com."], "ttl": "24h"})
    assert resp.status_code == 201, resp.text
    body = resp.json
    cert = check_issued(body, key_pem=body["private_key"])
    key = serialization.load_pem_private_key(body["private_key"].encode(), None)
    assert isinstance(key, key_class) and key.key_size == size
    assert body["private_key"].startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8
    san = cert.extensions.get_extension_for_class(cx509.SubjectAlternativeName).value
    assert san.get_values_for_type(cx509.DNSName) == ["www.example.com", "api.example.com"]
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds() == 24 * 3600 + 30
    assert len(body["ca_chain"]) == 2 and body["not_after"].endswith("Z")
    ku = cert.extensions.get_extension_for_class(cx509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and ku.value.key_encipherment == (role == "web-rsa")
    eku = cert.extensions.get_extension_for_class(cx509.ExtendedKeyUsage).value
    assert list(eku) == [cx509.oid.ExtendedKeyUsageOID.SERVER_AUTH, cx509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]
    aia = cert.extensions.get_extension_for_class(cx509.AuthorityInformationAccess).value
    assert any("/ocsp" in d.access_location.value for d in aia)
    stored = client.simulate_get(f"/v1/pki/certificates/{body['id']}", headers=auth(admin_token)).json
    assert stored["source"] == "issued" and stored["role"] == role and "private_key" not in stored
    assert stored["private_key_stored"] is False


def test_issue_defaults_ttl_from_role(client, admin_token, roles):
    body = post(client, "/v1/pki/issue/web-rsa", admin_token, {"common_name": "ttl.example.com"}).json
    cert = check_issued(body)
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds() == 24 * 3600 + 30


def test_client_role_with_free_form_cn(client, admin_token, roles):
    # A free-form CN is no DNS name, so it cannot be the SAN; without any SAN nothing is issued (SAN always).
    bare = post(client, "/v1/pki/issue/clients", admin_token, {"common_name": "Build Agent 7"})
    assert bare.status_code == 422 and "subjectAltName" in bare.json["error"]["message"]
    resp = post(client, "/v1/pki/issue/clients", admin_token,
                {"common_name": "Build Agent 7", "uri_sans": ["https://agents.example.org/7"]})
    assert resp.status_code == 201, resp.text
    cert = check_issued(resp.json, server_auth=False, key_pem=resp.json["private_key"])
    eku = cert.extensions.get_extension_for_class(cx509.ExtendedKeyUsage).value
    assert list(eku) == [cx509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]


def make_csr(common_name: str | None, dns=(), ips=(), key=None, hash_alg=None) -> tuple[str, object]:
    key = key or ec.generate_private_key(ec.SECP256R1())
    builder = cx509.CertificateSigningRequestBuilder().subject_name(
        cx509.Name([cx509.NameAttribute(NameOID.COMMON_NAME, common_name)] if common_name else []))
    import ipaddress

    names = [cx509.DNSName(d) for d in dns] + [cx509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    if names:
        builder = builder.add_extension(cx509.SubjectAlternativeName(names), critical=False)
    csr = builder.sign(key, hash_alg or hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode(), key


def spki(obj) -> bytes:
    return obj.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_sign_csr_keeps_its_key_and_names(client, admin_token, roles):
    csr_pem, key = make_csr("svc.example.com", dns=["svc.example.com", "alt.example.com"], ips=["8.8.8.9"],
                            key=rsa.generate_private_key(65537, 3072))
    resp = post(client, "/v1/pki/sign/csr-any", admin_token, {"csr_pem": csr_pem, "ttl": "1h"})
    assert resp.status_code == 201, resp.text
    assert "private_key" not in resp.json
    cert = check_issued(resp.json)
    assert spki(cert) == spki(key)
    san = cert.extensions.get_extension_for_class(cx509.SubjectAlternativeName).value
    assert san.get_values_for_type(cx509.DNSName) == ["svc.example.com", "alt.example.com"]
    assert [str(i) for i in san.get_values_for_type(cx509.IPAddress)] == ["8.8.8.9"]


def test_sign_with_san_override(client, admin_token, roles):
    csr_pem, _ = make_csr("over.example.com", dns=["evil.invalid"])
    resp = post(client, "/v1/pki/sign/web-ec", admin_token,
                {"csr_pem": csr_pem, "san": {"dns": ["over.example.com", "two.example.com"]}})
    assert resp.status_code == 201, resp.text
    cert = check_issued(resp.json)
    san = cert.extensions.get_extension_for_class(cx509.SubjectAlternativeName).value
    assert san.get_values_for_type(cx509.DNSName) == ["over.example.com", "two.example.com"]


def test_sign_openssl_made_csr(client, admin_token, roles, tmp_path):
    key = tmp_path / "k.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(key)], check=True)
    csr = subprocess.run(["openssl", "req", "-new", "-key", str(key), "-subj", "/CN=ossl.example.com",
                          "-addext", "subjectAltName=DNS:ossl.example.com"], check=True, capture_output=True, text=True).stdout
    resp = post(client, "/v1/pki/sign/web-ec", admin_token, {"csr_pem": csr})
    assert resp.status_code == 201, resp.text
    check_issued(resp.json)


def test_renew_issued_makes_a_new_key(client, admin_token, roles):
    first = post(client, "/v1/pki/issue/web-ec", admin_token, {"common_name": "renew.example.com", "ttl": "2h"}).json
    resp = client.simulate_post(f"/v1/pki/certificates/{first['id']}/renew", headers=auth(admin_token))
    assert resp.status_code == 201, resp.text
    renewed = resp.json
    cert = check_issued(renewed, key_pem=renewed["private_key"])
    old = cx509.load_pem_x509_certificate(first["certificate"].encode())
    assert spki(cert) != spki(old) and cert.subject == old.subject
    assert renewed["sans"] == first["sans"] and renewed["serial_number"] != first["serial_number"]
    view = client.simulate_get(f"/v1/pki/certificates/{renewed['id']}", headers=auth(admin_token)).json
    assert view["renewed_from"] == first["id"]


def test_renew_signed_keeps_the_public_key(client, admin_token, roles):
    csr_pem, key = make_csr("keep.example.com", dns=["keep.example.com"])
    first = post(client, "/v1/pki/sign/web-ec", admin_token, {"csr_pem": csr_pem}).json
    resp = client.simulate_post(f"/v1/pki/certificates/{first['id']}/renew", json={"ttl": "3h"}, headers=auth(admin_token))
    assert resp.status_code == 201, resp.text
    cert = check_issued(resp.json)
    assert spki(cert) == spki(key) and "private_key" not in resp.json
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds() == 3 * 3600 + 30


# The same kinds of refusal the RolePolicy table test covers, through HTTP: each a clear 4xx, nothing stored.
REFUSALS = [
    ("strict", {"common_name": "evil.com"}, 422, "allowed_domains"),
    ("strict", {"common_name": "example.org"}, 422, "allowed_domains"),
    ("strict", {"common_name": "www.example.org", "alt_names": ["evil.example.com"]}, 422, "allowed_domains"),
    ("strict", {"common_name": "*.example.org"}, 422, "allow_wildcard_certificates"),
    ("strict", {"common_name": "www.example.org", "ip_sans": ["203.0.113.1"]}, 422, "allow_ip_sans"),
    ("strict", {"common_name": "localhost"}, 422, "allowed_domains"),
    ("strict", {"common_name": "www.example.org", "ttl": "8d"}, 422, "max_ttl"),
    ("strict", {"common_name": "www.example.org", "uri_sans": ["spiffe://example.org/x"]}, 422, "allowed_uri_sans"),
    ("strict", {"common_name": "bad_name.example.org"}, 422, "enforce_hostnames"),
    ("strict", {"common_name": "www.example.org", "ttl": "soon"}, 400, None),
    ("strict", {"common_name": "www.example.org", "ip_sans": ["999.1.1.1"]}, 400, None),
    ("strict", {"common_name": "www.example.org", "extra": 1}, 400, None),
    ("strict", {"alt_names": ["www.example.org"]}, 400, None),
    ("csr-any", {"common_name": "www.example.com"}, 422, "key_type"),
    ("web-ec", {"common_name": "f*o.example.com"}, 422, "enforce_hostnames"),
    ("web-ec", {"common_name": "a.example.com", "ttl": "91d"}, 422, "max_ttl"),
    ("web-ec", {"common_name": "xn--bcher-kva.example.net"}, 422, "allowed_domains"),
]


@pytest.mark.parametrize("role,body,status,rule", REFUSALS, ids=[f"{r}-{s}-{rule}" for r, _, s, rule in REFUSALS])
def test_issue_refusals(client, admin_token, roles, role, body, status, rule):
    before = certificate_count()
    resp = post(client, f"/v1/pki/issue/{role}", admin_token, body)
    assert resp.status_code == status, resp.text
    error = resp.json["error"]
    assert error["message"]
    if rule:
        assert error["code"] == "policy_violation" and error["details"]["rule"] == rule
        assert rule in error["message"] or error["details"]["value"] in error["message"]
    assert certificate_count() == before


def tamper(csr_pem: str) -> str:
    der = bytearray(pem.unarmor(csr_pem.encode())[2])
    der[-5] ^= 0x01  # inside the signature
    return pem.armor("CERTIFICATE REQUEST", bytes(der)).decode()


@pytest.mark.parametrize(
    "case,status,rule",
    [
        ("bad_signature", 400, None),
        ("rsa_1024_key", 422, "key_bits"),
        ("rsa_key_for_ec_role", 422, "key_type"),
        ("disallowed_name", 422, "allowed_domains"),
        ("wildcard_off", 422, "allow_wildcard_certificates"),
        ("ip_san_off", 422, "allow_ip_sans"),
        ("ip_outside_cidr", 422, "allowed_ip_sans_cidr"),
        ("not_a_csr", 400, None),
        ("no_cn", 422, "require_cn"),
    ],
)
def test_sign_refusals(client, admin_token, roles, case, status, rule):
    role, csr = {
        "bad_signature": lambda: ("web-ec", tamper(make_csr("x.example.com", dns=["x.example.com"])[0])),
        "rsa_1024_key": lambda: ("web-rsa", make_csr("x.example.com", key=rsa.generate_private_key(65537, 1024))[0]),
        "rsa_key_for_ec_role": lambda: ("strict", make_csr("x.example.org", key=rsa.generate_private_key(65537, 2048))[0]),
        "disallowed_name": lambda: ("strict", make_csr("x.example.com")[0]),
        "wildcard_off": lambda: ("strict", make_csr("*.example.org")[0]),
        "ip_san_off": lambda: ("strict", make_csr("x.example.org", ips=["203.0.113.5"])[0]),
        "ip_outside_cidr": lambda: ("csr-any", make_csr("x.example.com", ips=["9.9.9.9"])[0]),
        "not_a_csr": lambda: ("web-ec", "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"),
        "no_cn": lambda: ("web-ec", make_csr(None, dns=["x.example.com"])[0]),
    }[case]()
    before = certificate_count()
    resp = post(client, f"/v1/pki/sign/{role}", admin_token, {"csr_pem": csr})
    assert resp.status_code == status, resp.text
    if rule:
        assert resp.json["error"]["details"]["rule"] == rule
    else:
        assert resp.json["error"]["code"] == "invalid_csr" and resp.json["error"]["details"]["field"] == "csr_pem"
    assert certificate_count() == before


def test_stored_private_keys(client, admin_token, roles, data_dir, caplog):
    from scaivault_pki.schema.models import Certificate

    caplog.set_level(logging.DEBUG)
    issued = post(client, "/v1/pki/issue/stored", admin_token, {"common_name": "kept.example.net"}).json
    assert issued["private_key_stored"] is True
    key_pem = issued["private_key"]
    # Retrieval with pki:issue, and the same key comes back.
    issuer = create_token(data_dir, "default", "pki:issue")
    got = client.simulate_post(f"/v1/pki/certificates/{issued['id']}/private-key", headers=auth(issuer))
    assert got.status_code == 200 and got.json["private_key"] == key_pem
    assert got.headers["cache-control"] == "no-store"
    reader = create_token(data_dir, "default", "pki:read")
    assert client.simulate_post(f"/v1/pki/certificates/{issued['id']}/private-key", headers=auth(reader)).status_code == 403
    # Never in GET or list responses.
    for path in (f"/v1/pki/certificates/{issued['id']}", "/v1/pki/certificates?limit=1000&role=stored",
                 f"/v1/pki/certificates/{issued['id']}/pem"):
        assert "PRIVATE KEY" not in client.simulate_get(path, headers=auth(admin_token)).text
    # In the database only as ciphertext.
    row = Certificate.get_by_id(issued["id"])
    raw = row.private_key_ciphertext
    der = pem.unarmor(key_pem.encode())[2]
    assert b"PRIVATE KEY" not in raw and der not in raw and der[-32:] not in raw
    # A role that does not store keys: nothing to retrieve; another tenant: not found.
    plain = post(client, "/v1/pki/issue/web-ec", admin_token, {"common_name": "nokey.example.com"}).json
    resp = client.simulate_post(f"/v1/pki/certificates/{plain['id']}/private-key", headers=auth(admin_token))
    assert resp.status_code == 409 and resp.json["error"]["code"] == "invalid_state"
    assert Certificate.get_by_id(plain["id"]).private_key_ciphertext is None
    assert client.simulate_post("/v1/pki/certificates/nope/private-key", headers=auth(admin_token)).status_code == 404
    assert key_pem not in caplog.text and "PRIVATE KEY" not in caplog.text


def test_stored_key_ciphertext_is_bound_to_its_row(client, admin_token, roles, services):
    """A ciphertext copied onto another certificate's row does not decrypt there."""
    from scaivault_pki.schema.models import Certificate

    one = post(client, "/v1/pki/issue/stored", admin_token, {"common_name": "one.example.net"}).json
    two = post(client, "/v1/pki/issue/stored", admin_token, {"common_name": "two.example.net"}).json
    Certificate.update(private_key_ciphertext=Certificate.get_by_id(one["id"]).private_key_ciphertext).where(
        Certificate.id == two["id"]).execute()
    resp = client.simulate_post(f"/v1/pki/certificates/{two['id']}/private-key", headers=auth(admin_token))
    # Our stored data is at fault, not the request: a 500 that reveals nothing.
    assert resp.status_code == 500 and one["private_key"] not in resp.text


class TestRoles:
    def test_crud(self, client, admin_token, cas):
        role = make_role(client, admin_token, "crud", cas["ec"]["id"], allowed_domains=["Example.COM."],
                         allow_subdomains=True, max_ttl=86400, key_usage=["DigitalSignature"], ext_key_usage=["ServerAuth"])
        assert role["allowed_domains"] == ["example.com"] and role["max_ttl"] == "1d"
        assert role["key_usage"] == ["digital_signature"] and role["ext_key_usage"] == ["server_auth"]
        assert role["allow_wildcard_certificates"] is True and role["store_private_keys"] is False
        got = client.simulate_get("/v1/pki/roles/crud", headers=auth(admin_token))
        assert got.status_code == 200 and got.json == role
        patched = client.simulate_patch("/v1/pki/roles/crud", json={"max_ttl": "2d", "allow_ip_sans": False},
                                        headers=auth(admin_token))
        assert patched.status_code == 200 and patched.json["max_ttl"] == "2d" and patched.json["allow_ip_sans"] is False
        assert patched.json["allowed_domains"] == ["example.com"]
        listed = client.simulate_get("/v1/pki/roles", headers=auth(admin_token)).json
        assert "crud" in [r["name"] for r in listed["items"]]
        assert client.simulate_delete("/v1/pki/roles/crud", headers=auth(admin_token)).status_code == 204
        assert client.simulate_get("/v1/pki/roles/crud", headers=auth(admin_token)).status_code == 404

    def test_patch_takes_effect_on_the_next_issue(self, client, admin_token, cas):
        make_role(client, admin_token, "flip", cas["ec"]["id"], allowed_domains=["flip.example.com"],
                  allow_bare_domains=True, key_type="ec", key_bits=256)
        assert post(client, "/v1/pki/issue/flip", admin_token, {"common_name": "flip.example.com"}).status_code == 201
        client.simulate_patch("/v1/pki/roles/flip", json={"allow_bare_domains": False}, headers=auth(admin_token))
        assert post(client, "/v1/pki/issue/flip", admin_token, {"common_name": "flip.example.com"}).status_code == 422

    @pytest.mark.parametrize(
        "settings,code,field",
        [
            ({"max_ttl": "forever"}, "invalid_duration", "max_ttl"),
            ({"ttl": "10d", "max_ttl": "1d"}, "invalid_field", "ttl"),
            ({"key_type": "ec", "key_bits": 2048}, "invalid_field", "key_bits"),
            ({"allowed_domains": ["*.example.com"]}, "invalid_field", "allowed_domains"),
            ({"allowed_ip_sans_cidr": ["10.0.0.0/33"]}, "invalid_field", "allowed_ip_sans_cidr"),
            ({"key_usage": ["Teleport"]}, "invalid_field", "key_usage"),
            ({"ext_key_usage": ["Nope"]}, "invalid_field", "ext_key_usage"),
            ({"key_type": "ec", "key_usage": ["KeyEncipherment"]}, "invalid_field", "key_usage"),
            ({"allow_subdomains": "yes"}, "invalid_field", "allow_subdomains"),
            ({"country": "DEU"}, "invalid_field", "country"),
            ({"not_before_duration": "2h"}, "invalid_field", "not_before_duration"),
            ({"surprise": True}, "unknown_field", "surprise"),
        ],
    )
    def test_bad_role_settings_name_the_field(self, client, admin_token, cas, settings, code, field):
        resp = post(client, "/v1/pki/roles", admin_token, {"name": "bad", "ca_id": cas["ec"]["id"], **settings})
        assert resp.status_code == 400, resp.text
        assert resp.json["error"]["code"] == code and resp.json["error"]["details"]["field"] == field

    def test_conflicts_and_scopes(self, client, admin_token, cas, data_dir, other_tenant_token):
        make_role(client, admin_token, "dup-role", cas["ec"]["id"])
        assert post(client, "/v1/pki/roles", admin_token, {"name": "dup-role", "ca_id": cas["ec"]["id"]}).status_code == 409
        issuer = create_token(data_dir, "default", "pki:issue")
        assert post(client, "/v1/pki/roles", issuer, {"name": "by-issuer", "ca_id": cas["ec"]["id"]}).status_code == 403
        assert client.simulate_get("/v1/pki/roles/dup-role", headers=auth(issuer)).status_code == 200
        assert client.simulate_get("/v1/pki/roles/dup-role", headers=auth(other_tenant_token)).status_code == 404
        assert post(client, "/v1/pki/roles", other_tenant_token, {"name": "x", "ca_id": cas["ec"]["id"]}).status_code == 404
        assert post(client, "/v1/pki/issue/dup-role", other_tenant_token, {"common_name": "a.example.com"}).status_code == 404
        assert post(client, "/v1/pki/issue/no-such-role", admin_token, {"common_name": "a.example.com"}).status_code == 404
        reader = create_token(data_dir, "default", "pki:read")
        assert post(client, "/v1/pki/issue/dup-role", reader, {"common_name": "a.example.com"}).status_code == 403


class TestCertificates:
    def test_get_pem_patch(self, client, admin_token, roles):
        issued = post(client, "/v1/pki/issue/web-ec", admin_token, {"common_name": "meta.example.com"}).json
        pem_resp = client.simulate_get(f"/v1/pki/certificates/{issued['id']}/pem", headers=auth(admin_token))
        assert pem_resp.headers["content-type"] == "application/x-pem-file" and pem_resp.text == issued["certificate"]
        patched = client.simulate_patch(f"/v1/pki/certificates/{issued['id']}",
                                        json={"tags": {"team": "web"}, "description": "front door"}, headers=auth(admin_token))
        assert patched.status_code == 200 and patched.json["tags"] == {"team": "web"}
        assert patched.json["description"] == "front door"
        bad = client.simulate_patch(f"/v1/pki/certificates/{issued['id']}", json={"tags": {"x": 1}}, headers=auth(admin_token))
        assert bad.status_code == 400 and bad.json["error"]["details"]["field"] == "tags.x"
        assert client.simulate_patch(f"/v1/pki/certificates/{issued['id']}", json={"serial_number": "00"},
                                     headers=auth(admin_token)).status_code == 400

    def test_filters(self, client, admin_token, roles, cas):
        post(client, "/v1/pki/issue/web-rsa", admin_token, {"common_name": "filter.example.com", "ttl": "1h"})
        def items(**params):
            resp = client.simulate_get("/v1/pki/certificates", params={"limit": "1000", **params}, headers=auth(admin_token))
            assert resp.status_code == 200, resp.text
            return resp.json["items"]
        assert all(i["ca_id"] == cas["rsa"]["id"] for i in items(ca_id=cas["rsa"]["id"]))
        assert all(i["role"] == "web-rsa" for i in items(role="web-rsa"))
        soon = items(expiring_within="2h")
        assert "filter.example.com" in [i["common_name"] for i in soon]
        assert all(i["common_name"] != "www.example.com" or i["role"] != "web-ec" for i in soon)
        assert [i["common_name"] for i in items(common_name="FILTER.example.com")] == ["filter.example.com"]
        assert all(i["status"] == "valid" for i in items(status="valid"))
        assert all(i["source"] != "ca" for i in items())
        assert {i["source"] for i in items(source="ca")} == {"ca"}
        for params in ({"expiring_within": "soon"}, {"status": "odd"}, {"include_revoked": "maybe"}, {"limit": "1001"}):
            assert client.simulate_get("/v1/pki/certificates", params=params, headers=auth(admin_token)).status_code == 400
