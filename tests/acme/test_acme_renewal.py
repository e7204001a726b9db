"""Auto-renewal against a Pebble that issues short-lived certificates: one renewal succeeds, one fails and backs off."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from tests.conftest import auth
from tests.support.acme import create_account, drive_until_done, parse_time
from tests.support.daemon import free_port
from tests.support.lint import openssl_verify
from tests.support.pebble import start_pebble

LIFETIME = 24  # seconds: renewed once about 16 s have passed


@pytest.fixture(scope="module")
def short_pebble(tmp_path_factory, challtestsrv, app_listener):
    server = start_pebble(tmp_path_factory.mktemp("pebble-short"), dns_port=challtestsrv.dns_port,
                          http_port=app_listener, tls_port=free_port(), validity_seconds=LIFETIME)
    yield server
    server.stop()




def _orders(client, admin_token, account_id):
    return client.simulate_get(f"/v1/pki/acme/orders?account_id={account_id}", headers=auth(admin_token)).json["items"]


def test_certificates_are_renewed_when_a_third_of_their_lifetime_is_left(client, admin_token, services, short_pebble,
                                                                        challtestsrv):
    from scaivault_pki.jobs import run_jobs_once

    challtestsrv.add_a("renew.acme-test.example")
    challtestsrv.add_a("renew-fails.acme-test.example")
    account_id = create_account(client, admin_token, short_pebble, "renewer")
    placed = [client.simulate_post("/v1/pki/acme/issue", headers=auth(admin_token), json={
        "account_id": account_id, "domains": [name]}).json for name in ("renew.acme-test.example", "renew-fails.acme-test.example")]
    good, bad = (drive_until_done(client, admin_token, services, o["id"]) for o in placed)
    assert good["status"] == bad["status"] == "valid"
    # From now on the second name points where nobody answers: its renewal cannot validate.
    challtestsrv.add_a("renew-fails.acme-test.example", "127.0.0.2")

    old_cert = client.simulate_get(f"/v1/pki/certificates/{good['certificate_id']}", headers=auth(admin_token)).json
    not_before, not_after = parse_time(old_cert["not_before"]), parse_time(old_cert["not_after"])
    renew_after, lifetime = parse_time(good["renew_after"]), not_after - not_before
    # Two thirds in, minus at most 1/30 of the lifetime of jitter.
    assert not_before + lifetime * 2 / 3 - lifetime / 30 - dt.timedelta(seconds=1) <= renew_after <= not_before + lifetime * 2 / 3

    run_jobs_once(services)
    if dt.datetime.now(dt.timezone.utc) < renew_after - dt.timedelta(seconds=1):
        assert not [o for o in _orders(client, admin_token, account_id) if o["renewal_of"]], "renewed too early"

    deadline = time.monotonic() + LIFETIME + 20
    while time.monotonic() < deadline:
        run_jobs_once(services)
        orders = {o["id"]: o for o in _orders(client, admin_token, account_id)}
        renewals = {o["renewal_of"]: o for o in orders.values() if o["renewal_of"] in (good["id"], bad["id"])}
        if len(renewals) == 2 and renewals[good["id"]]["status"] == "valid" and orders[bad["id"]]["renewal_failures"]:
            break
        time.sleep(0.3)
    for renewed in (good, bad):  # one renewal order each, no more
        assert len([o for o in orders.values() if o["renewal_of"] == renewed["id"]]) == 1, orders
    renewal = renewals[good["id"]]
    assert renewal["status"] == "valid", renewal

    new_cert = client.simulate_get(f"/v1/pki/certificates/{renewal['certificate_id']}", headers=auth(admin_token)).json
    assert new_cert["renewed_from"] == old_cert["id"] and new_cert["source"] == "acme"
    assert new_cert["serial_number"] != old_cert["serial_number"] and new_cert["sans"] == old_cert["sans"]
    assert parse_time(new_cert["not_after"]) > not_after
    leaf = client.simulate_get(f"/v1/pki/certificates/{renewal['certificate_id']}/pem", headers=auth(admin_token)).text
    ok, output = openssl_verify([short_pebble.root_pem().encode()], [renewal["chain_pem"].encode()], leaf.encode(),
                                purpose="sslserver")
    assert ok, output
    # The renewed order is done with; the renewal is the one renewed next.
    assert orders[good["id"]]["renew_after"] is None and orders[good["id"]]["renewal_failures"] == 0
    assert renewal["renew_after"] is not None

    # The failed renewal is visible on the order it renews, and backs off for minutes (no tight loop).
    failed = orders[bad["id"]]
    assert renewals[bad["id"]]["status"] == "invalid"
    assert "renew-fails.acme-test.example" in failed["renewal_error"] and "connection" in failed["renewal_error"].lower()
    assert parse_time(failed["renew_after"]) >= dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=4)

    # A deactivated account's certificates are not renewed (this module's Pebble goes away after it).
    assert client.simulate_delete(f"/v1/pki/acme/accounts/{account_id}", headers=auth(admin_token)).status_code == 200
