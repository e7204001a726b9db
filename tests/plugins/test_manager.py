"""The plugin manager: entry-point discovery, check_pending, registration checks, disabled plugins, and event
hooks that never break issuance."""

from __future__ import annotations

import datetime as dt
import logging
import types
from typing import Any, ClassVar

import pytest

from scaivault_pki.plugins import hookimpl
from scaivault_pki.plugins.api import CertificateEvent, DnsProvider, secret_or_string
from scaivault_pki.plugins.manager import PluginError, hook_names, load_plugins
from tests.conftest import auth


def plugin(**hooks: Any) -> types.SimpleNamespace:
    """A plugin object whose attributes are hook implementations."""
    return types.SimpleNamespace(**{name: hookimpl(function) for name, function in hooks.items()})


class Valid(DnsProvider):
    type_name: ClassVar[str] = "valid_test"
    config_schema: ClassVar[dict] = {"type": "object", "properties": {"token": secret_or_string()}}
    secret_fields: ClassVar[tuple[str, ...]] = ("token",)

    def present(self, zone, fqdn, value, ttl):
        pass

    def cleanup(self, zone, fqdn, value):
        pass


def test_entry_points_bring_the_builtins_and_the_example():
    host = load_plugins()
    assert {p.name for p in host.plugins()} >= {"builtin", "example"}
    assert {"rfc2136", "example_memory"} <= set(host.dns_provider_types())
    assert host.dns_provider_plugin("rfc2136") == "builtin"


def test_disabled_plugins_are_not_loaded(caplog):
    caplog.set_level(logging.INFO)
    host = load_plugins(disabled=["example", "not-installed"])
    assert "example_memory" not in host.dns_provider_types() and "rfc2136" in host.dns_provider_types()
    assert "example" not in {p.name for p in host.plugins()}
    assert any(r.getMessage().startswith("disabled_plugins names a plugin that is not installed")
               and r.plugin == "not-installed" for r in caplog.records)
    assert "rfc2136" not in load_plugins(disabled=["builtin"]).dns_provider_types()


def test_check_pending_catches_a_misspelled_hook():
    host = load_plugins()
    misspelled = plugin(scaivault_pki_certificate_isued=lambda event: None)
    with pytest.raises(PluginError, match="unknown hook 'scaivault_pki_certificate_isued'") as refused:
        host.register(misspelled, "typo")
    assert "scaivault_pki_certificate_issued" in str(refused.value)  # the message lists the known hooks
    assert not host.manager.has_plugin("typo")  # refused whole: the host is as before


def test_an_argument_the_hook_does_not_have_is_refused():
    host = load_plugins()
    with pytest.raises(PluginError, match="typo-args"):
        host.register(plugin(scaivault_pki_certificate_issued=lambda certificate: None), "typo-args")


@pytest.mark.parametrize("bad, match", [
    ("not a class", "not a subclass of DnsProvider"),
    (type("Abstract", (DnsProvider,), {"type_name": "abstract", "config_schema": {"type": "object"}}), "abstract methods"),
    (type("BadName", (Valid,), {"type_name": "Bad-Name"}), "type_name"),
    (type("BadSchema", (Valid,), {"config_schema": {"type": "object", "properties": {"x": {"type": 5}}}}), "config_schema is invalid"),
    (type("NotObject", (Valid,), {"config_schema": {"type": "string"}}), "does not describe an object"),
    (type("SecretNotInSchema", (Valid,), {"secret_fields": ("password",)}), "secret_fields"),
    (type("SecretLiteralOnly", (Valid,), {"config_schema": {"type": "object", "properties": {"token": {"type": "string"}}}}),
     "does not accept a secret reference"),
])
def test_invalid_registrations_are_refused(bad, match):
    host = load_plugins()
    with pytest.raises(PluginError, match=match):
        host.register(plugin(scaivault_pki_dns_provider_types=lambda: [bad]), "bad")
    assert not host.manager.has_plugin("bad")


def test_two_plugins_claiming_one_type_are_refused_naming_both():
    host = load_plugins()
    clash = type("Clash", (Valid,), {"type_name": "rfc2136"})
    with pytest.raises(PluginError, match="two plugins: 'clash' and 'builtin'"):
        host.register(plugin(scaivault_pki_dns_provider_types=lambda: [clash]), "clash")


def test_a_registration_hook_that_raises_is_refused_naming_the_plugin():
    host = load_plugins()

    def broken():
        raise RuntimeError("boom")

    with pytest.raises(PluginError, match="plugin 'broken'.*RuntimeError: boom"):
        host.register(plugin(scaivault_pki_dns_provider_types=broken), "broken")


def test_wrappers_are_refused_on_host_called_hooks():
    host = load_plugins()

    def wrapper(event):
        return (yield)

    wrapped = types.SimpleNamespace(scaivault_pki_certificate_issued=hookimpl(wrapper=True)(wrapper))
    with pytest.raises(PluginError, match="cannot be a hook wrapper"):
        host.register(wrapped, "wrapper")


