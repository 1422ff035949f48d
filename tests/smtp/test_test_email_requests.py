"""Send Test Email and the verification API: input, limits and scope (no worker)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from smtp.models import (
    Email,
    EmailKind,
    EmailStatus,
    Security,
    SmtpConfiguration,
    SmtpDraft,
)

pytestmark = pytest.mark.django_db

VERIFY_URL = "/event/v1/email/config/verification"
CANARY = "canary-draft-pw-Qa2"


def api(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def verify(client, **body):
    return client.post(
        VERIFY_URL,
        data=json.dumps(body),
        content_type="application/x-www-form-urlencoded",
    )


@pytest.fixture
def partner_config(demo):
    return SmtpConfiguration.objects.create(
        partner=demo["acme"],
        host="smtp.acme.example",
        port=587,
        security=Security.STARTTLS,
        username="mailer@acme.example",
        password=CANARY,
    )


def test_verification_queues_a_test_of_the_configuration_in_effect(
    demo, partner_config
):
    response = verify(
        api(demo["acme_admin"]),
        sender_email="noreply@acme.example",
        recipient_email="ops@acme.example",
        subject="Hello",
        body="Body",
    )
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued"
    assert body["status_url"].endswith(f"{VERIFY_URL}/{body['id']}")
    email = Email.objects.get(pk=body["id"])
    assert (email.kind, email.sender, email.recipient) == (
        EmailKind.TEST,
        "noreply@acme.example",
        "ops@acme.example",
    )
    # The saved configuration in effect, pinned: a copy the test goes through.
    assert (email.draft.host, email.draft.password) == (
        partner_config.host,
        partner_config.password,
    )


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"recipient_email": "not-an-address"}, "recipient_email", "email address"),
        ({"recipient_email": ""}, "recipient_email", "Recipient is required"),
        (
            {"recipient_email": "a@b.example", "sender_email": "x"},
            "sender_email",
            "email address",
        ),
        (
            {"recipient_email": "a@b.example\r\nBcc: c@d.example"},
            "recipient_email",
            "line breaks",
        ),
        ({"recipient_email": "a@b.example", "subject": "a\nb"}, "subject", "one line"),
        ({}, "recipient_email", "required"),
        ({"recipient_email": "a@b.example", "cc": "x"}, "cc", "Unknown field"),
    ],
)
def test_bad_verification_input_is_a_400_naming_the_field(
    demo, partner_config, body, field, message
):
    response = verify(api(demo["acme_admin"]), **body)
    assert response.status_code == 400
    assert message in " ".join(response.json()["fields"][field])
    assert not Email.objects.exists()


def test_verification_without_any_configuration_is_a_409(demo):
    response = verify(api(demo["acme_admin"]), recipient_email="ops@acme.example")
    assert response.status_code == 409
    assert "No SMTP configuration is in effect" in response.json()["error"]


def test_one_test_at_a_time_per_admin(demo, partner_config):
    client = api(demo["acme_admin"])
    assert verify(client, recipient_email="ops@acme.example").status_code == 202
    second = verify(client, recipient_email="ops@acme.example")
    assert second.status_code == 429
    assert "already running" in second.json()["error"]
    assert second["Retry-After"]
    # Another admin is not held up by it (globex has no configuration: 409).
    other = verify(api(demo["globex_admin"]), recipient_email="ops@globex.example")
    assert other.status_code == 409


def test_at_most_ten_tests_a_minute_per_admin(demo, partner_config, settings):
    client = api(demo["acme_admin"])
    for _ in range(settings.SMTP_TEST_RATE_PER_MINUTE):
        assert verify(client, recipient_email="ops@acme.example").status_code == 202
        Email.objects.update(status=EmailStatus.SENT)
    response = verify(client, recipient_email="ops@acme.example")
    assert response.status_code == 429
    assert "At most 10 test emails a minute" in response.json()["error"]
    # A minute later it works again.
    Email.objects.update(created_at=timezone.now() - timedelta(minutes=2))
    assert verify(client, recipient_email="ops@acme.example").status_code == 202


@pytest.mark.parametrize("wait", ["31", "-1", "abc", "¹"])
def test_wait_is_0_to_30_seconds(demo, partner_config, wait):
    response = api(demo["acme_admin"]).post(
        f"{VERIFY_URL}?wait={wait}",
        data=json.dumps({"recipient_email": "ops@acme.example"}),
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "0 to 30" in response.json()["fields"]["wait"][0]
    assert not Email.objects.exists()


def test_status_of_another_tenants_email_is_404(demo, partner_config):
    body = verify(api(demo["acme_admin"]), recipient_email="ops@acme.example").json()
    url = f"{VERIFY_URL}/{body['id']}"
    assert api(demo["acme_admin"]).get(url).status_code == 200
    assert api(demo["globex_admin"]).get(url).status_code == 404
    assert api(demo["globex_main_admin"]).get(url).status_code == 404
    assert api(demo["dev_admin"]).get(url).status_code == 404


def test_organization_users_need_the_feature_for_verification(demo, partner_config):
    response = verify(api(demo["dev_admin"]), recipient_email="ops@acme.example")
    assert response.status_code == 404


def test_page_test_of_unsaved_values_stores_them_encrypted_until_the_test_ends(
    demo, login, partner_config, settings
):
    client = login(demo["acme_admin"])
    response = client.post(
        "/ops/smtp/test",
        {
            "host": "smtp.other.example",
            "port": "465",
            "security": "ssl",
            "username": "other@acme.example",
            "password": CANARY + "-new",
            "retries": "3",
            "recipient": "me@acme.example",
            "mode": "send",
        },
    )
    assert response.status_code == 202
    draft = SmtpDraft.objects.get()
    assert (draft.host, draft.port, draft.security) == (
        "smtp.other.example",
        465,
        "ssl",
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT password FROM smtp_smtpdraft")
        stored = bytes(cursor.fetchone()[0])
    assert CANARY.encode() not in stored
    # The saved configuration is untouched.
    partner_config.refresh_from_db()
    assert partner_config.host == "smtp.acme.example"


def test_page_test_with_a_blank_password_and_the_same_server_uses_the_stored_one(
    demo, login, partner_config
):
    response = login(demo["acme_admin"]).post(
        "/ops/smtp/test",
        {
            "host": "smtp.acme.example",
            "port": "587",
            "security": "starttls",
            "username": "mailer@acme.example",
            "password": "",
            "retries": "3",
            "recipient": "me@acme.example",
        },
    )
    assert response.status_code == 202
    assert SmtpDraft.objects.get().password == CANARY


def test_page_test_with_a_changed_host_asks_for_the_password(
    demo, login, partner_config
):
    response = login(demo["acme_admin"]).post(
        "/ops/smtp/test",
        {
            "host": "smtp.elsewhere.example",
            "port": "587",
            "security": "starttls",
            "username": "mailer@acme.example",
            "password": "",
            "retries": "3",
            "recipient": "me@acme.example",
        },
    )
    assert response.status_code == 400
    assert "Host changed" in response.json()["fields"]["password"][0]
    assert not Email.objects.exists() and not SmtpDraft.objects.exists()


def test_page_test_with_insecure_turned_on_asks_for_the_password(
    demo, login, partner_config
):
    response = login(demo["acme_admin"]).post(
        "/ops/smtp/test",
        {
            "host": "smtp.acme.example",
            "port": "587",
            "security": "starttls",
            "use_insecure": "on",
            "username": "mailer@acme.example",
            "password": "",
            "retries": "3",
            "recipient": "me@acme.example",
        },
    )
    assert response.status_code == 400
    assert (
        "Certificate verification turned off"
        in (response.json()["fields"]["password"][0])
    )
    assert not Email.objects.exists() and not SmtpDraft.objects.exists()


def test_page_test_names_a_bad_recipient(demo, login):
    response = login(demo["acme_admin"]).post(
        "/ops/smtp/test",
        {"host": "smtp.acme.example", "port": "587", "retries": "3", "recipient": "x"},
    )
    assert response.status_code == 400
    assert "recipient" in response.json()["fields"]


def test_read_only_users_cannot_send_tests(demo, login, partner_config):
    user = demo["acme_admin"]
    user.role = "read_only"
    user.save()
    response = login(user).post(
        "/ops/smtp/test",
        {"host": "h.example", "port": "25", "recipient": "a@b.example"},
    )
    assert response.status_code == 403
    assert not Email.objects.exists()


# -- tests through a configuration of another level --------------------------------


def org_user(organization, email: str, **fields):
    from tenants.models import User

    return User.objects.create_user(email, organization=organization, **fields)


def test_an_org_admin_using_the_partners_configuration_reaches_only_its_users(
    demo, partner_config
):
    # given: acme-prod has no configuration of its own: the partner's is in effect
    client = api(demo["prod_admin"])
    colleague = org_user(demo["acme-prod"], "colleague@acme-prod.example")
    # when / then: an outside address, or a user of another organization, is refused
    for outsider in ("victim@elsewhere.example", "org-admin@acme-dev.example"):
        response = verify(client, recipient_email=outsider)
        assert response.status_code == 400
        message = " ".join(response.json()["fields"]["recipient_email"])
        assert "a user of your organization" in message
        assert "partner's SMTP configuration" in message
    assert not Email.objects.exists()
    # A user of the organization (any case) gets the standard test.
    response = verify(client, recipient_email="Colleague@acme-prod.example")
    assert response.status_code == 202
    email = Email.objects.get()
    assert email.recipient.lower() == colleague.email
    assert (email.sender, email.subject) == ("", "Test email from the Ops Console")
    assert email.draft is None  # nothing of the partner's is copied
    assert "org-admin@acme-prod.example sent it" in email.body


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"sender_email": "ceo@bank.example"}, "sender_email", "own sender"),
        ({"subject": "Your invoice"}, "subject", "standard test text"),
        ({"body": "Click here"}, "body", "standard test text"),
    ],
)
def test_an_org_admin_using_the_partners_configuration_cannot_set_the_message(
    demo, partner_config, body, field, message
):
    response = verify(
        api(demo["prod_admin"]),
        recipient_email="org-admin@acme-prod.example",
        **body,
    )
    assert response.status_code == 400
    text = " ".join(response.json()["fields"][field])
    assert message in text and "partner's SMTP configuration" in text
    assert not Email.objects.exists()


def test_the_configurations_own_sender_may_be_named(demo, partner_config):
    partner_config.sender_email = "alerts@acme.example"
    partner_config.save()
    response = verify(
        api(demo["prod_admin"]),
        recipient_email="org-admin@acme-prod.example",
        sender_email="Alerts@acme.example",
    )
    assert response.status_code == 202


def test_a_partner_admin_using_the_controller_default_reaches_only_its_tenants(
    demo, controller_smtp
):
    controller_smtp(ADDR="mail.controller.example", PORT="25", USE_TLS="false")
    client = api(demo["acme_admin"])
    for outsider in ("victim@elsewhere.example", "org-admin@globex-main.example"):
        response = verify(client, recipient_email=outsider)
        assert response.status_code == 400
        message = " ".join(response.json()["fields"]["recipient_email"])
        assert "a user of your partner or of one of its organizations" in message
        assert "controller's default SMTP configuration" in message
    response = verify(client, recipient_email="ops@acme.example", subject="Hi")
    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"recipient_email", "subject"}
    assert not Email.objects.exists()
    # Its own users and those of its organizations are fine.
    assert (
        verify(client, recipient_email="partner-admin@acme.example").status_code == 202
    )
    Email.objects.update(status=EmailStatus.SENT)
    assert (
        verify(client, recipient_email="org-admin@acme-dev.example").status_code == 202
    )


def test_a_verification_through_another_levels_configuration_follows_the_rule(
    demo, partner_config
):
    from smtp.services import smtp_test_email_request
    from smtp.validators import SmtpValidationError
    from tenants.selectors import tenant_scope_for_user

    admin = demo["prod_admin"]
    scope = tenant_scope_for_user(user=admin)
    with pytest.raises(SmtpValidationError) as refused:
        smtp_test_email_request(
            scope=scope,
            actor=admin,
            recipient="probe@elsewhere.example",
            verify_only=True,
        )
    assert "a user of your organization" in refused.value.errors["recipient"][0]
    assert not Email.objects.exists()


def test_an_org_admin_testing_its_own_configuration_keeps_every_freedom(
    demo, partner_config
):
    SmtpConfiguration.objects.create(
        partner=demo["acme"],
        organization=demo["acme-prod"],
        host="smtp.prod.example",
        security=Security.STARTTLS,
    )
    response = verify(
        api(demo["prod_admin"]),
        recipient_email="anyone@elsewhere.example",
        sender_email="noreply@prod.example",
        subject="Hello",
        body="Body",
    )
    assert response.status_code == 202
    email = Email.objects.get()
    assert (email.recipient, email.sender, email.subject, email.body) == (
        "anyone@elsewhere.example",
        "noreply@prod.example",
        "Hello",
        "Body",
    )


def test_page_test_of_its_own_values_keeps_every_freedom_for_an_inheriting_org(
    demo, login, partner_config
):
    # The page always tests the form's values: a draft of the organization's own.
    response = login(demo["prod_admin"]).post(
        "/console/infrastructure/system/settings/smtp/test",
        {
            "host": "smtp.prod.example",
            "port": "587",
            "security": "starttls",
            "retries": "3",
            "recipient": "anyone@elsewhere.example",
            "mode": "send",
        },
    )
    assert response.status_code == 202
    email = Email.objects.get()
    assert email.recipient == "anyone@elsewhere.example"
    assert email.draft.host == "smtp.prod.example"
    assert email.draft.password is None  # nothing of the partner's is used


def test_tests_through_another_levels_configuration_are_limited_per_tenant(
    demo, partner_config, settings
):
    settings.SMTP_TEST_RATE_PER_TENANT_PER_MINUTE = 3
    admins = [demo["prod_admin"]] + [
        org_user(demo["acme-prod"], f"admin{n}@acme-prod.example") for n in range(3)
    ]
    # given: three admins of the organization each sent one test this minute
    for admin in admins[:3]:
        response = verify(api(admin), recipient_email="org-admin@acme-prod.example")
        assert response.status_code == 202
        Email.objects.update(status=EmailStatus.SENT)
    # when: a fourth admin asks
    response = verify(api(admins[3]), recipient_email="org-admin@acme-prod.example")
    # then
    assert response.status_code == 429
    assert (
        "At most 3 test emails a minute for your organization"
        in (response.json()["error"])
    )
    assert 1 <= int(response["Retry-After"]) <= 61
    assert Email.objects.count() == 3
    # The partner's admin testing its own configuration is not held up by it.
    own = verify(api(demo["acme_admin"]), recipient_email="ops@elsewhere.example")
    assert own.status_code == 202
    # A minute later the organization may test again.
    Email.objects.update(created_at=timezone.now() - timedelta(minutes=2))
    again = verify(api(admins[3]), recipient_email="org-admin@acme-prod.example")
    assert again.status_code == 202
