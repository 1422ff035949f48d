"""Where test emails go, with a real worker and real SMTP servers."""

from __future__ import annotations

import json

from django.db import transaction
from django.test import Client

from smtp.models import Email, Security, SmtpConfiguration, SmtpDraft
from tests.support.worker import wait_until

VERIFY_URL = "/event/v1/email/config/verification"
CONFIG_URL = "/event/v1/email/config"


def configuration(server, **owner) -> SmtpConfiguration:
    return SmtpConfiguration.objects.create(
        **owner, host="127.0.0.1", port=server.port, security=Security.NONE
    )


def test_a_test_of_its_own_configuration_never_falls_through_to_the_partners(
    worker, demo, smtp_server
):
    # given: acme-prod's own server, and the partner's
    own_server, partner_server = smtp_server(), smtp_server()
    configuration(partner_server, partner=demo["acme"])
    configuration(own_server, partner=demo["acme"], organization=demo["acme-prod"])
    client = Client()
    client.force_login(demo["prod_admin"])
    # when: a free test of its own configuration is queued, and the configuration
    # deleted before a worker could send it (one commit: the worker starts after)
    with transaction.atomic():
        response = client.post(
            VERIFY_URL,
            data=json.dumps(
                {
                    "recipient_email": "anyone@elsewhere.example",
                    "subject": "Anything",
                    "body": "Anything at all.",
                }
            ),
            content_type="application/json",
        )
        assert response.status_code == 202
        assert client.delete(CONFIG_URL).status_code == 204
    # then: it goes to the server it was asked for, never the partner's relay
    email = Email.objects.get(pk=response.json()["id"])

    def finished():
        email.refresh_from_db()
        return email.is_final

    wait_until(finished, timeout=30)
    assert email.status == "sent", email.last_error
    assert [m.message["Subject"] for m in own_server.messages] == ["Anything"]
    assert partner_server.messages == []
    assert not SmtpDraft.objects.exists()  # the copy lived as long as the test
