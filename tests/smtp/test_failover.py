"""Opt-in failover between levels: a configuration whose server cannot be
reached hands its emails to the next level's, with a real worker, real
PostgreSQL/Redis and aiosmtpd sinks."""

from __future__ import annotations

import json
import socket
import uuid
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from audit.models import AuditEvent
from smtp.enums import HealthStatus, Level
from smtp.models import (
    Email,
    EmailAttempt,
    EmailKind,
    EmailStatus,
    Security,
    SmtpConfiguration,
)
from smtp.selectors import smtp_config_effective, smtp_failover_route
from smtp.services import send_system_email
from tests.support.hostile import read_line
from tests.support.smtp_servers import (
    Behaviour,
    SmtpTestServer,
    free_port,
    stopped_after,
)
from tests.support.worker import WorkerProcess, wait_until

CANARY = "canary-failover-pw-Q8x"


@pytest.fixture
def sink():
    yield from stopped_after(SmtpTestServer)


def configure(tenant, *, port: int, organization=None, **fields):
    values = {
        "host": "127.0.0.1",
        "port": port,
        "security": Security.NONE,
        "retries": 3,
        "sender_email": f"alerts@{tenant.slug}.example",
        **fields,
    }
    return SmtpConfiguration.objects.create(
        partner=tenant, organization=organization, **values
    )


def alert(organization, to: str = "oncall@acme.example") -> Email:
    return send_system_email(
        kind=EmailKind.ALERT,
        to=to,
        context={"title": "Disk almost full", "message": "m"},
        organization=organization,
    )


def final(email: Email, timeout: float = 60) -> Email:
    def done():
        email.refresh_from_db()
        return email.is_final

    wait_until(done, timeout=timeout)
    return email


def sent_event(email: Email) -> AuditEvent:
    return AuditEvent.objects.get(type="email.sent", detail__email_id=email.pk)


def step_names(steps: list[dict]) -> list[str]:
    return [step["name"] for step in steps]


# -- which configurations, in order (the selector) ----------------------------------


@pytest.mark.django_db
def test_the_route_is_the_configuration_in_effect_alone_without_failover(demo):
    configure(demo["acme"], port=2525)
    configure(demo["acme"], port=2526, organization=demo["acme-prod"])
    effective = smtp_config_effective(
        partner=demo["acme"], organization=demo["acme-prod"]
    )
    route = smtp_failover_route(effective)
    assert [(s.level, s.port) for s in route] == [(Level.ORGANIZATION, 2526)]


@pytest.mark.django_db
def test_the_route_follows_each_configurations_own_failover_choice(
    demo, controller_smtp
):
    controller_smtp(ADDR="127.0.0.1", PORT="2527", USE_TLS="false")
    partner = configure(demo["acme"], port=2525)
    configure(demo["acme"], port=2526, organization=demo["acme-prod"], failover=True)

    def route():
        effective = smtp_config_effective(
            partner=demo["acme"], organization=demo["acme-prod"]
        )
        return [(s.level, s.port) for s in smtp_failover_route(effective)]

    # the organization's fails over to the partner's, which does not fail over
    assert route() == [(Level.ORGANIZATION, 2526), (Level.PARTNER, 2525)]
    # the partner's fails over too: on to the controller defaults
    SmtpConfiguration.objects.filter(pk=partner.pk).update(failover=True)
    assert route() == [
        (Level.ORGANIZATION, 2526),
        (Level.PARTNER, 2525),
        (Level.CONTROLLER, 2527),
    ]


@pytest.mark.django_db
def test_the_route_skips_a_level_that_is_not_configured(demo, controller_smtp):
    controller_smtp(ADDR="127.0.0.1", PORT="2527", USE_TLS="false")
    configure(demo["acme"], port=2526, organization=demo["acme-prod"], failover=True)
    effective = smtp_config_effective(
        partner=demo["acme"], organization=demo["acme-prod"]
    )
    route = smtp_failover_route(effective)
    assert [(s.level, s.port) for s in route] == [
        (Level.ORGANIZATION, 2526),
        (Level.CONTROLLER, 2527),
    ]
    # the fallback sends as itself, not as the organization
    assert route[1].sender_email == django_settings.DEFAULT_FROM_EMAIL


