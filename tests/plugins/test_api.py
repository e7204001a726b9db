"""The plugin API's helpers: zone matching by whole labels and the secret-or-string field schema."""

from __future__ import annotations

import jsonschema
import pytest

from scaivault_pki.plugins.api import longest_zone_match, secret_or_string


@pytest.mark.parametrize("fqdn, zones, expected", [
    ("_acme-challenge.www.example.com", ["example.com", "www.example.com"], "www.example.com"),
    ("_acme-challenge.www.example.com.", ["EXAMPLE.com."], "example.com"),
    ("example.com", ["example.com"], "example.com"),
    ("www.example.com", ["ample.com", "com.example"], None),
    ("www.example.com", [], None),
])
def test_longest_zone_match(fqdn, zones, expected):
    assert longest_zone_match(fqdn, zones) == expected


def test_secret_or_string_accepts_a_literal_or_a_reference():
    validator = jsonschema.Draft202012Validator(secret_or_string(minLength=4))
    assert validator.is_valid("abcd")
    assert validator.is_valid({"secret": "dns/cloudflare#api_token"})
    for bad in ("abc", 5, {"secret": "dns/cloudflare"}, {"secret": "a#b", "x": 1}, {"secret": "a b#c"}, {}):
        assert not validator.is_valid(bad), bad