def test_hook_names_are_the_spec():
    assert hook_names() == [
        "scaivault_pki_acme_ca_backends",
        "scaivault_pki_certificate_expiring",
        "scaivault_pki_certificate_issued",
        "scaivault_pki_certificate_renewed",
        "scaivault_pki_certificate_revoked",
        "scaivault_pki_dns_provider_types",
    ]


# -- event hooks through the real app ------------------------------------------------------------------------


class Recorder:
    """A well-behaved plugin that records every event it is given."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, CertificateEvent, Any]] = []

    @hookimpl
    def scaivault_pki_certificate_issued(self, event):
        self.calls.append(("issued", event, None))

    @hookimpl
    def scaivault_pki_certificate_renewed(self, event, previous_certificate_id):
        self.calls.append(("renewed", event, previous_certificate_id))

    @hookimpl
    def scaivault_pki_certificate_revoked(self, event, reason):
        self.calls.append(("revoked", event, reason))

    @hookimpl
    def scaivault_pki_certificate_expiring(self, event, expires_in_seconds):
        self.calls.append(("expiring", event, expires_in_seconds))


class Failing:
    """A plugin whose every event hook raises."""

    @hookimpl
    def scaivault_pki_certificate_issued(self, event):
        raise RuntimeError("notification service down")

    @hookimpl
    def scaivault_pki_certificate_renewed(self, event):
        raise ConnectionError("smtp refused")


@pytest.fixture
def recorder(services):
    """A Recorder and a Failing plugin registered in the session's app for one test (failing one called first)."""
    recorder = Recorder()
    services.plugins.register(recorder, "recorder")
    services.plugins.register(Failing(), "failing")
    yield recorder
    services.plugins.unregister("failing")
    services.plugins.unregister("recorder")


def test_a_failing_plugin_is_logged_and_issuance_succeeds(client, admin_token, issuing_role, recorder, caplog):
    caplog.set_level(logging.INFO)
    resp = client.simulate_post(f"/v1/pki/issue/{issuing_role}", headers=auth(admin_token),
                                json={"common_name": "events.plugins.example.com", "ttl": "2h"})
    assert resp.status_code == 201, resp.text
    failures = [r for r in caplog.records if r.getMessage() == "plugin hook failed"]
    assert [(r.plugin, r.hook, r.error) for r in failures] == [
        ("failing", "scaivault_pki_certificate_issued", "RuntimeError: notification service down")]
    assert failures[0].exc_info is not None and failures[0].levelno == logging.ERROR
    # The plugins after the failing one still ran.
    (kind, event, _), = recorder.calls
    assert kind == "issued" and event.certificate_id == resp.json["id"]
    assert event.common_name == "events.plugins.example.com" and event.dns_names == ("events.plugins.example.com",)
    assert event.serial == resp.json["serial_number"] and event.role == issuing_role
    assert event.certificate_pem == resp.json["certificate"] and "PRIVATE" not in repr(event)
    assert event.not_after.tzinfo is dt.timezone.utc

    recorder.calls.clear()
    caplog.clear()
    renewed = client.simulate_post(f"/v1/pki/certificates/{resp.json['id']}/renew", headers=auth(admin_token))
    assert renewed.status_code in (200, 201), renewed.text
    assert [(k, e.certificate_id, p) for k, e, p in recorder.calls] == [("renewed", renewed.json["id"], resp.json["id"])]
    assert [r.error for r in caplog.records if r.getMessage() == "plugin hook failed"] == ["ConnectionError: smtp refused"]


def test_notify_revoked_and_expiring(client, admin_token, issuing_role, recorder, services):
    from scaivault_pki.pki import events
    from scaivault_pki.schema.db import database
    from scaivault_pki.schema.models import Certificate

    soon = client.simulate_post(f"/v1/pki/issue/{issuing_role}", headers=auth(admin_token),
                                json={"common_name": "soon.plugins.example.com", "ttl": "3h"}).json
    later = client.simulate_post(f"/v1/pki/issue/{issuing_role}", headers=auth(admin_token),
                                 json={"common_name": "later.plugins.example.com", "ttl": "60d"}).json
    recorder.calls.clear()
    with database.connection_context():
        events.notify_revoked(services.plugins, Certificate.get_by_id(soon["id"]), "key_compromise")
        assert [(k, e.certificate_id, r) for k, e, r in recorder.calls] == [("revoked", soon["id"], "key_compromise")]

        recorder.calls.clear()
        fired = events.notify_expiring(services.plugins, dt.timedelta(days=1))
    expiring = {e.certificate_id: left for k, e, left in recorder.calls if k == "expiring"}
    assert fired == len(expiring) and soon["id"] in expiring and later["id"] not in expiring
    assert 3 * 3600 - 120 < expiring[soon["id"]] <= 3 * 3600
    assert all(0 < left <= 86400 for left in expiring.values())


def test_no_plugins_means_no_events():
    from scaivault_pki.pki import events

    assert events.notify_expiring(None, dt.timedelta(days=1)) == 0
