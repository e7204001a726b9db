"""Shared fixtures: one initialised data dir (real SoftHSM token, real SQLite) per test session, and an
in-process client over the real app. Tests that need other processes start `scaivault-pki serve` themselves."""

from __future__ import annotations

import os
from pathlib import Path

import falcon.testing
import pytest

from tests.support.daemon import SOFTHSM_MODULE, create_token, have_softhsm, init_data_dir


def pytest_collection_modifyitems(config, items):
    if not have_softhsm():
        skip = pytest.mark.skip(reason="SoftHSM2 is not installed (apt-get install softhsm2)")
        for item in items:
            if "needs_softhsm" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("scaivault-data")


HSM_TEST_LABEL = "scaivault-test"
PUBLIC_BASE_URL = "http://pki.example.com"


@pytest.fixture(scope="session")
def admin_token(data_dir) -> str:
    """`scaivault-pki init` on the session's data dir, plus a second token for tests/hsm.

    SoftHSM reads its token directory once, when a process first loads it, so every token this pytest process
    will use must exist before then; `ensure_softhsm_token` works in a subprocess and loads nothing here.
    """
    from scaivault_pki.hsm import ensure_softhsm_token

    token = init_data_dir(data_dir)
    ensure_softhsm_token(
        SOFTHSM_MODULE, str(data_dir / "softhsm2.conf"), str(data_dir / "tokens"), HSM_TEST_LABEL,
        str(data_dir / "hsm-tests" / "user.pin"), str(data_dir / "hsm-tests" / "so.pin"),
    )
    return token


@pytest.fixture(scope="session")
def services(data_dir, admin_token):
    """The app's services in this process, over the session's data dir (the token opens on first use)."""
    from scaivault_pki.config import load_config
    from scaivault_pki.services import build_services

    env = {
        "SCAIVAULT_PKI_DATA_DIR": str(data_dir),
        "HOME": os.environ.get("HOME", "/root"),
        # A public-looking base URL: pkilint's CA/B Forum lint refuses loopback addresses in CRL/AIA URLs.
        "SCAIVAULT_PKI_PUBLIC_BASE_URL": PUBLIC_BASE_URL,
    }
    return build_services(load_config(environ=env))


@pytest.fixture(scope="session")
def client(services) -> falcon.testing.TestClient:
    from scaivault_pki.app import create_app

    return falcon.testing.TestClient(create_app(services))


@pytest.fixture(scope="session")
def other_tenant_token(data_dir, admin_token) -> str:
    from tests.support.daemon import run_cli

    run_cli(data_dir, "tenant", "create", "other")
    return create_token(data_dir, "other", "pki:admin")


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
