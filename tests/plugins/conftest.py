"""Fixtures for plugin tests: a real BIND server on loopback."""

from __future__ import annotations

import pytest

# The shared provider tests live in the package, not in a test module: have pytest rewrite their asserts too.
pytest.register_assert_rewrite("scaivault_pki.plugins.testing")

from tests.support.bind import BindServer, have_named, start_bind  # noqa: E402


@pytest.fixture(scope="session")
def bind_server(tmp_path_factory) -> BindServer:
    """`named` (Debian package bind9) with an updatable zone and a locked one, for the whole session."""
    if not have_named():
        pytest.fail("BIND's named is not installed (apt-get install bind9); the rfc2136 tests need a real server")
    server = start_bind(tmp_path_factory.mktemp("bind"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def issuing_role(client, admin_token) -> str:
    """A root CA and a role for *.plugins.example.com, to issue certificates that fire event hooks."""
    from tests.conftest import auth

    root = client.simulate_post("/v1/pki/ca", headers=auth(admin_token), json={
        "name": "plugins-root", "common_name": "Plugins Test Root", "ca_type": "root", "key_type": "ec", "key_size": 256})
    assert root.status_code == 201, root.text
    role = client.simulate_post("/v1/pki/roles", headers=auth(admin_token), json={
        "name": "plugins-web", "ca_id": root.json["id"], "allowed_domains": ["plugins.example.com"],
        "allow_subdomains": True, "key_type": "ec", "key_bits": 256, "max_ttl": "90d"})
    assert role.status_code == 201, role.text
    return "plugins-web"
