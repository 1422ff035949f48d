"""Sessions: read from Redis when REDIS_URL is set, kept in the database, and
served from the database while Redis is down."""

from __future__ import annotations

import os

import pytest
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from tests.support.smtp_servers import free_port

pytestmark = pytest.mark.django_db

CONFIG_URL = "/event/v1/email/config"


def session_queries(client: Client, url: str) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    reads = [q for q in captured if "django_session" in q["sql"]]
    return response.status_code, len(reads)


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL")
def test_with_redis_an_authenticated_request_reads_no_session_row(demo, settings):
    assert settings.SESSION_ENGINE == "core.sessions"
    client = Client()
    client.force_login(demo["acme_admin"])
    # The login wrote the session to the database and to Redis.
    assert Session.objects.count() == 1
    assert session_queries(client, CONFIG_URL) == (404, 0)


def test_a_session_outlives_a_redis_outage(demo, settings):
    # given: sessions cached in a Redis that is not there (nothing listens)
    settings.SESSION_ENGINE = "core.sessions"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
            "OPTIONS": {"socket_timeout": 1.0, "socket_connect_timeout": 1.0},
        }
    }
    client = Client()
    # when: a user logs in, reads, and logs out
    client.force_login(demo["acme_admin"])
    status, reads = session_queries(client, CONFIG_URL)
    # then: the database served the session
    assert (status, reads) == (404, 1)
    assert client.post("/auth/v1/logout/").status_code == 204
    assert Session.objects.count() == 0
    assert client.get(CONFIG_URL).status_code == 401


def test_a_logout_ends_the_cached_session_too(demo, settings):
    if settings.SESSION_ENGINE != "core.sessions":
        pytest.skip("needs REDIS_URL")
    client = Client()
    client.force_login(demo["acme_admin"])
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    assert client.post("/auth/v1/logout/").status_code == 204
    # The old cookie, sent again, is no session any more.
    replay = Client()
    replay.cookies[settings.SESSION_COOKIE_NAME] = cookie
    assert replay.get(CONFIG_URL).status_code == 401
