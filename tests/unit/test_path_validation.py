"""The pure path validator (scaivault_pki.pki.validation): matching rules, policies, path building and revocation
evidence, without HTTP or a database. The end-to-end table of crafted chains is in tests/api."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from scaivault_pki.pki import validation
from scaivault_pki.pki.validation import (
    Anchor,
    CertificateParseError,
    ParsedCrl,
    PathCertificate,
    RevocationRecord,
    RevocationSources,
    hostname_matches,
    normalise_hostname,
    validate_path,
)
from tests.support.crafted import Crafter, Node, new_key, resign

HOST = "www.example.com"
P1, P2, P3 = "1.3.6.1.4.1.55555.2.1", "1.3.6.1.4.1.55555.2.2", "1.3.6.1.4.1.55555.2.3"


def pc(node: Node) -> PathCertificate:
    return PathCertificate.from_der(node.der)


def anchor(node: Node, name: str = "anchor") -> Anchor:
    return Anchor(pc(node), "trust_anchor", name, name)


def run(c: Crafter, target: Node, chain=(), anchors=(), **kwargs) -> validation.ValidationResult:
    return validate_path(pc(target), intermediates=[pc(n) for n in chain], anchors=[anchor(a, f"a{i}") for i, a in enumerate(anchors)],
                         at=kwargs.pop("at", c.now), **kwargs)


def errors(result) -> set[tuple[str, int | None]]:
    return {(e.code, e.certificate_index) for e in result.errors}


@pytest.mark.parametrize("reference,presented,expected", [
    ("www.example.com", "www.example.com", True),
    ("www.example.com", "WWW.EXAMPLE.COM", True),
    ("www.example.com", "www.example.com.", True),
    ("www.example.com", "*.example.com", True),
    ("a.b.example.com", "*.example.com", False),  # one label only
    ("example.com", "*.example.com", False),  # not the parent
    ("www.example.com", "w*.example.com", False),  # partial wildcard
    ("www.example.com", "*w.example.com", False),
    ("www.a.example.com", "www.*.example.com", False),  # not left-most
    ("example.com", "*.com", False),  # too few labels after the wildcard
    ("www.example.com", "*.*.com", False),
    ("www.example.com", "*", False),
    ("www.example.com", "www.example.org", False),
    ("www.example.com", "xwww.example.com", False),
    ("www.example.com", "", False),
    ("www.example.com", "www.exämple.com", False),  # non-ASCII in a dNSName never matches
])
def test_hostname_matching(reference, presented, expected):
    assert hostname_matches(reference, presented) is expected


@pytest.mark.parametrize("given,normalised", [
    ("WWW.Example.COM.", "www.example.com"),
    ("bücher.example.com", "xn--bcher-kva.example.com"),
    ("192.0.2.1", "192.0.2.1"),
    ("[2001:db8::1]", "2001:db8::1"),
    ("2001:DB8:0:0::1", "2001:db8::1"),
    ("localhost", "localhost"),
])
def test_normalise_hostname(given, normalised):
    assert normalise_hostname(given) == normalised


@pytest.mark.parametrize("bad", ["", ".", "a..b", "-a.example.com", "a-.example.com", "*.example.com", "a b.com", "ex_ample.com",
                                 "x" * 64 + ".com", "a." * 130 + "com"])
def test_normalise_hostname_refuses(bad):
    with pytest.raises(ValueError):
        normalise_hostname(bad)


@pytest.mark.parametrize("name,constraint,inside", [
    ("example.com", "example.com", True),
    ("www.example.com", "example.com", True),
    ("www.example.com", "EXAMPLE.com.", True),
    ("wwwexample.com", "example.com", False),
    ("example.com", ".example.com", False),  # leading dot: below only
    ("a.example.com", ".example.com", True),
    ("anything.org", "", True),
])
def test_dns_subtrees(name, constraint, inside):
    assert validation._dns_in_subtree(name, constraint) is inside


@pytest.mark.parametrize("name,constraint,covers", [
    ("*.example.com", "foo.example.com", True),
    ("*.example.com", ".foo.example.com", True),
    ("*.example.com", "a.foo.example.com", False),
    ("*.example.com", "example.com", False),
    ("www.example.com", "foo.example.com", False),
])
def test_wildcard_covering_excluded_subtrees(name, constraint, covers):
    assert validation._wildcard_may_cover(name, constraint) is covers


def test_ip_email_and_uri_subtrees():
    net = bytes([10, 0, 0, 0, 255, 0, 0, 0])
    assert validation._ip_in_subtree(bytes([10, 9, 8, 7]), net)
    assert not validation._ip_in_subtree(bytes([11, 0, 0, 1]), net)
    assert not validation._ip_in_subtree(bytes(16), net)  # an IPv6 address is never inside an IPv4 subtree
    assert validation._valid_ip_constraint(net) and not validation._valid_ip_constraint(bytes([10, 0, 0, 0, 255, 0, 255, 0]))
    assert validation._email_in_subtree("a@example.com", "example.com")
    assert not validation._email_in_subtree("a@mail.example.com", "example.com")
    assert validation._email_in_subtree("a@mail.example.com", ".example.com")
    assert validation._email_in_subtree("ceo@Example.com", "ceo@example.com")
    assert not validation._email_in_subtree("CEO@example.com", "ceo@example.com")  # local parts are case-sensitive
    assert validation._uri_host("https://User@WWW.Example.com:8443/x") == "www.example.com"
    assert validation._uri_host("urn:uuid:1234") is None


# ---------------------------------------------------------------------------
# Certificate policies (processed over sets, RFC 5280 6.1.3-6.1.5)
# ---------------------------------------------------------------------------


def _mappings(*pairs: tuple[str, str]):
    return asn1_x509.PolicyMappings([{"issuer_domain_policy": a, "subject_domain_policy": b} for a, b in pairs])


def _constraints(require: int | None = None, inhibit_mapping: int | None = None):
    value = {}
    if require is not None:
        value["require_explicit_policy"] = require
    if inhibit_mapping is not None:
        value["inhibit_policy_mapping"] = inhibit_mapping
    return asn1_x509.PolicyConstraints(value)


def policy_chain(c: Crafter, int1_ext, int2_ext, int1_policies, int2_policies, leaf_policies):
    r = c.root()
    i1 = c.intermediate("Policy CA", r, policies=int1_policies)
    i1 = Node(resign(i1.cert, r.key, extensions=int1_ext), i1.key)
    i2 = c.intermediate("Issuing CA", i1, policies=int2_policies)
    i2 = Node(resign(i2.cert, i1.key, extensions=int2_ext), i2.key)
    leaf = c.leaf(HOST, i2, policies=leaf_policies)
    return r, [i1, i2], leaf


@pytest.mark.parametrize("label,int1_ext,int2_ext,int1_pol,int2_pol,leaf_pol,expected", [
    ("explicit policy satisfied", [("policy_constraints", _constraints(require=0), True)], [], [P1], [P1], [P1], set()),
    ("explicit policy missing on leaf", [("policy_constraints", _constraints(require=0), True)], [], [P1], [P1], None,
     {("no_valid_policy", 0)}),
    ("policies do not intersect", [("policy_constraints", _constraints(require=0), True)], [], [P1], [P2], [P2],
     {("no_valid_policy", 1)}),
    ("require after one more certificate", [("policy_constraints", _constraints(require=1), True)], [], [P1], None, None,
     {("no_valid_policy", 0)}),
    ("mapping P1 to P2", [("policy_constraints", _constraints(require=0), True)],
     [("policy_mappings", _mappings((P1, P2)), False)], [P1], [P1], [P2], set()),
    ("mapping inhibited", [("policy_constraints", _constraints(require=0, inhibit_mapping=0), True)],
     [("policy_mappings", _mappings((P1, P2)), False)], [P1], [P1], [P2], {("no_valid_policy", 0)}),
    ("mapping anyPolicy is refused", [], [("policy_mappings", _mappings((validation.ANY_POLICY, P2)), False)], [P1], [P1], [P1],
     {("invalid_policy_mapping", 1)}),
    ("anyPolicy in the CAs passes a specific leaf policy", [("policy_constraints", _constraints(require=0), True)], [],
     [validation.ANY_POLICY], [validation.ANY_POLICY], [P3], set()),
    ("without constraints policies never refuse", [], [], [P1], [P2], None, set()),
])
def test_policy_processing(label, int1_ext, int2_ext, int1_pol, int2_pol, leaf_pol, expected):
    c = Crafter()
    r, chain, leaf = policy_chain(c, int1_ext, int2_ext, int1_pol, int2_pol, leaf_pol)
    assert errors(run(c, leaf, chain, [r])) == expected, label


# ---------------------------------------------------------------------------
# Path building
# ---------------------------------------------------------------------------


def test_many_same_named_decoys_stay_cheap():
    c = Crafter()
    r = c.root()
    good = c.intermediate("Issuing CA", r)
    decoys = [c.intermediate("Issuing CA", c.root()) for _ in range(25)]  # right name, wrong issuer key
    leaf = c.leaf(HOST, good, aki=False)
    started = time.monotonic()
    result = run(c, leaf, decoys + [good], [r])
    assert result.valid and len(result.path) == 3
    assert time.monotonic() - started < 5


def test_a_loop_of_cross_certificates_terminates():
    c = Crafter()
    a_key, b_key = new_key(), new_key()
    a = c.root("Loop A", key=a_key)
    b = c.root("Loop B", key=b_key)
    a_by_b = c.cert("Loop A", issuer=b, key=a_key, ca=True)
    b_by_a = c.cert("Loop B", issuer=a, key=b_key, ca=True)
    leaf = c.leaf(HOST, a)
    result = run(c, leaf, [a_by_b, b_by_a], [c.root("Unrelated")])
    # leaf <- A (by B) <- B (by A) <- A again: the walk stops instead of going round, and reports the dead end.
    assert not result.valid and errors(result) == {("issuer_not_found", 2)}


def test_the_target_may_be_an_anchor_itself():
    c = Crafter()
    r = c.root()
    result = run(c, r, [], [r])
    assert result.valid and len(result.path) == 1 and result.anchor.certificate.fingerprint == pc(r).fingerprint
    expired = c.root("Old", not_before=c.now - timedelta(days=10), not_after=c.now - timedelta(days=1))
    assert errors(run(c, expired, [], [expired])) == {("expired", 0)}


def test_same_name_and_key_as_an_anchor_is_that_anchor():
    # A root re-issued with a longer validity: RFC 5280 6.1.1 (d) trusts a name and a key, not one encoding.
    c = Crafter()
    key = new_key()
    old = c.root(key=key)
    renewed = c.root(key=key, not_after=c.now + timedelta(days=7000))
    assert run(c, renewed, [], [old]).valid


def test_ed25519_chain():
    c = Crafter()
    r = c.root()
    key = ed25519.Ed25519PrivateKey.generate()
    builder = (x509.CertificateBuilder().subject_name(c.name("Ed CA")).issuer_name(r.cert.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(c.now - timedelta(hours=1))
               .not_valid_after(c.now + timedelta(days=30)).add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True))
    inter = Node(builder.sign(r.key, r.cert.signature_hash_algorithm), key)  # type: ignore[arg-type]
    leaf_builder = (x509.CertificateBuilder().subject_name(c.name(HOST)).issuer_name(inter.cert.subject)
                    .public_key(new_key().public_key()).serial_number(x509.random_serial_number())
                    .not_valid_before(c.now - timedelta(hours=1)).not_valid_after(c.now + timedelta(days=1)))
    leaf = Node(leaf_builder.sign(key, None), key)  # type: ignore[arg-type]
    result = run(c, leaf, [inter], [r])
    assert result.valid, result.errors
    assert [w.code for w in result.warnings] == ["key_usage_absent", "revocation_not_checked"]


def test_naive_validation_time_is_a_programming_error():
    c = Crafter()
    r = c.root()
    with pytest.raises(ValueError):
        validate_path(pc(r), intermediates=[], anchors=[anchor(r)], at=c.now.replace(tzinfo=None))


@pytest.mark.parametrize("der", [b"", b"\x30\x00", b"not a certificate"])
def test_parse_refuses_garbage(der):
    with pytest.raises(CertificateParseError):
        PathCertificate.from_der(der)


def test_parse_refuses_trailing_data():
    c = Crafter()
    with pytest.raises(CertificateParseError):
        PathCertificate.from_der(c.root().der + b"\x00")


# ---------------------------------------------------------------------------
# Revocation evidence
# ---------------------------------------------------------------------------


def test_records_of_our_cas_decide_and_gaps_are_unknown():
    c = Crafter()
    r, i = c.root(), None
    i = c.intermediate("Issuing CA", r)
    leaf = c.leaf(HOST, i)
    ours = frozenset({pc(r).spki_sha256, pc(i).spki_sha256})
    good = RevocationSources(records={pc(leaf).fingerprint: RevocationRecord(False), pc(i).fingerprint: RevocationRecord(False),
                                      pc(r).fingerprint: RevocationRecord(False)}, authoritative_keys=ours)
    assert run(c, leaf, [i], [r], revocation=good).not_revoked is True
    gap = RevocationSources(records={pc(i).fingerprint: RevocationRecord(False)}, authoritative_keys=ours)
    result = run(c, leaf, [i], [r], revocation=gap)
    assert result.valid and result.not_revoked is None
    assert [(w.code, w.certificate_index) for w in result.warnings] == [("revocation_unknown", 0)]
    root_revoked = RevocationSources(records={**good.records, pc(r).fingerprint: RevocationRecord(True, c.now, "ca_compromise")},
                                     authoritative_keys=ours)
    result = run(c, leaf, [i], [r], revocation=root_revoked)
    assert errors(result) == {("revoked", 2)} and result.not_revoked is False and result.chain_valid


def _crl_with(c: Crafter, issuer: Node, builder_extensions, revoked=()):
    builder = (x509.CertificateRevocationListBuilder().issuer_name(issuer.cert.subject)
               .last_update(c.now - timedelta(hours=1)).next_update(c.now + timedelta(days=1))
               .add_extension(x509.CRLNumber(7), critical=False))
    for extension, critical in builder_extensions:
        builder = builder.add_extension(extension, critical=critical)
    for node in revoked:
        builder = builder.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(node.cert.serial_number)
                                                  .revocation_date(c.now - timedelta(minutes=5)).build())
    return ParsedCrl.from_der(builder.sign(issuer.key, issuer.cert.signature_hash_algorithm).public_bytes(serialization.Encoding.DER))


def test_crl_scope_and_kinds():
    c = Crafter()
    r = c.root()
    i = c.intermediate("Issuing CA", r)
    leaf = c.leaf(HOST, i)
    root_crl = _crl_with(c, r, [])

    def verdict(*crls):
        return run(c, leaf, [i], [r], revocation=RevocationSources(crls=[root_crl, *crls]))

    assert verdict(_crl_with(c, i, [])).not_revoked is True
    ca_only = x509.IssuingDistributionPoint(None, None, False, True, None, False, False)
    result = verdict(_crl_with(c, i, [(ca_only, True)]))
    assert result.not_revoked is None and result.valid  # a CA-only CRL says nothing about a leaf
    indirect = x509.IssuingDistributionPoint(None, None, False, False, None, True, False)
    result = verdict(_crl_with(c, i, [(indirect, True)], revoked=[leaf]))
    assert result.not_revoked is None and "crl_unusable" in {w.code for w in result.warnings}
    delta = _crl_with(c, i, [(x509.DeltaCRLIndicator(6), True)], revoked=[leaf])
    assert delta.is_delta and errors(verdict(delta)) == {("revoked", 0)}
    assert verdict(delta).not_revoked is False
    unknown = _crl_with(c, i, [(x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.55555.9"), b"\x05\x00"), True)], revoked=[leaf])
    result = verdict(unknown)
    assert result.not_revoked is None and result.valid


def test_finding_shape():
    finding = validation.Finding("revoked", "revoked", 1, "CN=x", {"reason": "superseded"})
    assert finding.as_dict() == {"code": "revoked", "message": "revoked", "certificate_index": 1, "subject": "CN=x",
                                 "details": {"reason": "superseded"}}
    assert validation.Finding("revocation_not_checked", "m").as_dict() == {"code": "revocation_not_checked", "message": "m"}


def test_same_named_self_issued_cas_without_key_ids_stay_bounded():
    c = Crafter()
    subject = c.name("Hydra CA")
    heads = [c.cert("Hydra CA", ca=True, subject=subject, aki=False) for _ in range(20)]
    # Each head "issued" by every other: same name, no AKI, so every one is a candidate issuer of every other.
    leaf = c.cert(HOST, issuer=heads[0], aki=False)
    started = time.monotonic()
    result = run(c, leaf, heads, [c.root("Unrelated")])
    assert not result.valid
    assert time.monotonic() - started < 10


def test_mutated_certificates_never_crash_validation():
    import random

    c = Crafter()
    r = c.root()
    i = c.intermediate("Issuing CA", r, permitted=[x509.DNSName("example.com")])
    leaf = c.leaf(HOST, i, ips=["93.184.215.14"], emails=["a@example.com"], uris=["https://www.example.com/x"])
    rng = random.Random(4)
    originals = [leaf.der, i.der]
    parsed = 0
    for n in range(400):
        der = bytearray(originals[n % 2])
        for _ in range(rng.randint(1, 3)):
            der[rng.randrange(len(der))] = rng.randrange(256)
        try:
            cert = PathCertificate.from_der(bytes(der))
        except CertificateParseError:
            continue
        parsed += 1
        target, chain = (cert, [pc(i)]) if n % 2 == 0 else (pc(leaf), [cert])
        result = validate_path(target, intermediates=chain, anchors=[anchor(r)], at=c.now, hostname=HOST,
                               revocation=RevocationSources())
        # Every byte of a certificate is signed or is the signature: no mutation that parses may validate.
        assert result.valid is (bytes(der) == originals[n % 2]), result.errors
    assert parsed > 50  # the mutations reached the validator, not only the parser
