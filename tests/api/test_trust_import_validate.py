"""Trust anchors, certificate import and chain validation through the real HTTP app, SoftHSM token and SQLite.

The heart is a table of crafted chains (tests/support/crafted.py): each is validated through
``POST /v1/pki/certificates/validate`` with its root registered as a trust anchor, must give exactly the expected
error codes at the expected certificate indexes, and (where OpenSSL applies the same rule) ``openssl verify`` must
reach the same verdict. Refusals outnumber acceptances: a false "valid" is a security bug.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.conftest import auth
from tests.support.crafted import (
    UNKNOWN_EXTENSION_OID,
    Crafter,
    Node,
    bundle,
    crl_pem,
    new_key,
    openssl_verdict,
)
from tests.support.daemon import create_token

pytestmark = pytest.mark.needs_softhsm

HOST = "www.example.com"
VALIDATE = "/v1/pki/certificates/validate"
ANCHORS = "/v1/pki/trust-anchors"
IMPORT = "/v1/pki/certificates/import"
ANY = object()


def post(client, path, token, body):
    return client.simulate_post(path, json=body, headers=auth(token))


def add_anchor(client, token, node: Node, name: str) -> dict:
    resp = post(client, ANCHORS, token, {"name": name, "certificate_pem": node.pem})
    assert resp.status_code == 201, resp.text
    return resp.json


# ---------------------------------------------------------------------------
# The crafted-chain table
# ---------------------------------------------------------------------------


@dataclass
class Case:
    target: Node
    chain: Sequence[Node]
    anchors: Sequence[Node]
    errors: set[tuple[str, int]] = field(default_factory=set)  # exactly the (code, certificate_index) expected
    hostname: str | None = None
    at_offset: timedelta | None = None  # validation_time = crafter.now + offset
    crls: Sequence[x509.CertificateRevocationList] = ()
    not_revoked: Any = ANY
    warnings: set[str] = field(default_factory=set)  # codes that must be among the warnings
    path_length: int | None = None  # certificates in the path found, anchor included
    # How openssl verify is run as the independent judge: "default", "strict" (-x509_strict), or None where
    # OpenSSL deliberately applies a different rule (each such case says why).
    openssl: str | None = "default"


def three(c: Crafter, *, root: dict | None = None, inter: dict | None = None, leaf: dict | None = None,
          leaf_cn: str = HOST) -> tuple[Node, Node, Node]:
    r = c.root(**(root or {}))
    i = c.intermediate("Issuing CA", r, **(inter or {}))
    return r, i, c.leaf(leaf_cn, i, **(leaf or {}))


def simple(c: Crafter, errors: Sequence[tuple[str, int]] = (), *, root=None, inter=None, leaf=None, leaf_cn=HOST,
           **case: Any) -> Case:
    r, i, l = three(c, root=root, inter=inter, leaf=leaf, leaf_cn=leaf_cn)
    return Case(target=l, chain=[i], anchors=[r], errors=set(errors), **case)


CA_USAGE = {"key_cert_sign", "crl_sign", "digital_signature"}
UNKNOWN_CRITICAL = [(x509.UnrecognizedExtension(UNKNOWN_EXTENSION_OID, b"\x05\x00"), True)]
PAST = {"not_before_days": -100, "not_after_days": -1}


def window(c: Crafter, start_days: float, end_days: float) -> dict:
    return {"not_before": c.now + timedelta(days=start_days), "not_after": c.now + timedelta(days=end_days)}


def _dns(*names: str) -> list[x509.GeneralName]:
    return [x509.DNSName(n) for n in names]


def _net(*networks: str) -> list[x509.GeneralName]:
    return [x509.IPAddress(ipaddress.ip_network(n)) for n in networks]


def four(c: Crafter, root_len=None, i1_len=None, i2_len=None) -> tuple[Node, Node, Node, Node]:
    r = c.root(path_len=root_len)
    i1 = c.intermediate("Policy CA", r, path_len=i1_len)
    i2 = c.intermediate("Issuing CA", i1, path_len=i2_len)
    return r, i1, i2, c.leaf(HOST, i2)


def case_cross_signed(c: Crafter, *, anchor_b: bool = False, cross_only: bool = False) -> Case:
    a = c.root("Root A")
    b_key = new_key()
    b = c.root("Root B", key=b_key)
    x = c.cert("Root B", issuer=a, key=b_key, ca=True)  # B's key and name, certified by A
    i = c.intermediate("Issuing CA", b)
    leaf = c.leaf(HOST, i)
    if anchor_b:
        return Case(target=leaf, chain=[x, i], anchors=[b], hostname=HOST, path_length=3)
    if cross_only:
        return Case(target=leaf, chain=[x, i], anchors=[a], hostname=HOST, path_length=4)
    # OpenSSL stops at the first issuer of the right name among untrusted certificates (the self-signed B) and
    # does not backtrack to the cross certificate, so it refuses what RFC 5280 path building finds.
    return Case(target=leaf, chain=[i, b, x], anchors=[a], hostname=HOST, path_length=4, openssl=None)


def case_reissued_intermediate(c: Crafter) -> Case:
    # The same CA (name and key) certified twice; the expired copy must not spoil the path through the new one.
    r = c.root()
    key = new_key()
    old = c.intermediate("Issuing CA", r, key=key, **window(c, -400, -10))
    new = c.intermediate("Issuing CA", r, key=key)
    leaf = c.leaf(HOST, new)
    return Case(target=leaf, chain=[old, new], anchors=[r], hostname=HOST)


def case_duplicate_subject_without_aki(c: Crafter) -> Case:
    # Two CAs with one name and different keys; the leaf has no AKI to tell them apart, so both must be tried.
    r = c.root()
    wrong = c.intermediate("Issuing CA", r)
    right = c.intermediate("Issuing CA", r)
    leaf = c.leaf(HOST, right, aki=False)
    # OpenSSL takes the first untrusted issuer whose name matches and does not backtrack to the second.
    return Case(target=leaf, chain=[wrong, right], anchors=[r], openssl=None)


def case_untrusted_root(c: Crafter) -> Case:
    r, i, leaf = three(c)
    unrelated = c.root("Somebody Else's Root")
    return Case(target=leaf, chain=[i, r], anchors=[unrelated], errors={("untrusted_root", 2)})


def case_self_signed_leaf(c: Crafter) -> Case:
    leaf = c.cert(HOST, ca=False)
    return Case(target=leaf, chain=[], anchors=[c.root()], errors={("self_signed", 0)}, hostname=HOST)


def case_extra_certificates(c: Crafter) -> Case:
    r, i, leaf = three(c)
    other_root = c.root("Other Root")
    other_int = c.intermediate("Other Issuing CA", other_root)
    return Case(target=leaf, chain=[other_int, other_root, i, c.leaf("other.example.com", other_int)], anchors=[r], hostname=HOST)


def case_out_of_order(c: Crafter) -> Case:
    r, i1, i2, leaf = four(c)
    return Case(target=leaf, chain=[r, i1, i2], anchors=[r], hostname=HOST, path_length=4)


def case_path_len_exceeded(c: Crafter) -> Case:
    r, i1, i2, leaf = four(c, i1_len=0)
    return Case(target=leaf, chain=[i2, i1], anchors=[r], errors={("path_length_exceeded", 1)})


def case_root_path_len_exceeded(c: Crafter) -> Case:
    r, i1, i2, leaf = four(c, root_len=1)
    return Case(target=leaf, chain=[i2, i1], anchors=[r], errors={("path_length_exceeded", 1)})


def case_path_len_ok(c: Crafter) -> Case:
    r, i1, i2, leaf = four(c, root_len=2, i1_len=1, i2_len=0)
    return Case(target=leaf, chain=[i2, i1], anchors=[r], hostname=HOST, path_length=4)


def case_expired_in_past(c_unused: Crafter, *, at_then: bool) -> Case:
    c = Crafter(now=c_unused.now - timedelta(days=400))
    case = simple(c, hostname=HOST)
    if at_then:
        case.at_offset = c.now - c_unused.now  # validation_time = the inner crafter's "now", 400 days ago
    else:
        case.errors = {("expired", 0)}
    return case


def case_anchor_is_intermediate(c: Crafter) -> Case:
    # Any CA can be an anchor (RFC 5280 6.1.1 (d)); the root above it is then irrelevant.
    r, i, leaf = three(c)
    return Case(target=leaf, chain=[], anchors=[i], hostname=HOST, path_length=2, openssl="partial")


def case_crl(c: Crafter, kind: str) -> Case:
    r, i, leaf = three(c)
    crls = {
        "revoked_leaf": [c.crl(i, [(leaf, x509.ReasonFlags.key_compromise)]), c.crl(r)],
        "revoked_intermediate": [c.crl(i), c.crl(r, [(i, x509.ReasonFlags.ca_compromise)])],
        "good": [c.crl(i), c.crl(r)],
        "stale": [c.crl(i, this_update=c.now - timedelta(days=3), next_update=c.now - timedelta(days=1)), c.crl(r)],
        "forged": [c.crl(i, [(leaf, None)], sign_with=new_key()), c.crl(r)],
        "leaf_only": [c.crl(i)],
    }[kind]
    case = Case(target=leaf, chain=[i], anchors=[r], crls=crls)
    if kind == "revoked_leaf":
        case.errors, case.not_revoked = {("revoked", 0)}, False
    elif kind == "revoked_intermediate":
        case.errors, case.not_revoked = {("revoked", 1)}, False
    elif kind == "good":
        case.not_revoked = True
    elif kind == "stale":
        # Soft-fail by design (documented): a stale CRL gives no evidence either way. OpenSSL hard-fails.
        case.not_revoked, case.warnings, case.openssl = None, {"crl_stale", "revocation_unknown"}, None
    elif kind == "forged":
        # A CRL that does not verify is ignored, never trusted for "revoked" or for "good". OpenSSL hard-fails.
        case.not_revoked, case.warnings, case.openssl = None, {"crl_signature_invalid"}, None
    else:
        # The intermediate's status is unknown without the root's CRL. OpenSSL's -crl_check_all hard-fails.
        case.not_revoked, case.warnings, case.openssl = None, {"revocation_unknown"}, None
    return case


def _no_explicit_policy(c: Crafter, leaf_policies) -> Case:
    policy = [(x509.PolicyConstraints(require_explicit_policy=0, inhibit_policy_mapping=None), True)]
    return simple(c, [] if leaf_policies else [("no_valid_policy", 0)],
                  inter={"extra": policy, "policies": ["2.23.140.1.2.1"]},
                  leaf={"policies": leaf_policies} if leaf_policies else None,
                  openssl=None)  # openssl verify checks policies only with -policy_check; covered by unit tests


CASES: dict[str, Callable[[Crafter], Case]] = {
    # --- accepted ---------------------------------------------------------------------------------------------
    "ok_ec_three_levels": lambda c: simple(c, hostname=HOST, not_revoked=None, warnings={"revocation_unknown"}, path_length=3),
    "ok_rsa_three_levels": lambda c: simple(c, root={"key": "rsa2048"}, inter={"key": "rsa2048"}, leaf={"key": "rsa2048"}, hostname=HOST),
    "ok_rsa_root_ec_intermediate_rsa_leaf": lambda c: simple(c, root={"key": "rsa2048"}, leaf={"key": "rsa2048"}, hostname=HOST),
    "ok_p384_root_rsa_intermediate_ec_leaf": lambda c: simple(c, root={"key": "ec384"}, inter={"key": "rsa2048"}, hostname=HOST),
    "ok_rsa_pss_signatures": lambda c: simple(c, root={"key": "rsa2048"}, inter={"key": "rsa2048", "rsa_pss": True},
                                              leaf={"rsa_pss": True}, hostname=HOST),
    "ok_without_hostname_no_eku": lambda c: simple(c, leaf={"eku": None}),
    "ok_wildcard_one_label": lambda c: simple(c, leaf_cn="*.example.com", hostname="api.example.com"),
    "ok_case_insensitive": lambda c: simple(c, leaf={"dns": ["WWW.Example.COM"]}, hostname="www.EXAMPLE.com"),
    # The absolute form names the same host; OpenSSL compares the string with the dot.
    "ok_trailing_dot": lambda c: simple(c, hostname="www.example.com.", openssl=None),
    "ok_idn_hostname": lambda c: simple(c, leaf={"dns": ["xn--bcher-kva.example.com"]}, hostname="bücher.example.com", openssl=None),
    "ok_intermediate_as_target": lambda c: (lambda r, i, l: Case(target=i, chain=[], anchors=[r], path_length=2))(*three(c)),
    "ok_ip_san": lambda c: simple(c, leaf={"dns": [], "ips": ["93.184.215.14"]}, hostname="93.184.215.14"),
    "ok_ipv6_san": lambda c: simple(c, leaf={"dns": [], "ips": ["2606:2800:21f:cb07::1"]}, hostname="2606:2800:21f:cb07:0::1"),
    "ok_two_levels": lambda c: (lambda r: Case(target=c.leaf(HOST, r), chain=[], anchors=[r], hostname=HOST, path_length=2))(c.root()),
    "ok_path_len_respected": case_path_len_ok,
    "ok_chain_out_of_order_with_root": case_out_of_order,
    "ok_chain_with_unrelated_certificates": case_extra_certificates,
    "ok_cross_signed_to_other_root": lambda c: case_cross_signed(c),
    "ok_cross_signed_only_cross_certificate": lambda c: case_cross_signed(c, cross_only=True),
    "ok_cross_signed_anchor_is_cross_root": lambda c: case_cross_signed(c, anchor_b=True),
    "ok_reissued_intermediate_expired_copy": case_reissued_intermediate,
    "ok_duplicate_subject_without_aki": case_duplicate_subject_without_aki,
    "ok_expired_chain_valid_at_past_time": lambda c: case_expired_in_past(c, at_then=True),
    "ok_name_constraints_permitted": lambda c: simple(c, inter={"permitted": _dns("example.com") + _net("93.184.0.0/16")},
                                                      leaf={"ips": ["93.184.215.14"]}, hostname=HOST),
    "ok_dirname_constraint": lambda c: simple(c, inter={"permitted": [x509.DirectoryName(x509.Name(c.name("x").rdns[:1]))]}),
    "ok_unknown_non_critical_extension": lambda c: simple(c, leaf={"extra": [(x509.UnrecognizedExtension(UNKNOWN_EXTENSION_OID, b"\x05\x00"), False)]}),
    "ok_intermediate_eku_server_auth": lambda c: simple(c, inter={"eku": [ExtendedKeyUsageOID.SERVER_AUTH]}, hostname=HOST),
    "ok_explicit_policy_present": lambda c: _no_explicit_policy(c, ["2.23.140.1.2.1"]),
    "ok_anchor_is_an_intermediate": case_anchor_is_intermediate,
    "ok_crl_good": lambda c: case_crl(c, "good"),
    "ok_crl_stale_is_unknown": lambda c: case_crl(c, "stale"),
    "ok_crl_forged_is_ignored": lambda c: case_crl(c, "forged"),
    "ok_crl_missing_for_intermediate": lambda c: case_crl(c, "leaf_only"),
    # --- signatures ---------------------------------------------------------------------------------------------
    "bad_signature_leaf": lambda c: simple(c, [("bad_signature", 0)], leaf={"corrupt_signature": True}),
    "bad_signature_intermediate": lambda c: simple(c, [("bad_signature", 1)], inter={"corrupt_signature": True}),
    "leaf_signed_by_other_key": lambda c: simple(c, [("bad_signature", 0)], leaf={"sign_with": new_key()}),
    "intermediate_signed_by_other_key_rsa": lambda c: simple(c, [("bad_signature", 1)], root={"key": "rsa2048"},
                                                             inter={"sign_with": rsa.generate_private_key(public_exponent=65537, key_size=2048)}),
    # SHA-1 collisions are practical; openssl verify at the default security level still accepts them.
    "sha1_signature_on_leaf": lambda c: simple(c, [("weak_signature_algorithm", 0)], root={"key": "rsa2048"},
                                               inter={"key": "rsa2048"}, leaf={"hash_algorithm": hashes.SHA1()}, openssl=None),
    "sha1_ecdsa_signature_on_intermediate": lambda c: simple(c, [("weak_signature_algorithm", 1)],
                                                             inter={"hash_algorithm": hashes.SHA1()}, openssl=None),
    # --- validity at every level --------------------------------------------------------------------------------
    "expired_leaf": lambda c: simple(c, [("expired", 0)], leaf=window(c, -100, -1)),
    "expired_intermediate": lambda c: simple(c, [("expired", 1)], inter=window(c, -100, -1)),
    "expired_root": lambda c: simple(c, [("expired", 2)], root=window(c, -100, -1)),
    "not_yet_valid_leaf": lambda c: simple(c, [("not_yet_valid", 0)], leaf=window(c, 1, 100)),
    "not_yet_valid_intermediate": lambda c: simple(c, [("not_yet_valid", 1)], inter=window(c, 1, 100)),
    "not_yet_valid_root": lambda c: simple(c, [("not_yet_valid", 2)], root=window(c, 1, 100)),
    "expired_chain_now": lambda c: case_expired_in_past(c, at_then=False),
    "everything_expired": lambda c: simple(c, [("expired", 0), ("expired", 1), ("expired", 2)], root=window(c, -300, -3),
                                           inter=window(c, -200, -2), leaf=window(c, -100, -1)),
    "validation_time_before_everything": lambda c: simple(c, [("not_yet_valid", 0), ("not_yet_valid", 1), ("not_yet_valid", 2)],
                                                          at_offset=timedelta(hours=-2)),
    # --- CA-ness, path length, key usage ------------------------------------------------------------------------
    "intermediate_ca_false": lambda c: simple(c, [("not_a_ca", 1)], inter={"ca": False, "key_usage": CA_USAGE, "eku": None}),
    "intermediate_without_basic_constraints": lambda c: simple(c, [("missing_basic_constraints", 1)],
                                                               inter={"ca": None, "key_usage": CA_USAGE, "eku": None}, openssl="strict"),
    "leaf_used_as_issuer": lambda c: (lambda r: (lambda ee: Case(target=c.leaf("deep.example.com", ee), chain=[ee], anchors=[r],
                                                                  errors={("not_a_ca", 1), ("key_cert_sign_missing", 1)}))(c.leaf(HOST, r)))(c.root()),
    "path_len_exceeded": case_path_len_exceeded,
    "root_path_len_exceeded": case_root_path_len_exceeded,
    "intermediate_without_key_cert_sign": lambda c: simple(c, [("key_cert_sign_missing", 1)], inter={"key_usage": {"crl_sign", "digital_signature"}}),
    # --- name constraints ---------------------------------------------------------------------------------------
    "nc_dns_permitted_violation": lambda c: simple(c, [("name_constraint_violation", 0)], inter={"permitted": _dns("example.org")}),
    "nc_dns_excluded_violation": lambda c: simple(c, [("name_constraint_violation", 0)], inter={"excluded": _dns("example.com")}),
    "nc_dns_excluded_subdomain": lambda c: simple(c, [("name_constraint_violation", 0)], leaf_cn="a.secret.example.com",
                                                  inter={"excluded": _dns("secret.example.com")}),
    "nc_dns_not_a_label_suffix": lambda c: simple(c, [("name_constraint_violation", 0)], leaf_cn="www.badexample.com",
                                                  inter={"permitted": _dns("example.com")}),
    "nc_ip_permitted_violation": lambda c: simple(c, [("name_constraint_violation", 0)], inter={"permitted": _net("10.0.0.0/8")},
                                                  leaf={"dns": [], "ips": ["192.168.1.1"]}),
    "nc_ip_excluded_violation": lambda c: simple(c, [("name_constraint_violation", 0)], inter={"excluded": _net("192.168.0.0/16")},
                                                 leaf={"ips": ["192.168.1.1"]}),
    "nc_ipv6_permitted_violation": lambda c: simple(c, [("name_constraint_violation", 0)], inter={"permitted": _net("2001:db8::/32") + _dns("example.com")},
                                                    leaf={"ips": ["2001:db9::1"]}),
    "nc_in_root": lambda c: simple(c, [("name_constraint_violation", 0)], root={"permitted": _dns("example.net")}),
    "nc_on_intermediate_itself": lambda c: (lambda r: (lambda i: Case(target=c.leaf(HOST, i), chain=[i], anchors=[r],
                                                                      errors={("name_constraint_violation", 1)}))(
        c.intermediate("Issuing CA", r, dns=["ca.evil.com"])))(c.root(permitted=_dns("example.com"))),
    "nc_common_name_without_san": lambda c: simple(c, [("name_constraint_violation", 0)], leaf_cn="bank.example.org",
                                                   leaf={"san": False}, inter={"permitted": _dns("example.com")}),
    "nc_email_permitted_violation": lambda c: simple(c, [("name_constraint_violation", 0)],
                                                     inter={"permitted": [x509.RFC822Name("example.com")]}, leaf={"emails": ["ceo@evil.com"]}),
    "nc_uri_excluded_violation": lambda c: simple(c, [("name_constraint_violation", 0)],
                                                  inter={"excluded": [x509.UniformResourceIdentifier("evil.com")]},
                                                  leaf={"uris": ["https://evil.com/agent"]}),
    "nc_dirname_violation": lambda c: simple(c, [("name_constraint_violation", 0)],
                                             inter={"permitted": [x509.DirectoryName(Crafter().name("Somebody Else"))]}),
    "nc_email_excluded_mailbox": lambda c: simple(c, [("name_constraint_violation", 0)],
                                                  inter={"excluded": [x509.RFC822Name("ceo@example.com")]}, leaf={"emails": ["ceo@example.com"]}),
    "nc_uri_without_host": lambda c: simple(c, [("name_constraint_violation", 0)],
                                            inter={"permitted": [x509.UniformResourceIdentifier("example.com")]},
                                            leaf={"uris": ["urn:uuid:8f0c9d6e-2f1a-4e8b-9d53-0f9b7c1d2e3a"]}),
    "nc_ip_excluded_in_root": lambda c: simple(c, [("name_constraint_violation", 0)], root={"excluded": _net("93.184.215.0/24")},
                                               leaf={"ips": ["93.184.215.14"]}),
    # Stricter than OpenSSL: *.example.com also stands for the excluded foo.example.com.
    "nc_wildcard_covers_excluded": lambda c: simple(c, [("name_constraint_violation", 0)], leaf_cn="*.example.com",
                                                    inter={"excluded": _dns("foo.example.com")}, openssl=None),
    # --- critical extensions ------------------------------------------------------------------------------------
    "unknown_critical_extension_leaf": lambda c: simple(c, [("unknown_critical_extension", 0)], leaf={"extra": UNKNOWN_CRITICAL}),
    "unknown_critical_extension_intermediate": lambda c: simple(c, [("unknown_critical_extension", 1)], inter={"extra": UNKNOWN_CRITICAL}),
    "unknown_critical_extension_root": lambda c: simple(c, [("unknown_critical_extension", 2)], root={"extra": UNKNOWN_CRITICAL}),
    "explicit_policy_missing": lambda c: _no_explicit_policy(c, None),
    "any_policy_inhibited": lambda c: simple(c, [("no_valid_policy", 0)], openssl=None, inter={
        "policies": ["2.5.29.32.0"], "extra": [(x509.PolicyConstraints(require_explicit_policy=0, inhibit_policy_mapping=None), True),
                                               (x509.InhibitAnyPolicy(0), True)]}, leaf={"policies": ["2.5.29.32.0"]}),
    # --- trust --------------------------------------------------------------------------------------------------
    "untrusted_root": case_untrusted_root,
    "missing_intermediate": lambda c: (lambda r, i, l: Case(target=l, chain=[], anchors=[r], errors={("issuer_not_found", 0)}))(*three(c)),
    "self_signed_leaf": case_self_signed_leaf,
    "root_itself_not_trusted": lambda c: Case(target=c.root(), chain=[], anchors=[c.root("Another Root")], errors={("self_signed", 0)}),
    # --- TLS server use -----------------------------------------------------------------------------------------
    "wrong_hostname": lambda c: simple(c, [("hostname_mismatch", 0)], hostname="mail.example.com"),
    "wildcard_two_labels": lambda c: simple(c, [("hostname_mismatch", 0)], leaf_cn="*.example.com", hostname="a.b.example.com"),
    "wildcard_bare_domain": lambda c: simple(c, [("hostname_mismatch", 0)], leaf_cn="*.example.com", hostname="example.com"),
    "wildcard_not_leftmost": lambda c: simple(c, [("hostname_mismatch", 0)], leaf={"dns": ["www.*.example.com"]}, hostname="www.a.example.com"),
    "wildcard_on_tld": lambda c: simple(c, [("hostname_mismatch", 0)], leaf={"dns": ["*.com"]}, hostname="example.com"),
    # OpenSSL accepts partial-label wildcards unless told not to; RFC 6125 and browsers do not.
    "wildcard_partial_label": lambda c: simple(c, [("hostname_mismatch", 0)], leaf={"dns": ["w*.example.com"]}, hostname=HOST, openssl=None),
    # OpenSSL falls back to the CN when there is no SAN; RFC 6125 6.4.4 and browsers do not.
    "common_name_is_ignored": lambda c: simple(c, [("hostname_mismatch", 0)], leaf={"san": False}, hostname=HOST, openssl=None),
    "ca_certificate_as_tls_server": lambda c: (lambda r, i, l: Case(target=i, chain=[], anchors=[r], hostname=HOST,
                                                                     errors={("eku_server_auth_missing", 0), ("hostname_mismatch", 0)}))(*three(c)),
    "ip_mismatch": lambda c: simple(c, [("hostname_mismatch", 0)], leaf={"ips": ["93.184.215.14"]}, hostname="93.184.215.15"),
    "ip_only_as_dns_name": lambda c: simple(c, [("hostname_mismatch", 0)], leaf={"dns": ["93.184.215.14"]}, hostname="93.184.215.14"),
    "eku_client_auth_only": lambda c: simple(c, [("eku_server_auth_missing", 0)], leaf={"eku": [ExtendedKeyUsageOID.CLIENT_AUTH]}, hostname=HOST),
    # OpenSSL reads an absent EKU as "any purpose"; we require serverAuth for a TLS server, like the CA/B Forum.
    "eku_absent_with_hostname": lambda c: simple(c, [("eku_server_auth_missing", 0)], leaf={"eku": None}, hostname=HOST, openssl=None),
    "intermediate_eku_excludes_server_auth": lambda c: simple(c, [("eku_server_auth_missing", 1)],
                                                              inter={"eku": [ExtendedKeyUsageOID.CLIENT_AUTH]}, hostname=HOST),
    "expired_and_wrong_host": lambda c: simple(c, [("expired", 0), ("hostname_mismatch", 0)], leaf=window(c, -100, -1), hostname="x.example.com"),
    # --- revocation from CRLs given with the request ------------------------------------------------------------
    "crl_revoked_leaf": lambda c: case_crl(c, "revoked_leaf"),
    "crl_revoked_intermediate": lambda c: case_crl(c, "revoked_intermediate"),
}

CHAIN_CODES = {"expired", "not_yet_valid", "revoked", "hostname_mismatch", "eku_server_auth_missing"}


@pytest.mark.parametrize("name", list(CASES))
def test_crafted_chain(client, admin_token, name):
    c = Crafter()
    case = CASES[name](c)
    for n, anchor in enumerate(case.anchors):
        add_anchor(client, admin_token, anchor, f"crafted-{c.tag}-{n}")
    body: dict[str, Any] = {"certificate_pem": case.target.pem}
    if case.chain:
        body["chain_pem"] = bundle(case.chain)
    if case.hostname is not None:
        body["hostname"] = case.hostname
    at = c.now + case.at_offset if case.at_offset is not None else None
    if at is not None:
        body["validation_time"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    if case.crls:
        body["crls_pem"] = "".join(crl_pem(crl) for crl in case.crls)
    resp = post(client, VALIDATE, admin_token, body)
    assert resp.status_code == 200, resp.text
    out = resp.json
    got = {(e["code"], e.get("certificate_index")) for e in out["errors"]}
    assert got == case.errors, out
    expect_valid = not case.errors
    assert out["valid"] is expect_valid, out
    codes = {code for code, _ in case.errors}
    assert out["chain_valid"] is (codes <= CHAIN_CODES and not codes & {"untrusted_root", "issuer_not_found", "self_signed"}), out
    assert out["not_expired"] is not (codes & {"expired", "not_yet_valid"}), out
    if case.not_revoked is not ANY:
        assert out["not_revoked"] is case.not_revoked, out
    if "revoked" not in codes:
        assert out["not_revoked"] is not False, out
    assert case.warnings <= {w["code"] for w in out["warnings"]}, out
    for error in out["errors"]:
        assert error["subject"] == out["path"][error["certificate_index"]]["subject"]
    if expect_valid:
        assert out["trusted_anchor"]["type"] == "trust_anchor" and out["trusted_anchor"]["name"].startswith(f"crafted-{c.tag}")
        assert out["path"][0]["subject"] == case.target.subject
    if case.path_length is not None:
        assert len(out["path"]) == case.path_length, out["path"]
    if case.openssl is not None:
        ok, output = openssl_verdict(case.anchors, case.chain, case.target, at=at, hostname=case.hostname, crls=case.crls,
                                     strict=case.openssl == "strict", partial_chain=case.openssl == "partial")
        assert ok is expect_valid, f"openssl disagrees: {output}"


def test_there_are_enough_crafted_chains():
    refusals = [n for n in CASES if not n.startswith("ok_")]
    assert len(CASES) >= 40 and len(refusals) >= 1.5 * (len(CASES) - len(refusals))


# ---------------------------------------------------------------------------
# Trust anchors
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reader_token(data_dir, admin_token) -> str:
    return create_token(data_dir, "default", "pki:read")


@pytest.fixture(scope="module")
def issuer_token(data_dir, admin_token) -> str:
    return create_token(data_dir, "default", "pki:issue")


def error_of(resp) -> dict:
    return resp.json["error"]


def test_trust_anchor_crud_and_conflicts(client, admin_token, reader_token, other_tenant_token):
    c = Crafter()
    root = c.root()
    created = add_anchor(client, admin_token, root, f"anchor-{c.tag}")
    assert created["subject"] == root.subject and created["crls"] == []
    assert created["fingerprint_sha256"] == root.cert.fingerprint(hashes.SHA256()).hex()
    assert created["not_after"].endswith("Z") and "BEGIN CERTIFICATE" in created["certificate_pem"]

    got = client.simulate_get(f"{ANCHORS}/{created['id']}", headers=auth(reader_token))
    assert got.status_code == 200 and got.json["name"] == f"anchor-{c.tag}"

    same_name = post(client, ANCHORS, admin_token, {"name": f"anchor-{c.tag}", "certificate_pem": c.root("Other").pem})
    assert same_name.status_code == 409 and error_of(same_name)["details"]["field"] == "name"
    same_cert = post(client, ANCHORS, admin_token, {"name": f"again-{c.tag}", "certificate_pem": root.pem})
    assert same_cert.status_code == 409 and error_of(same_cert)["details"] == {"field": "certificate_pem", "id": created["id"]}
    # Another tenant may trust the same certificate; it never sees ours.
    assert post(client, ANCHORS, other_tenant_token, {"name": f"anchor-{c.tag}", "certificate_pem": root.pem}).status_code == 201
    assert client.simulate_get(f"{ANCHORS}/{created['id']}", headers=auth(other_tenant_token)).status_code == 404
    assert client.simulate_delete(f"{ANCHORS}/{created['id']}", headers=auth(other_tenant_token)).status_code == 404

    # Scopes: pki:read reads, only pki:admin writes; no token, no answer.
    assert post(client, ANCHORS, reader_token, {"name": f"r-{c.tag}", "certificate_pem": c.root("R").pem}).status_code == 403
    assert client.simulate_delete(f"{ANCHORS}/{created['id']}", headers=auth(reader_token)).status_code == 403
    assert client.simulate_get(ANCHORS).status_code == 401

    leaf = c.leaf(HOST, root)
    deleted = client.simulate_delete(f"{ANCHORS}/{created['id']}", headers=auth(admin_token))
    assert deleted.status_code == 204
    assert client.simulate_get(f"{ANCHORS}/{created['id']}", headers=auth(admin_token)).status_code == 404
    assert client.simulate_delete(f"{ANCHORS}/{created['id']}", headers=auth(admin_token)).status_code == 404
    # Without its anchor the chain is no longer trusted.
    out = post(client, VALIDATE, admin_token, {"certificate_pem": leaf.pem}).json
    assert out["valid"] is False and {e["code"] for e in out["errors"]} == {"issuer_not_found"}


def test_trust_anchor_refusals(client, admin_token):
    c = Crafter()
    root = c.root()

    def refused(pem: str):
        resp = post(client, ANCHORS, admin_token, {"name": f"bad-{uuid_tag()}", "certificate_pem": pem})
        return resp.status_code, error_of(resp)

    status, error = refused(c.leaf(HOST, root).pem)
    assert status == 422 and error["details"]["rule"] == "ca_certificate" and "end-entity" in error["message"]
    status, error = refused(c.root("No Sign", key_usage={"crl_sign", "digital_signature"}).pem)
    assert status == 422 and error["details"]["rule"] == "key_usage"
    status, error = refused(c.root("No BC", ca=None, key_usage=CA_USAGE).pem)
    assert status == 422 and error["details"]["rule"] == "ca_certificate"
    der = root.der
    truncated = "-----BEGIN CERTIFICATE-----\n" + __import__("base64").encodebytes(der[:-20]).decode() + "-----END CERTIFICATE-----\n"
    bad_inputs = {
        "not pem": "hello",
        "two certificates": root.pem + c.root("Second").pem,
        "a key": root.key_pem,
        "bad base64": "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        "truncated DER": truncated,
        "text around": "subject=foo\n" + root.pem,
        "mismatched END": root.pem.replace("END CERTIFICATE", "END X509 CRL"),
        "non-ascii": root.pem.replace("MII", "MIÏ", 1),
    }
    for what, pem in bad_inputs.items():
        status, error = refused(pem)
        assert status == 400 and error["code"] == "invalid_pem" and error["details"]["field"] == "certificate_pem", (what, error)
    missing = post(client, ANCHORS, admin_token, {"name": "x"})
    assert missing.status_code == 400 and error_of(missing)["details"]["field"] == "certificate_pem"


def uuid_tag() -> str:
    import uuid

    return uuid.uuid4().hex[:12]


def test_trust_anchor_list_pages(client, admin_token, reader_token):
    c = Crafter()
    ids = {add_anchor(client, admin_token, c.root(f"Paged {n}"), f"paged-{c.tag}-{n}")["id"] for n in range(3)}
    seen: list[str] = []
    cursor = None
    while True:
        url = f"{ANCHORS}?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = client.simulate_get(url, headers=auth(reader_token)).json
        assert len(page["items"]) <= 2
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert ids <= set(seen) and len(seen) == len(set(seen))
    assert client.simulate_get(f"{ANCHORS}?cursor=garbage", headers=auth(reader_token)).status_code == 400


# ---------------------------------------------------------------------------
# CRLs stored under a trust anchor
# ---------------------------------------------------------------------------


def test_anchor_crls_feed_revocation(client, admin_token):
    c = Crafter()
    r, i, leaf = three(c)
    anchor = add_anchor(client, admin_token, r, f"crl-anchor-{c.tag}")
    url = f"{ANCHORS}/{anchor['id']}/crl"
    body = {"certificate_pem": leaf.pem, "chain_pem": i.pem}

    # No CRL: the chain is valid, revocation unknown.
    out = post(client, VALIDATE, admin_token, body).json
    assert out["valid"] is True and out["not_revoked"] is None

    root_crl = crl_pem(c.crl(r, number=5))
    first = post(client, url, admin_token, {"crl_pem": root_crl})
    assert first.status_code == 201, first.text
    assert first.json["crl_number"] == "5" and first.json["issuer"] == r.subject
    again = post(client, url, admin_token, {"crl_pem": root_crl})
    assert again.status_code == 200 and again.json["id"] == first.json["id"]  # the same CRL again changes nothing
    same_number = post(client, url, admin_token, {"crl_pem": crl_pem(c.crl(r, number=5))})
    assert same_number.status_code == 409
    older = post(client, url, admin_token, {"crl_pem": crl_pem(c.crl(r, number=4))})
    assert older.status_code == 409 and error_of(older)["code"] == "conflict"

    # The intermediate's CRL needs its issuer's certificate, which must chain to the anchor.
    int_crl = crl_pem(c.crl(i, number=1))
    no_issuer = post(client, url, admin_token, {"crl_pem": int_crl})
    assert no_issuer.status_code == 422 and error_of(no_issuer)["details"]["rule"] == "crl_issuer"
    stranger = Crafter().root("Issuing CA")
    wrong_chain = post(client, url, admin_token, {"crl_pem": int_crl, "issuer_chain_pem": stranger.pem})
    assert wrong_chain.status_code == 422 and error_of(wrong_chain)["details"]["rule"] == "crl_issuer"
    forged = post(client, url, admin_token, {"crl_pem": crl_pem(c.crl(i, sign_with=new_key())), "issuer_chain_pem": i.pem})
    assert forged.status_code == 422 and error_of(forged)["details"]["rule"] == "crl_signature"
    stored = post(client, url, admin_token, {"crl_pem": int_crl, "issuer_chain_pem": i.pem})
    assert stored.status_code == 201, stored.text
    assert len(client.simulate_get(f"{ANCHORS}/{anchor['id']}", headers=auth(admin_token)).json["crls"]) == 2

    out = post(client, VALIDATE, admin_token, body).json
    assert out["valid"] is True and out["not_revoked"] is True, out

    # A newer CRL of the root revokes the intermediate: the leaf's chain is refused from stored data alone.
    revoking = post(client, url, admin_token, {"crl_pem": crl_pem(c.crl(r, [(i, x509.ReasonFlags.ca_compromise)], number=6))})
    assert revoking.status_code == 201
    out = post(client, VALIDATE, admin_token, body).json
    assert out["valid"] is False and out["not_revoked"] is False and out["chain_valid"] is True
    assert [(e["code"], e["certificate_index"], e["details"]["reason"]) for e in out["errors"]] == [("revoked", 1, "ca_compromise")]
    ok, output = openssl_verdict([r], [i], leaf, crls=[c.crl(r, [(i, x509.ReasonFlags.ca_compromise)], number=6), c.crl(i)])
    assert ok is False and "revoked" in output

    assert post(client, f"{ANCHORS}/nope/crl", admin_token, {"crl_pem": int_crl}).status_code == 404
    assert post(client, url, admin_token, {"crl_pem": leaf.pem}).status_code == 400


# ---------------------------------------------------------------------------
# Import
# ---------------------------------------------------------------------------


def certificate_row(cert_id: str):
    from scaivault_pki.schema.models import Certificate

    return Certificate.get_by_id(cert_id)


def test_import_with_key_and_chain(client, admin_token, issuer_token, other_tenant_token):
    c = Crafter()
    r, i, leaf = three(c, leaf={"ips": ["93.184.215.14"], "uris": ["https://www.example.com/id"]})
    resp = post(client, IMPORT, admin_token, {"certificate_pem": leaf.pem, "private_key_pem": leaf.key_pem,
                                              "chain_pem": bundle([r, i])})
    assert resp.status_code == 201, resp.text
    body = resp.json
    assert body["source"] == "imported" and body["ca_id"] is None and body["role"] is None
    assert body["common_name"] == HOST and body["key_type"] == "ec" and body["key_size"] == 256
    assert body["sans"] == {"dns": [HOST], "ip": ["93.184.215.14"], "uri": ["https://www.example.com/id"]}
    assert body["serial_number"] == format(leaf.cert.serial_number, "x").rjust(len(body["serial_number"]), "0")
    assert body["not_after"] == leaf.cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert body["chain"] == [i.pem, r.pem]  # put in issuing order
    assert body["private_key_stored"] is True and "private_key" not in body

    listed = client.simulate_get("/v1/pki/certificates?source=imported&limit=1000", headers=auth(admin_token)).json
    assert body["id"] in {item["id"] for item in listed["items"]}
    assert all(item["source"] == "imported" for item in listed["items"])

    # The key comes back through the same door as stored issued keys, and is stored only sealed.
    key = client.simulate_post(f"/v1/pki/certificates/{body['id']}/private-key", headers=auth(issuer_token))
    assert key.status_code == 200 and key.headers["Cache-Control"] == "no-store"
    returned = serialization.load_pem_private_key(key.json["private_key"].encode(), None)
    assert returned.private_numbers() == leaf.key.private_numbers()
    row = certificate_row(body["id"])
    raw_der = leaf.key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    secret = leaf.key.private_numbers().private_value.to_bytes(32, "big")
    assert row.private_key_ciphertext and raw_der not in row.private_key_ciphertext
    assert secret not in row.private_key_ciphertext and b"PRIVATE KEY" not in row.private_key_ciphertext

    dup = post(client, IMPORT, admin_token, {"certificate_pem": leaf.pem})
    assert dup.status_code == 409 and error_of(dup)["details"]["id"] == body["id"]
    assert post(client, IMPORT, other_tenant_token, {"certificate_pem": leaf.pem}).status_code == 201
    # An imported certificate is not renewed here.
    assert client.simulate_post(f"/v1/pki/certificates/{body['id']}/renew", headers=auth(admin_token)).status_code == 409


def test_import_key_formats_and_refusals(client, admin_token, issuer_token, reader_token):
    from scaivault_pki.schema.models import Certificate

    c = Crafter()
    r = c.root(key="rsa2048")
    leaf = c.leaf(HOST, r, key="rsa2048")
    traditional = leaf.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                         serialization.NoEncryption()).decode()
    assert traditional.startswith("-----BEGIN RSA PRIVATE KEY-----")
    before = Certificate.select().count()

    other_key = c.leaf("other.example.com", r).key_pem
    mismatch = post(client, IMPORT, admin_token, {"certificate_pem": leaf.pem, "private_key_pem": other_key})
    assert mismatch.status_code == 422 and error_of(mismatch)["details"]["rule"] == "key_mismatch"
    encrypted_pkcs8 = leaf.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.BestAvailableEncryption(b"pw")).decode()
    encrypted_legacy = leaf.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                              serialization.BestAvailableEncryption(b"pw")).decode()
    assert "Proc-Type: 4,ENCRYPTED" in encrypted_legacy
    for encrypted in (encrypted_pkcs8, encrypted_legacy):
        resp = post(client, IMPORT, admin_token, {"certificate_pem": leaf.pem, "private_key_pem": encrypted})
        assert resp.status_code == 400 and error_of(resp)["details"]["field"] == "private_key_pem"
        assert "decrypt it first" in error_of(resp)["message"]
    malformed = {
        "certificate_pem": {"certificate_pem": "junk"},
        "private_key_pem": {"certificate_pem": leaf.pem, "private_key_pem": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"},
        "chain_pem": {"certificate_pem": leaf.pem, "chain_pem": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"},
    }
    for field_name, request in malformed.items():
        resp = post(client, IMPORT, admin_token, request)
        assert resp.status_code == 400 and error_of(resp)["details"]["field"] == field_name, resp.text
    unrelated = post(client, IMPORT, admin_token, {"certificate_pem": leaf.pem, "chain_pem": bundle([r, Crafter().root()])})
    assert unrelated.status_code == 422 and error_of(unrelated)["details"] == {"rule": "chain", "field": "chain_pem", "index": 1}
    for token in (reader_token, issuer_token):
        assert post(client, IMPORT, token, {"certificate_pem": leaf.pem}).status_code == 403
    assert Certificate.select().count() == before  # nothing half-written

    ok = post(client, IMPORT, admin_token, {"certificate_pem": leaf.pem, "private_key_pem": traditional})
    assert ok.status_code == 201 and ok.json["key_type"] == "rsa" and ok.json["key_size"] == 2048
    key = client.simulate_post(f"/v1/pki/certificates/{ok.json['id']}/private-key", headers=auth(admin_token)).json["private_key"]
    assert key.startswith("-----BEGIN PRIVATE KEY-----")  # stored as PKCS#8, whatever came in
    assert serialization.load_pem_private_key(key.encode(), None).private_numbers() == leaf.key.private_numbers()

    keyless = post(client, IMPORT, admin_token, {"certificate_pem": c.leaf("keyless.example.com", r).pem})
    assert keyless.status_code == 201 and keyless.json["private_key_stored"] is False
    assert client.simulate_post(f"/v1/pki/certificates/{keyless.json['id']}/private-key", headers=auth(admin_token)).status_code == 409


# ---------------------------------------------------------------------------
# Our own CAs: anchors without registration, revocation from our records
# ---------------------------------------------------------------------------


def make_hierarchy(client, token, label: str, root_key=("rsa", 2048), int_key=("ec", 256)) -> dict:
    root = post(client, "/v1/pki/ca", token, {"name": f"{label}-root", "common_name": f"{label} Root", "ca_type": "root",
                                               "key_type": root_key[0], "key_size": root_key[1]})
    assert root.status_code == 201, root.text
    inter = post(client, "/v1/pki/ca", token, {"name": f"{label}-int", "common_name": f"{label} Issuing", "ca_type": "intermediate",
                                                "parent_ca_id": root.json["id"], "key_type": int_key[0], "key_size": int_key[1]})
    assert inter.status_code == 201, inter.text
    role = post(client, "/v1/pki/roles", token, {"name": f"{label}-web", "ca_id": inter.json["id"], "allowed_domains": ["example.com"],
                                                  "allow_subdomains": True, "key_type": "ec", "key_bits": 256})
    assert role.status_code == 201, role.text
    return {"root": root.json, "int": inter.json, "role": role.json["name"]}


def issue(client, token, role: str, name: str) -> dict:
    resp = post(client, f"/v1/pki/issue/{role}", token, {"common_name": name, "ttl": "24h"})
    assert resp.status_code == 201, resp.text
    return resp.json


@pytest.fixture(scope="module")
def ours(client, admin_token) -> dict:
    return make_hierarchy(client, admin_token, f"val-{uuid_tag()}")


def test_our_own_chain_is_trusted_and_checked_against_records(client, admin_token, reader_token, ours):
    leaf = issue(client, admin_token, ours["role"], "good.example.com")
    resp = post(client, VALIDATE, reader_token, {"certificate_pem": leaf["certificate"], "hostname": "good.example.com"})
    assert resp.status_code == 200
    out = resp.json
    assert set(out) == {"valid", "chain_valid", "not_expired", "not_revoked", "trusted_anchor", "errors", "warnings", "path",
                        "validation_time", "revocation_checked"}
    assert out["valid"] and out["chain_valid"] and out["not_expired"] and out["not_revoked"] is True, out
    assert out["errors"] == [] and out["warnings"] == []
    assert out["trusted_anchor"] == {"type": "ca", "id": ours["root"]["id"], "name": ours["root"]["name"],
                                     "subject": out["path"][2]["subject"]}
    assert [p["serial_number"] for p in out["path"]] == [leaf["serial_number"], ours["int"]["serial_number"], ours["root"]["serial_number"]]
    # The independent judge agrees.
    ok, output = openssl_verify_pems([ours["root"]["certificate"]], [ours["int"]["certificate"]], leaf["certificate"], "good.example.com")
    assert ok, output
    # Not checking revocation never claims "not revoked".
    out = post(client, VALIDATE, reader_token, {"certificate_pem": leaf["certificate"], "check_revocation": False}).json
    assert out["valid"] is True and out["not_revoked"] is None and out["revocation_checked"] is False
    assert [w["code"] for w in out["warnings"]] == ["revocation_not_checked"]


def openssl_verify_pems(anchors: list[str], untrusted: list[str], leaf: str, hostname: str) -> tuple[bool, str]:
    def node(pem: str) -> Node:
        return Node(x509.load_pem_x509_certificate(pem.encode()), None)  # type: ignore[arg-type]

    return openssl_verdict([node(a) for a in anchors], [node(u) for u in untrusted], node(leaf), hostname=hostname)


def test_revoked_leaf_from_our_records(client, admin_token, ours):
    leaf = issue(client, admin_token, ours["role"], "revoked.example.com")
    revoked = post(client, "/v1/pki/revoke", admin_token, {"serial_number": leaf["serial_number"], "reason": "keyCompromise"})
    assert revoked.status_code == 200, revoked.text
    out = post(client, VALIDATE, admin_token, {"certificate_pem": leaf["certificate"]}).json
    assert out["valid"] is False and out["chain_valid"] is True and out["not_expired"] is True and out["not_revoked"] is False
    assert [(e["code"], e["certificate_index"]) for e in out["errors"]] == [("revoked", 0)]
    assert out["errors"][0]["details"]["source"] == "records"
    assert out["trusted_anchor"]["id"] == ours["root"]["id"]


def test_revoked_intermediate_from_our_records(client, admin_token):
    mine = make_hierarchy(client, admin_token, f"rev-{uuid_tag()}", root_key=("ec", 384), int_key=("rsa", 2048))
    leaf = issue(client, admin_token, mine["role"], "under-revoked.example.com")
    before = post(client, VALIDATE, admin_token, {"certificate_pem": leaf["certificate"]}).json
    assert before["valid"] is True and before["not_revoked"] is True
    resp = post(client, f"/v1/pki/ca/{mine['int']['id']}/revoke", admin_token, {"reason": "cACompromise"})
    assert resp.status_code == 200, resp.text
    out = post(client, VALIDATE, admin_token, {"certificate_pem": leaf["certificate"]}).json
    assert out["valid"] is False and out["not_revoked"] is False and out["chain_valid"] is True
    found = {(e["code"], e["certificate_index"]) for e in out["errors"]}
    assert ("revoked", 1) in found and {code for code, _ in found} == {"revoked"}
    # The intermediate validated on its own is revoked too.
    out = post(client, VALIDATE, admin_token, {"certificate_pem": mine["int"]["certificate"]}).json
    assert [(e["code"], e["certificate_index"]) for e in out["errors"]] == [("revoked", 0)]


def _sign_outside_records(services, ca_id: str, common_name: str) -> tuple[str, Any]:
    """A leaf our CA's HSM key signed without the issuance path, as if restored from elsewhere: not in our records."""
    from datetime import UTC, datetime

    from asn1crypto import keys as asn1_keys

    from scaivault_pki.pki.authorities import certificate_pem, issuer_info
    from scaivault_pki.pki.builder import sign_certificate
    from scaivault_pki.pki.names import build_name
    from scaivault_pki.pki.profiles import leaf_certificate_builder
    from scaivault_pki.pki.serials import random_serial
    from scaivault_pki.schema.models import CertificateAuthority

    ca = CertificateAuthority.get_by_id(ca_id)
    key = ec.generate_private_key(ec.SECP256R1())
    spki = asn1_keys.PublicKeyInfo.load(key.public_key().public_bytes(serialization.Encoding.DER,
                                                                       serialization.PublicFormat.SubjectPublicKeyInfo))
    now = datetime.now(UTC).replace(microsecond=0)
    signer = services.hsm.signer(ca.hsm_key_id, ca.signature_algorithm)
    tbs = leaf_certificate_builder(subject=build_name(common_name=common_name), public_key_info=spki, serial=random_serial(),
                                   not_before=now - timedelta(minutes=1), not_after=now + timedelta(days=1),
                                   issuer=issuer_info(ca, "http://pki.example.com"), dns_names=(common_name,)).build(signer.algorithm)
    return certificate_pem(sign_certificate(tbs, signer).dump()), key


