"""Role issuance policy (``scaivault_pki.pki.policy``): one table of cases, then property-style checks.

Each table row is (role settings, one call, expected outcome).  Outcomes are ``Ok(value)`` (the exact
NameDecision / TTL / key shape / normalised role), ``Invalid(field)`` (InvalidName, a 400),
``Refused(rule[, value])`` (PolicyViolation, a 422) or ``BadRole(field)`` (from_mapping's ValueError).
The rules themselves are documented in docs/name-matching.md.
"""

from __future__ import annotations

import ast
import dataclasses
import fnmatch
import ipaddress
import json
import pickle
import random
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from scaivault_pki.pki import policy as policy_module
from scaivault_pki.pki.policy import InvalidName, NameDecision, PolicyViolation, RolePolicy


@dataclass(frozen=True)
class Ok:
    value: Any


@dataclass(frozen=True)
class Invalid:
    field: str


@dataclass(frozen=True)
class Refused:
    rule: str
    value: str | None = None


@dataclass(frozen=True)
class BadRole:
    field: str


@dataclass(frozen=True)
class Case:
    role: Mapping[str, Any]
    call: str  # "names", "ttl", "key", "shape" or "role"
    args: tuple[Any, ...]
    expect: Ok | Invalid | Refused | BadRole


def D(cn: str | None, dns: Sequence[str] = (), ips: Sequence[str] = (), uris: Sequence[str] = ()) -> NameDecision:
    return NameDecision(common_name=cn, dns_names=tuple(dns), ip_addresses=tuple(ips), uris=tuple(uris))


def names(case_id, role, cn, alt=(), ip=(), uri=(), *, expect):
    return pytest.param(Case(role, "names", (cn, list(alt), list(ip), list(uri)), expect), id=case_id)


def ttl(case_id, role, requested, *, expect):
    return pytest.param(Case(role, "ttl", (requested,), expect), id=case_id)


def key(case_id, role, key_type, bits, *, expect=Ok(None)):
    return pytest.param(Case(role, "key", (key_type, bits), expect), id=case_id)


def shape(case_id, role, *, expect):
    return pytest.param(Case(role, "shape", (), expect), id=case_id)


def role(case_id, settings, *, expect):
    return pytest.param(Case(settings, "role", (), expect), id=case_id)


SUB = {"allowed_domains": ["example.com"], "allow_subdomains": True}
BARE = {"allowed_domains": ["example.com"], "allow_bare_domains": True}
BOTH = {**SUB, "allow_bare_domains": True}
NO_FLAGS = {"allowed_domains": ["example.com"]}
GLOB = {"allowed_domains": ["*.example.com", "web-*.example.org"], "allow_glob_domains": True}
ANY_NAME = {"allow_any_name": True}
LAX = {**SUB, "enforce_hostnames": False}
NO_CN = {**SUB, "require_cn": False}
CIDR = {**SUB, "allowed_ip_sans_cidr": ["10.0.0.0/8", "2001:db8::/32"]}
SPIFFE = {**SUB, "allowed_uri_sans": ["spiffe://example.org/*", "https://a.example/?q=*", "urn:exact"]}
IDN = {"allowed_domains": ["Bücher.DE"], "allow_subdomains": True}
WWW = "www.example.com"

LABEL_63 = "a" * 63
NAME_253 = ".".join(["b" * 63, "c" * 63, "d" * 63, "e" * 49]) + ".example.com"  # 253 characters
NAME_254 = "f" + NAME_253
CN_64 = "g" * 52 + ".example.com"
CN_65 = "g" * 53 + ".example.com"
IDN_CN_64 = "ü" * 52 + ".example.com"  # 64 characters, but 70 in A-label form
ALT_100 = [f"h{i}.example.com" for i in range(100)]