@pytest.mark.django_db
def test_an_organization_behind_its_disabled_feature_is_not_in_the_route(demo):
    configure(demo["acme"], port=2525, failover=True)
    configure(demo["acme"], port=2526, organization=demo["acme-dev"], failover=True)
    assert not demo["acme-dev"].smtp_configuration_enabled
    effective = smtp_config_effective(
        partner=demo["acme"], organization=demo["acme-dev"]
    )
    route = smtp_failover_route(effective)
    assert [(s.level, s.port) for s in route] == [(Level.PARTNER, 2525)]


@pytest.mark.django_db
def test_a_partner_without_a_next_level_has_no_failover_route(demo):
    configure(demo["acme"], port=2525, failover=True)
    effective = smtp_config_effective(partner=demo["acme"])
    assert [s.level for s in smtp_failover_route(effective)] == [Level.PARTNER]


# -- with a worker -----------------------------------------------------------------


def test_a_closed_organization_port_fails_over_to_the_partner_sink(
    worker, demo, sink, login
):
    # given: the organization's server is down, the partner's is up
    partner_sink = sink()
    configure(demo["acme"], port=partner_sink.port)
    organization = configure(
        demo["acme"],
        port=free_port(),
        organization=demo["acme-prod"],
        failover=True,
    )
    # when: three alerts of the organization are sent
    emails = [alert(demo["acme-prod"], to=f"oncall{n}@acme.example") for n in range(3)]
    # then: every one went out through the partner's server
    for email in emails:
        email = final(email)
        assert email.status == EmailStatus.SENT
        assert (email.level_used, email.fallback_from) == ("partner", "organization")
        assert email.server == f"127.0.0.1:{partner_sink.port}"
        (attempt,) = EmailAttempt.objects.filter(email=email)
        assert attempt.ok
        assert (attempt.level, attempt.fallback_from) == ("partner", "organization")
        # the failed connection is kept before the partner's session
        names = step_names(attempt.steps)
        assert names[: names.index("failover") + 1] == [
            "resolve",
            "connect",
            "failover",
        ]
        assert attempt.steps[1]["status"] == "failed"
        assert names[-1] == "data"
        assert attempt.failed_step == ""
        event = sent_event(email)
        assert event.detail["level_used"] == "partner"
        assert event.detail["fallback_from"] == "organization"
        assert "failover from organization" in event.summary
    assert sorted(m.message_id for m in partner_sink.messages) == sorted(
        e.message_id for e in emails
    )
    assert {m.mail_from for m in partner_sink.messages} == {"alerts@acme.example"}
    # and: the organization's configuration shows failing, once in the audit log
    organization.refresh_from_db()
    assert organization.health_status == HealthStatus.FAILING
    assert organization.health_detail.startswith("connect: ")
    assert "fail over to the partner configuration" in organization.health_detail
    failing = AuditEvent.objects.filter(type="smtp_config.health.failing")
    assert failing.count() == 1
    assert failing.get().organization_id == demo["acme-prod"].pk
    assert failing.get().detail["fallback_to"] == "partner"
    # and: the email's page says so, with the failed connection and the failover
    page = login(demo["acme_admin"]).get(f"/ops/emails/{emails[0].pk}/")
    html = page.content.decode()
    assert 'id="failed-over">failed over from organization<' in html
    assert "<td>Failover</td>" in html
    assert "(failed over from organization)" in html
    # and the status API says so too, with no failed step's hint on a sent email
    answer = (
        login(demo["acme_admin"])
        .get(f"/event/v1/email/config/verification/{emails[0].pk}")
        .json()
    )
    assert (answer["status"], answer["level"]) == ("sent", "partner")
    assert answer["fallback_from"] == "organization"
    assert "failover" in step_names(answer["steps"])
    assert (answer["failed_step"], answer["hint_code"]) == (None, None)


