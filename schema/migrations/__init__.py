"""Numbered, reviewed schema migrations.

Each ``vNNNN_name.py`` module holds ``STATEMENTS``: SQL that both SQLite and PostgreSQL accept (portable types
only: TEXT/VARCHAR, INTEGER/BIGINT, BOOLEAN, TIMESTAMP, BYTEA — SQLite stores BYTEA with blob semantics). Tables
are never made from the models at start: what runs is what was reviewed here.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass

from ..db import database, is_sqlite, write_transaction
from ..models import utcnow

# One constant key for PostgreSQL's advisory lock, so two nodes migrating at once take turns.
_PG_LOCK_KEY = 0x5CA1_0001


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def discover() -> list[Migration]:
    """All migrations in this package, in version order; numbering gaps and duplicates are refused."""
    found = []
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("v") or "_" not in info.name:
            continue
        version = int(info.name[1:].split("_", 1)[0])
        module = importlib.import_module(f"{__name__}.{info.name}")
        found.append(Migration(version, info.name, tuple(module.STATEMENTS)))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations must be numbered 1..N without gaps: {[m.name for m in found]}")
    return found


def _ensure_ledger() -> None:
    database.execute_sql(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name VARCHAR(128) NOT NULL, applied_at TIMESTAMP NOT NULL)"
    )


def applied_versions() -> set[int]:
    _ensure_ledger()
    return {row[0] for row in database.execute_sql("SELECT version FROM schema_migrations")}


def migrate() -> list[str]:
    """Apply every pending migration, each in its own transaction; returns the names applied."""
    _ensure_ledger()
    applied = []
    for migration in discover():
        with write_transaction():
            if not is_sqlite():
                database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_PG_LOCK_KEY,))
            done = {row[0] for row in database.execute_sql("SELECT version FROM schema_migrations")}
            if migration.version in done:
                continue
            for statement in migration.statements:
                database.execute_sql(statement)
            mark = database.param
            database.execute_sql(
                f"INSERT INTO schema_migrations (version, name, applied_at) VALUES ({mark}, {mark}, {mark})",
                (migration.version, migration.name, utcnow()),
            )
            applied.append(migration.name)
    return applied


def pending() -> list[str]:
    done = applied_versions()
    return [m.name for m in discover() if m.version not in done]
