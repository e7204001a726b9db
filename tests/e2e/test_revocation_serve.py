"""Revocation against `scaivault-pki serve` (gunicorn, 2 workers, each with its job thread): openssl's OCSP client,
16 concurrent revokers, and CRLs that follow revocations within seconds without anyone asking."""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import json
import re
import sqlite3
import subprocess
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.support.daemon import RunningDaemon, init_data_dir, start_daemon
from tests.support.postgres import temporary_database
from tests.support.revocation import check_crl, crl_entries, crl_number

pytestmark = [pytest.mark.needs_softhsm, pytest.mark.slow]

PUBLIC_BASE_URL = "http://pki.example.com"


class Api:
    def __init__(self, url: str, token: str):
        self.url = url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def post(self, path: str, body: dict | None = None, expect: int = 200) -> dict:
        resp = self.session.post(self.url + path, json=body, timeout=60)
        assert resp.status_code == expect, resp.text
        return resp.json()

    def crl(self, ca_id: str, delta: bool = False) -> bytes:
        resp = requests.get(f"{self.url}/v1/pki/ca/{ca_id}/crl" + ("/delta" if delta else ""), timeout=30)
        assert resp.status_code == 200, resp.text
        return resp.content


@dataclass
class Served:
    daemon: RunningDaemon
    api: Api
    database_url: str | None  # None: SQLite in the data dir

    def rows(self, sql: str, *params: object) -> list[tuple]:
        """Read what the workers stored, straight from the database."""
        if self.database_url is None:
            with contextlib.closing(sqlite3.connect(self.daemon.data_dir / "scaivault-pki.db", timeout=15)) as db:
                return db.execute(sql, params).fetchall()
        import psycopg2

        with contextlib.closing(psycopg2.connect(self.database_url)) as db, db.cursor() as cursor:
            cursor.execute(sql.replace("?", "%s"), params)
            return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in cursor.fetchall()]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(request, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp(f"revocation-serve-{request.param}")
    with contextlib.ExitStack() as stack:
        database_url = stack.enter_context(temporary_database()) if request.param == "postgresql" else None
        settings = {"database_url": database_url} if database_url else {}
        token = init_data_dir(data_dir, **settings)
        daemon = start_daemon(data_dir, workers=2, public_base_url=PUBLIC_BASE_URL, **settings)
        stack.callback(daemon.stop)
        yield Served(daemon, Api(daemon.url, token), database_url)


@pytest.fixture(scope="module")
def pki(served, tmp_path_factory):
    """root -> issuing CA with a role, and their PEM files."""
    api = served.api
    root = api.post("/v1/pki/ca", {"name": "root", "common_name": "Serve Root", "ca_type": "root", "key_type": "ec",
                                   "key_size": 384}, expect=201)
    issuing = api.post("/v1/pki/ca", {"name": "issuing", "common_name": "Serve Issuing", "ca_type": "intermediate",
                                      "parent_ca_id": root["id"], "key_type": "ec"}, expect=201)
    api.post("/v1/pki/roles", {"name": "web", "ca_id": issuing["id"], "allowed_domains": ["example.com"],
                               "allow_subdomains": True, "key_type": "ec", "key_bits": 256}, expect=201)
    folder = tmp_path_factory.mktemp("pems")
    (folder / "root.pem").write_text(root["certificate"])
    (folder / "issuing.pem").write_text(issuing["certificate"])
    return {"root": root, "issuing": issuing, "folder": folder}


def issue(api: Api, name: str) -> dict:
    return api.post("/v1/pki/issue/web", {"common_name": f"{name}.example.com"}, expect=201)


def openssl_ocsp(pki, *args: str) -> subprocess.CompletedProcess:
    folder: Path = pki["folder"]
    result = subprocess.run(
        ["openssl", "ocsp", "-issuer", str(folder / "issuing.pem"), "-CAfile", str(folder / "root.pem"), *args],
        capture_output=True, text=True, timeout=60,
    )
    return result


def test_openssl_ocsp_client(served, pki):
    daemon, api = served.daemon, served.api
    folder: Path = pki["folder"]
    good, bad = issue(api, "ocsp-good"), issue(api, "ocsp-bad")
    (folder / "good.pem").write_text(good["certificate"])
    (folder / "bad.pem").write_text(bad["certificate"])
    revoked = api.post("/v1/pki/revoke", {"serial_number": bad["serial_number"], "reason": "keyCompromise"})
    url = f"{daemon.url}/v1/pki/ca/{pki['issuing']['id']}/ocsp"

    result = openssl_ocsp(pki, "-cert", str(folder / "good.pem"), "-url", url)  # with a nonce, checked by openssl
    assert result.returncode == 0 and "Response verify OK" in result.stderr, result.stderr
    assert f"{folder / 'good.pem'}: good" in result.stdout
    assert "This Update:" in result.stdout and "Next Update:" in result.stdout

    result = openssl_ocsp(pki, "-cert", str(folder / "bad.pem"), "-url", url, "-no_nonce")
    assert result.returncode == 0 and "Response verify OK" in result.stderr, result.stderr
    assert f"{folder / 'bad.pem'}: revoked" in result.stdout
    assert "Reason: keyCompromise" in result.stdout
    when = time.strftime("%b %e %H:%M:%S %Y GMT", time.strptime(revoked["revoked_at"], "%Y-%m-%dT%H:%M:%SZ"))
    assert f"Revocation Time: {when}" in result.stdout, result.stdout

    result = openssl_ocsp(pki, "-serial", "0x1234567890abcdef", "-url", url)
    assert result.returncode == 0 and "Response verify OK" in result.stderr, result.stderr
    assert "0x1234567890abcdef: unknown" in result.stdout

    # Both certificates in one request, and the same through GET (RFC 6960 A.1), answer checked by openssl.
    request_file, response_file = folder / "req.der", folder / "resp.der"
    both = ("-cert", str(folder / "good.pem"), "-cert", str(folder / "bad.pem"))
    assert openssl_ocsp(pki, *both, "-nonce", "-reqout", str(request_file)).returncode == 0
    encoded = urllib.parse.quote(base64.b64encode(request_file.read_bytes()).decode(), safe="")
    resp = requests.get(f"{url}/{encoded}", timeout=30)
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "application/ocsp-response"
    response_file.write_bytes(resp.content)
    # -no_nonce: do not add a second nonce to the request read back; the one in it is still checked.
    result = openssl_ocsp(pki, *both, "-no_nonce", "-reqin", str(request_file), "-respin", str(response_file))
    assert result.returncode == 0 and "Response verify OK" in result.stderr, result.stderr
    assert "WARNING" not in result.stderr  # openssl warns when the nonce does not match
    assert f"{folder / 'good.pem'}: good" in result.stdout and f"{folder / 'bad.pem'}: revoked" in result.stdout


def test_a_revocation_reaches_the_served_crl_within_seconds(served, pki):
    """Nobody calls POST /crl: the job thread of one of the workers publishes it."""
    api = served.api
    issuing = pki["issuing"]["id"]
    leaf = issue(api, "auto")
    before = api.crl(issuing)
    serial = int(leaf["serial_number"], 16)
    assert serial not in crl_entries(before)
    api.post("/v1/pki/revoke", {"serial_number": leaf["serial_number"], "reason": "superseded"})
    started = time.monotonic()
    while time.monotonic() - started < 10:
        served_crl = api.crl(issuing)
        if serial in crl_entries(served_crl):
            break
        time.sleep(0.1)
    latency = time.monotonic() - started
    assert serial in crl_entries(served_crl), "the revocation did not reach the CRL within 10 s"
    assert latency < 5, latency
    assert crl_number(served_crl) > crl_number(before)
    assert serial in crl_entries(api.crl(issuing, delta=True))
    check_crl(served_crl, pki["issuing"]["certificate"])
    print(f"revocation visible on the served CRL after {latency:.2f} s")


def test_sixteen_concurrent_revokers(served, pki):
    daemon, api = served.daemon, served.api
    issuing = pki["issuing"]["id"]
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        leaves = list(pool.map(lambda i: issue(api, f"conc-{i}"), range(48)))

    def client(i: int) -> list[int]:
        mine = Api(daemon.url, api.session.headers["Authorization"].split()[1])
        numbers = []
        for leaf in leaves[i * 3:(i + 1) * 3]:
            body = mine.post("/v1/pki/revoke", {"serial_number": leaf["serial_number"], "reason": "keyCompromise"})
            assert body["status"] == "revoked"
            if i % 2:
                numbers.append(mine.post(f"/v1/pki/ca/{issuing}/crl")["crl_number"])
            else:
                numbers.append(crl_number(mine.crl(issuing)))
        return numbers

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        seen = list(pool.map(client, range(16)))
    forced = [n for i, numbers in enumerate(seen) if i % 2 for n in numbers]
    assert len(set(forced)) == len(forced), "two publications got the same CRL number"
    for numbers in seen:  # what one client sees never goes backwards
        assert numbers == sorted(numbers), numbers

    latest = api.post(f"/v1/pki/ca/{issuing}/crl")
    assert latest["crl_number"] > max(max(numbers) for numbers in seen)
    listed = crl_entries(latest["crl_pem"].encode())
    assert {int(leaf["serial_number"], 16) for leaf in leaves} <= set(listed)
    check_crl(latest["crl_pem"].encode(), pki["issuing"]["certificate"])
    check_crl(api.crl(issuing, delta=True), pki["issuing"]["certificate"])

    # Across everything both workers stored: numbers unique and, in number order, thisUpdate never goes back and a
    # full CRL never lists less than the one before it.
    rows = served.rows("SELECT number, kind, this_update, der FROM crls WHERE ca_id = ? ORDER BY number", issuing)
    assert len({number for number, *_ in rows}) == len(rows)
    fulls = [(number, this_update, set(crl_entries(der))) for number, kind, this_update, der in rows if kind == "full"]
    for (_, earlier_time, earlier), (number, later_time, later) in zip(fulls, fulls[1:]):
        assert earlier_time <= later_time and earlier <= later, number
    for number, kind, _, der in rows:
        assert crl_number(der) == number


def test_workers_run_one_job_thread_each_and_stop_cleanly(served):
    daemon = served.daemon
    started = [json.loads(line) for line in daemon.log().splitlines()
               if line.startswith("{") and '"job runner started"' in line]
    assert len({event["pid"] for event in started}) == 2, started
    holders = dict(served.rows("SELECT name, holder FROM job_leases"))
    assert set(holders) >= {"crl.publish-dirty", "crl.refresh"}
    daemon.stop()
    assert daemon.process.returncode == 0
    expiries = [str(expiry) for (expiry,) in served.rows("SELECT expires_at FROM job_leases")]
    assert all(expiry.startswith("1970-") for expiry in expiries), expiries  # leases given up on the way out
    log = daemon.log()
    assert "Traceback" not in log and '"job failed"' not in log
    assert not re.search(r'"level":"(error|critical)"', log), log[-3000:]
