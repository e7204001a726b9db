"""RFC 9773 renewal information: the CA's suggested window decides when to renew, and the renewal says what it
replaces. Pebble 2.4.0 offers no renewalInfo, so a thin ARI layer in front of the real Pebble adds it
(tests/support/ari_proxy.py); orders, validation and issuance are Pebble's own. Plugins hear of the ACME
certificate (issued) and of its renewal (renewed)."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.conftest import auth
from tests.plugins.test_manager import Recorder
from tests.support.acme import create_account, drive_until_done, parse_time
from tests.support.ari_proxy import ari_cert_id, start_ari_proxy
from tests.support.lint import openssl_verify

pytestmark = pytest.mark.needs_softhsm


@pytest.fixture(scope="module")
def ari(pebble):
    proxy = start_ari_proxy(pebble)
    yield proxy
    proxy.stop()


@pytest.fixture
def recorder(services):
    plugin = Recorder()
    services.plugins.register(plugin, "test-recorder")
    yield plugin
    services.plugins.unregister("test-recorder")


def _lifecycle(recorder):
    """The issued/renewed events heard (the expiry job, run by the order driver's loop, tells of other tests' too)."""
    return [call for call in recorder.calls if call[0] in ("issued", "renewed")]




def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def test_renewal_follows_the_cas_window_and_sends_replaces(client, admin_token, services, ari, pebble, challtestsrv,
                                                           recorder):
    from scaivault_pki.pki import acme_orders

    name = "ari.acme-test.example"
    challtestsrv.add_a(name)
    # Pebble's certificates live for years: only the window can make this renewal happen during the test.
    far_start, far_end = _now() + dt.timedelta(days=1), _now() + dt.timedelta(days=2)
    ari.set_window(far_start, far_end, retry_after=120)
    account_id = create_account(client, admin_token, ari, "ari")
    placed = client.simulate_post("/v1/pki/acme/issue", headers=auth(admin_token),
                                  json={"account_id": account_id, "domains": [name]})
    assert placed.status_code == 202, placed.text
    first = drive_until_done(client, admin_token, services, placed.json["id"])
    assert first["status"] == "valid", first
    assert first["replaces"] is None and ari.new_order_payloads[-1].get("replaces") is None

    # The window was asked for with the certificate's RFC 9773 identifier, and the renewal time lies inside it.
    old_pem = client.simulate_get(f"/v1/pki/certificates/{first['certificate_id']}/pem", headers=auth(admin_token)).text
    cert_id = ari_cert_id(old_pem)
    assert cert_id in ari.renewal_info_requests
    assert parse_time(first["renewal_window"]["start"]) == far_start and parse_time(first["renewal_window"]["end"]) == far_end
    assert far_start <= parse_time(first["renew_after"]) <= far_end
    assert [(kind, event.certificate_id) for kind, event, _ in _lifecycle(recorder)] == [("issued", first["certificate_id"])]
    assert _lifecycle(recorder)[0][1].dns_names == (name,)

    # Nothing is due yet; the CA is asked again only after its Retry-After (120 s).
    asked = len(ari.renewal_info_requests)
    assert acme_orders.renew_due_orders(services.envelope) == 0
    assert len(ari.renewal_info_requests) == asked

    # The CA moves the window into the past (say, ahead of a mass revocation): at the next check the
    # certificate is renewed at once, and the new order names the certificate it replaces.
    ari.set_window(_now() - dt.timedelta(minutes=10), _now() - dt.timedelta(minutes=5), cert_id=cert_id)
    ari.set_window(far_start, far_end, retry_after=120)  # (the renewal's own certificate: far away again)
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=180)
    assert acme_orders.renew_due_orders(services.envelope, later) == 1
    assert ari.new_order_payloads[-1]["replaces"] == cert_id
    orders = client.simulate_get(f"/v1/pki/acme/orders?account_id={account_id}", headers=auth(admin_token)).json["items"]
    renewal = next(o for o in orders if o["renewal_of"] == first["id"])
    assert renewal["replaces"] == cert_id

    renewed = drive_until_done(client, admin_token, services, renewal["id"])
    assert renewed["status"] == "valid", renewed
    new_cert = client.simulate_get(f"/v1/pki/certificates/{renewed['certificate_id']}", headers=auth(admin_token)).json
    assert new_cert["renewed_from"] == first["certificate_id"] and new_cert["source"] == "acme"
    leaf = client.simulate_get(f"/v1/pki/certificates/{renewed['certificate_id']}/pem", headers=auth(admin_token)).text
    ok, output = openssl_verify([pebble.root_pem().encode()], [renewed["chain_pem"].encode()], leaf.encode(),
                                purpose="sslserver")
    assert ok, output
    assert far_start <= parse_time(renewed["renew_after"]) <= far_end
    old_order = client.simulate_get(f"/v1/pki/acme/orders/{first['id']}", headers=auth(admin_token)).json
    assert old_order["renew_after"] is None  # replaced: not renewed again
    kind, event, previous = _lifecycle(recorder)[-1]
    assert (kind, event.certificate_id, previous) == ("renewed", renewed["certificate_id"], first["certificate_id"])
    assert event.ca_id is None and event.role is None
