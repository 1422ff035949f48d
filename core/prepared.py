"""Querysets compiled to SQL once, then run with new parameter values.

Compiling a queryset (resolving its columns, joins and annotations into SQL)
costs far more than running it when the query is a primary-key lookup read on
every request: about 1 ms for the session user with its tenant against 0.1 ms
in PostgreSQL. A ``PreparedQuery`` compiles its queryset the first time it runs
on a connection, with placeholder values standing for the arguments, keeps the
SQL, and from then on only swaps in the arguments, runs the SQL and builds the
model instances the way the queryset itself would (related rows, annotations,
``from_db_value`` conversions).

Only the arguments may vary: the queryset's shape (filters, ``select_related``,
deferred columns) is fixed by the builder, and each shape gets its own
``PreparedQuery``.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

from django.db import connections
from django.db.models import Model, QuerySet
from django.db.models.query import get_related_populators

# Stand-ins for the arguments while compiling: integers no primary key takes.
_PLACEHOLDER_BASE = -7_318_204_961


class _Compiled:
    """One connection's compiled SQL and how to turn its rows into instances."""

    def __init__(self, queryset: QuerySet, arity: int) -> None:
        placeholders = [_PLACEHOLDER_BASE - n for n in range(arity)]
        self.compiler = queryset.query.get_compiler(using=queryset.db)
        self.sql, params = self.compiler.as_sql()
        self.params = list(params)
        # Where each argument goes among the SQL's parameters.
        self.slots: list[tuple[int, int]] = []
        for position, value in enumerate(self.params):
            if isinstance(value, int) and value in placeholders:
                self.slots.append((position, placeholders.index(value)))
        if {argument for _, argument in self.slots} != set(range(arity)):
            raise ValueError("Every argument must appear in the query's SQL.")
        compiler = self.compiler
        klass_info = compiler.klass_info
        select = compiler.select
        self.model = klass_info["model"]
        fields = klass_info["select_fields"]
        self.start, self.end = fields[0], fields[-1] + 1
        self.init_list = [f[0].target.attname for f in select[self.start : self.end]]
        self.populators = get_related_populators(klass_info, select, queryset.db)
        self.annotations = dict(compiler.annotation_col_map or {})
        columns = [column[0] for column in select[: compiler.col_count]]
        if compiler.has_composite_fields(columns):
            raise ValueError("Composite primary keys are not supported.")
        self.converters = compiler.get_converters(columns)
        self.db = queryset.db


class PreparedQuery:
    """A queryset whose SQL is compiled once per connection.

    ``build`` returns the queryset for the given arguments (integers, such as
    primary keys); ``run(*arguments)`` returns its model instances.
    """

    def __init__(self, build: Callable[..., QuerySet], *, arity: int = 1) -> None:
        self.build = build
        self.arity = arity
        self._alias: str | None = None
        # A connection is used by one thread at a time; the SQL and converters
        # compiled on it stay with it.
        self._by_connection: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def _compiled(self) -> _Compiled:
        if self._alias is not None:
            compiled = self._by_connection.get(connections[self._alias])
            if compiled is not None:
                return compiled
        queryset = self.build(*(_PLACEHOLDER_BASE - n for n in range(self.arity)))
        compiled = _Compiled(queryset, self.arity)
        with self._lock:
            self._alias = queryset.db
            self._by_connection[connections[queryset.db]] = compiled
        return compiled

    def run(self, *arguments: int) -> list[Model]:
        """The instances the queryset built with ``arguments`` would return."""
        if len(arguments) != self.arity:
            raise TypeError(f"Expected {self.arity} arguments, got {len(arguments)}.")
        compiled = self._compiled()
        params: list[Any] = list(compiled.params)
        for position, argument in compiled.slots:
            params[position] = arguments[argument]
        compiler = compiled.compiler
        with compiler.connection.cursor() as cursor:
            cursor.execute(compiled.sql, params)
            rows = cursor.fetchall()
        if compiled.converters:
            rows = compiler.apply_converters(rows, compiled.converters)
        instances = []
        for row in rows:
            instance = compiled.model.from_db(
                compiled.db, compiled.init_list, row[compiled.start : compiled.end]
            )
            for populator in compiled.populators:
                populator.populate(row, instance)
            for name, column in compiled.annotations.items():
                setattr(instance, name, row[column])
            instances.append(instance)
        return instances
