"""Sessions read from the cache (Redis) and kept in the database.

Django's ``cached_db`` engine, except that a cache that is down (Redis restarting)
never fails a request: reads and writes fall back to the database, which stays
the truth. Entries live in the cache for at most ``SESSION_CACHE_SECONDS``, so a
logout whose cache delete failed (Redis down at that moment, back later with its
data) ends the session that much later at the most.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.sessions.backends import cached_db

logger = logging.getLogger(__name__)


class SessionStore(cached_db.SessionStore):
    def _cache_ttl(self, expiry=None) -> int:
        return min(
            self.get_expiry_age(expiry=expiry) if expiry else self.get_expiry_age(),
            settings.SESSION_CACHE_SECONDS,
        )

    def _cache_set(self, data, expiry=None) -> None:
        try:
            self._cache.set(self.cache_key, data, self._cache_ttl(expiry))
        except Exception as error:
            logger.warning("Session cache unavailable (%s); using the database.", error)

    def load(self):
        try:
            data = self._cache.get(self.cache_key)
        except Exception:  # a cache that is down: read the database
            data = None
        if data is None:
            stored = self._get_session_from_db()
            if not stored:
                return {}
            data = self.decode(stored.session_data)
            self._cache_set(data, stored.expire_date)
        return data

    def exists(self, session_key) -> bool:
        try:
            if session_key and (self.cache_key_prefix + session_key) in self._cache:
                return True
        except Exception as error:  # a cache that is down: ask the database
            logger.debug("Session cache unavailable (%s).", error)
        return super(cached_db.SessionStore, self).exists(session_key)

    def save(self, must_create=False) -> None:
        super(cached_db.SessionStore, self).save(must_create)
        self._cache_set(self._session)

    def delete(self, session_key=None) -> None:
        super(cached_db.SessionStore, self).delete(session_key)
        session_key = session_key or self.session_key
        if session_key is None:
            return
        try:
            self._cache.delete(self.cache_key_prefix + session_key)
        except Exception as error:  # see the module's docstring
            logger.warning(
                "Session cache unavailable (%s); the session ends within %s s.",
                error,
                settings.SESSION_CACHE_SECONDS,
            )
