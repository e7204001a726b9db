"""The propagation check against the real BIND: it sees a value once every authoritative server serves it, and
times out cleanly (a PropagationTimeout naming the lagging server, no hang) when one does not."""

from __future__ import annotations

import time

import dns.resolver
import pytest

from scaivault_pki.plugins.api import PROPAGATION_CONFIG_PROPERTIES, PropagationTimeout
from scaivault_pki.plugins.builtin import BUILTIN_DNS_PROVIDERS
from scaivault_pki.plugins.builtin.dns_cloudflare import CloudflareProvider
from scaivault_pki.plugins.builtin.dns_rfc2136 import Rfc2136Provider
from scaivault_pki.plugins.propagation import (
    Nameserver,
    authoritative_servers,
    propagation_servers,
    wait_for_propagation,
    wait_for_txt,
)
from tests.support.bind import UPDATABLE_ZONE
from tests.support.daemon import free_port


@pytest.fixture
def provider(bind_server):
    return Rfc2136Provider({
        "server": "127.0.0.1", "port": bind_server.port, "tsig_key_name": bind_server.key_name,
        "tsig_secret": bind_server.key_secret, "propagation_timeout": 1.5, "propagation_interval": 0.2,
    })


def bind_resolver(bind_server) -> dns.resolver.Resolver:
    """A resolver that asks the test server (it is authoritative for the test zones, so it answers them)."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = bind_server.port
    resolver.lifetime = 3
    return resolver


def test_nameserver_override_parsing():
    assert Nameserver.parse("127.0.0.1:5353") == Nameserver("127.0.0.1", 5353)
    assert Nameserver.parse("192.0.2.1") == Nameserver("192.0.2.1", 53)
    assert Nameserver.parse("[2001:db8::1]:5353") == Nameserver("2001:db8::1", 5353)
    assert Nameserver.parse("2001:db8::1") == Nameserver("2001:db8::1", 53)
    for bad in ("ns1.example.com:53", "127.0.0.1:0", "127.0.0.1:x"):
        with pytest.raises(ValueError):
            Nameserver.parse(bad)


def test_authoritative_servers_come_from_the_zone_ns_records(bind_server):
    servers = authoritative_servers(UPDATABLE_ZONE, bind_resolver(bind_server), port=bind_server.port)
    assert servers == [Nameserver("127.0.0.1", bind_server.port, f"ns1.{UPDATABLE_ZONE}")]


def test_sees_the_value_through_ns_discovery(provider, bind_server):
    name = f"_acme-challenge.prop.{UPDATABLE_ZONE}"
    provider.present(None, name, "propagated", 60)
    try:
        started = time.monotonic()
        wait_for_propagation(provider, name, "propagated", resolver=bind_resolver(bind_server), port=bind_server.port)
        assert time.monotonic() - started < 1.0
    finally:
        provider.cleanup(None, name, "propagated")


def test_sees_the_value_through_an_override_list(provider, bind_server):
    name = f"_acme-challenge.override.{UPDATABLE_ZONE}"
    provider.present(None, name, "v1", 60)
    try:
        wait_for_propagation(provider, name, "v1", nameservers=[Nameserver.parse(f"127.0.0.1:{bind_server.port}")])
    finally:
        provider.cleanup(None, name, "v1")


def test_waits_until_the_value_appears(provider, bind_server):
    """The value is added while the check polls: it succeeds on a later poll, not the first."""
    import threading

    name = f"_acme-challenge.late.{UPDATABLE_ZONE}"
    timer = threading.Timer(0.5, provider.present, args=(None, name, "late", 60))
    timer.start()
    try:
        started = time.monotonic()
        wait_for_txt(name, "late", [bind_server.nameserver], timeout=5, interval=0.1)
        assert 0.4 < time.monotonic() - started < 3
    finally:
        timer.join()
        provider.cleanup(None, name, "late")


def test_times_out_cleanly_when_the_value_is_absent(provider, bind_server):
    name = f"_acme-challenge.absent.{UPDATABLE_ZONE}"
    started = time.monotonic()
    with pytest.raises(PropagationTimeout) as timeout:
        wait_for_propagation(provider, name, "never-presented", nameservers=[bind_server.nameserver])
    elapsed = time.monotonic() - started
    assert 1.4 < elapsed < 3.0  # the provider's 1.5 s, not a hang
    assert name in str(timeout.value) and f"127.0.0.1:{bind_server.port}" in str(timeout.value)
    assert "value not served yet" in str(timeout.value)


def test_every_server_must_serve_it(provider, bind_server):
    """One server has the value, the other never answers: a timeout that names the silent one."""
    name = f"_acme-challenge.partial.{UPDATABLE_ZONE}"
    silent = Nameserver("127.0.0.1", free_port())
    provider.present(None, name, "partial", 60)
    try:
        started = time.monotonic()
        with pytest.raises(PropagationTimeout) as timeout:
            wait_for_txt(name, "partial", [bind_server.nameserver, silent], timeout=1.0, interval=0.2)
        assert time.monotonic() - started < 2.5
        message = str(timeout.value)
        assert str(silent) in message and "no answer" in message
        assert f"127.0.0.1:{bind_server.port}:" not in message  # the server that has it is not blamed
    finally:
        provider.cleanup(None, name, "partial")


@pytest.mark.parametrize("provider_type", BUILTIN_DNS_PROVIDERS, ids=lambda cls: cls.type_name)
def test_every_builtin_type_offers_the_propagation_settings(provider_type):
    properties = provider_type.config_schema["properties"]
    for name, schema in PROPAGATION_CONFIG_PROPERTIES.items():
        assert properties[name] == schema


def test_a_cloud_provider_checks_the_servers_its_config_names():
    provider = CloudflareProvider({"api_token": "token", "propagation_nameservers": ["192.0.2.7:5353", "[2001:db8::1]"],
                                   "propagation_timeout": 7, "propagation_interval": 0.5})
    assert (provider.propagation_timeout, provider.propagation_interval) == (7.0, 0.5)
    assert CloudflareProvider.propagation_timeout == 120.0  # the class default stays for other instances
    assert propagation_servers(provider, "_acme-challenge.www.example.com") == [
        Nameserver("192.0.2.7", 5353), Nameserver("2001:db8::1", 53)]