def test_the_failing_organization_shows_the_health_banner(worker, demo, sink, login):
    partner_sink = sink()
    configure(demo["acme"], port=partner_sink.port)
    configure(
        demo["acme"], port=free_port(), organization=demo["acme-prod"], failover=True
    )
    assert final(alert(demo["acme-prod"])).fallback_from == "organization"
    page = login(demo["prod_admin"]).get(
        "/console/infrastructure/system/settings/smtp/"
    )
    html = page.content.decode()
    assert 'id="health-failing" data-failed-over' in html
    assert "This server could not be reached" in html
    assert "fail over to the partner configuration" in html


def test_with_failover_off_the_same_failure_defers(worker, demo, sink):
    # given: the same servers, failover off (the default)
    partner_sink = sink()
    configure(demo["acme"], port=partner_sink.port)
    organization = configure(
        demo["acme"], port=free_port(), organization=demo["acme-prod"]
    )
    before = timezone.now()
    email = alert(demo["acme-prod"])

    def tried():
        email.refresh_from_db()
        return email.attempts == 1 and email.status == EmailStatus.QUEUED

    wait_until(tried, timeout=60)
    # then: deferred as before, for a retry; nothing went anywhere else
    assert (email.level_used, email.fallback_from) == ("organization", "")
    assert email.failed_step == "connect"
    assert email.next_attempt_at > before
    assert partner_sink.messages == []
    assert AuditEvent.objects.filter(
        type="email.deferred", detail__email_id=email.pk
    ).exists()
    (attempt,) = EmailAttempt.objects.filter(email=email)
    assert "failover" not in step_names(attempt.steps)
    organization.refresh_from_db()
    assert organization.health_status == HealthStatus.UNKNOWN


def test_a_refused_recipient_fails_once_without_failover(worker, demo, sink):
    # given: the organization's server works but refuses one recipient
    partner_sink = sink()
    org_sink = sink(behaviour=Behaviour(refuse_recipients={"gone@acme.example"}))
    configure(demo["acme"], port=partner_sink.port)
    organization = configure(
        demo["acme"], port=org_sink.port, organization=demo["acme-prod"], failover=True
    )
    # when
    email = final(alert(demo["acme-prod"], to="gone@acme.example"))
    # then: failed at once, through the organization's, never the partner's
    assert email.status == EmailStatus.FAILED
    assert email.attempts == 1
    assert (email.failed_step, email.reply_code) == ("rcpt_to", 550)
    assert (email.level_used, email.fallback_from) == ("organization", "")
    assert partner_sink.handler.sessions == 0
    assert partner_sink.messages == []
    organization.refresh_from_db()
    assert organization.health_status != HealthStatus.FAILING
    # and the next email of the organization still goes through its own server
    other = final(alert(demo["acme-prod"], to="oncall@acme.example"))
    assert (other.status, other.level_used) == (EmailStatus.SENT, "organization")
    assert [m.message_id for m in org_sink.messages] == [other.message_id]


def test_a_recipient_the_fallback_refuses_fails_there(worker, demo, sink):
    # given: the organization's server is down; the partner's refuses the recipient
    partner_sink = sink(behaviour=Behaviour(refuse_recipients={"gone@acme.example"}))
    configure(demo["acme"], port=partner_sink.port)
    configure(
        demo["acme"], port=free_port(), organization=demo["acme-prod"], failover=True
    )
    email = final(alert(demo["acme-prod"], to="gone@acme.example"))
    # then: it failed at the partner's RCPT TO (not at the organization's connect)
    assert email.status == EmailStatus.FAILED
    assert (email.failed_step, email.reply_code) == ("rcpt_to", 550)
    assert (email.level_used, email.fallback_from) == ("partner", "organization")
    assert email.attempts == 1
    failed = AuditEvent.objects.get(type="email.failed", detail__email_id=email.pk)
    assert (failed.detail["step"], failed.detail["fallback_from"]) == (
        "rcpt_to",
        "organization",
    )