CASES = [
    # --- allowed_domains: bare, subdomains, none ---
    names("bare-exact", BARE, "example.com", expect=Ok(D("example.com", ["example.com"]))),
    names("bare-role-refuses-subdomain", BARE, WWW, expect=Refused("allowed_domains", WWW)),
    names("sub-one-level", SUB, WWW, expect=Ok(D(WWW, [WWW]))),
    names("sub-any-depth", SUB, "a.b.c.example.com", expect=Ok(D("a.b.c.example.com", ["a.b.c.example.com"]))),
    names("sub-role-refuses-bare", SUB, "example.com", expect=Refused("allowed_domains", "example.com")),
    names("sub-needs-label-boundary", SUB, "badexample.com", expect=Refused("allowed_domains", "badexample.com")),
    names("sub-other-domain", SUB, "evil.com", expect=Refused("allowed_domains", "evil.com")),
    names("sub-allowed-domain-as-prefix", SUB, "example.com.evil.com", expect=Refused("allowed_domains")),
    names("both-bare", BOTH, "example.com", expect=Ok(D("example.com", ["example.com"]))),
    names("both-sub", BOTH, "x.example.com", expect=Ok(D("x.example.com", ["x.example.com"]))),
    names("no-flags-bare", NO_FLAGS, "example.com", expect=Refused("allowed_domains")),
    names("no-flags-sub", NO_FLAGS, WWW, expect=Refused("allowed_domains")),
    names("no-flags-other", NO_FLAGS, "evil.com", expect=Refused("allowed_domains")),
    names("empty-allowed-domains", {}, "example.com", expect=Refused("allowed_domains")),
    names("second-domain-matches", {"allowed_domains": ["example.com", "example.net"], "allow_subdomains": True},
          "x.example.net", expect=Ok(D("x.example.net", ["x.example.net"]))),
    names("alt-name-refused-after-cn-ok", SUB, WWW, ["api.example.com", "evil.com"],
          expect=Refused("allowed_domains", "evil.com")),
    # --- globs ---
    names("glob-one-label", GLOB, "a.example.com", expect=Ok(D("a.example.com", ["a.example.com"]))),
    names("glob-spans-labels", GLOB, "a.b.example.com", expect=Ok(D("a.b.example.com", ["a.b.example.com"]))),
    names("glob-not-bare", GLOB, "example.com", expect=Refused("allowed_domains")),
    names("glob-infix", GLOB, "web-1.example.org", expect=Ok(D("web-1.example.org", ["web-1.example.org"]))),
    names("glob-infix-spans-dots", GLOB, "web-a.b.example.org",
          expect=Ok(D("web-a.b.example.org", ["web-a.b.example.org"]))),
    names("glob-star-needs-a-character", {**GLOB, "enforce_hostnames": False}, "web-.example.org",
          expect=Refused("allowed_domains")),
    names("glob-prefix-mismatch", GLOB, "api-1.example.org", expect=Refused("allowed_domains")),
    names("glob-flag-pattern-without-star-is-plain", {"allowed_domains": ["example.net"], "allow_glob_domains": True},
          "example.net", expect=Refused("allowed_domains")),
    names("glob-and-subdomains-mixed", {**GLOB, "allowed_domains": ["example.net", "*.example.com"],
                                        "allow_subdomains": True},
          "a.example.net", expect=Ok(D("a.example.net", ["a.example.net"]))),
    # --- case, trailing dot, duplicates, order ---
    names("upper-case-name", SUB, "WWW.Example.COM", expect=Ok(D(WWW, [WWW]))),
    names("trailing-dot", SUB, "www.example.com.", expect=Ok(D(WWW, [WWW]))),
    names("allowed-domain-upper-case-trailing-dot", {"allowed_domains": ["EXAMPLE.Com."], "allow_subdomains": True},
          WWW, expect=Ok(D(WWW, [WWW]))),
    names("two-trailing-dots-alt", SUB, WWW, ["a.example.com.."], expect=Invalid("alt_names")),
    names("two-trailing-dots-cn", SUB, "a.example.com..", expect=Refused("enforce_hostnames")),
    names("duplicates-dropped", SUB, WWW, ["WWW.EXAMPLE.COM.", "api.example.com", "api.example.com"],
          expect=Ok(D(WWW, [WWW, "api.example.com"]))),
    names("cn-first-then-alt-order", SUB, "b.example.com", ["c.example.com", "a.example.com"],
          expect=Ok(D("b.example.com", ["b.example.com", "c.example.com", "a.example.com"]))),
    # --- IDNA ---
    names("idn-cn-to-a-label", SUB, "bücher.example.com",
          expect=Ok(D("xn--bcher-kva.example.com", ["xn--bcher-kva.example.com"]))),
    names("idn-allowed-domain-in-unicode", IDN, "shop.xn--bcher-kva.de",
          expect=Ok(D("shop.xn--bcher-kva.de", ["shop.xn--bcher-kva.de"]))),
    names("idn-both-unicode-mixed-case", IDN, "Shop.Bücher.DE",
          expect=Ok(D("shop.xn--bcher-kva.de", ["shop.xn--bcher-kva.de"]))),
    names("idn-mixed-case-punycode", SUB, "XN--BCHER-KVA.Example.com",
          expect=Ok(D("xn--bcher-kva.example.com", ["xn--bcher-kva.example.com"]))),
    names("idn-eszett-non-transitional", SUB, WWW, ["straße.example.com"],
          expect=Ok(D(WWW, [WWW, "xn--strae-oqa.example.com"]))),
    names("idn-full-width-letters-and-dots", SUB, "ｗｗｗ。example。com", expect=Ok(D(WWW, [WWW]))),
    names("idn-wildcard", SUB, "*.bücher.example.com",
          expect=Ok(D("*.xn--bcher-kva.example.com", ["*.xn--bcher-kva.example.com"]))),
    names("idn-invalid-a-label", SUB, WWW, ["xn--a.example.com"], expect=Invalid("alt_names")),
    names("idn-a-label-ending-in-hyphen", SUB, WWW, ["xn--abc-.example.com"], expect=Invalid("alt_names")),
    names("idn-disallowed-symbol", SUB, WWW, ["☃.example.com"], expect=Invalid("alt_names")),
    names("idn-disallowed-symbol-even-lax", LAX, WWW, ["☃.example.com"], expect=Invalid("alt_names")),
    names("idn-other-domain-refused", IDN, "bücher.com", expect=Refused("allowed_domains", "xn--bcher-kva.com")),
    names("idn-cn-too-long-as-a-label", SUB, IDN_CN_64, expect=Invalid("common_name")),
    # --- wildcards ---
    names("wildcard-under-sub", SUB, "*.example.com", expect=Ok(D("*.example.com", ["*.example.com"]))),
    names("wildcard-deeper", SUB, WWW, ["*.a.example.com"], expect=Ok(D(WWW, [WWW, "*.a.example.com"]))),
    names("wildcard-certificates-off", {**SUB, "allow_wildcard_certificates": False}, "*.example.com",
          expect=Refused("allow_wildcard_certificates", "*.example.com")),
    names("wildcard-under-bare-only-role", BARE, "*.example.com", expect=Refused("allowed_domains")),
    names("wildcard-partial", SUB, "f*o.example.com", expect=Refused("enforce_hostnames")),
    names("wildcard-partial-suffix", SUB, "*foo.example.com", expect=Refused("enforce_hostnames")),
    names("wildcard-not-left-most", SUB, "a.*.example.com", expect=Refused("enforce_hostnames")),
    names("wildcard-nested", SUB, "*.*.example.com", expect=Refused("enforce_hostnames")),
    names("wildcard-bare-star", SUB, "*", expect=Refused("enforce_hostnames")),
    names("wildcard-bare-star-alt", SUB, WWW, ["*."], expect=Refused("enforce_hostnames")),
    names("wildcard-partial-lax-alt", LAX, WWW, ["f*o.example.com"], expect=Invalid("alt_names")),
    names("wildcard-partial-lax-cn", LAX, "a.*.example.com", expect=Invalid("common_name")),
    names("wildcard-glob-matches-literal-star", GLOB, "*.example.com",
          expect=Ok(D("*.example.com", ["*.example.com"]))),
    names("wildcard-glob-deeper", GLOB, "*.a.example.com", expect=Ok(D("*.a.example.com", ["*.a.example.com"]))),
    names("wildcard-glob-infix-does-not-cover", GLOB, "*.example.org", expect=Refused("allowed_domains")),
    names("wildcard-other-domain", SUB, "*.evil.com", expect=Refused("allowed_domains")),
    names("wildcard-tld", SUB, "*.com", expect=Refused("allowed_domains")),
    names("wildcard-any-name", ANY_NAME, "*.anything.test", expect=Ok(D("*.anything.test", ["*.anything.test"]))),
    # --- localhost ---
    names("localhost-default-on", SUB, "localhost", expect=Ok(D("localhost", ["localhost"]))),
    names("localhost-localdomain", BARE, "localhost.localdomain",
          expect=Ok(D("localhost.localdomain", ["localhost.localdomain"]))),
    names("localhost-case-and-dot", SUB, "LOCALHOST.", expect=Ok(D("localhost", ["localhost"]))),
    names("localhost-off", {**SUB, "allow_localhost": False}, "localhost", expect=Refused("allowed_domains")),
    names("localhost-off-falls-through-to-domains",
          {"allowed_domains": ["localhost"], "allow_bare_domains": True, "allow_localhost": False},
          "localhost", expect=Ok(D("localhost", ["localhost"]))),
    names("localhost-subdomain-with-sub", SUB, "app.localhost", expect=Ok(D("app.localhost", ["app.localhost"]))),
    names("localhost-subdomain-without-sub", BARE, "app.localhost", expect=Refused("allowed_domains")),
    names("localhost-wildcard-with-sub", SUB, "*.localhost", expect=Ok(D("*.localhost", ["*.localhost"]))),
    # --- allow_any_name ---
    names("any-name", ANY_NAME, "anything.test", expect=Ok(D("anything.test", ["anything.test"]))),
    names("any-name-still-enforces-hostnames", ANY_NAME, "bad_name.test", expect=Refused("enforce_hostnames")),
    names("any-name-lax-underscore", {**ANY_NAME, "enforce_hostnames": False}, "_srv.test",
          expect=Ok(D("_srv.test", ["_srv.test"]))),
    # --- enforce_hostnames ---
    names("underscore-refused", SUB, WWW, ["_acme.example.com"], expect=Refused("enforce_hostnames")),
    names("underscore-lax-ok", LAX, WWW, ["_acme.example.com"], expect=Ok(D(WWW, [WWW, "_acme.example.com"]))),
    names("leading-hyphen", SUB, "-a.example.com", expect=Refused("enforce_hostnames")),
    names("trailing-hyphen", SUB, "a-.example.com", expect=Refused("enforce_hostnames")),
    names("double-hyphen-ldh-ok", SUB, "ab--cd.example.com",
          expect=Ok(D("ab--cd.example.com", ["ab--cd.example.com"]))),
    names("label-63-ok", SUB, WWW, [LABEL_63 + ".example.com"], expect=Ok(D(WWW, [WWW, LABEL_63 + ".example.com"]))),
    names("label-64-refused", SUB, WWW, ["a" + LABEL_63 + ".example.com"], expect=Refused("enforce_hostnames")),
    names("name-253-ok", NO_CN, None, [NAME_253], expect=Ok(D(None, [NAME_253]))),
    names("name-254-invalid", NO_CN, None, [NAME_254], expect=Invalid("alt_names")),
    names("name-254-invalid-even-lax", {**LAX, "require_cn": False}, None, [NAME_254], expect=Invalid("alt_names")),
    names("space-in-cn-enforced", SUB, "My Service", expect=Refused("enforce_hostnames", "My Service")),
    names("free-form-cn-lax", LAX, "My Service", ["svc.example.com"], expect=Ok(D("My Service", ["svc.example.com"]))),
    names("free-form-cn-not-domain-checked", LAX, "Payments API", expect=Ok(D("Payments API"))),
    names("hostname-like-cn-lax-is-domain-checked", LAX, "my-service", expect=Refused("allowed_domains", "my-service")),
    names("underscore-cn-lax-is-domain-checked", LAX, "evil_host.com", expect=Refused("allowed_domains")),
    names("whitespace-in-alt-always-invalid", LAX, WWW, ["a b.example.com"], expect=Invalid("alt_names")),
    names("control-char-in-alt", SUB, WWW, ["a\x00.example.com"], expect=Invalid("alt_names")),
    names("empty-alt", SUB, WWW, [""], expect=Invalid("alt_names")),
    names("empty-label", SUB, WWW, ["a..example.com"], expect=Invalid("alt_names")),
    names("leading-dot", SUB, WWW, [".example.com"], expect=Invalid("alt_names")),
    names("only-a-dot", SUB, WWW, ["."], expect=Invalid("alt_names")),
    names("numeric-tld-is-not-a-name", SUB, WWW, ["foo.123"], expect=Invalid("alt_names")),
    names("email-in-alt", SUB, WWW, ["admin@example.com"], expect=Invalid("alt_names")),
    names("email-as-cn", SUB, "admin@example.com", expect=Invalid("common_name")),
    names("cn-control-char", LAX, "My\tService", expect=Invalid("common_name")),
    names("cn-64-ok", SUB, CN_64, expect=Ok(D(CN_64, [CN_64]))),
    names("cn-65-invalid", SUB, CN_65, expect=Invalid("common_name")),
    names("cn-65-free-form-invalid", LAX, "x " * 33, expect=Invalid("common_name")),
    names("cn-leading-space", LAX, " My Service", expect=Invalid("common_name")),
    names("cn-blank", NO_CN, "   ", ["a.example.com"], expect=Invalid("common_name")),
    names("alt-names-not-a-list", SUB, WWW, "a.example.com", expect=Invalid("alt_names")),
    # --- IP addresses ---
    names("ipv4-san", SUB, WWW, ip=["10.0.0.1"], expect=Ok(D(WWW, [WWW], ["10.0.0.1"]))),
    names("ipv6-san-normalised", SUB, WWW, ip=["2001:DB8:0:0::1"], expect=Ok(D(WWW, [WWW], ["2001:db8::1"]))),
    names("ip-in-alt-names-is-ip-san", SUB, WWW, ["192.0.2.7", "api.example.com"],
          expect=Ok(D(WWW, [WWW, "api.example.com"], ["192.0.2.7"]))),
    names("ip-cn", SUB, "192.0.2.1", expect=Ok(D("192.0.2.1", [], ["192.0.2.1"]))),
    names("ipv6-cn-kept-as-given", SUB, "2001:DB8::1", expect=Ok(D("2001:DB8::1", [], ["2001:db8::1"]))),
    names("ip-order-cn-alt-ipsans-deduplicated", SUB, "192.0.2.1", ["192.0.2.2"], ["192.0.2.1", "192.0.2.3"],
          expect=Ok(D("192.0.2.1", [], ["192.0.2.1", "192.0.2.2", "192.0.2.3"]))),
    names("ip-sans-off", {**SUB, "allow_ip_sans": False}, WWW, ip=["10.0.0.1"], expect=Refused("allow_ip_sans")),
    names("ip-cn-with-ip-sans-off", {**SUB, "allow_ip_sans": False}, "10.0.0.1", expect=Refused("allow_ip_sans")),
    names("ip-in-alt-with-ip-sans-off", {**SUB, "allow_ip_sans": False}, WWW, ["10.0.0.1"],
          expect=Refused("allow_ip_sans", "10.0.0.1")),
    names("cidr-inside", CIDR, WWW, ip=["10.1.2.3"], expect=Ok(D(WWW, [WWW], ["10.1.2.3"]))),
    names("cidr-outside", CIDR, WWW, ip=["192.168.1.1"], expect=Refused("allowed_ip_sans_cidr", "192.168.1.1")),
    names("cidr-ipv6-inside", CIDR, WWW, ip=["2001:db8:1::1"], expect=Ok(D(WWW, [WWW], ["2001:db8:1::1"]))),
    names("cidr-ipv6-outside", CIDR, WWW, ip=["2001:db9::1"], expect=Refused("allowed_ip_sans_cidr")),
    names("cidr-v4-mapped-is-not-v4", CIDR, WWW, ip=["::ffff:10.0.0.1"], expect=Refused("allowed_ip_sans_cidr")),
    names("ip-leading-zeros", SUB, WWW, ip=["010.0.0.1"], expect=Invalid("ip_sans")),
    names("ip-cidr-notation", SUB, WWW, ip=["10.0.0.0/8"], expect=Invalid("ip_sans")),
    names("ip-zone-id", SUB, WWW, ip=["fe80::1%eth0"], expect=Invalid("ip_sans")),
    names("ip-garbage", SUB, WWW, ip=["not-an-ip"], expect=Invalid("ip_sans")),
    names("ip-out-of-range", SUB, WWW, ip=["256.1.1.1"], expect=Invalid("ip_sans")),
    names("ip-short-form-in-alt", SUB, WWW, ["127.1"], expect=Invalid("alt_names")),
    names("ip-leading-zeros-cn", SUB, "010.0.0.1", expect=Invalid("common_name")),
    names("ipv6-brackets-in-alt", SUB, WWW, ["[::1]"], expect=Invalid("alt_names")),
    # --- URIs ---
    names("uri-allowed", SPIFFE, WWW, uri=["spiffe://example.org/ns/prod/sa/web"],
          expect=Ok(D(WWW, [WWW], uris=["spiffe://example.org/ns/prod/sa/web"]))),
    names("uri-exact-pattern", SPIFFE, WWW, uri=["urn:exact"], expect=Ok(D(WWW, [WWW], uris=["urn:exact"]))),
    names("uri-no-patterns", SUB, WWW, uri=["spiffe://example.org/x"], expect=Refused("allowed_uri_sans")),
    names("uri-not-matching", SPIFFE, WWW, uri=["spiffe://evil.org/x"],
          expect=Refused("allowed_uri_sans", "spiffe://evil.org/x")),
    names("uri-case-sensitive", SPIFFE, WWW, uri=["SPIFFE://example.org/x"], expect=Refused("allowed_uri_sans")),
    names("uri-question-mark-is-literal", SPIFFE, WWW, uri=["https://a.example/?q=1"],
          expect=Ok(D(WWW, [WWW], uris=["https://a.example/?q=1"]))),
    names("uri-question-mark-not-a-wildcard", SPIFFE, WWW, uri=["https://a.example/xq=1"],
          expect=Refused("allowed_uri_sans")),
    names("uri-duplicates-dropped", SPIFFE, WWW, uri=["urn:exact", "urn:exact"],
          expect=Ok(D(WWW, [WWW], uris=["urn:exact"]))),
    names("uri-relative", SPIFFE, WWW, uri=["/just/a/path"], expect=Invalid("uri_sans")),
    names("uri-no-scheme", SPIFFE, WWW, uri=["example.org/x"], expect=Invalid("uri_sans")),
    names("uri-whitespace", SPIFFE, WWW, uri=["spiffe://example.org/a b"], expect=Invalid("uri_sans")),
    names("uri-non-ascii", SPIFFE, WWW, uri=["spiffe://example.org/ü"], expect=Invalid("uri_sans")),
    # --- require_cn, empty requests, limits ---
    names("require-cn-missing", SUB, None, ["a.example.com"], expect=Refused("require_cn")),
    names("require-cn-empty", SUB, "", ["a.example.com"], expect=Refused("require_cn")),
    names("cn-optional-san-only", NO_CN, None, ["a.example.com"], expect=Ok(D(None, ["a.example.com"]))),
    names("cn-optional-nothing-at-all", NO_CN, None, expect=Invalid("common_name")),
    names("syntax-before-policy", SUB, "evil.com", ["a..example.com"], expect=Invalid("alt_names")),
    names("100-sans-ok", NO_CN, None, ALT_100, expect=Ok(D(None, ALT_100))),
    names("101-alt-names", NO_CN, None, [*ALT_100, "x.example.com"], expect=Invalid("alt_names")),
    names("101-across-lists", NO_CN, None, ALT_100[:60], [f"10.0.0.{i}" for i in range(41)],
          expect=Invalid("ip_sans")),
    names("100-plus-cn-is-101", SUB, "cn.example.com", ALT_100, expect=Invalid("common_name")),
    names("100-with-cn-among-them", SUB, ALT_100[0], ALT_100, expect=Ok(D(ALT_100[0], ALT_100))),
    # --- TTL ---
    ttl("ttl-none-gives-max", {}, None, expect=Ok(timedelta(days=30))),
    ttl("ttl-none-gives-role-default", {"ttl": "7d", "max_ttl": "90d"}, None, expect=Ok(timedelta(days=7))),
    ttl("ttl-equal-to-max", {"max_ttl": "90d"}, timedelta(days=90), expect=Ok(timedelta(days=90))),
    ttl("ttl-below-max", {}, timedelta(hours=1), expect=Ok(timedelta(hours=1))),
    ttl("ttl-over-max", {}, timedelta(days=31), expect=Refused("max_ttl", "31d")),
    ttl("ttl-one-second-over", {"max_ttl": "1h"}, timedelta(seconds=3601), expect=Refused("max_ttl", "1h1s")),
    ttl("ttl-zero", {}, timedelta(0), expect=Invalid("ttl")),
    ttl("ttl-negative", {}, timedelta(days=-1), expect=Invalid("ttl")),
    # --- CSR keys ---
    key("rsa-role-rsa-2048", {}, "rsa", 2048),
    key("rsa-2048-role-rsa-4096-csr", {"key_bits": 2048}, "rsa", 4096),
    key("rsa-role-rsa-1024-csr", {}, "rsa", 1024, expect=Refused("key_bits", "rsa 1024")),
    key("rsa-3072-role-rsa-2048-csr", {"key_bits": 3072}, "rsa", 2048, expect=Refused("key_bits")),
    key("rsa-role-ec-csr", {}, "ec", 256, expect=Refused("key_type", "ec 256")),
    key("ec-256-role-ec-384-csr", {"key_type": "ec"}, "ec", 384, expect=Refused("key_bits", "ec 384")),
    key("ec-384-role-ec-256-csr", {"key_type": "ec", "key_bits": 384}, "ec", 256, expect=Refused("key_bits")),
    key("ec-384-role-ec-384-csr", {"key_type": "ec", "key_bits": 384}, "ec", 384),
    key("ec-role-rsa-csr", {"key_type": "ec"}, "rsa", 4096, expect=Refused("key_type")),
    key("any-rsa-2048", {"key_type": "any"}, "rsa", 2048),
    key("any-rsa-4096", {"key_type": "any"}, "rsa", 4096),
    key("any-rsa-1024", {"key_type": "any"}, "rsa", 1024, expect=Refused("key_bits")),
    key("any-ec-256", {"key_type": "any"}, "ec", 256),
    key("any-ec-384", {"key_type": "any"}, "ec", 384),
    key("any-ec-521", {"key_type": "any"}, "ec", 521, expect=Refused("key_bits")),
    key("any-ed25519", {"key_type": "any"}, "ed25519", 256, expect=Refused("key_type")),
    key("key-bits-zero-is-invalid", {}, "rsa", 0, expect=Invalid("key_bits")),
    # --- key /issue generates ---
    shape("shape-default", {}, expect=Ok(("rsa", 2048))),
    shape("shape-rsa-4096", {"key_bits": 4096}, expect=Ok(("rsa", 4096))),
    shape("shape-ec-default", {"key_type": "ec"}, expect=Ok(("ec", 256))),
    shape("shape-ec-384", {"key_type": "ec", "key_bits": 384}, expect=Ok(("ec", 384))),
    shape("shape-any-signs-only", {"key_type": "any"}, expect=Refused("key_type", "any")),
    # --- from_mapping: normalisation ---
    role("role-normalises-domains", {"allowed_domains": ["Bücher.DE.", "example.com", "EXAMPLE.com"]},
         expect=Ok({"allowed_domains": ("xn--bcher-kva.de", "example.com")})),
    role("role-normalises-glob", {"allowed_domains": ["*.Bücher.DE"], "allow_glob_domains": True},
         expect=Ok({"allowed_domains": ("*.xn--bcher-kva.de",)})),
    role("role-normalises-cidrs", {"allowed_ip_sans_cidr": ["2001:DB8::/32", "10.0.0.0/8", "192.0.2.1"]},
         expect=Ok({"allowed_ip_sans_cidr": ("2001:db8::/32", "10.0.0.0/8", "192.0.2.1/32")})),
    role("role-durations", {"ttl": "1h30m", "max_ttl": 86400},
         expect=Ok({"ttl": timedelta(minutes=90), "max_ttl": timedelta(days=1)})),
    role("role-defaults", {}, expect=Ok({"key_type": "rsa", "key_bits": 0, "max_ttl": timedelta(days=30),
                                        "ttl": None, "allow_localhost": True, "enforce_hostnames": True})),
    # --- from_mapping: refusals name the field ---
    role("bad-cidr", {"allowed_ip_sans_cidr": ["10.0.0.300/8"]}, expect=BadRole("allowed_ip_sans_cidr")),
    role("cidr-host-bits", {"allowed_ip_sans_cidr": ["10.0.0.1/8"]}, expect=BadRole("allowed_ip_sans_cidr")),
    role("star-without-glob", {"allowed_domains": ["*.example.com"]}, expect=BadRole("allowed_domains")),
    role("ip-in-allowed-domains", {"allowed_domains": ["10.0.0.1"]}, expect=BadRole("allowed_domains")),
    role("empty-pattern", {"allowed_domains": [""]}, expect=BadRole("allowed_domains")),
    role("pattern-with-space", {"allowed_domains": ["exa mple.com"]}, expect=BadRole("allowed_domains")),
    role("unicode-glob-label", {"allowed_domains": ["bü*.de"], "allow_glob_domains": True},
         expect=BadRole("allowed_domains")),
    role("domains-as-string", {"allowed_domains": "example.com"}, expect=BadRole("allowed_domains")),
    role("uri-pattern-with-space", {"allowed_uri_sans": ["spiffe://a b/*"]}, expect=BadRole("allowed_uri_sans")),
    role("rsa-key-bits-1024", {"key_bits": 1024}, expect=BadRole("key_bits")),
    role("ec-key-bits-2048", {"key_type": "ec", "key_bits": 2048}, expect=BadRole("key_bits")),
    role("any-with-key-bits", {"key_type": "any", "key_bits": 2048}, expect=BadRole("key_bits")),
    role("unknown-key-type", {"key_type": "dsa"}, expect=BadRole("key_type")),
    role("ttl-over-max-ttl", {"ttl": "60d", "max_ttl": "30d"}, expect=BadRole("ttl")),
    role("bad-duration", {"max_ttl": "forever"}, expect=BadRole("max_ttl")),
    role("null-max-ttl", {"max_ttl": None}, expect=BadRole("max_ttl")),
    role("bool-as-string", {"allow_subdomains": "yes"}, expect=BadRole("allow_subdomains")),
    role("unknown-field", {"allowed_domain": ["example.com"]}, expect=BadRole("allowed_domain")),
]


