"""Forgot your password?: one answer for every address, limits, the worker's lookup."""

from __future__ import annotations

import re
import threading
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.db import connection, connections
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from smtp.models import Email, EmailKind, EmailStatus, Security, SmtpConfiguration
from tenants.models import RateLimitCounter
from tenants.ratelimit import rate_limit_hit, rate_limit_key
from tests.support.auth import can_log_in
from tests.support.smtp_servers import SmtpTestServer
from tests.support.worker import wait_until

RESET_URL = "/password-reset/"
KNOWN = "partner-admin@acme.example"
UNKNOWN = "nobody@acme.example"


def ask(client: Client, email: str):
    return client.post(RESET_URL, {"email": email})


@pytest.fixture
def acme_smtp(demo):
    """An SMTP server for acme and its organizations (the partner's configuration)."""
    server = SmtpTestServer()
    SmtpConfiguration.objects.create(
        partner=demo["acme"], host="127.0.0.1", port=server.port, security=Security.NONE
    )
    yield server
    server.stop()


def resets_sent_to(address: str) -> int:
    return Email.objects.filter(
        kind=EmailKind.PASSWORD_RESET, recipient=address, status=EmailStatus.SENT
    ).count()


def test_the_emailed_link_sets_a_new_password(worker, demo, acme_smtp):
    # given: a reset asked for with the address in another case
    response = ask(Client(), "Partner-Admin@Acme.example")
    assert response.status_code == 200
    # when: the worker looks the address up and sends the link
    wait_until(lambda: resets_sent_to(KNOWN), timeout=30)
    email = Email.objects.get(kind=EmailKind.PASSWORD_RESET)
    assert email.partner == demo["acme"] and email.organization is None
    [received] = acme_smtp.messages
    assert received.rcpt_tos == [KNOWN]
    link = re.search(
        r"https?://\S+/password-reset/\S+/",
        received.message.get_body(("plain",)).get_content(),
    )
    assert link, received.message.get_body(("plain",)).get_content()
    # then: the link sets a new password, once
    person = Client()
    form_page = person.get(urlsplit(link.group(0)).path, follow=True)
    assert "new password" in form_page.content.decode().lower()
    done = person.post(
        form_page.redirect_chain[-1][0],
        {"new_password1": "Fresh-Acme-Pass-42", "new_password2": "Fresh-Acme-Pass-42"},
        follow=True,
    )
    assert "Password set. Log in with your new password." in done.content.decode()
    assert can_log_in(KNOWN, "Fresh-Acme-Pass-42")
    assert not can_log_in(KNOWN, "Acme-Partner-Pass-1")


def test_fifty_requests_for_one_address_queue_at_most_three_emails(
    worker, demo, acme_smtp, settings
):
    assert settings.PASSWORD_RESET_LIMIT_PER_ADDRESS == 3
    client = Client()
    spellings = [KNOWN, KNOWN.upper(), " Partner-Admin@acme.example "]
    first = ask(client, KNOWN)
    answers = [ask(client, spellings[n % 3]) for n in range(49)]
    # Every answer is the first one, over the limit too.
    assert {(a.status_code, a.content) for a in answers} == {
        (first.status_code, first.content)
    }
    # A request for another address from another client, asked last: once the
    # worker has sent it, it has taken every task queued before it.
    sentinel = "org-admin@acme-prod.example"
    ask(Client(REMOTE_ADDR="192.0.2.7"), sentinel)
    wait_until(lambda: resets_sent_to(sentinel), timeout=60)
    wait_until(
        lambda: (
            not Email.objects.filter(
                status__in=[EmailStatus.QUEUED, EmailStatus.SENDING]
            ).exists()
        ),
        timeout=30,
    )
    assert Email.objects.filter(recipient=KNOWN).count() == 3
    assert resets_sent_to(KNOWN) == 3
    assert sum(m.rcpt_tos == [KNOWN] for m in acme_smtp.messages) == 3


def test_an_unknown_address_gets_no_email(worker, demo, acme_smtp):
    ask(Client(), UNKNOWN)
    ask(Client(), KNOWN)
    wait_until(lambda: resets_sent_to(KNOWN), timeout=30)
    assert not Email.objects.filter(recipient=UNKNOWN).exists()
    assert [m.rcpt_tos for m in acme_smtp.messages] == [[KNOWN]]


