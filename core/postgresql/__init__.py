"""Django's PostgreSQL backend with a health check that costs no round trip
(``DATABASES["default"]["ENGINE"] = "core.postgresql"``; see ``base``), and
statements prepared in the server where the code asks for it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

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
