"""Django's PostgreSQL backend with a health check that costs no round trip
(``DATABASES["default"]["ENGINE"] = "core.postgresql"``; see ``base``),
statements prepared in the server where the code asks for it, and rows sent as
one array per column."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.models import Field

# Whether the statements run now are prepared in PostgreSQL (see
# ``prepared_in_server``); read by ``base.ReplanningCursor``.
PREPARE_IN_SERVER: ContextVar[bool] = ContextVar("prepare_in_server", default=False)


@contextmanager
def prepared_in_server(when: bool = True) -> Iterator[None]:
    """Within (``when`` true): statements are prepared in PostgreSQL on their
    first run on a connection and run prepared from then on, parsed and planned
    once per connection (with ``DATABASE_PREPARED_STATEMENTS``; elsewhere, as
    always).

    Only for statements run again and again whose best plan does not depend on
    their values: a primary or foreign key looked up by equality, an INSERT.
    A prepared statement ends up with one plan for every value (PostgreSQL's
    generic plan), and one for a range or a page (a time window, an OFFSET)
    can be many times slower than the plan its values would get.
    """
    token = PREPARE_IN_SERVER.set(when)
    try:
        yield
    finally:
        PREPARE_IN_SERVER.reset(token)


def array_type(field: Field, connection: BaseDatabaseWrapper) -> str:
    """The array type a column's values are sent as: its type without a length
    (``varchar``, not ``varchar(255)``), so that the INSERT refuses a value too
    long for the column rather than a cast cutting it short."""
    return re.sub(r"\(.*\)", "", field.db_type(connection)) + "[]"


def rows_from_arrays(fields: Iterable[Field], connection: BaseDatabaseWrapper) -> str:
    """``SELECT * FROM unnest(%b::type[], ...)``: rows of these fields'
    columns, sent as one array parameter per column, so that a statement's text
    and its number of parameters are the same for one row or a thousand (the
    driver parses it once, and it can be prepared in the server).

    The arrays go in binary: psycopg writes a text array by quoting each
    element with a regular expression, which costs more than the INSERT.
    """
    arrays = ", ".join(f"%b::{array_type(field, connection)}" for field in fields)
    # Only types from the models' metadata and placeholders are formatted in.
    return f"SELECT * FROM unnest({arrays})"  # noqa: S608