def _run(case: Case) -> Any:
    if case.call == "role":
        return RolePolicy.from_mapping(case.role)
    policy = RolePolicy.from_mapping(case.role)
    if case.call == "names":
        return policy.check_names(*case.args)
    if case.call == "ttl":
        return policy.check_ttl(*case.args)
    if case.call == "key":
        return policy.check_key(*case.args)
    if case.call == "shape":
        return policy.issued_key_shape()
    raise AssertionError(f"unknown call {case.call}")


@pytest.mark.parametrize("case", CASES)
def test_policy_table(case: Case) -> None:
    expect = case.expect
    if isinstance(expect, Ok):
        result = _run(case)
        if case.call == "role":
            assert {name: getattr(result, name) for name in expect.value} == expect.value
        else:
            assert result == expect.value
    elif isinstance(expect, Invalid):
        with pytest.raises(InvalidName) as caught:
            _run(case)
        assert caught.value.field == expect.field, caught.value.message
        assert caught.value.message and str(caught.value) == caught.value.message
    elif isinstance(expect, Refused):
        with pytest.raises(PolicyViolation) as caught:
            _run(case)
        assert caught.value.rule == expect.rule, caught.value.message
        if expect.value is not None:
            assert caught.value.value == expect.value
        # The message names the value refused, so a 422 body is self-explanatory.
        assert caught.value.value in caught.value.message or case.call == "key"
    else:
        with pytest.raises(ValueError) as caught:
            _run(case)
        assert not isinstance(caught.value, (InvalidName,)), "role errors are plain ValueErrors"
        assert str(caught.value).startswith(f"{expect.field}: "), str(caught.value)