@pytest.mark.django_db
def test_known_unknown_and_limited_addresses_get_byte_identical_answers(demo, settings):
    known = ask(Client(), KNOWN)
    unknown = ask(Client(), UNKNOWN)
    for _ in range(settings.PASSWORD_RESET_LIMIT_PER_ADDRESS):
        limited = ask(Client(), KNOWN)
    assert known.status_code == unknown.status_code == limited.status_code == 200
    assert known.content == unknown.content == limited.content
    assert dict(known.headers) == dict(unknown.headers) == dict(limited.headers)
    assert KNOWN not in known.content.decode()
    assert "If an account uses the address you entered" in known.content.decode()


@pytest.mark.django_db
def test_the_view_does_the_same_queries_for_known_and_unknown_addresses(demo):
    # Timing aside, the work must not depend on whether the address exists: the
    # view counts the request and never looks the user up.
    with CaptureQueriesContext(connection) as for_known:
        ask(Client(), KNOWN)
    with CaptureQueriesContext(connection) as for_unknown:
        ask(Client(), UNKNOWN)
    assert len(for_known) == len(for_unknown) > 0
    for captured in (for_known, for_unknown):
        assert all('"tenants_user"' not in q["sql"] for q in captured)
        assert all('"smtp_email"' not in q["sql"] for q in captured)


@pytest.mark.django_db
def test_over_the_limits_nothing_more_is_queued(
    demo, settings, django_capture_on_commit_callbacks
):
    settings.PASSWORD_RESET_LIMIT_PER_CLIENT = 5
    with django_capture_on_commit_callbacks() as queued:
        for _ in range(4):
            ask(Client(), KNOWN)
    assert len(queued) == settings.PASSWORD_RESET_LIMIT_PER_ADDRESS
    # Two more addresses reach this client's limit of 5; a third is refused...
    with django_capture_on_commit_callbacks() as queued:
        for address in ("a@acme.example", "b@acme.example", "c@acme.example"):
            ask(Client(), address)
    assert len(queued) == 1
    # ...but not from another client.
    with django_capture_on_commit_callbacks() as queued:
        ask(Client(REMOTE_ADDR="192.0.2.8"), "c@acme.example")
    assert len(queued) == 1
    # The counters hold keyed hashes, not the addresses.
    keys = " ".join(RateLimitCounter.objects.values_list("key", flat=True))
    assert "acme.example" not in keys and "127.0.0.1" not in keys


@pytest.mark.django_db
def test_a_bad_address_is_refused_naming_the_field_and_counts_nothing(demo):
    response = ask(Client(), "not-an-address")
    assert response.status_code == 200
    assert "Enter a valid email address." in response.content.decode()
    assert 'name="email"' in response.content.decode()
    assert not RateLimitCounter.objects.exists()


@pytest.mark.django_db
def test_a_window_that_is_over_starts_a_new_count():
    key = rate_limit_key(scope="test", value="someone@example.com")
    window = timedelta(minutes=15)
    start = timezone.now()
    assert [
        rate_limit_hit(key=key, limit=3, window=window, now=start) for _ in range(4)
    ] == [True, True, True, False]
    almost = start + window - timedelta(seconds=1)
    assert not rate_limit_hit(key=key, limit=3, window=window, now=almost)
    later = start + window
    assert [
        rate_limit_hit(key=key, limit=3, window=window, now=later) for _ in range(4)
    ] == [True, True, True, False]


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_never_pass_the_limit_together():
    # Many requests for one key at the same moment, each on its own database
    # connection: exactly `limit` of them get through.
    key = rate_limit_key(scope="test", value="someone@example.com")
    limit, threads = 3, 16
    barrier = threading.Barrier(threads)
    results: list[bool] = []

    def hit() -> None:
        try:
            barrier.wait(timeout=30)
            results.append(
                rate_limit_hit(key=key, limit=limit, window=timedelta(minutes=15))
            )
        finally:
            connections.close_all()

    workers = [threading.Thread(target=hit) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=60)
    assert len(results) == threads
    assert results.count(True) == limit
    assert RateLimitCounter.objects.get(key=key).hits == limit
