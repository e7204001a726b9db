import pytest

from tests.support.schema_check import schema_drift

pytestmark = pytest.mark.needs_softhsm


def test_migrated_sqlite_schema_matches_the_models(services):
    from scaivault_pki.schema import migrations
    from scaivault_pki.schema.db import database

    with database.connection_context():
        assert migrations.pending() == []
        assert schema_drift() == []
        assert database.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert database.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1