def test_table_is_large_and_ids_are_unique() -> None:
    ids = [param.id for param in CASES]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 80


# --- Messages and exception objects ---------------------------------------------------------------------


def test_refusal_message_names_value_domains_and_flags() -> None:
    with pytest.raises(PolicyViolation) as caught:
        RolePolicy.from_mapping(SUB).check_names("evil.com")
    assert caught.value.message == (
        "'evil.com' is not allowed by allowed_domains (['example.com'] with allow_subdomains)"
    )


@pytest.mark.parametrize(
    "settings,name,hint",
    [
        (SUB, "example.com", "it is an allowed domain itself, which needs allow_bare_domains"),
        (BARE, WWW, "it is under 'example.com', which needs allow_subdomains"),
        (BARE, "*.example.com", "it is a wildcard under 'example.com', which needs allow_subdomains"),
        ({**SUB, "allow_localhost": False}, "localhost", "localhost names need allow_localhost"),
        (GLOB, "*.example.org", "a wildcard needs allow_subdomains under an allowed domain, or a matching glob"),
    ],
)
def test_refusal_message_says_which_flag_would_allow_the_name(settings, name, hint) -> None:
    with pytest.raises(PolicyViolation) as caught:
        RolePolicy.from_mapping(settings).check_names(name)
    assert caught.value.rule == "allowed_domains"
    assert caught.value.message.endswith("; " + hint), caught.value.message


