"""The benchmark's framework-free config GET (``bench/ceiling_app.py``) checks
what the console's session read checks: a reference point that skipped a check
would be cheaper than any real answer could be."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from bench import ceiling_app
from bench.audit_query import partner_configuration, session_cookie
from bench.common import wsgi_get
from tenants.models import Session, User

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _ceiling_connection():
    """The app's own connection is closed before the test database is dropped."""
    yield
    connection = getattr(ceiling_app._local, "connection", None)
    if connection is not None:
        connection.close()


def get(path: str, cookie: str) -> tuple[str, bytes]:
    answered: list[str] = []
    body = ceiling_app.application(
        wsgi_get(path, cookie),
        lambda status, headers: answered.append(status),
    )
    return answered[0], b"".join(body)


@pytest.fixture
def acme(demo):
    partner_configuration(demo["acme"])
    return demo


def test_a_partner_admin_gets_the_partners_rows_without_their_secrets(acme):
    status, body = get(
        ceiling_app.CEILING_CONFIG_URL, session_cookie(acme["acme_admin"])
    )
    assert status == "200 OK"
    (row,) = json.loads(body)["smtp_config"]
    assert row["host"] == "smtp.acme.example"
    assert row["partner_id"] == acme["acme"].pk
    assert "relay-password" not in body.decode()
    assert not {"password", "oauth2_client_secret", "client_key"} & row.keys()


def _unknown(demo, cookie: str) -> str:
    return "rsid=not-a-session"


def _none(demo, cookie: str) -> str:
    return ""


def _expired(demo, cookie: str) -> str:
    Session.objects.filter(session_key=cookie.partition("=")[2]).update(
        expire_date=timezone.now() - timedelta(seconds=1)
    )
    return cookie


def _signature_broken(demo, cookie: str) -> str:
    session = Session.objects.get(session_key=cookie.partition("=")[2])
    data, _, signature = session.session_data.rpartition(":")
    session.session_data = f"{data}:{signature[::-1]}"
    session.save()
    return cookie


def _password_changed(demo, cookie: str) -> str:
    demo["acme_admin"].set_password("another-one-12")
    demo["acme_admin"].save()
    return cookie


def _deactivated(demo, cookie: str) -> str:
    User.objects.filter(pk=demo["acme_admin"].pk).update(is_active=False)
    return cookie


def _an_organizations_admin(demo, cookie: str) -> str:
    return session_cookie(demo["prod_admin"])


@pytest.mark.parametrize(
    "spoil",
    [
        _unknown,
        _none,
        _expired,
        _signature_broken,
        _password_changed,
        _deactivated,
        _an_organizations_admin,
    ],
)
def test_anything_but_a_valid_partner_session_is_refused(acme, spoil):
    cookie = spoil(acme, session_cookie(acme["acme_admin"]))
    status, body = get(ceiling_app.CEILING_CONFIG_URL, cookie)
    assert status == "403 Forbidden"
    assert b"smtp.acme.example" not in body


def test_every_other_path_is_the_consoles():
    assert get("/healthz", "")[0] == "200 OK"