def test_import_finds_our_ca_and_fills_our_records(client, admin_token, services, ours, other_tenant_token):
    pem, key = _sign_outside_records(services, ours["int"]["id"], "restored.example.com")
    # Signed by our CA but unknown to our records: never "not revoked".
    out = post(client, VALIDATE, admin_token, {"certificate_pem": pem}).json
    assert out["valid"] is True and out["not_revoked"] is None
    assert [(w["code"], w["certificate_index"]) for w in out["warnings"]] == [("revocation_unknown", 0)]

    wrong_ca = post(client, IMPORT, admin_token, {"certificate_pem": pem, "ca_id": ours["root"]["id"]})
    assert wrong_ca.status_code == 422 and error_of(wrong_ca)["details"]["rule"] == "ca_id"
    assert post(client, IMPORT, admin_token, {"certificate_pem": pem, "ca_id": "no-such-ca"}).status_code == 404
    # Another tenant cannot name our CA, and does not find it on its own either.
    assert post(client, IMPORT, other_tenant_token, {"certificate_pem": pem, "ca_id": ours["int"]["id"]}).status_code == 404
    foreign = post(client, IMPORT, other_tenant_token, {"certificate_pem": pem})
    assert foreign.status_code == 201 and foreign.json["ca_id"] is None

    imported = post(client, IMPORT, admin_token, {"certificate_pem": pem, "private_key_pem": key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()})
    assert imported.status_code == 201, imported.text
    assert imported.json["ca_id"] == ours["int"]["id"] and imported.json["source"] == "imported"
    listed = client.simulate_get(f"/v1/pki/certificates?ca_id={ours['int']['id']}&source=imported", headers=auth(admin_token)).json
    assert [item["id"] for item in listed["items"]] == [imported.json["id"]]
    out = post(client, VALIDATE, admin_token, {"certificate_pem": pem}).json
    assert out["valid"] is True and out["not_revoked"] is True and out["warnings"] == []
    # Now it is ours, the revoke endpoint reaches it, and validation sees that.
    assert post(client, "/v1/pki/revoke", admin_token, {"serial_number": imported.json["serial_number"],
                                                        "ca_id": ours["int"]["id"], "reason": "superseded"}).status_code == 200
    out = post(client, VALIDATE, admin_token, {"certificate_pem": pem}).json
    assert out["not_revoked"] is False and [(e["code"], e["certificate_index"]) for e in out["errors"]] == [("revoked", 0)]
    # Given ca_id on a fresh one works too.
    again, _ = _sign_outside_records(services, ours["int"]["id"], "restored2.example.com")
    named = post(client, IMPORT, admin_token, {"certificate_pem": again, "ca_id": ours["int"]["id"]})
    assert named.status_code == 201 and named.json["ca_id"] == ours["int"]["id"]