def test_refusal_message_shows_the_name_as_sent_and_as_checked() -> None:
    with pytest.raises(PolicyViolation) as caught:
        RolePolicy.from_mapping(SUB).check_names("Bücher.evil.com")
    assert "'Bücher.evil.com' (xn--bcher-kva.evil.com)" in caught.value.message


def test_exceptions_pickle_and_keep_their_fields() -> None:
    invalid = pickle.loads(pickle.dumps(InvalidName("alt_names", "a..b", "'a..b' has an empty label")))
    assert (invalid.field, invalid.value, invalid.message) == ("alt_names", "a..b", "'a..b' has an empty label")
    assert isinstance(invalid, ValueError)
    violation = pickle.loads(pickle.dumps(PolicyViolation("max_ttl", "31d", "too long")))
    assert (violation.rule, violation.value, violation.message) == ("max_ttl", "31d", "too long")
    assert not isinstance(violation, ValueError)


def test_policy_is_frozen_hashable_and_compares_by_settings() -> None:
    first = RolePolicy.from_mapping({"allowed_domains": ["Example.com."], "allowed_ip_sans_cidr": ["10.0.0.0/8"]})
    second = RolePolicy(allowed_domains=("example.com",), allowed_ip_sans_cidr=("10.0.0.0/8",))
    assert first == second and hash(first) == hash(second)
    with pytest.raises(AttributeError):
        first.allow_subdomains = True  # type: ignore[misc]