def test_a_refused_login_fails_over_and_the_password_stays_out(worker, demo, sink):
    partner_sink = sink()
    org_sink = sink(users={"u@acme.example": "right-" + CANARY})
    configure(demo["acme"], port=partner_sink.port)
    configure(
        demo["acme"],
        port=org_sink.port,
        organization=demo["acme-prod"],
        username="u@acme.example",
        password="wrong-" + CANARY,
        failover=True,
        # The test server offers AUTH on plain text; certificate checks are not
        # what this test is about.
        security=Security.NONE,
    )
    email = final(alert(demo["acme-prod"]))
    assert email.status == EmailStatus.SENT
    assert (email.level_used, email.fallback_from) == ("partner", "organization")
    (attempt,) = EmailAttempt.objects.filter(email=email)
    assert "failover" in step_names(attempt.steps)
    dumped = json.dumps([e.detail for e in AuditEvent.objects.all()])
    assert CANARY not in dumped
    assert CANARY not in json.dumps(attempt.steps)


def test_a_server_without_starttls_fails_over_at_tls(worker, demo, sink):
    # given: the organization requires STARTTLS of a server that does not offer it
    partner_sink = sink()
    plain = sink()
    configure(demo["acme"], port=partner_sink.port)
    configure(
        demo["acme"],
        port=plain.port,
        organization=demo["acme-prod"],
        security=Security.STARTTLS,
        failover=True,
    )
    email = final(alert(demo["acme-prod"]))
    # then: nothing went in plain text to the organization's server
    assert email.status == EmailStatus.SENT
    assert (email.level_used, email.fallback_from) == ("partner", "organization")
    assert plain.messages == []
    (attempt,) = EmailAttempt.objects.filter(email=email)
    failed = next(s for s in attempt.steps if s["status"] == "failed")
    assert failed["name"] == "tls"


def test_a_refused_oauth2_token_fails_over_before_any_connection(
    worker, demo, sink, token_server
):
    from smtp.models import AuthMethod, OAuth2Provider

    # given: the organization's OAuth2 client is unknown to the token endpoint
    partner_sink = sink()
    never = sink()
    configure(demo["acme"], port=partner_sink.port)
    configure(
        demo["acme"],
        port=never.port,
        organization=demo["acme-prod"],
        security=Security.STARTTLS,
        use_insecure=True,
        auth_method=AuthMethod.OAUTH2,
        username="alerts@acme.example",
        oauth2_provider=OAuth2Provider.MICROSOFT,
        oauth2_tenant_id="contoso.onmicrosoft.com",
        oauth2_client_id=str(uuid.uuid4()),
        oauth2_client_secret=CANARY,
        failover=True,
    )
    email = final(alert(demo["acme-prod"]))
    # then: sent by the partner's; the organization's server was never contacted
    assert email.status == EmailStatus.SENT
    assert (email.level_used, email.fallback_from) == ("partner", "organization")
    assert never.connections == 0
    (attempt,) = EmailAttempt.objects.filter(email=email)
    assert step_names(attempt.steps)[:2] == ["token", "failover"]
    assert CANARY not in json.dumps(attempt.steps)
    assert CANARY not in json.dumps([e.detail for e in AuditEvent.objects.all()])


def refuse_service(connection: socket.socket) -> None:
    """A server that is up but refuses service: 421 greeting, then hangs up."""
    connection.sendall(b"421 4.3.2 Service not available, closing channel\r\n")


