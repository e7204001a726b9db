"""Plugins in the real daemon (`scaivault-pki serve`, gunicorn workers): the example plugin, installed as its own
distribution, is found through its entry point; `disabled_plugins` switches it off; secrets stay out of the log."""

from __future__ import annotations

import pytest
import requests

from tests.support.daemon import init_data_dir, start_daemon

pytestmark = [pytest.mark.needs_softhsm, pytest.mark.slow]

SECRET_VALUE = "served-secret-value-77c1a0"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("serve-plugins")
    return data_dir, init_data_dir(data_dir)


def test_served_daemon_lists_and_uses_entry_point_plugins(data_dir):
    path, token = data_dir
    headers = {"Authorization": f"Bearer {token}"}
    daemon = start_daemon(path, workers=2)
    try:
        types = requests.get(daemon.url + "/v1/pki/dns-providers/types", headers=headers, timeout=10).json()["items"]
        plugins = {t["type"]: t["plugin"] for t in types}
        assert plugins["example_memory"] == "example" and plugins["rfc2136"] == "builtin"

        put = requests.put(daemon.url + "/v1/secrets/dns/served", json={"data": {"token": SECRET_VALUE}},
                           headers=headers, timeout=10)
        assert put.status_code == 201, put.text
        created = requests.post(daemon.url + "/v1/pki/dns-providers", headers=headers, timeout=10, json={
            "name": "served", "type": "example_memory",
            "config": {"zones": ["example.com"], "api_token": {"secret": "dns/served#token"}}})
        assert created.status_code == 201, created.text
        for url in ("/v1/pki/dns-providers", f"/v1/pki/dns-providers/{created.json()['id']}", "/v1/secrets"):
            resp = requests.get(daemon.url + url, headers=headers, timeout=10)
            assert resp.status_code == 200 and SECRET_VALUE not in resp.text
    finally:
        daemon.stop()
    log = daemon.log()
    assert '"path":"/v1/secrets/dns/served"' in log  # the requests were logged ...
    assert SECRET_VALUE not in log  # ... their secret never
    for database_file in path.glob("scaivault-pki.db*"):  # the database, its WAL and shared memory
        assert SECRET_VALUE.encode() not in database_file.read_bytes(), database_file


def test_disabled_plugins_setting_switches_a_plugin_off(data_dir):
    path, token = data_dir
    daemon = start_daemon(path, workers=1, disabled_plugins="example")
    try:
        types = requests.get(daemon.url + "/v1/pki/dns-providers/types", timeout=10,
                             headers={"Authorization": f"Bearer {token}"}).json()["items"]
        assert "example_memory" not in {t["type"] for t in types} and "rfc2136" in {t["type"] for t in types}
    finally:
        daemon.stop()