def test_direct_construction_validates_too() -> None:
    with pytest.raises(ValueError, match=r"^allowed_domains: "):
        RolePolicy(allowed_domains=("*.example.com",))
    with pytest.raises(ValueError, match=r"^key_bits: "):
        RolePolicy(key_type="ec", key_bits=4096)


def test_policy_module_is_pure() -> None:
    """No HTTP, database or HSM: only the standard library, idna and the duration helpers."""
    tree = ast.parse(Path(policy_module.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add("." * node.level + (node.module or ""))
    allowed = {"__future__", "dataclasses", "ipaddress", "unicodedata", "collections.abc", "datetime", "typing",
               "idna", "..durations"}
    assert imported <= allowed, imported - allowed


# --- The user documentation's examples -------------------------------------------------------------------

DOC = Path(__file__).resolve().parents[2] / "docs" / "name-matching.md"


def _doc_examples() -> list[tuple[dict[str, Any], list[str], str]]:
    text = DOC.read_text(encoding="utf-8").split("## Examples", 1)[1]
    roles = json.loads(text.split("```json", 1)[1].split("```", 1)[0])
    rows = []
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("| ") or len(cells) != 6 or cells[0] in ("role", "---"):
            continue
        rows.append((roles[cells[0]], [cell.strip("`") for cell in cells[1:5]], cells[5]))
    return rows


def test_documented_examples_hold() -> None:
    rows = _doc_examples()
    assert len(rows) >= 40
    for settings, (cn, alt, ip, uri), result in rows:
        policy = RolePolicy.from_mapping(settings)
        request = (cn, [alt] if alt else [], [ip] if ip else [], [uri] if uri else [])
        where = f"{settings} {request}"
        if result.startswith("SANs "):
            decision = policy.check_names(*request)
            sans = [*decision.dns_names, *decision.ip_addresses, *decision.uris]
            assert ", ".join(f"`{san}`" for san in sans) == result.removeprefix("SANs "), where
        elif result.startswith("422 "):
            with pytest.raises(PolicyViolation) as refused:
                policy.check_names(*request)
            assert f"`{refused.value.rule}`" == result.removeprefix("422 "), where
        else:
            assert result.startswith("400 "), result
            with pytest.raises(InvalidName) as invalid:
                policy.check_names(*request)
            assert f"`{invalid.value.field}`" == result.removeprefix("400 "), where


# --- Property-style checks ------------------------------------------------------------------------------

RNG_SEED = 20240601


def _random_label(rng: random.Random) -> str:
    length = rng.randint(1, 20)
    if length == 1:
        return rng.choice(string.ascii_lowercase + string.digits)
    inner = "".join(rng.choice(string.ascii_lowercase + string.digits + "-") for _ in range(length - 2))
    return rng.choice(string.ascii_lowercase) + inner + rng.choice(string.ascii_lowercase + string.digits)


def _random_name(rng: random.Random, parent: str, depth: int | None = None) -> str:
    depth = depth if depth is not None else rng.randint(1, 3)
    return ".".join([*(_random_label(rng) for _ in range(depth)), parent])


def _accepts(policy: RolePolicy, name: str) -> bool:
    # As an alt_name without a CN: random names may exceed the 64-character CN limit.
    try:
        dataclasses.replace(policy, require_cn=False).check_names(None, [name])
    except PolicyViolation:
        return False
    return True


@pytest.mark.parametrize("bare", [False, True])
@pytest.mark.parametrize("subdomains", [False, True])
def test_subdomain_and_bare_acceptance_equal_their_flags(bare: bool, subdomains: bool) -> None:
    rng = random.Random(RNG_SEED)
    policy = RolePolicy.from_mapping(
        {"allowed_domains": ["example.com"], "allow_bare_domains": bare, "allow_subdomains": subdomains}
    )
    assert _accepts(policy, "example.com") is bare
    for _ in range(200):
        assert _accepts(policy, _random_name(rng, "example.com")) is subdomains
        # Never anything outside the allowed domain, whatever the flags.
        assert _accepts(policy, _random_name(rng, "example.net")) is False
        assert _accepts(policy, _random_label(rng) + "example.com") is False


def _case_variants(rng: random.Random, name: str) -> list[str]:
    shuffled = "".join(c.upper() if rng.random() < 0.5 else c for c in name)
    return [name.upper(), shuffled, name + ".", shuffled + "."]


def test_case_and_trailing_dot_never_change_the_decision() -> None:
    rng = random.Random(RNG_SEED + 1)
    policy = RolePolicy.from_mapping({**SUB, "allowed_domains": ["example.com", "Bücher.de"]})
    for _ in range(200):
        parent = rng.choice(["example.com", "xn--bcher-kva.de", "evil.com"])
        name = _random_name(rng, parent)
        expected = _accepts(policy, name)
        for variant in _case_variants(rng, name):
            assert _accepts(policy, variant) is expected, variant
            if expected:
                assert policy.check_names(WWW, [variant]) == policy.check_names(WWW, [name])


def test_decisions_are_fixed_points() -> None:
    """Feeding a decision back in gives the same decision: normalisation is idempotent."""
    rng = random.Random(RNG_SEED + 2)
    policy = RolePolicy.from_mapping({**SUB, "allowed_uri_sans": ["spiffe://*"]})
    for _ in range(100):
        cn = rng.choice([_random_label(rng) + ".Example.COM.", "*.Bücher.example.com", "192.0.2.9", "2001:DB8::A"])
        alt = [_random_name(rng, "EXAMPLE.com") for _ in range(rng.randint(0, 3))] + ["ｗｗｗ。example。com"]
        ips = [str(ipaddress.ip_address(rng.getrandbits(32))) for _ in range(rng.randint(0, 2))]
        first = policy.check_names(cn, alt, ips, ["spiffe://x/y"])
        again = policy.check_names(first.common_name, first.dns_names, first.ip_addresses, first.uris)
        assert again == first


def test_wildcard_is_allowed_only_when_every_name_it_covers_is() -> None:
    """A wildcard ``*.D`` must never be accepted unless each ``x.D`` would be accepted on its own."""
    rng = random.Random(RNG_SEED + 3)
    roles = [
        SUB, BARE, BOTH, GLOB, NO_FLAGS,
        {"allowed_domains": ["*b.example.com", "x-*.example.net"], "allow_glob_domains": True},
        {"allowed_domains": ["example.com", "*.a.example.org"], "allow_glob_domains": True, "allow_subdomains": True},
    ]
    parents = ["example.com", "a.example.com", "ab.example.com", "example.org", "a.example.org", "b.a.example.org",
               "example.net", "x-1.example.net", "localhost"]
    for settings in roles:
        policy = RolePolicy.from_mapping(settings)
        for parent in parents:
            if not _accepts(policy, "*." + parent):
                continue
            for _ in range(30):
                covered = _random_label(rng) + "." + parent
                assert _accepts(policy, covered), (settings, parent, covered)


def test_domain_globs_agree_with_a_regular_expression() -> None:
    """'*' in allowed_domains = one or more of any character, dots included; the rest is literal."""
    rng = random.Random(RNG_SEED + 4)
    for _ in range(60):
        pattern = ".".join(rng.choice(["*", "a", "b", "a*", "*b", "a-*"]) for _ in range(rng.randint(1, 3)))
        pattern += ".example.com"
        if "*" not in pattern:
            continue  # without a '*' a pattern is a plain domain (bare/subdomain flags), not a glob
        policy = RolePolicy.from_mapping({"allowed_domains": [pattern], "allow_glob_domains": True})
        regex = re.compile(".+".join(re.escape(part) for part in pattern.split("*")))
        for _ in range(40):
            labels = [rng.choice(["a", "b", "ab", "ba", "a-b", "aa"]) for _ in range(rng.randint(1, 4))]
            name = ".".join(labels) + ".example.com"
            assert _accepts(policy, name) is bool(regex.fullmatch(name)), (pattern, name)


def test_uri_patterns_agree_with_fnmatchcase() -> None:
    """allowed_uri_sans '*' is fnmatch's (zero or more characters, '/' included), case-sensitive."""
    rng = random.Random(RNG_SEED + 5)
    alphabet = ["a", "B", "/", "*", ".", ":"]
    for _ in range(300):
        pattern = "x:" + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))
        uri = "x:" + "".join(rng.choice(alphabet[:-3] + ["."]) for _ in range(rng.randint(1, 10)))
        policy = RolePolicy.from_mapping({**SUB, "allowed_uri_sans": [pattern]})
        try:
            policy.check_names(WWW, uri_sans=[uri])
            accepted = True
        except PolicyViolation as exc:
            assert exc.rule == "allowed_uri_sans"
            accepted = False
        assert accepted is fnmatch.fnmatchcase(uri, pattern), (pattern, uri)


