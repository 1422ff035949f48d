"""Sessions: read from Redis when REDIS_URL is set, kept in the database, and
served from the database while Redis is down."""

from __future__ import annotations

import os

import pytest
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from smtp.models import SmtpConfiguration
from tenants.models import Role, User
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
            "BACKEND": "core.cache.RedisCache",
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


# The session user is read from the database on every request (nothing about the
# user is cached): a change to the user takes effect on the next request of every
# session it has, whichever session engine is used.


def test_a_changed_password_ends_the_users_other_sessions_on_the_next_request(demo):
    # given: a user reading the API
    user = demo["acme_admin"]
    client = Client()
    client.force_login(user)
    assert client.get(CONFIG_URL).status_code == 404
    # when: the password is changed elsewhere (the session auth hash changes)
    user.set_password("a-brand-new-passphrase-42")
    user.save()
    # then: the old session is refused on its next request
    response = client.get(CONFIG_URL)
    assert response.status_code == 401
    assert "credentials" in response.json()["error"]


def test_a_deactivated_user_is_refused_on_the_next_request(demo):
    client = Client()
    client.force_login(demo["acme_admin"])
    assert client.get(CONFIG_URL).status_code == 404
    User.objects.filter(pk=demo["acme_admin"].pk).update(is_active=False)
    assert client.get(CONFIG_URL).status_code == 401


def test_a_user_moved_to_another_organization_sees_it_on_the_next_request(demo):
    # given: only acme-dev has a configuration of its own
    SmtpConfiguration.objects.create(
        partner=demo["acme"], organization=demo["acme-dev"], host="smtp.dev.example"
    )
    demo["acme-dev"].smtp_configuration_enabled = True
    demo["acme-dev"].save()
    demo["acme-prod"].smtp_configuration_enabled = True
    demo["acme-prod"].save()
    client = Client()
    client.force_login(demo["prod_admin"])
    assert client.get(CONFIG_URL).status_code == 404
    # when: the user is moved to acme-dev
    User.objects.filter(pk=demo["prod_admin"].pk).update(organization=demo["acme-dev"])
    # then: the next request answers with acme-dev's configuration
    response = client.get(CONFIG_URL)
    assert response.status_code == 200
    assert response.json()["email_config"]["smtp_config"]["host"] == (
        "smtp.dev.example"
    )


def test_a_user_made_read_only_may_not_change_on_the_next_request(demo):
    SmtpConfiguration.objects.create(partner=demo["acme"], host="smtp.acme.example")
    client = Client()
    client.force_login(demo["acme_admin"])
    assert client.get(CONFIG_URL).status_code == 200
    User.objects.filter(pk=demo["acme_admin"].pk).update(role=Role.READ_ONLY)
    # then: reading still works, deleting is refused and nothing changed
    assert client.get(CONFIG_URL).status_code == 200
    response = client.delete(CONFIG_URL)
    assert response.status_code == 403
    assert "read-only" in response.json()["error"]
    assert SmtpConfiguration.objects.filter(partner=demo["acme"]).count() == 1


def test_the_session_user_comes_with_its_tenant_in_one_query(demo):
    from tenants.backends import EmailBackend

    with CaptureQueriesContext(connection) as captured:
        user = EmailBackend().get_user(demo["prod_admin"].pk)
        assert user == demo["prod_admin"]
        assert user.organization.slug == "acme-prod"
        assert user.organization.partner.slug == "acme"
        assert user.partner is None
        partner_user = EmailBackend().get_user(demo["acme_admin"].pk)
        assert partner_user.partner.slug == "acme"
        assert partner_user.organization is None
    assert len(captured) == 2
    assert EmailBackend().get_user(10**9) is None
    assert EmailBackend().get_user("not a number") is None


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL")
def test_the_cache_reuses_its_redis_client_and_still_reads_and_writes(settings):
    from django.core.cache import cache

    assert settings.CACHES["default"]["BACKEND"] == "core.cache.RedisCache"
    cache.set("reuse-probe", {"n": 1}, 30)
    client = cache._cache.get_client(write=True)
    assert cache._cache.get_client() is client
    assert cache.get("reuse-probe") == {"n": 1}
    cache.delete("reuse-probe")
    assert cache.get("reuse-probe") is None
