"""Sessions: in the database, each read together with its user in one query."""

from __future__ import annotations

from datetime import timedelta
from importlib import import_module

import pytest
from django.apps import apps
from django.contrib.sessions.backends.db import SessionStore as DjangoSessionStore
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from smtp.models import SmtpConfiguration
from tenants.models import Role, Session, User

pytestmark = pytest.mark.django_db

CONFIG_URL = "/event/v1/email/config"


def reads(client: Client, url: str) -> tuple[int, list[str]]:
    """The answer's status, and the statements that read the session or a user."""
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    return response.status_code, [
        q["sql"]
        for q in captured
        if 'FROM "tenants_session"' in q["sql"] or 'FROM "tenants_user"' in q["sql"]
    ]


def test_a_request_reads_its_session_and_user_with_its_tenant_in_one_query(demo):
    client = Client()
    client.force_login(demo["prod_admin"])
    assert Session.objects.get().user == demo["prod_admin"]
    status, statements = reads(client, CONFIG_URL)
    assert status == 404  # authenticated: no configuration yet
    assert len(statements) == 1
    assert "tenants_session" in statements[0]
    assert "tenants_organization" in statements[0]
    # and the answer is the user's own organization's
    configured_hosts(demo)
    assert host_for(client) == "smtp.prod.example"


def configured_hosts(demo) -> None:
    """The partner's configuration, and acme-prod's own: whose session a
    request is shows in the host its config GET answers with."""
    SmtpConfiguration.objects.create(partner=demo["acme"], host="smtp.acme.example")
    SmtpConfiguration.objects.create(
        partner=demo["acme"], organization=demo["acme-prod"], host="smtp.prod.example"
    )
    demo["acme-prod"].smtp_configuration_enabled = True
    demo["acme-prod"].save()


def host_for(client: Client) -> str:
    response = client.get(CONFIG_URL)
    assert response.status_code == 200, response.content
    return response.json()["email_config"]["smtp_config"]["host"]


def test_the_session_data_not_its_user_column_says_whose_session_it_is(demo):
    # given: a session whose user column was changed to another user (only the
    # signed session data is proof of a login)
    configured_hosts(demo)
    client = Client()
    client.force_login(demo["prod_admin"])
    Session.objects.update(user=demo["acme_admin"])
    # when: it is used
    status, statements = reads(client, CONFIG_URL)
    # then: the request is the logged-in user's, read on its own
    assert status == 200
    assert len(statements) == 2
    assert host_for(client) == "smtp.prod.example"


def test_a_logout_ends_the_session_at_once(demo, settings):
    client = Client()
    client.force_login(demo["acme_admin"])
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    assert client.post("/auth/v1/logout/").status_code == 204
    assert not Session.objects.exists()
    # The old cookie, sent again, is no session any more.
    replay = Client()
    replay.cookies[settings.SESSION_COOKIE_NAME] = cookie
    assert replay.get(CONFIG_URL).status_code == 401


def test_an_expired_session_is_refused(demo):
    client = Client()
    client.force_login(demo["acme_admin"])
    Session.objects.update(expire_date=timezone.now())
    assert client.get(CONFIG_URL).status_code == 401


def test_clearsessions_deletes_the_expired_ones(demo):
    from django.core.management import call_command

    for user in (demo["acme_admin"], demo["prod_admin"]):
        Client().force_login(user)
    Session.objects.filter(user=demo["acme_admin"]).update(
        expire_date=timezone.now() - timedelta(seconds=1)
    )
    call_command("clearsessions")
    assert list(Session.objects.values_list("user", flat=True)) == [
        demo["prod_admin"].pk
    ]


def test_a_deleted_user_takes_its_sessions_along(demo):
    client = Client()
    client.force_login(demo["prod_admin"])
    other = Client()
    other.force_login(demo["acme_admin"])
    demo["prod_admin"].delete()
    assert list(Session.objects.values_list("user", flat=True)) == [
        demo["acme_admin"].pk
    ]
    assert client.get(CONFIG_URL).status_code == 401
    assert other.get(CONFIG_URL).status_code == 404


def test_the_upgrade_keeps_logins_made_before_it(demo, settings):
    # given: a login saved by Django's own database sessions (before the upgrade)
    old = DjangoSessionStore()
    old.update(
        {
            "_auth_user_id": str(demo["prod_admin"].pk),
            "_auth_user_backend": "tenants.backends.EmailBackend",
            "_auth_user_hash": demo["prod_admin"].get_session_auth_hash(),
        }
    )
    old.create()
    expired = DjangoSessionStore()
    expired["_auth_user_id"] = str(demo["acme_admin"].pk)
    expired.set_expiry(-1)
    expired.create()
    # when: the migration moves them
    import_module("tenants.migrations.0003_session").keep_logins(apps, None)
    # then: the unexpired one goes on, with its user
    moved = Session.objects.get()
    assert (moved.session_key, moved.user) == (old.session_key, demo["prod_admin"])
    configured_hosts(demo)
    client = Client()
    client.cookies[settings.SESSION_COOKIE_NAME] = old.session_key
    assert host_for(client) == "smtp.prod.example"


# The session user is read from the database on every request (nothing about the
# user is cached): a change to the user takes effect on the next request of every
# session it has.


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


def test_each_read_of_a_session_gets_data_of_its_own(demo):
    """The signature of a session's text is checked once per process; what a
    request does to its data never reaches the next request's."""
    from tenants.sessions import SessionStore

    client = Client()
    client.force_login(demo["prod_admin"])
    key = client.cookies["rsid"].value

    first = SessionStore(key)
    first["added"] = ["by the first request"]
    first.get("_auth_user_id")  # read, then changed in memory only
    first._session["_auth_user_id"] = "0"
    second = SessionStore(key).load()

    assert second["_auth_user_id"] == str(demo["prod_admin"].pk)
    assert "added" not in second
    assert SessionStore(key).load() == second
    assert SessionStore(key).load() is not second


def test_a_session_read_before_is_refused_once_its_key_is_retired(
    demo, settings, caplog
):
    """A session whose text was verified while its key was in use is not
    accepted once that key is gone."""
    client = Client()
    client.force_login(demo["prod_admin"])
    assert client.get(CONFIG_URL).status_code == 404  # read and accepted

    settings.SECRET_KEY = "another-key-" + "x" * 40
    settings.SECRET_KEY_FALLBACKS = []
    with caplog.at_level("WARNING", logger="django.security.SuspiciousSession"):
        refused = client.get(CONFIG_URL)

    assert refused.status_code in (401, 403)
    assert "Session data corrupted" in caplog.text


def test_a_session_signed_with_a_fallback_key_is_accepted(demo, settings):
    client = Client()
    client.force_login(demo["prod_admin"])
    assert client.get(CONFIG_URL).status_code == 404

    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "another-key-" + "x" * 40

    assert client.get(CONFIG_URL).status_code == 404


def test_a_session_whose_text_was_changed_is_refused(demo, caplog):
    client = Client()
    client.force_login(demo["prod_admin"])
    assert client.get(CONFIG_URL).status_code == 404
    session = Session.objects.get()
    payload, _, signature = session.session_data.rpartition(":")
    session.session_data = f"{payload}:{signature[::-1]}"
    session.save()

    with caplog.at_level("WARNING", logger="django.security.SuspiciousSession"):
        refused = client.get(CONFIG_URL)

    assert refused.status_code in (401, 403)
    assert "Session data corrupted" in caplog.text
