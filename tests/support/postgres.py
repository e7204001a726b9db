"""A throw-away PostgreSQL database for tests (127.0.0.1:5432, trust auth), skipped when none is reachable."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import pytest

ADMIN_URL = os.environ.get("SCAIVAULT_TEST_POSTGRES", "postgresql://127.0.0.1:5432/test")


@contextlib.contextmanager
def temporary_database() -> Iterator[str]:
    """Create a database, yield its URL, drop it afterwards; ``pytest.skip`` without PostgreSQL."""
    psycopg2 = pytest.importorskip("psycopg2")
    name = f"scaivault_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg2.connect(ADMIN_URL, connect_timeout=5)
    except psycopg2.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at {ADMIN_URL}: {exc}")
    admin.autocommit = True
    try:
        admin.cursor().execute(f"CREATE DATABASE {name}")
        yield ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()
