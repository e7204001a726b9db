"""The same daemon on PostgreSQL (127.0.0.1:5432, trust auth), in a database made and dropped by the test."""

from __future__ import annotations

import concurrent.futures
import os
import uuid

import pytest
import requests

from tests.support.daemon import init_data_dir, start_daemon

pytestmark = [pytest.mark.needs_softhsm, pytest.mark.slow]

ADMIN_URL = os.environ.get("SCAIVAULT_TEST_POSTGRES", "postgresql://127.0.0.1:5432/test")


@pytest.fixture
def pg_url():
    psycopg2 = pytest.importorskip("psycopg2")
    name = f"scaivault_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg2.connect(ADMIN_URL, connect_timeout=5)
    except psycopg2.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at {ADMIN_URL}: {exc}")
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {name}")
    yield ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    admin.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.close()


def test_daemon_on_postgresql(tmp_path, pg_url):
    token = init_data_dir(tmp_path, database_url=pg_url)
    daemon = start_daemon(tmp_path, workers=2, database_url=pg_url)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        assert requests.get(daemon.url + "/v1/sys/health", timeout=10).status_code == 200
        root = requests.post(daemon.url + "/v1/pki/ca", headers=headers, timeout=30, json={
            "name": "pg-root", "common_name": "PG Root", "ca_type": "root", "key_type": "ec"})
        assert root.status_code == 201, root.text

        def create(i):
            return requests.post(daemon.url + "/v1/pki/ca", headers=headers, timeout=60, json={
                "name": f"pg-{i}", "common_name": f"PG {i}", "ca_type": "intermediate",
                "parent_ca_id": root.json()["id"], "key_type": "ec"})

        with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
            results = list(pool.map(create, range(24)))
        assert [r.status_code for r in results] == [201] * 24, [r.text for r in results if r.status_code != 201][:3]
        assert len({r.json()["serial_number"] for r in results}) == 24
        duplicate = create(0)
        assert duplicate.status_code == 409 and duplicate.json()["error"]["code"] == "already_exists"
        listed = requests.get(daemon.url + "/v1/pki/ca", params={"limit": "10"}, headers=headers, timeout=30).json()
        assert len(listed["items"]) == 10 and listed["next_cursor"]
    finally:
        daemon.stop()
    assert "Traceback" not in daemon.log()


def test_migrated_postgresql_schema_matches_the_models(tmp_path, pg_url):
    from scaivault_pki.schema import migrations
    from scaivault_pki.schema.db import database, open_database

    from tests.support.schema_check import schema_drift

    init_data_dir(tmp_path, database_url=pg_url)
    previous = database.obj
    open_database(pg_url)
    try:
        with database.connection_context():
            assert migrations.pending() == []
            assert migrations.migrate() == []  # a second run, as a second node would, changes nothing
            assert schema_drift() == []
    finally:
        database.initialize(previous)
