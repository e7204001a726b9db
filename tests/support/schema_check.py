"""Checks that the tables the migrations made are the tables the models describe."""

from __future__ import annotations

from scaivault_pki.schema.db import database
from scaivault_pki.schema.models import ALL_MODELS


def schema_drift() -> list[str]:
    """Differences between each model's columns and its table's, as readable lines (empty: none)."""
    problems = []
    for model in ALL_MODELS:
        table = model._meta.table_name
        actual = {c.name: c for c in database.get_columns(table)}
        expected = {f.column_name: f for f in model._meta.sorted_fields}
        if set(actual) != set(expected):
            problems.append(f"{table}: columns {sorted(actual)} vs model {sorted(expected)}")
            continue
        for name, field in expected.items():
            if actual[name].null != field.null:
                problems.append(f"{table}.{name}: nullable {actual[name].null} vs model {field.null}")
        indexes = {tuple(i.columns): i.unique for i in database.get_indexes(table)}
        for fields, unique in model._meta.indexes:
            columns = tuple(model._meta.fields[f].column_name for f in fields)
            if indexes.get(columns) != unique:
                problems.append(f"{table}: index {columns} unique={unique} missing")
    return problems
