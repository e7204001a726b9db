"""Helpers the ACME tests share: an account at a test Pebble through the API, driving an order to its end with
the real job functions, reading API times, and looking into a daemon's SQLite database from outside."""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
import time
from pathlib import Path

from tests.conftest import auth


def account_body(pebble, name: str, **extra) -> dict:
    """``POST /v1/pki/acme/accounts`` for a ``custom`` account at ``pebble`` (anything with ``directory_url`` and
    ``ca_bundle``: a Pebble, or the ARI layer in front of one)."""
    return {"name": name, "provider": "custom", "email": f"{name}@example.com", "directory_url": pebble.directory_url,
            "ca_bundle": pebble.ca_bundle.read_text(), **extra}


def create_account(client, admin_token: str, pebble, name: str) -> str:
    """Register an account through the API; its id."""
    created = client.simulate_post("/v1/pki/acme/accounts", headers=auth(admin_token), json=account_body(pebble, name))
    assert created.status_code == 201, created.text
    return created.json["id"]


def drive_until_done(client, admin_token: str, services, order_id: str, timeout: float = 60) -> dict:
    """Run the background jobs (as a worker's job thread would) until the order is valid or invalid; the order."""
    from scaivault_pki.jobs import run_jobs_once

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run_jobs_once(services)
        order = client.simulate_get(f"/v1/pki/acme/orders/{order_id}", headers=auth(admin_token)).json
        if order["status"] in ("valid", "invalid"):
            return order
        time.sleep(0.3)
    raise AssertionError(f"order not finished in {timeout} s: {order}")


def parse_time(text: str) -> dt.datetime:
    """An API timestamp (RFC 3339, ``Z``) as an aware datetime."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def sqlite_rows(data_dir: Path, statement: str, *params: object) -> list[tuple]:
    """Run one statement on a daemon's SQLite database (committed); its rows."""
    with contextlib.closing(sqlite3.connect(data_dir / "scaivault-pki.db", timeout=15)) as db:
        rows = db.execute(statement, params).fetchall()
        db.commit()
        return rows