def test_ip_acceptance_agrees_with_ipaddress_membership() -> None:
    rng = random.Random(RNG_SEED + 6)
    blocks = ["10.0.0.0/8", "192.168.4.0/22", "2001:db8::/48"]
    policy = RolePolicy.from_mapping({**SUB, "allowed_ip_sans_cidr": blocks})
    networks = [ipaddress.ip_network(block) for block in blocks]
    for _ in range(300):
        if rng.random() < 0.5:
            address = ipaddress.ip_address(rng.choice([rng.getrandbits(32), (10 << 24) | rng.getrandbits(24)]))
        else:
            address = ipaddress.ip_address((0x20010DB8 << 96) | rng.getrandbits(rng.choice([80, 96])))
        inside = any(address in network for network in networks)
        assert _accepts_ip(policy, address.exploded) is inside, address


def _accepts_ip(policy: RolePolicy, address: str) -> bool:
    try:
        decision = policy.check_names(WWW, ip_sans=[address])
    except PolicyViolation as exc:
        assert exc.rule == "allowed_ip_sans_cidr"
        return False
    assert decision.ip_addresses == (str(ipaddress.ip_address(address)),)
    return True


def test_random_junk_never_escapes_the_two_error_types() -> None:
    """Whatever a client sends, the answer is a decision, InvalidName or PolicyViolation; never a crash."""
    rng = random.Random(RNG_SEED + 7)
    pieces = ["a", "Z", "0", "-", "_", ".", "*", "@", " ", ":", "/", "%", "ü", "ß", "☃", "xn--", "\x00", "。", "١"]
    for settings in (SUB, LAX, GLOB, ANY_NAME, CIDR, SPIFFE):
        policy = RolePolicy.from_mapping(settings)
        for _ in range(300):
            junk = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
            for call in (
                lambda: policy.check_names(junk),
                lambda: policy.check_names(WWW, [junk]),
                lambda: policy.check_names(WWW, ip_sans=[junk]),
                lambda: policy.check_names(WWW, uri_sans=[junk]),
            ):
                try:
                    decision = call()
                except (InvalidName, PolicyViolation):
                    continue
                # Anything accepted is in the form a certificate can carry.
                for name in decision.dns_names:
                    assert name.isascii() and name == name.lower() and not name.endswith(".")
