"""The example third-party plugin (tests/plugins/example_plugin), installed as its own distribution: the daemon
finds it only through its entry point, lists its DNS provider type, uses it, and calls its event hook."""

from __future__ import annotations

from pathlib import Path

import pytest

from scaivault_pki.plugins.testing import DnsProviderTestBase
from tests.conftest import auth
from tests.support.daemon import create_token

ROOT = Path(__file__).resolve().parents[2]

try:
    import scaivault_example_plugin as example
except ImportError:  # pragma: no cover - only when the venv was not made by `make`
    pytest.fail(
        "the example plugin is not installed: pip install ./tests/plugins/example_plugin (make test does it)",
        pytrace=False,
    )


def test_only_the_entry_point_brings_it_in():
    """No daemon code names the plugin; its registration comes from its distribution's entry point."""
    from importlib.metadata import distribution

    for folder in ("daemon", "plugins", "hsm", "schema"):
        for path in (ROOT / folder).rglob("*.py"):
            assert "scaivault_example_plugin" not in path.read_text(), path
    entry_points = [ep for ep in distribution("scaivault-example-plugin").entry_points if ep.group == "scaivault_pki.plugins"]
    assert [(ep.name, ep.value) for ep in entry_points] == [("example", "scaivault_example_plugin")]


def test_the_daemon_loaded_it(services):
    info = {p.name: p for p in services.plugins.plugins()}
    assert info["example"].distribution == "scaivault-example-plugin" and info["example"].version == "1.0.0"
    assert services.plugins.manager.get_plugin("example") is example
    assert services.plugins.dns_provider_types()["example_memory"] is example.ExampleMemoryProvider


def test_types_endpoint_lists_it(client, admin_token):
    resp = client.simulate_get("/v1/pki/dns-providers/types", headers=auth(admin_token))
    types = {t["type"]: t for t in resp.json["items"]}
    assert types["example_memory"]["plugin"] == "example"
    assert types["example_memory"]["secret_fields"] == ["api_token"]
    assert types["example_memory"]["description"] == "Keeps TXT records in memory (an example for plugin authors, not for production)."


def test_configured_over_the_api_and_used(client, data_dir, admin_token, services):
    from scaivault_pki.pki.dns_providers import resolve_provider
    from scaivault_pki.schema.db import database

    secrets_token = create_token(data_dir, "default", "secrets:write")
    assert client.simulate_put("/v1/secrets/dns/example-plugin", json={"data": {"token": "example-token-1"}},
                               headers=auth(secrets_token)).status_code in (200, 201)
    created = client.simulate_post("/v1/pki/dns-providers", headers=auth(admin_token), json={
        "name": "example-memory", "type": "example_memory",
        "config": {"zones": ["example.com"], "api_token": {"secret": "dns/example-plugin#token"}}})
    assert created.status_code == 201, created.text
    with database.connection_context():
        tenant_id = _tenant_of(created.json["id"])
        provider = resolve_provider(tenant_id, created.json["id"], plugins=services.plugins, envelope=services.envelope)
    assert isinstance(provider, example.ExampleMemoryProvider) and provider.config["api_token"] == "example-token-1"
    provider.present(None, "_acme-challenge.www.example.com", "abc", 60)
    assert example.RECORDS[("example.com", "_acme-challenge.www.example.com")] == {"abc"}
    provider.cleanup(None, "_acme-challenge.www.example.com", "abc")
    assert example.RECORDS[("example.com", "_acme-challenge.www.example.com")] == set()


def _tenant_of(provider_id: str) -> str:
    from scaivault_pki.schema.models import DnsProviderConfig

    return DnsProviderConfig.get_by_id(provider_id).tenant_id


def test_its_event_hook_sees_issued_certificates(client, issuing_role, admin_token):
    resp = client.simulate_post(f"/v1/pki/issue/{issuing_role}", headers=auth(admin_token),
                                json={"common_name": "hooked.plugins.example.com"})
    assert resp.status_code == 201, resp.text
    assert resp.json["id"] in example.ISSUED


class TestExampleMemoryProvider(DnsProviderTestBase):
    """The shared provider test base, reused as a third-party author would."""

    provider_class = example.ExampleMemoryProvider
    zone = "example.com"
    valid_configs = [{"zones": ["example.com", "example.org"], "api_token": {"secret": "dns/example#token"}}]
    invalid_configs = [
        ({"zones": [], "api_token": {"secret": "dns/example#token"}}, "zones"),
        ({"zones": ["example.com"]}, "api_token"),
        ({"zones": ["example.com"], "api_token": {"secret": "dns/example#token", "extra": 1}}, "api_token"),
    ]

    @pytest.fixture
    def dns_provider(self):
        return example.ExampleMemoryProvider({"zones": ["example.com", "sub.example.com"], "api_token": "token-123456"})

    @pytest.fixture
    def txt_lookup(self):
        def lookup(fqdn: str) -> set[str]:
            return {value for (zone, name), values in example.RECORDS.items() if name == fqdn for value in values}

        return lookup
