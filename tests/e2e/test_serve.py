"""`scaivault-pki serve` as operators run it: gunicorn, several sync workers, each with its own HSM session."""

from __future__ import annotations

import collections
import concurrent.futures
import json
import random

import pytest
import requests

from tests.support.daemon import init_data_dir, run_cli, start_daemon

pytestmark = [pytest.mark.needs_softhsm, pytest.mark.slow]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("serve")
    token = init_data_dir(data_dir)
    daemon = start_daemon(data_dir, workers=2)
    yield daemon, token
    daemon.stop()


def test_init_is_idempotent(served):
    daemon, _ = served
    again = json.loads(run_cli(daemon.data_dir, "init", "--json").stdout)
    assert again == {"tenant": "default", "token": None}
    human = run_cli(daemon.data_dir, "init").stdout
    assert "already initialised" in human and "svp_" not in human


def test_concurrent_creations_and_reads_across_workers(served):
    """200 requests from 8 clients at once: EC CA creations mixed with reads. No error, no duplicate serial."""
    daemon, token = served
    headers = {"Authorization": f"Bearer {token}"}
    root = requests.post(
        daemon.url + "/v1/pki/ca", json={"name": "conc-root", "common_name": "Conc Root", "ca_type": "root", "key_type": "ec"},
        headers=headers, timeout=30,
    )
    assert root.status_code == 201, root.text
    root_id = root.json()["id"]

    def one(i: int) -> tuple[str, int, dict]:
        with requests.Session() as session:
            if i % 4 == 0:
                body = {"name": f"conc-{i}", "common_name": f"Conc {i}", "ca_type": "intermediate",
                        "parent_ca_id": root_id, "key_type": "ec", "key_size": random.choice([256, 384])}
                resp = session.post(daemon.url + "/v1/pki/ca", json=body, headers=headers, timeout=60)
                return "create", resp.status_code, resp.json()
            path = random.choice(["/v1/pki/ca", f"/v1/pki/ca/{root_id}", "/v1/sys/health"])
            resp = session.get(daemon.url + path, headers=headers, timeout=60)
            return "read", resp.status_code, resp.json()

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(one, range(200)))
    failures = [(kind, status, body) for kind, status, body in results if status not in (200, 201)]
    assert failures == [], failures[:5]
    created = [body for kind, _, body in results if kind == "create"]
    assert len(created) == 50
    serials = [body["serial_number"] for body in created]
    assert len(set(serials)) == len(serials)

    # Both workers served (each has its own pid and session), and the stored set agrees with the answers.
    listed, cursor = [], None
    while True:
        params = {"limit": "1000"} | ({"cursor": cursor} if cursor else {})
        page = requests.get(daemon.url + "/v1/pki/ca", params=params, headers=headers, timeout=30).json()
        listed += page["items"]
        if not (cursor := page["next_cursor"]):
            break
    under_root = [ca for ca in listed if ca["parent_ca_id"] == root_id]
    assert len(under_root) == 50
    assert len({ca["serial_number"] for ca in under_root}) == 50
    assert "Traceback" not in daemon.log()


def test_workers_each_open_the_token(served):
    daemon, _ = served
    pids = collections.Counter()
    for _ in range(40):
        resp = requests.get(daemon.url + "/v1/sys/health", timeout=10, headers={"Connection": "close"})
        assert resp.status_code == 200
    # Each worker logs its own requests; two distinct worker pids answered.
    for line in daemon.log().splitlines():
        if line.startswith("{") and '"event":"request"' in line:
            pids[json.loads(line).get("pid")] += 1
    assert len(pids) >= 2, pids


@pytest.mark.parametrize(
    "breakage,expected",
    [
        ("pin", "PIN"),
        ("module", "module"),
    ],
)
def test_hsm_gone_answers_503(tmp_path_factory, breakage, expected):
    data_dir = tmp_path_factory.mktemp(f"hsm-gone-{breakage}")
    token = init_data_dir(data_dir)
    if breakage == "pin":
        bad_pin = data_dir / "wrong-pin"
        bad_pin.write_text("000000-wrong\n")
        overrides = {"pin_file": str(bad_pin)}
    else:
        overrides = {"pkcs11_module": str(data_dir / "no-such-libsofthsm2.so")}
    daemon = start_daemon(data_dir, workers=1, **overrides)
    try:
        health = requests.get(daemon.url + "/v1/sys/health", timeout=10)
        assert health.status_code == 503
        body = health.json()
        assert body["status"] == "unavailable" and body["checks"]["database"]["status"] == "ok"
        assert body["error"]["code"] == "hsm_unavailable" and expected in body["error"]["message"]
        create = requests.post(
            daemon.url + "/v1/pki/ca", json={"name": "r", "common_name": "R", "ca_type": "root", "key_type": "ec"},
            headers={"Authorization": f"Bearer {token}"}, timeout=10,
        )
        assert create.status_code == 503, create.text
        assert create.json()["error"]["code"] == "hsm_unavailable" and expected in create.json()["error"]["message"]
        pin = (data_dir / "hsm-pin").read_text().strip()
        assert pin not in daemon.log() and pin not in create.text
        assert "Traceback" not in create.text
    finally:
        daemon.stop()
