"""Keyset paging under concurrent inserts, through `scaivault-pki serve` with two workers."""

from __future__ import annotations

import concurrent.futures
import threading

import pytest
import requests

from tests.support.daemon import init_data_dir, start_daemon

pytestmark = [pytest.mark.needs_softhsm, pytest.mark.slow]

SEEDED = 2500


def test_listing_2500_while_another_client_issues(tmp_path):
    token = init_data_dir(tmp_path)
    daemon = start_daemon(tmp_path, workers=2)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        ca = requests.post(daemon.url + "/v1/pki/ca", headers=headers, timeout=30, json={
            "name": "page-root", "common_name": "Paging Root", "ca_type": "root", "key_type": "ec"}).json()
        role = requests.post(daemon.url + "/v1/pki/roles", headers=headers, timeout=30, json={
            "name": "pages", "ca_id": ca["id"], "allowed_domains": ["example.com"], "allow_subdomains": True,
            "key_type": "ec", "key_bits": 256})
        assert role.status_code == 201, role.text

        local = threading.local()

        def issue(i: int) -> str:
            session = getattr(local, "session", None) or requests.Session()
            local.session = session
            resp = session.post(daemon.url + "/v1/pki/issue/pages", headers=headers, timeout=60,
                                json={"common_name": f"host{i}.example.com", "ttl": "1h"})
            assert resp.status_code == 201, resp.text
            return resp.json()["id"]

        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            seeded = set(pool.map(issue, range(SEEDED)))
        assert len(seeded) == SEEDED

        stop = threading.Event()
        added: list[str] = []

        def keep_issuing() -> None:
            i = SEEDED
            while not stop.is_set() and i < SEEDED + 2000:
                added.append(issue(i))
                i += 1

        writer = threading.Thread(target=keep_issuing)
        writer.start()
        seen: list[str] = []
        cursor = None
        pages = 0
        try:
            with requests.Session() as session:
                while True:
                    params = {"limit": "100", "role": "pages"} | ({"cursor": cursor} if cursor else {})
                    page = session.get(daemon.url + "/v1/pki/certificates", params=params, headers=headers, timeout=30)
                    assert page.status_code == 200, page.text
                    body = page.json()
                    assert len(body["items"]) <= 100
                    seen += [item["id"] for item in body["items"]]
                    pages += 1
                    cursor = body["next_cursor"]
                    if cursor is None:
                        break
        finally:
            stop.set()
            writer.join()
        assert len(seen) == len(set(seen)), "a certificate was listed twice"
        assert seeded <= set(seen), f"{len(seeded - set(seen))} certificates that existed were skipped"
        assert added, "the other client issued nothing while we paged"
        assert pages >= SEEDED // 100
    finally:
        daemon.stop()
    assert "Traceback" not in daemon.log()
