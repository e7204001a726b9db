"""Crash safety: a gunicorn daemon killed (SIGKILL) in the middle of an ACME order finishes it after restart."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import time
from pathlib import Path

import requests

from tests.conftest import auth
from tests.support.acme import sqlite_rows
from tests.support.daemon import free_port, init_data_dir, start_daemon
from tests.support.lint import openssl_verify
from tests.support.pebble import start_pebble




def _kill_hard(pid: int) -> None:
    """SIGKILL gunicorn's master and its workers (no clean shutdown, no lease released)."""
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(c) for c in (task / "children").read_text().split()]
    for child in [pid, *children]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)


def test_killed_daemon_resumes_the_order_after_restart(tmp_path_factory, challtestsrv):
    data_dir = tmp_path_factory.mktemp("acme-restart")
    token = init_data_dir(data_dir)
    port = free_port()
    pebble = start_pebble(tmp_path_factory.mktemp("pebble-restart"), dns_port=challtestsrv.dns_port,
                          http_port=port, tls_port=free_port())
    challtestsrv.add_a("restart.acme-test.example")
    # Someone else (this test) holds the order driver's lease, so the first daemon never steps the order itself:
    # the order is exactly as far as the API calls below took it when the daemon dies.
    until = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).replace(tzinfo=None, microsecond=0)
    sqlite_rows(data_dir, "INSERT INTO job_leases (name, holder, expires_at) VALUES (?, ?, ?)", "acme.orders", "test", str(until))
    daemon = start_daemon(data_dir, workers=1, port=port)
    try:
        api = f"http://127.0.0.1:{port}"
        account = requests.post(f"{api}/v1/pki/acme/accounts", headers=auth(token), timeout=30, json={
            "name": "restart", "provider": "custom", "email": "ops@example.com", "directory_url": pebble.directory_url,
            "ca_bundle": pebble.ca_bundle.read_text()})
        assert account.status_code == 201, account.text
        order = requests.post(f"{api}/v1/pki/acme/issue", headers=auth(token), timeout=30, json={
            "account_id": account.json()["id"], "domains": ["restart.acme-test.example"]})
        assert order.status_code == 202, order.text
        order_id = order.json()["id"]
        # Steps by hand: the challenge is answered, Pebble validates against this daemon's responder, the order
        # is finalized. The daemon dies before anyone fetched the certificate. (Killing it while Pebble validates
        # would rightly fail the order: there would be nobody to answer.)
        deadline = time.monotonic() + 30
        stepped = {"status": "pending"}
        while stepped["status"] == "pending" and time.monotonic() < deadline:
            stepped = requests.post(f"{api}/v1/pki/acme/orders/{order_id}/refresh", headers=auth(token), timeout=30).json()
            assert stepped["challenges"][0]["answered_at"]
            time.sleep(0.2)
        assert stepped["status"] == "processing", stepped

        _kill_hard(daemon.process.pid)
        daemon.process.wait()
        assert sqlite_rows(data_dir, "SELECT status, certificate_id FROM acme_orders WHERE id = ?", order_id) == [("processing", None)]
        # The lease runs out (as a dead holder's does); the restarted daemon's job takes it and carries on.
        sqlite_rows(data_dir, "UPDATE job_leases SET expires_at = '1970-01-01 00:00:00' WHERE name = 'acme.orders'")
        daemon = start_daemon(data_dir, workers=1, port=port)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done = requests.get(f"{api}/v1/pki/acme/orders/{order_id}", headers=auth(token), timeout=30).json()
            if done["status"] in ("valid", "invalid"):
                break
            time.sleep(0.3)
        assert done["status"] == "valid", (done, daemon.log())
        leaf = requests.get(f"{api}/v1/pki/certificates/{done['certificate_id']}/pem", headers=auth(token), timeout=30).text
        ok, output = openssl_verify([pebble.root_pem().encode()], [done["chain_pem"].encode()], leaf.encode(),
                                    purpose="sslserver")
        assert ok, output
    finally:
        daemon.stop()
        pebble.stop()
