"""The outbox with a real Celery worker and real SMTP servers."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from audit.models import AuditEvent, Category
from smtp.models import (
    Email,
    EmailAttempt,
    EmailKind,
    EmailStatus,
    Security,
    SmtpConfiguration,
    SmtpDraft,
)
from smtp.services import send_system_email
from tests.support.smtp_servers import Behaviour, SmtpTestServer, stopped_after
from tests.support.worker import wait_until

CANARY = "canary-outbox-pw-Zt6"


@pytest.fixture
def server():
    yield from stopped_after(SmtpTestServer)


def configure_partner(partner, server, **fields) -> SmtpConfiguration:
    values = {
        "host": "127.0.0.1",
        "port": server.port,
        "security": Security.NONE,
        "retries": 3,
        **fields,
    }
    return SmtpConfiguration.objects.create(partner=partner, **values)


def final(email: Email, timeout: float = 30) -> Email:
    def done():
        email.refresh_from_db()
        return email.is_final

    wait_until(done, timeout=timeout)
    return email


def alert(**scope) -> Email:
    """An alert notification to the on-call address of a partner or organization."""
    return send_system_email(
        kind=EmailKind.ALERT,
        to="oncall@acme.example",
        context={"title": "t", "message": "m"},
        **scope,
    )


def events_of(email: Email) -> list[str]:
    return [
        e.type
        for e in AuditEvent.objects.filter(
            category=Category.SYSTEMAUDIT, detail__email_id=email.pk
        ).order_by("timestamp", "id")
    ]


def test_a_system_email_is_sent_through_the_partner_configuration(worker, demo, server):
    smtp = server()
    configure_partner(demo["acme"], smtp)
    email = send_system_email(
        kind=EmailKind.ALERT,
        to="oncall@acme.example",
        context={"title": "Disk almost full", "message": "Node 3 is at 91%."},
        organization=demo["acme-prod"],
    )
    email = final(email)
    assert email.status == EmailStatus.SENT
    assert (email.level_used, email.attempts) == ("partner", 1)
    received = smtp.messages
    assert [m.message_id for m in received] == [email.message_id]
    assert received[0].message["Subject"] == "[ALERT] Disk almost full"
    assert "Node 3 is at 91%." in received[0].message.get_body(("plain",)).get_content()
    assert events_of(email) == ["email.queued", "email.sent"]
    sent = AuditEvent.objects.get(type="email.sent", detail__email_id=email.pk)
    assert sent.partner_id == demo["acme"].pk
    assert sent.organization_id == demo["acme-prod"].pk
    assert sent.detail["message_id"] == email.message_id
    assert sent.detail["level"] == "partner"
    assert sent.detail["reply"].startswith("2.0.0")
    assert "Node 3" not in json.dumps(sent.detail)  # no body in the audit log


def test_4xx_replies_are_retried_until_accepted(worker, demo, server):
    smtp = server(behaviour=Behaviour(defer_data_times=2))
    configure_partner(demo["acme"], smtp, retries=3)
    email = final(alert(partner=demo["acme"]))
    assert email.status == EmailStatus.SENT
    assert email.attempts == 3
    assert events_of(email) == [
        "email.queued",
        "email.deferred",
        "email.deferred",
        "email.sent",
    ]
    tries = list(EmailAttempt.objects.filter(email=email))
    assert [(t.ok, t.transient, t.failed_step, t.reply_code) for t in tries] == [
        (False, True, "data", 451),
        (False, True, "data", 451),
        (True, False, "", None),
    ]
    assert len(smtp.messages) == 1


def test_retries_stop_at_the_configured_number(worker, demo):
    from tests.support.smtp_servers import free_port

    SmtpConfiguration.objects.create(
        partner=demo["acme"],
        host="127.0.0.1",
        port=free_port(),
        security=Security.NONE,
        retries=1,
    )
    email = final(alert(partner=demo["acme"]))
    assert email.status == EmailStatus.FAILED
    assert email.attempts == 2
    assert (email.failed_step, email.error_field) == ("connect", "port")
    failed = AuditEvent.objects.get(type="email.failed", detail__email_id=email.pk)
    assert failed.detail["step"] == "connect"
    assert failed.detail["attempt"] == 2
    assert "connection refused" in failed.detail["reason"]


def test_a_permanent_failure_is_not_retried(worker, demo, server, certs):
    smtp = server(implicit_tls=certs.self_signed, users={"u@acme.example": CANARY})
    configure_partner(
        demo["acme"],
        smtp,
        security=Security.SSL,
        use_insecure=True,
        username="u@acme.example",
        password="wrong-" + CANARY,
        retries=3,
    )
    email = final(alert(partner=demo["acme"]))
    assert email.status == EmailStatus.FAILED
    assert email.attempts == 1
    assert (email.failed_step, email.reply_code) == ("auth", 535)
    failed = AuditEvent.objects.get(type="email.failed", detail__email_id=email.pk)
    assert failed.detail["reply_code"] == 535
    dumped = json.dumps([e.detail for e in AuditEvent.objects.all()])
    assert CANARY not in dumped


def test_no_configuration_in_effect_fails_with_the_reason(worker, demo):
    email = final(alert(organization=demo["acme-prod"]))
    assert email.status == EmailStatus.FAILED
    assert email.failed_step == "configuration"
    assert "No SMTP configuration is in effect" in email.last_error


def test_a_batch_goes_over_few_connections(worker, demo, server):
    smtp = server()
    configure_partner(demo["acme"], smtp)
    emails = [
        send_system_email(
            kind=EmailKind.ALERT,
            to=f"oncall{number}@acme.example",
            context={"title": f"t{number}", "message": "m"},
            organization=demo["acme-prod"],
        )
        for number in range(30)
    ]
    wait_until(
        lambda: Email.objects.filter(status=EmailStatus.SENT).count() == 30,
        timeout=60,
    )
    assert sorted(m.message_id for m in smtp.messages) == sorted(
        e.message_id for e in emails
    )
    assert smtp.handler.sessions < 30
    assert AuditEvent.objects.filter(type="email.sent").count() == 30


def page_client(user) -> Client:
    client = Client(enforce_csrf_checks=False)
    client.force_login(user)
    return client


def test_send_test_email_tests_unsaved_values_and_shows_the_steps(worker, demo, server):
    smtp = server()
    client = page_client(demo["acme_admin"])
    response = client.post(
        "/ops/smtp/test",
        {
            "host": "127.0.0.1",
            "port": str(smtp.port),
            "retries": "3",
            "recipient": "me@acme.example",
            "mode": "send",
        },
    )
    assert response.status_code == 202, response.content
    status_url = response.json()["status_url"]
    answer = client.get(status_url, {"wait": "20"}).json()
    assert answer["status"] == "sent", answer
    assert [s["name"] for s in answer["steps"]][-3:] == ["mail_from", "rcpt_to", "data"]
    assert answer["level"] == "partner"
    assert len(smtp.messages) == 1
    assert smtp.messages[0].rcpt_tos == ["me@acme.example"]
    # Nothing was saved, and the unsaved values are gone with the test.
    assert not SmtpConfiguration.objects.exists()
    assert not SmtpDraft.objects.exists()


def test_send_test_email_with_a_wrong_password_names_auth_and_the_field(
    worker, demo, server, certs
):
    smtp = server(implicit_tls=certs.self_signed, users={"u@acme.example": CANARY})
    client = page_client(demo["prod_admin"])
    response = client.post(
        "/console/infrastructure/system/settings/smtp/test",
        {
            "host": "127.0.0.1",
            "port": str(smtp.port),
            "security": "ssl",
            "use_insecure": "on",
            "username": "u@acme.example",
            "password": "wrong-" + CANARY,
            "retries": "3",
            "recipient": "me@acme.example",
            "mode": "send",
        },
    )
    assert response.status_code == 202, response.content
    answer = client.get(response.json()["status_url"], {"wait": "20"}).json()
    assert answer["status"] == "failed"
    assert (answer["failed_step"], answer["reply_code"]) == ("auth", 535)
    assert answer["field"] == "password"
    assert "auth failed (535)" in answer["error"]
    assert "refused the username or password" in answer["hint"]
    assert CANARY not in json.dumps(answer)
    assert not SmtpDraft.objects.exists()


def test_verify_sends_nothing_and_is_recorded_as_email_verified(worker, demo, server):
    smtp = server()
    client = page_client(demo["acme_admin"])
    response = client.post(
        "/ops/smtp/test",
        {
            "host": "127.0.0.1",
            "port": str(smtp.port),
            "retries": "3",
            "recipient": "me@acme.example",
            "mode": "verify",
        },
    )
    answer = client.get(response.json()["status_url"], {"wait": "20"}).json()
    assert answer["status"] == "sent"
    assert answer["steps"][-1]["name"] == "rset"
    assert smtp.messages == []
    # its own event type: never an email.sent that says nothing was sent
    email = Email.objects.get(pk=answer["id"])
    assert events_of(email) == ["email.queued", "email.verified"]
    verified = AuditEvent.objects.get(type="email.verified", detail__email_id=email.pk)
    assert verified.category == Category.SYSTEMAUDIT
    assert "nothing was sent" in verified.summary
    assert f"127.0.0.1:{smtp.port}" in verified.summary
    assert verified.detail["steps"][-1]["name"] == "rset"


def test_documented_verification_api_uses_the_configuration_in_effect(
    worker, demo, server
):
    smtp = server()
    configure_partner(demo["acme"], smtp)
    client = page_client(demo["acme_admin"])
    response = client.post(
        "/event/v1/email/config/verification?wait=20",
        data=json.dumps(
            {
                "sender_email": "noreply@acme.example",
                "recipient_email": "ops@acme.example",
                "subject": "Verification from curl",
                "body": "Hello from the documented API.",
            }
        ),
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["status"] == "sent"
    assert answer["status_url"].endswith(
        f"/event/v1/email/config/verification/{answer['id']}"
    )
    message = smtp.messages[0]
    assert message.mail_from == "noreply@acme.example"
    assert message.message["Subject"] == "Verification from curl"
    assert (
        "Hello from the documented API."
        in message.message.get_body(("plain",)).get_content()
    )


def test_email_events_appear_under_the_documented_systemaudit_filters(
    worker, demo, server
):
    smtp = server()
    configure_partner(demo["acme"], smtp)
    email = final(alert(organization=demo["acme-prod"]))
    assert email.status == EmailStatus.SENT
    org_admin = page_client(demo["prod_admin"])
    documented = org_admin.get(
        "/event/v1/auditlog?&filter.timefrom=now-1h&filter.offset=0"
        "&filter.limit=10&filter.category=SYSTEMAUDIT"
    ).json()
    types = [e["type"] for e in documented["result"]]
    assert types == ["email.sent", "email.queued"]
    assert documented["result"][0]["detail"]["message_id"] == email.message_id
    partner = (
        page_client(demo["acme_admin"])
        .get("/opsauditlogs/?timefrom=now-7d&category=SYSTEMAUDIT")
        .json()
    )
    assert [e["type"] for e in partner["result"]] == ["email.sent", "email.queued"]
    assert {e["organization"] for e in partner["result"]} == {"acme-prod"}


def test_an_alert_to_many_people_goes_out_in_batches_and_keeps_every_event(
    worker, demo, server
):
    from smtp.services import SystemEmail, send_system_emails

    smtp = server()
    configure_partner(demo["acme"], smtp)
    emails = send_system_emails(
        [
            SystemEmail(
                EmailKind.ALERT,
                f"oncall{number}@acme.example",
                {"title": "Cluster degraded", "message": "2 of 5 nodes are down."},
                organization=demo["acme-prod"],
            )
            for number in range(120)
        ]
    )
    wait_until(
        lambda: Email.objects.filter(status=EmailStatus.SENT).count() == 120,
        timeout=60,
    )
    assert sorted(m.message_id for m in smtp.messages) == sorted(
        e.message_id for e in emails
    )
    assert smtp.handler.sessions <= 10
    assert AuditEvent.objects.filter(type="email.queued").count() == 120
    assert AuditEvent.objects.filter(type="email.sent").count() == 120
    assert EmailAttempt.objects.filter(ok=True).count() == 120
    # A sent email's steps are kept with its attempt, and the API shows them.
    client = page_client(demo["acme_admin"])
    answer = client.get(f"/event/v1/email/config/verification/{emails[0].pk}").json()
    assert answer["status"] == "sent"
    assert [s["name"] for s in answer["steps"]][-1] == "data"


def alerts_to_many(organization, count: int) -> list[Email]:
    from smtp.services import SystemEmail, send_system_emails

    return send_system_emails(
        [
            SystemEmail(
                EmailKind.ALERT,
                f"oncall{number}@acme.example",
                {"title": f"Alert {number}", "message": "m"},
                organization=organization,
            )
            for number in range(count)
        ]
    )


def test_every_4xx_on_a_reused_connection_is_a_recorded_deferral(worker, demo, server):
    # given: a server that answers 451 to every second message of a connection
    smtp = server(behaviour=Behaviour(defer_every_other=True))
    configure_partner(demo["acme"], smtp, retries=10)
    # when: a batch goes out over reused connections
    emails = alerts_to_many(demo["acme-prod"], 20)
    wait_until(
        lambda: Email.objects.filter(status=EmailStatus.SENT).count() == 20,
        timeout=60,
    )
    # then: every 451 the server gave is an attempt and an email.deferred event
    refusals = smtp.handler.deferrals
    assert refusals and set(refusals) == {("data", 451)}
    deferred = AuditEvent.objects.filter(type="email.deferred")
    assert deferred.count() == len(refusals)
    assert {(e.detail["step"], e.detail["reply_code"]) for e in deferred} == {
        ("data", 451)
    }
    failed_tries = EmailAttempt.objects.filter(ok=False)
    assert failed_tries.count() == len(refusals)
    assert set(failed_tries.values_list("failed_step", "reply_code")) == {("data", 451)}
    # and every email was sent once, with one attempt per try
    assert sorted(m.message_id for m in smtp.messages) == sorted(
        e.message_id for e in emails
    )
    for email in Email.objects.all():
        assert email.attempts == EmailAttempt.objects.filter(email=email).count()
    assert EmailAttempt.objects.count() == 20 + len(refusals)


def test_a_greylisting_server_is_tried_again_no_sooner_than_a_minute(
    worker, demo, server
):
    # given: a server that greylists every new recipient (451 at RCPT TO)
    smtp = server(behaviour=Behaviour(greylist=True))
    configure_partner(demo["acme"], smtp, retries=3)
    # when: three alerts go out over one connection (one fresh, two reused)
    emails = alerts_to_many(demo["acme-prod"], 3)

    def all_tried() -> bool:
        return Email.objects.filter(attempts=1, status=EmailStatus.QUEUED).count() == 3

    wait_until(all_tried, timeout=30)
    # then: each is deferred, and its retry is a minute away or more
    assert len(smtp.handler.deferrals) == 3
    for email in emails:
        email.refresh_from_db()
        attempt = EmailAttempt.objects.get(email=email)
        assert (attempt.failed_step, attempt.reply_code) == ("rcpt_to", 451)
        wait = (email.next_attempt_at - attempt.started_at).total_seconds()
        assert wait >= 60, wait
        event = AuditEvent.objects.get(type="email.deferred", detail__email_id=email.pk)
        assert event.detail["next_attempt_at"] == email.next_attempt_at.isoformat()
    assert smtp.messages == []


@pytest.mark.parametrize("hang_up", [False, True], ids=["421", "hang-up"])
def test_a_connection_the_server_closed_is_reopened_within_the_same_attempt(
    worker, demo, server, hang_up
):
    # given: a server that ends each connection after one message, with a 421 to
    # the next MAIL FROM or by hanging up
    smtp = server(behaviour=Behaviour(messages_per_connection=1, hang_up=hang_up))
    configure_partner(demo["acme"], smtp)
    # when
    emails = alerts_to_many(demo["acme-prod"], 5)
    wait_until(
        lambda: Email.objects.filter(status=EmailStatus.SENT).count() == 5,
        timeout=60,
    )
    # then: each email took one attempt, not a deferral; where the pooled
    # session was gone, its attempt shows the reconnection as a step
    assert sorted(m.message_id for m in smtp.messages) == sorted(
        e.message_id for e in emails
    )
    assert not AuditEvent.objects.filter(type="email.deferred").exists()
    assert set(Email.objects.values_list("attempts", flat=True)) == {1}
    reconnects = [
        step
        for attempt in EmailAttempt.objects.all()
        for step in attempt.steps
        if step["name"] == "reconnect"
    ]
    assert reconnects, "no email went over a session the server had closed"
    assert {s["status"] for s in reconnects} == {"ok"}
    assert {s["reply_code"] for s in reconnects} == ({None} if hang_up else {421})
    assert all("closed the reused connection" in s["detail"] for s in reconnects)


def test_an_organization_admin_tests_the_configuration_it_inherits(
    worker, demo, server
):
    # given: the organization has no configuration of its own; the partner's is
    # in effect
    smtp = server()
    configure_partner(demo["acme"], smtp)
    client = page_client(demo["prod_admin"])
    # when: its admin presses Send Test Email with the form as it shows (Host empty)
    response = client.post(
        "/console/infrastructure/system/settings/smtp/test",
        {
            "host": "",
            "port": "587",
            "recipient": "org-admin@acme-prod.example",
            "mode": "send",
        },
    )
    # then: the partner's configuration in effect is tested, and the answer says so
    assert response.status_code == 202, response.content
    assert response.json()["in_effect"] == "partner"
    answer = client.get(response.json()["status_url"], {"wait": "20"}).json()
    assert answer["status"] == "sent", answer
    assert [m.rcpt_tos for m in smtp.messages] == [["org-admin@acme-prod.example"]]
    # and: nothing was saved at the organization's level
    assert not SmtpConfiguration.objects.filter(organization__isnull=False).exists()


def test_with_a_configuration_of_its_own_an_empty_host_is_still_an_error(
    worker, demo, server
):
    smtp = server()
    configure_partner(demo["acme"], smtp)
    client = page_client(demo["acme_admin"])
    response = client.post(
        "/ops/smtp/test",
        {"host": "", "port": "587", "recipient": "me@acme.example", "mode": "send"},
    )
    assert response.status_code == 400
    assert "host" in response.json()["fields"]