# ---------------------------------------------------------------------------
# Validate: input errors
# ---------------------------------------------------------------------------


def test_validate_input_errors(client, admin_token, reader_token):
    c = Crafter()
    r, i, leaf = three(c)
    base = {"certificate_pem": leaf.pem}
    cases = {
        "validation_time": ["yesterday", "2026-01-01", "2026-01-01T00:00:00", "2026-13-01T00:00:00Z", "2026-01-01 00:00:00Z"],
        "hostname": ["bad host", "*.example.com", "-x.example.com", "a..example.com", "exa_mple.com"],
        "chain_pem": ["junk", r.key_pem],
        "crls_pem": ["junk", r.pem],
        "certificate_pem": [r.pem + leaf.pem, ""],
    }
    for field_name, values in cases.items():
        for value in values:
            resp = post(client, VALIDATE, reader_token, {**base, field_name: value})
            assert resp.status_code == 400, (field_name, value, resp.text)
            assert error_of(resp)["details"]["field"] == field_name, (field_name, value, resp.text)
    assert post(client, VALIDATE, reader_token, {**base, "check_revocation": "yes"}).status_code == 400
    assert post(client, VALIDATE, reader_token, {**base, "unknown": 1}).status_code == 400
    assert client.simulate_post(VALIDATE, json=base).status_code == 401
    # Offsets are accepted and converted; the answer states the time used.
    out = post(client, VALIDATE, reader_token, {**base, "validation_time": "2030-06-01T02:00:00+02:00"}).json
    assert out["validation_time"] == "2030-06-01T00:00:00Z"
