"""Database binding: one proxy, initialised from a URL, for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import contextlib
from typing import Iterator

import peewee
from playhouse.db_url import connect

database = peewee.DatabaseProxy()

# WAL lets readers run beside the one writer; the busy timeout makes a second writer wait instead of failing.
SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "busy_timeout": 15000,
    "foreign_keys": 1,
    "synchronous": "normal",
}


def open_database(url: str) -> peewee.Database:
    """Connect the model proxy to ``url`` (``sqlite:///path`` or ``postgresql://...``) and return the database."""
    if url.startswith("sqlite"):
        db = connect(url, pragmas=SQLITE_PRAGMAS)
    elif url.startswith(("postgres://", "postgresql://")):
        db = connect(url)
    else:
        raise ValueError(f"unsupported database URL scheme in {url.split(':', 1)[0]!r}; use sqlite or postgresql")
    database.initialize(db)
    return db


def is_sqlite() -> bool:
    return isinstance(database.obj, peewee.SqliteDatabase)


@contextlib.contextmanager
def write_transaction() -> Iterator[None]:
    """A transaction that will write.

    On SQLite it takes the write lock up front (BEGIN IMMEDIATE): a deferred transaction that reads and then
    writes can fail with SQLITE_BUSY at once when another process writes, which the busy timeout cannot help.
    """
    if is_sqlite():
        with database.obj.atomic(lock_type="IMMEDIATE"):
            yield
    else:
        with database.obj.atomic():
            yield
