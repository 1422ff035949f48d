"""Every foreign key of the console's tables can be looked up by an index: one
that starts with its column. (A key deleted from, or cascaded to, would
otherwise scan its whole table.) A key without an index of its own must be the
first column of another, and none is indexed twice over."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.db import connection

pytestmark = pytest.mark.django_db

OWN_APPS = ("accounts", "audit", "core", "smtp", "tenants")


def indexes_of(table: str) -> list[list[str]]:
    """The column lists of the table's indexes (unique constraints included)."""
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    return [
        list(found["columns"])
        for found in constraints.values()
        if (found["index"] or found["unique"] or found["primary_key"])
        and found["columns"]
        and all(column is not None for column in found["columns"])
    ]


def foreign_keys():
    for model in apps.get_models():
        if model._meta.app_label not in OWN_APPS or not model._meta.managed:
            continue
        for field in model._meta.concrete_fields:
            if field.is_relation and (field.many_to_one or field.one_to_one):
                yield model, field


def test_every_foreign_key_leads_an_index():
    missing = [
        f"{model._meta.db_table}.{field.column}"
        for model, field in foreign_keys()
        if not any(
            columns[0] == field.column for columns in indexes_of(model._meta.db_table)
        )
    ]
    assert missing == []


def test_no_foreign_key_has_an_index_of_its_own_next_to_a_longer_one():
    doubled = []
    for model, field in foreign_keys():
        indexes = indexes_of(model._meta.db_table)
        alone = [c for c in indexes if c == [field.column]]
        longer = [c for c in indexes if len(c) > 1 and c[0] == field.column]
        if alone and longer and not field.unique:
            doubled.append(f"{model._meta.db_table}.{field.column}")
    assert doubled == []
