"""Querysets compiled to SQL once, then run with new parameter values.

Compiling a queryset (resolving its columns, joins and annotations into SQL)
costs far more than running it when the query is a primary-key lookup read on
every request: about 1 ms for the session user with its tenant against 0.1 ms
in PostgreSQL. A ``PreparedQuery`` compiles its queryset the first time it runs
on a connection, with placeholder values standing for the arguments, keeps the
SQL, and from then on only swaps in the arguments, runs the SQL and builds the
model instances the way the queryset itself would (related rows, annotations,
``from_db_value`` conversions).

With ``in_server``, the SQL is also prepared in PostgreSQL
(``core.postgresql.prepared_in_server``): only for a query whose best plan does
not depend on its arguments.

Only the arguments may vary: the queryset's shape (filters, ``select_related``,
deferred columns, slicing) is fixed by the builder, and each shape gets its own
``PreparedQuery``. An argument must reach the SQL as it is given (an id, a
category, a time), not transformed into another value (``icontains`` wraps its
text in ``%``): compiling refuses a builder whose arguments do not all appear.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from django.db import connections
from django.db.models import Model, QuerySet
from django.db.models.query import (
    ModelIterable,
    ValuesListIterable,
    get_related_populators,
)

from core.postgresql import prepared_in_server


def _placeholder(kind: type, number: int) -> Any:
    """A stand-in for argument ``number`` of type ``kind`` while compiling: a
    value no real argument takes."""
    if kind is int:
        return -7_318_204_961 - number
    if kind is str:
        return f"\uffffargument-{number}\uffff"
    if kind is datetime:
        return datetime(1, 1, 1, 0, 0, 0, 731_800 + number, tzinfo=UTC)
    raise TypeError(f"Arguments of type {kind.__name__} are not supported.")


class _Compiled:
    """One connection's compiled SQL and how to turn its rows into results."""

    def __init__(self, queryset: QuerySet, placeholders: list[Any]) -> None:
        self.compiler = queryset.query.get_compiler(using=queryset.db)
        self.sql, params = self.compiler.as_sql()
        self.params = list(params)
        # Where each argument goes among the SQL's parameters, and how the
        # database's adapter turned it into one (SQLite: times as text).
        ops = self.compiler.connection.ops
        forms: list[tuple[Any, int, Callable[[Any], Any] | None]] = []
        for number, placeholder in enumerate(placeholders):
            forms.append((placeholder, number, None))
            if isinstance(placeholder, datetime):
                adapt = ops.adapt_datetimefield_value
                forms.append((adapt(placeholder), number, adapt))
        self.slots: list[tuple[int, int, Callable[[Any], Any] | None]] = []
        for position, value in enumerate(self.params):
            for form, number, adapt in forms:
                if type(value) is type(form) and value == form:
                    self.slots.append((position, number, adapt))
                    break
        if {slot[1] for slot in self.slots} != set(range(len(placeholders))):
            raise ValueError("Every argument must appear in the query's SQL as is.")
        compiler = self.compiler
        select = compiler.select
        columns = [column[0] for column in select[: compiler.col_count]]
        if compiler.has_composite_fields(columns):
            raise ValueError("Composite primary keys are not supported.")
        self.converters = compiler.get_converters(columns)
        self.db = queryset.db
        klass_info = compiler.klass_info
        # values_list(): rows are the results.
        self.model = None
        if not issubclass(queryset._iterable_class, ModelIterable):
            if queryset._iterable_class is not ValuesListIterable:
                raise ValueError("Only model instances and values_list() tuples.")
            return
        self.model = klass_info["model"]
        fields = klass_info["select_fields"]
        self.start, self.end = fields[0], fields[-1] + 1
        self.init_list = [f[0].target.attname for f in select[self.start : self.end]]
        self.populators = get_related_populators(klass_info, select, queryset.db)
        self.annotations = dict(compiler.annotation_col_map or {})


class PreparedQuery:
    """A queryset whose SQL is compiled once per connection.

    ``build`` returns the queryset for the given arguments, of the types
    ``kinds`` names (``int``, ``str``, ``datetime``; default one ``int``, such
    as a primary key); ``run(*arguments)`` returns its model instances, or its
    tuples for a ``values_list()`` queryset. ``in_server``: prepared in
    PostgreSQL too (keys looked up by equality, never a range or a page).
    """

    def __init__(
        self,
        build: Callable[..., QuerySet],
        *,
        kinds: tuple[type, ...] = (int,),
        in_server: bool = False,
    ) -> None:
        self.build = build
        self.kinds = kinds
        self.in_server = in_server
        self._alias: str | None = None
        # A connection is used by one thread at a time; the SQL and converters
        # compiled on it stay with it.
        self._by_connection: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._unpreparable = False

    def _compiled(self) -> _Compiled | None:
        """This connection's compiled query; ``None`` for a builder whose
        arguments do not reach the SQL as they are (the ORM runs it then)."""
        if self._unpreparable:
            return None
        if self._alias is not None:
            compiled = self._by_connection.get(connections[self._alias])
            if compiled is not None:
                return compiled
        placeholders = [_placeholder(kind, n) for n, kind in enumerate(self.kinds)]
        queryset = self.build(*placeholders)
        try:
            compiled = _Compiled(queryset, placeholders)
        except ValueError:
            self._unpreparable = True
            return None
        with self._lock:
            self._alias = queryset.db
            self._by_connection[connections[queryset.db]] = compiled
        return compiled

    def run(self, *arguments: Any) -> list[Model] | list[tuple]:
        """What the queryset built with ``arguments`` would return."""
        if len(arguments) != len(self.kinds):
            raise TypeError(
                f"Expected {len(self.kinds)} arguments, got {len(arguments)}."
            )
        compiled = self._compiled()
        if compiled is None:
            return list(self.build(*arguments))
        params: list[Any] = list(compiled.params)
        for position, argument, adapt in compiled.slots:
            value = arguments[argument]
            params[position] = value if adapt is None else adapt(value)
        compiler = compiled.compiler
        with prepared_in_server(self.in_server), compiler.connection.cursor() as cursor:
            cursor.execute(compiled.sql, params)
            rows = cursor.fetchall()
        if compiled.converters:
            rows = compiler.apply_converters(rows, compiled.converters)
        if compiled.model is None:
            return [tuple(row) for row in rows]
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