def test_a_421_greeting_fails_over(worker, demo, sink, hostile):
    partner_sink = sink()
    refusing = hostile(refuse_service)
    configure(demo["acme"], port=partner_sink.port)
    configure(
        demo["acme"], port=refusing.port, organization=demo["acme-prod"], failover=True
    )
    email = final(alert(demo["acme-prod"]))
    assert email.status == EmailStatus.SENT
    (attempt,) = EmailAttempt.objects.filter(email=email)
    failed = next(s for s in attempt.steps if s["status"] == "failed")
    assert failed["name"] == "greeting"
    assert failed["reply_code"] == 421
    assert attempt.fallback_from == "organization"


def test_a_batch_moves_to_the_fallback_as_a_whole(worker, demo, sink, hostile):
    from smtp.services import SystemEmail, send_system_emails

    # given: the organization's server refuses service at the greeting
    partner_sink = sink()
    refusing = hostile(refuse_service)
    configure(demo["acme"], port=partner_sink.port)
    configure(
        demo["acme"], port=refusing.port, organization=demo["acme-prod"], failover=True
    )
    # when: an alert to 40 people (tasks of up to SMTP_BATCH_SIZE ids)
    emails = send_system_emails(
        [
            SystemEmail(
                EmailKind.ALERT,
                f"oncall{number}@acme.example",
                {"title": "Cluster degraded", "message": "m"},
                organization=demo["acme-prod"],
            )
            for number in range(40)
        ]
    )
    wait_until(
        lambda: Email.objects.filter(status=EmailStatus.SENT).count() == 40,
        timeout=90,
    )
    # then: every one through the partner's, marked as failed over
    assert sorted(m.message_id for m in partner_sink.messages) == sorted(
        e.message_id for e in emails
    )
    assert set(
        Email.objects.values_list("level_used", "fallback_from", "attempts")
    ) == {("partner", "organization", 1)}
    # the refusing server was asked once per batch, not once per email
    assert 1 <= refusing.connections <= 10
    assert partner_sink.handler.sessions <= 10
    assert (
        EmailAttempt.objects.filter(ok=True, fallback_from="organization").count() == 40
    )


def test_an_ehlo_refusal_does_not_fail_over(worker, demo, sink, hostile):
    def refuse_ehlo(connection: socket.socket) -> None:
        connection.sendall(b"220 smtp.test ESMTP\r\n")
        for _ in range(2):  # EHLO, then HELO
            read_line(connection)
            connection.sendall(b"550 5.7.1 Your host name is not allowed\r\n")

    partner_sink = sink()
    refusing = hostile(refuse_ehlo)
    configure(demo["acme"], port=partner_sink.port)
    configure(
        demo["acme"], port=refusing.port, organization=demo["acme-prod"], failover=True
    )
    email = alert(demo["acme-prod"])

    def tried():
        email.refresh_from_db()
        return email.attempts >= 1 and email.status != EmailStatus.SENDING

    wait_until(tried, timeout=60)
    assert email.status != EmailStatus.SENT
    assert email.failed_step == "ehlo"
    assert email.fallback_from == ""
    assert partner_sink.messages == []


def test_a_test_email_never_fails_over(worker, demo, sink, login):
    partner_sink = sink()
    configure(demo["acme"], port=partner_sink.port)
    configure(
        demo["acme"], port=free_port(), organization=demo["acme-prod"], failover=True
    )
    client = login(demo["prod_admin"])
    response = client.post(
        "/event/v1/email/config/verification?wait=30",
        data=json.dumps(
            {
                "sender_email": "alerts@acme.example",
                "recipient_email": "org-admin@acme-prod.example",
                "subject": "Does it work?",
                "body": "Testing the organization's server.",
            }
        ),
        content_type="application/json",
    )
    answer = response.json()
    assert answer["status"] == "failed", answer
    assert answer["failed_step"] == "connect"
    assert answer["level"] == "organization"
    assert partner_sink.messages == []
    email = Email.objects.get(pk=answer["id"])
    assert (email.level_used, email.fallback_from) == ("organization", "")


