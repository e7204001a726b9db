"""rfc2136 against a real BIND started on loopback: present, visible on the server, cleanup, gone; TSIG and
permission failures are errors, never success."""

from __future__ import annotations

import pytest

from scaivault_pki.plugins.api import DnsProviderError
from scaivault_pki.plugins.builtin.dns_rfc2136 import Rfc2136Provider
from scaivault_pki.plugins.testing import DnsProviderTestBase
from tests.support.bind import LOCKED_ZONE, UPDATABLE_ZONE

SECRET_REF = {"secret": "dns/bind#tsig"}


def provider_config(server, **overrides) -> dict:
    return {"server": "127.0.0.1", "port": server.port, "tsig_key_name": server.key_name,
            "tsig_secret": server.key_secret, "timeout": 5, **overrides}


class TestRfc2136Provider(DnsProviderTestBase):
    provider_class = Rfc2136Provider
    zone = UPDATABLE_ZONE
    valid_configs = [
        {"server": "192.0.2.53", "tsig_key_name": "acme-key", "tsig_secret": SECRET_REF},
        {"server": "ns1.example.net", "port": 5353, "zone": "example.net", "tsig_key_name": "k.example.",
         "tsig_secret": SECRET_REF, "tsig_algorithm": "hmac-sha512", "transport": "udp", "timeout": 2.5,
         "propagation_timeout": 60, "propagation_interval": 1},
    ]
    invalid_configs = [
        ({"tsig_key_name": "k", "tsig_secret": SECRET_REF}, "server"),
        ({"server": "192.0.2.53", "tsig_secret": SECRET_REF}, "tsig_key_name"),
        ({"server": "192.0.2.53", "tsig_key_name": "k"}, "tsig_secret"),
        ({"server": "192.0.2.53", "tsig_key_name": "k", "tsig_secret": SECRET_REF, "port": 70000}, "port"),
        ({"server": "192.0.2.53", "tsig_key_name": "k", "tsig_secret": SECRET_REF, "tsig_algorithm": "hmac-md5"},
         "tsig_algorithm"),
        ({"server": "192.0.2.53", "tsig_key_name": "k", "tsig_secret": {"secret": "no-key-part"}}, "tsig_secret"),
        ({"server": "192.0.2.53", "tsig_key_name": "k", "tsig_secret": SECRET_REF, "zone": "bad zone"}, "zone"),
        ({"server": "192.0.2.53", "tsig_key_name": "k", "tsig_secret": SECRET_REF, "password": "x"}, "password"),
    ]

    @pytest.fixture
    def dns_provider(self, bind_server):
        return Rfc2136Provider(provider_config(bind_server))

    @pytest.fixture
    def txt_lookup(self, bind_server):
        return bind_server.txt


def test_zone_from_config_is_used_without_a_lookup(bind_server):
    provider = Rfc2136Provider(provider_config(bind_server, zone="Example.Test."))
    assert provider.find_zone("_acme-challenge.deep.www.example.test") == "example.test"


def test_udp_transport_and_long_values(bind_server):
    provider = Rfc2136Provider(provider_config(bind_server, transport="udp"))
    name = f"_acme-challenge.long.{UPDATABLE_ZONE}"
    value = "v" * 300  # more than one 255-octet character-string
    provider.present(None, name, value, 60)
    assert bind_server.txt(name) == {value}
    provider.cleanup(None, name, value)
    assert bind_server.txt(name) == set()


def test_wrong_tsig_secret_is_an_error(bind_server):
    wrong = "A" * 43 + "="  # well-formed base64, not the server's key
    provider = Rfc2136Provider(provider_config(bind_server, tsig_secret=wrong))
    name = f"_acme-challenge.badsig.{UPDATABLE_ZONE}"
    with pytest.raises(DnsProviderError, match="TSIG") as refused:
        provider.present(UPDATABLE_ZONE, name, "never", 60)
    assert wrong not in str(refused.value) and bind_server.key_secret not in str(refused.value)
    with pytest.raises(DnsProviderError, match="TSIG"):
        provider.cleanup(UPDATABLE_ZONE, name, "never")
    assert bind_server.txt(name) == set()


def test_unknown_tsig_key_is_an_error(bind_server):
    provider = Rfc2136Provider(provider_config(bind_server, tsig_key_name="not-a-key-the-server-knows"))
    with pytest.raises(DnsProviderError, match="TSIG"):
        provider.present(UPDATABLE_ZONE, f"_acme-challenge.badkey.{UPDATABLE_ZONE}", "never", 60)


def test_refused_update_is_an_error(bind_server):
    provider = Rfc2136Provider(provider_config(bind_server))
    name = f"_acme-challenge.www.{LOCKED_ZONE}"
    assert provider.find_zone(name) == LOCKED_ZONE
    with pytest.raises(DnsProviderError, match="REFUSED"):
        provider.present(None, name, "never", 60)
    with pytest.raises(DnsProviderError, match="REFUSED"):
        provider.cleanup(None, name, "never")
    assert bind_server.txt(name) == set()


def test_name_outside_every_served_zone_is_an_error(bind_server):
    provider = Rfc2136Provider(provider_config(bind_server))
    with pytest.raises(DnsProviderError, match="not authoritative"):
        provider.present(None, "_acme-challenge.www.elsewhere.invalid", "never", 60)
    with pytest.raises(DnsProviderError, match="not inside the zone"):
        provider.present(UPDATABLE_ZONE, "_acme-challenge.www.elsewhere.invalid", "never", 60)


def test_unreachable_server_is_an_error_within_the_timeout(bind_server):
    from tests.support.daemon import free_port

    provider = Rfc2136Provider(provider_config(bind_server, port=free_port(), timeout=1))
    with pytest.raises(DnsProviderError, match="failed"):
        provider.present(UPDATABLE_ZONE, f"_acme-challenge.x.{UPDATABLE_ZONE}", "never", 60)


def test_repr_never_shows_the_tsig_secret(bind_server):
    provider = Rfc2136Provider(provider_config(bind_server))
    assert bind_server.key_secret not in repr(provider)
