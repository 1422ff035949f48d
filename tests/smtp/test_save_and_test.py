"""Save & test on the SMTP page, with a real worker and real SMTP servers: it
saves only what passed a verification, and marks what was saved without one."""

from __future__ import annotations

import pytest
from django.test import Client

from smtp.models import Email, EmailKind, SmtpConfiguration
from tests.support.smtp_servers import SilentListener, SmtpTestServer, free_port

OPS_URL = "/ops/smtp/"


@pytest.fixture
def sink():
    server = SmtpTestServer()
    yield server
    server.stop()


def admin(demo) -> Client:
    client = Client()
    client.force_login(demo["acme_admin"])
    return client


def form(port: int, **changes) -> dict[str, str]:
    return {
        "host": "127.0.0.1",
        "port": str(port),
        "security": "none",
        "retries": "3",
        "recipient": "partner-admin@acme.example",
        **changes,
    }


def verifications() -> int:
    return Email.objects.filter(kind=EmailKind.VERIFY).count()


def test_save_and_test_saves_what_passed_and_marks_it_tested(worker, demo, sink):
    client = admin(demo)
    response = client.post(OPS_URL, form(sink.port, action="save_and_test"))
    assert response.status_code == 302, response.content.decode()[-2000:]
    configuration = SmtpConfiguration.objects.get(organization__isnull=True)
    assert configuration.port == sink.port
    assert configuration.tested_at is not None
    page = client.get(OPS_URL).content.decode()
    assert "saved and tested" in page
    assert 'id="config-tested"' in page
    # a verification: every step up to RCPT TO, nothing sent
    assert verifications() == 1
    assert sink.messages == []


def test_a_failed_test_saves_nothing_and_save_anyway_marks_it_untested(worker, demo):
    client = admin(demo)
    closed = free_port()
    # when: Save & test on a port where nothing listens
    response = client.post(OPS_URL, form(closed, action="save_and_test"))
    # then: nothing is saved; the failure is shown with Save anyway
    assert response.status_code == 200
    html = response.content.decode()
    assert "Not saved: the test failed at Connect" in html
    assert "Save anyway" in html
    assert not SmtpConfiguration.objects.exists()
    # when: the admin saves anyway
    assert client.post(OPS_URL, form(closed, action="save")).status_code == 302
    # then: saved, and marked untested on the page
    assert SmtpConfiguration.objects.get().tested_at is None
    assert 'id="config-untested"' in client.get(OPS_URL).content.decode()


def test_a_hanging_server_is_reported_within_the_session_deadline(worker, demo):
    silent = SilentListener()
    try:
        response = admin(demo).post(OPS_URL, form(silent.port, action="save_and_test"))
    finally:
        silent.stop()
    assert response.status_code == 200
    assert "Not saved" in response.content.decode()
    assert not SmtpConfiguration.objects.exists()


def test_the_pages_verification_of_the_same_values_is_taken_not_repeated(
    worker, demo, sink
):
    client = admin(demo)
    # given: the page verified these values (the admin watched the steps)
    started = client.post("/ops/smtp/test", {**form(sink.port), "mode": "verify"})
    assert started.status_code == 202, started.content
    answer = client.get(started.json()["status_url"], {"wait": "20"}).json()
    assert answer["status"] == "sent"
    # when: it saves with that verification
    response = client.post(
        OPS_URL,
        form(sink.port, action="save_and_test", verified_email=str(answer["id"])),
    )
    # then: saved as tested, without a second verification
    assert response.status_code == 302
    assert SmtpConfiguration.objects.get().tested_at is not None
    assert verifications() == 1
    # and: a verification of another server is not taken: verified again
    other = SmtpTestServer()
    try:
        response = client.post(
            OPS_URL,
            form(other.port, action="save_and_test", verified_email=str(answer["id"])),
        )
    finally:
        other.stop()
    assert response.status_code == 302
    assert verifications() == 2
