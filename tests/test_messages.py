"""Messages (``opsconsole.messages``): a request that adds or shows none makes
no message storage; one that adds a message before a redirect still shows it
on the next page, once."""

from __future__ import annotations

import pytest
from django.utils.functional import empty

from smtp.models import SmtpConfiguration

pytestmark = pytest.mark.django_db

DELETED = "Partner SMTP configuration deleted: the controller default applies again."


def test_an_api_call_makes_no_message_storage_and_sets_no_cookie(demo, login):
    client = login(demo["acme_admin"])

    response = client.get("/opsauditlogs/?timefrom=now-1h")

    assert response.status_code == 200
    assert response.wsgi_request._messages._wrapped is empty
    assert "messages" not in response.cookies


def test_a_message_added_before_a_redirect_is_shown_on_the_next_page_once(demo, login):
    SmtpConfiguration.objects.create(
        partner=demo["acme"], host="smtp.acme.example", port=587
    )
    client = login(demo["acme_admin"])

    deleted = client.post("/ops/smtp/", {"action": "delete"})
    shown = client.get(deleted["Location"])
    again = client.get("/ops/smtp/")

    assert deleted.status_code == 302
    assert DELETED in shown.content.decode()
    assert DELETED not in again.content.decode()
    assert not SmtpConfiguration.objects.filter(partner=demo["acme"]).exists()


def test_a_page_without_messages_reads_the_storage_and_finds_none(demo, login):
    client = login(demo["acme_admin"])

    response = client.get("/ops/smtp/")

    assert response.status_code == 200
    assert list(response.context["messages"]) == []
    assert 'class="messages"' not in response.content.decode()
