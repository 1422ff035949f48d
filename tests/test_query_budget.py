"""Query budgets: the busiest pages and APIs cost a fixed number of queries,
whatever the number of rows they show (no N+1)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import AuditEvent, Category
from core.stamps import stamped_copies_clear
from smtp.models import Security, SmtpConfiguration
from tenants.models import Organization

pytestmark = pytest.mark.django_db


def queries_for(client: Client, url: str, **params) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, params)
    assert response.status_code in (200, 404), response.content[:300]
    return len(captured)


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def add_events(demo, count: int) -> None:
    now = timezone.now()
    AuditEvent.objects.bulk_create(
        AuditEvent(
            timestamp=now - timedelta(seconds=number),
            category=Category.SYSTEMAUDIT,
            type="email.sent",
            actor="system",
            partner=demo["acme"],
            organization=demo["acme-prod"] if number % 2 else demo["acme-dev"],
            summary=f"event {number}",
            detail={"email_id": number, "steps": [{"name": "data", "status": "ok"}]},
        )
        for number in range(count)
    )


def add_organizations(demo, count: int) -> None:
    for number in range(count):
        organization = Organization.objects.create(
            partner=demo["acme"], slug=f"extra-{number}", name=f"Extra {number}"
        )
        SmtpConfiguration.objects.create(
            partner=demo["acme"],
            organization=organization,
            host=f"smtp{number}.example.com",
            security=Security.STARTTLS,
        )


def test_the_audit_list_api_costs_the_same_for_10_or_500_events(demo):
    client = client_for(demo["acme_admin"])
    add_events(demo, 600)
    small = queries_for(client, "/opsauditlogs/", limit="10")
    large = queries_for(client, "/opsauditlogs/", limit="500")
    assert small == large
    # the session with its user, the page with its capped count
    assert large == 2


def test_the_org_audit_api_costs_the_same_for_any_page_size(demo):
    client = client_for(demo["prod_admin"])
    add_events(demo, 300)
    assert queries_for(client, "/event/v1/auditlog", **{"filter.limit": "1"}) == (
        queries_for(client, "/event/v1/auditlog", **{"filter.limit": "100"})
    )


def test_the_audit_pages_cost_the_same_for_few_or_many_events(demo):
    client = client_for(demo["acme_admin"])
    add_events(demo, 5)
    few = queries_for(client, "/ops/audit-logs/", range="24h")
    add_events(demo, 200)
    many = queries_for(client, "/ops/audit-logs/", range="24h")
    assert few == many


def test_the_config_api_get_has_a_fixed_budget(demo):
    client = client_for(demo["prod_admin"])
    SmtpConfiguration.objects.create(partner=demo["acme"], host="smtp.acme.example")
    SmtpConfiguration.objects.create(
        partner=demo["acme"], organization=demo["acme-prod"], host="smtp.prod.example"
    )
    # the session with its user and tenant, and one query for the own
    # configuration and the configurations in effect
    assert queries_for(client, "/event/v1/email/config") == 2


def test_the_smtp_page_has_a_fixed_budget(demo):
    client = client_for(demo["acme_admin"])
    SmtpConfiguration.objects.create(partner=demo["acme"], host="smtp.acme.example")
    before = queries_for(client, "/ops/smtp/")
    add_organizations(demo, 20)
    assert queries_for(client, "/ops/smtp/") == before
    # the session with its user and tenant, own configuration, configurations
    # in effect
    assert before <= 3


def test_the_organization_list_costs_the_same_for_3_or_23_organizations(demo):
    client = client_for(demo["acme_admin"])
    few = queries_for(client, "/ops/organizations/")
    add_organizations(demo, 20)
    assert queries_for(client, "/ops/organizations/") == few


def enqueue_queries(organization: Organization, number: int) -> tuple[int, int]:
    """Queries of one ``send_system_email`` call, and the publishes it registers."""
    from smtp.enums import EmailKind
    from smtp.services import send_system_email

    # Publishing waits for the commit, which the test's transaction never makes:
    # the callbacks registered meanwhile are the publishes.
    hooks_before = len(connection.run_on_commit)
    with CaptureQueriesContext(connection) as captured:
        send_system_email(
            kind=EmailKind.ALERT,
            to=f"oncall{number}@acme.example",
            context={"title": "Disk almost full", "message": "Node 3 at 91%."},
            organization=organization,
        )
    return len(captured), len(connection.run_on_commit) - hooks_before


def test_a_system_email_costs_the_same_queries_however_many_configurations(demo):
    # given: an organization loaded with its partner, as request.user has it
    organization = Organization.objects.select_related("partner").get(
        pk=demo["acme-prod"].pk
    )
    # when: nothing is configured at any level
    bare = enqueue_queries(organization, 1)
    # and: the partner, the organization and 20 more organizations are
    SmtpConfiguration.objects.create(
        partner=demo["acme"], host="smtp.acme.example", username="u", password="pw"
    )
    SmtpConfiguration.objects.create(
        partner=demo["acme"], organization=organization, host="smtp.prod.example"
    )
    add_organizations(demo, 20)
    # (written here, not through the services, which renew the partner's stamp)
    stamped_copies_clear()
    configured = enqueue_queries(organization, 2)
    # then: the same cost: the sender identity in effect (one query, the
    # partner's allowed domains with it), the partner's branding (two), one
    # statement for the email and its event, and one publish after commit
    assert bare == configured
    if connection.vendor == "postgresql":
        assert configured == (4, 1)
    # and: the tenant's next email reads none of them again while its partner's
    # stamp is unchanged (with Redis: without it, every email reads them)
    again = enqueue_queries(organization, 3)
    if settings.REDIS_URL:
        assert again == (configured[0] - 3, 1)
    else:
        assert again == configured
    # and: the event was written with the email, in the same transaction
    from smtp.models import Email

    email = Email.objects.get(recipient="oncall2@acme.example")
    event = AuditEvent.objects.get(type="email.queued", detail__email_id=email.pk)
    assert event.detail == {
        "email_id": email.pk,
        "kind": "alert",
        "recipient": "oncall2@acme.example",
        "subject": email.subject,
        "message_id": email.message_id,
    }
    assert (event.partner_id, event.organization_id) == (
        demo["acme"].pk,
        organization.pk,
    )
    assert event.summary == "Alert notification to oncall2@acme.example queued"


def turn_queries(organization, count: int) -> int:
    """Queries of one bulk turn (``smtp.deliver_turn``, in-process) that sends
    ``count`` queued alerts of ``organization``."""
    from smtp.outbox import outbox_deliver_turn
    from tests.support.outbox import alerts_queued

    alerts_queued(organization, count)
    with CaptureQueriesContext(connection) as captured:
        outbox_deliver_turn(
            partner_id=organization.partner_id, organization_id=organization.pk
        )
    return len(captured)


def test_a_turn_costs_one_query_per_email_and_a_fixed_number_more(demo, settings):
    # given: a sink as the partner's server, and turns of up to 50 alerts
    from smtp.models import Email, EmailAttempt, EmailStatus
    from smtp.outbox import close_pooled_connections
    from tests.support.smtp_servers import SmtpTestServer

    settings.SMTP_BATCH_SIZE = 50
    sink = SmtpTestServer()
    try:
        SmtpConfiguration.objects.create(
            partner=demo["acme"],
            host="127.0.0.1",
            port=sink.port,
            security=Security.NONE,
            max_connections=0,
        )
        organization = demo["acme-prod"]
        # when: a turn sends 5 alerts, then another 25
        few = turn_queries(organization, 5)
        many = turn_queries(organization, 25)
    finally:
        close_pooled_connections()
        sink.stop()
    # then: every alert was sent once, each with its attempt written before the
    # next was sent (one statement an email); claiming, recording the rows and
    # events, and handing over cost the same for 5 or 25
    assert Email.objects.filter(status=EmailStatus.SENT).count() == 30
    assert EmailAttempt.objects.filter(ok=True).count() == 30
    assert len(sink.messages) == 30
    assert many - few == 20