@pytest.mark.usefixtures("no_shared_worker")
def test_failover_chain_organization_partner_controller(
    transactional_db, demo, sink, controller_smtp, settings
):
    # given: the organization's and the partner's servers are down, both fail
    # over; the controller defaults point at a working sink
    controller_sink = sink()
    controller = {
        "ADDR": "127.0.0.1",
        "PORT": str(controller_sink.port),
        "USE_TLS": "false",
    }
    controller_smtp(**controller)
    partner = configure(demo["acme"], port=free_port(), failover=True)
    organization = configure(
        demo["acme"], port=free_port(), organization=demo["acme-prod"], failover=True
    )
    # a worker of this test's own, with the controller defaults in its
    # environment, on a queue of its own (the paused shared worker's connection
    # would still take messages of the suite's queue)
    queue = f"failover-{uuid.uuid4().hex[:10]}"
    settings.CELERY_TASK_DEFAULT_QUEUE = queue
    process = WorkerProcess(
        queue=queue,
        extra_env={f"FW_EVENT_SMTP_SERVER_{k}": v for k, v in controller.items()},
    ).start()
    try:
        # when
        email = final(alert(demo["acme-prod"]), timeout=90)
    finally:
        process.stop()
    # then: sent by the controller defaults; the level in effect failed first
    assert email.status == EmailStatus.SENT, (email.failed_step, email.last_error)
    assert (email.level_used, email.fallback_from) == ("controller", "organization")
    (attempt,) = EmailAttempt.objects.filter(email=email)
    names = step_names(attempt.steps)
    assert names.count("failover") == 2
    assert names[: names.index("failover") + 1] == ["resolve", "connect", "failover"]
    failovers = [s["detail"] for s in attempt.steps if s["name"] == "failover"]
    assert "organization configuration" in failovers[0]
    assert "fails over to the partner configuration" in failovers[0]
    assert "fails over to the controller default configuration" in failovers[1]
    event = sent_event(email)
    assert (event.detail["level_used"], event.detail["fallback_from"]) == (
        "controller",
        "organization",
    )
    assert [m.message_id for m in controller_sink.messages] == [email.message_id]
    for configuration, to in ((organization, "partner"), (partner, "controller")):
        configuration.refresh_from_db()
        assert configuration.health_status == HealthStatus.FAILING
        assert f"fail over to the {to}" in configuration.health_detail


@pytest.mark.django_db
def test_an_email_that_failed_over_and_whose_worker_stopped_keeps_its_fallback(demo):
    from smtp.outbox import outbox_sweep

    # given: the partner's server accepted it after the organization's failed
    # over, the attempt was written, and the worker stopped before the rest
    email = alert(demo["acme-prod"])
    Email.objects.filter(pk=email.pk).update(
        status=EmailStatus.SENDING,
        claim_token=uuid.uuid4(),
        lease_until=timezone.now() - timedelta(seconds=1),
    )
    EmailAttempt.objects.create(
        email=email,
        number=1,
        started_at=timezone.now(),
        duration_ms=10,
        ok=True,
        level="partner",
        fallback_from="organization",
        server="smtp.acme.example:587",
        steps=[
            {"name": "connect", "status": "failed", "detail": "refused"},
            {"name": "failover", "status": "ok", "detail": "to the partner"},
            {"name": "data", "status": "ok", "reply": "2.0.0 queued"},
        ],
    )
    # when: the sweeper records it
    outbox_sweep()
    # then: sent, failed over, as the attempt says
    email.refresh_from_db()
    assert email.status == EmailStatus.SENT
    assert (email.level_used, email.fallback_from) == ("partner", "organization")
    assert email.failed_step == ""
    event = sent_event(email)
    assert event.detail["fallback_from"] == "organization"


