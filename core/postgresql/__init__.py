"""Django's PostgreSQL backend with a health check that costs no round trip
(``DATABASES["default"]["ENGINE"] = "core.postgresql"``; see ``base``)."""