@pytest.mark.django_db
def test_the_health_check_after_a_failover_records_no_second_failing_event(demo, sink):
    from smtp.outbox.failover import record_failover
    from smtp.selectors import smtp_delivery_route
    from smtp.services import smtp_config_health_check

    # given: the organization's configuration failed over to the partner's
    partner_sink = sink()
    configure(demo["acme"], port=partner_sink.port)
    organization = configure(
        demo["acme"], port=free_port(), organization=demo["acme-prod"], failover=True
    )
    failing, fallback = smtp_delivery_route(
        partner=demo["acme"], organization=demo["acme-prod"]
    )
    failed = {"name": "connect", "detail": "Connection refused.", "reply_code": None}
    record_failover(server=failing, failed=failed, fallback=fallback)
    record_failover(server=failing, failed=failed, fallback=fallback)
    organization.refresh_from_db()
    assert organization.failed_over
    events = AuditEvent.objects.filter(type__startswith="smtp_config.health.")
    assert list(events.values_list("type", flat=True)) == ["smtp_config.health.failing"]
    # when: the periodic check finds it still down: the same news, not recorded
    assert smtp_config_health_check(configuration_id=organization.pk) == "failing"
    organization.refresh_from_db()
    assert not organization.failed_over  # the check's own finding now
    assert events.count() == 1
    # when: it is back (same address, a server listening again)
    back = sink(port=organization.port)
    assert back.port == organization.port
    assert smtp_config_health_check(configuration_id=organization.pk) == "ok"
    assert list(events.order_by("id").values_list("type", flat=True)) == [
        "smtp_config.health.failing",
        "smtp_config.health.recovered",
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(("batch_seconds", "fails_over"), [(60.0, True), (0.5, False)])
def test_no_failover_is_started_past_the_batch_time(
    demo, sink, silent_listener, settings, batch_seconds, fails_over
):
    # Run in this process (no worker): the point is the batch's clock, not the
    # queue. The organization's server accepts the connection and never greets,
    # so its session fails at the greeting after SMTP_TIMEOUT.
    from smtp.outbox import outbox_deliver

    settings.SMTP_BATCH_SECONDS = batch_seconds
    partner_sink = sink()
    configure(demo["acme"], port=partner_sink.port)
    configure(
        demo["acme"],
        port=silent_listener.port,
        organization=demo["acme-prod"],
        failover=True,
    )
    email = alert(demo["acme-prod"])
    outbox_deliver(email_id=email.pk)
    email.refresh_from_db()
    if fails_over:
        assert (email.status, email.level_used) == (EmailStatus.SENT, "partner")
        assert email.fallback_from == "organization"
    else:
        # past the batch's time, the session that failed is the last one tried:
        # deferred, as without failover, within the task's time limit
        assert (email.status, email.failed_step) == (EmailStatus.QUEUED, "greeting")
        assert (email.level_used, email.fallback_from) == ("organization", "")
        assert partner_sink.messages == []


@pytest.mark.django_db
def test_a_failover_with_settings_changed_since_marks_nothing(demo, sink):
    from smtp.outbox.failover import record_failover
    from smtp.selectors import smtp_delivery_route

    # given: the route was read, then the organization saved new settings
    configure(demo["acme"], port=sink().port)
    organization = configure(
        demo["acme"], port=free_port(), organization=demo["acme-prod"], failover=True
    )
    failing, fallback = smtp_delivery_route(
        partner=demo["acme"], organization=demo["acme-prod"]
    )
    organization.port = free_port()
    organization.save()
    # when: the failover of the old settings is recorded
    record_failover(
        server=failing,
        failed={"name": "connect", "detail": "Connection refused."},
        fallback=fallback,
    )
    # then: the new settings are not marked failing
    organization.refresh_from_db()
    assert organization.health_status == HealthStatus.UNKNOWN
    assert not AuditEvent.objects.filter(type="smtp_config.health.failing").exists()
