"""Long polls of the verification API (``?wait=N``) against a real gunicorn.

Each wait holds a gunicorn thread. The cap, the per-user limit (counted in the
database, so across web processes) and the per-process limit keep threads free
for everything else, ``/healthz`` first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone

from core.longpoll import WaitRefused, api_wait
from core.models import ApiWait
from smtp.models import Email, EmailKind, EmailStatus, Security, SmtpConfiguration
from tests.support.smtp_servers import free_port
from tests.support.worker import ROOT, database_url_for_test_db, wait_until

STATUS_URL = "/event/v1/email/config/verification/{}"
# The cap the gunicorn below runs with (the default is 10 s; short keeps it fast).
CAP = 3


def pending_email(partner) -> Email:
    """A test email nobody sends: it stays queued for the whole test."""
    return Email.objects.create(
        kind=EmailKind.TEST,
        status=EmailStatus.QUEUED,
        partner=partner,
        recipient="ops@acme.example",
        subject="Pending",
        body="Pending",
        message_id=f"<{uuid.uuid4().hex}@test>",
        # Out of the sweeper's sight: no worker picks it up meanwhile.
        next_attempt_at=timezone.now() + timedelta(hours=1),
        enqueued_at=timezone.now(),
    )


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["rsid"].value


class Gunicorn:
    def __init__(self, *, threads: int, log: Path):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": database_url_for_test_db(),
            "GUNICORN_BIND": f"127.0.0.1:{self.port}",
            "WEB_CONCURRENCY": "1",
            "GUNICORN_THREADS": str(threads),
            "API_WAIT_MAX_SECONDS": str(CAP),
        }
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "opsconsole.wsgi:application",
                "--config",
                "gunicorn.conf.py",
                # Other servers on this machine may use the default control socket.
                "--no-control-socket",
            ],
            cwd=ROOT,
            env=env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def get(self, path: str, *, cookie: str = "", timeout: float = 60):
        """(status, headers, JSON body, seconds taken) of a GET."""
        request = urllib.request.Request(self.base_url + path)  # noqa: S310 - loopback
        if cookie:
            request.add_header("Cookie", f"rsid={cookie}")
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback
                answer = (response.status, response.headers, response.read())
        except urllib.error.HTTPError as error:
            answer = (error.code, error.headers, error.read())
        status, headers, body = answer
        return status, headers, json.loads(body or b"{}"), time.monotonic() - started

    def up(self) -> bool:
        try:
            return self.get("/healthz", timeout=1)[0] == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


@pytest.fixture
def demo(demo):
    """The demo tenants, with a second admin of the acme partner."""
    from tenants.models import User

    demo["acme_admin_2"] = User.objects.create_user(
        "partner-admin-2@acme.example", partner=demo["acme"]
    )
    return demo


@pytest.fixture
def gunicorn(transactional_db, tmp_path):
    """gunicorn as deployed (gunicorn.conf.py), 1 process x 4 threads."""
    server = Gunicorn(threads=4, log=tmp_path / "gunicorn.log")
    try:
        wait_until(server.up, timeout=60, interval=0.2)
    except TimeoutError:
        server.stop()
        pytest.fail("gunicorn did not start:\n" + server.log.read_text())
    yield server
    server.stop()


def test_a_users_third_wait_is_refused_and_healthz_stays_fast(demo, gunicorn):
    # given: a pending test email and one user's session
    email = pending_email(demo["acme"])
    cookie = session_cookie(demo["acme_admin"])
    path = STATUS_URL.format(email.pk) + "?wait=30"
    with ThreadPoolExecutor(max_workers=4) as pool:
        # when: four concurrent waits of that user, on a server with four threads
        started = time.monotonic()
        futures = [pool.submit(gunicorn.get, path, cookie=cookie) for _ in range(4)]
        # then: two are refused at once...
        done, pending = wait(futures, timeout=2.5, return_when="ALL_COMPLETED")
        refused = [future.result() for future in done]
        assert len(refused) == 2 and len(pending) == 2, gunicorn.log.read_text()
        for status, headers, body, _ in refused:
            assert status == 429
            assert "At most 2 waiting requests" in body["error"]
            assert 1 <= int(headers["Retry-After"]) <= CAP + 1
        # ...while two hang, /healthz answers fast...
        status, _, _, seconds = gunicorn.get("/healthz", timeout=5)
        assert status == 200 and seconds < 1.0
        assert time.monotonic() - started < CAP  # (measured while they hung)
        # ...and ?wait=30 answers within the cap, still pending.
        for future in pending:
            status, _, body, seconds = future.result(timeout=CAP + 5)
            assert status == 200 and body["status"] == "queued"
            assert CAP - 0.5 <= seconds <= CAP + 1.5
    # Every slot was given back.
    assert not ApiWait.objects.exists()


def test_a_process_spends_at_most_half_its_threads_waiting(demo, gunicorn):
    # given: one user's two waits take half of the four threads
    email = pending_email(demo["acme"])
    first = session_cookie(demo["acme_admin"])
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [
            pool.submit(
                gunicorn.get, STATUS_URL.format(email.pk) + "?wait=30", cookie=first
            )
            for _ in range(2)
        ]
        wait_until(lambda: ApiWait.objects.count() == 2, timeout=5)
        # when: another user of the tenant asks to wait too
        second = session_cookie(demo["acme_admin_2"])
        status, _, body, seconds = gunicorn.get(
            STATUS_URL.format(email.pk) + "?wait=30", cookie=second
        )
        # then: it is answered at once, without waiting
        assert status == 200 and body["status"] == "queued"
        assert seconds < 1.0
        assert all(not future.done() for future in futures)
    assert [future.result()[0] for future in futures] == [200, 200]


def test_waits_are_counted_across_processes(demo, gunicorn):
    # given: the user already waits twice in another process (this one)
    email = pending_email(demo["acme"])
    user = demo["acme_admin"]
    cookie = session_cookie(user)
    path = STATUS_URL.format(email.pk) + "?wait=2"
    with ExitStack() as elsewhere:
        for _ in range(2):
            elsewhere.enter_context(api_wait(user=user, seconds=CAP))
        # when / then: gunicorn refuses a third at once
        status, headers, body, seconds = gunicorn.get(path, cookie=cookie)
        assert status == 429 and seconds < 1.0
        assert headers["Retry-After"]
        # Another user is not held up by it.
        other = session_cookie(demo["prod_admin"])
        pending_org = pending_email(demo["acme"])
        pending_org.organization = demo["acme-prod"]
        pending_org.save()
        status, _, body, _ = gunicorn.get(
            STATUS_URL.format(pending_org.pk) + "?wait=1", cookie=other
        )
        assert status == 200
    # Once those end, the user may wait again.
    status, _, body, seconds = gunicorn.get(path, cookie=cookie)
    assert status == 200 and body["status"] == "queued" and seconds >= 1.5


# -- in the test process (Django's test client) --------------------------------------


@pytest.fixture
def partner_config(demo):
    return SmtpConfiguration.objects.create(
        partner=demo["acme"], host="smtp.acme.example", security=Security.STARTTLS
    )


@pytest.mark.django_db
def test_a_wait_left_by_a_dead_request_expires(demo, settings):
    settings.API_WAIT_MAX_SECONDS = 1
    user = demo["acme_admin"]
    email = pending_email(demo["acme"])
    client = Client()
    client.force_login(user)
    url = STATUS_URL.format(email.pk) + "?wait=5"
    # given: two slots a crashed request left behind, still within their time
    slots = [
        ApiWait.objects.create(
            user=user, expires_at=timezone.now() + timedelta(seconds=s)
        )
        for s in (8, 9)
    ]
    response = client.get(url)
    assert response.status_code == 429
    assert "At most 2 waiting requests" in response.json()["error"]
    assert 1 <= int(response["Retry-After"]) <= 9
    # when: they expire
    ApiWait.objects.filter(pk__in=[s.pk for s in slots]).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    # then: the user may wait again, for at most the cap
    started = time.monotonic()
    response = client.get(url)
    assert response.status_code == 200
    assert 0.8 <= time.monotonic() - started < 3
    assert not ApiWait.objects.exists()


@pytest.mark.django_db
def test_a_refused_wait_on_the_verification_post_queues_nothing(demo, partner_config):
    user = demo["acme_admin"]
    client = Client()
    client.force_login(user)
    with ExitStack() as busy:
        for _ in range(2):
            busy.enter_context(api_wait(user=user, seconds=5))
        response = client.post(
            "/event/v1/email/config/verification?wait=5",
            data=json.dumps({"recipient_email": "ops@acme.example"}),
            content_type="application/json",
        )
    assert response.status_code == 429
    assert response["Retry-After"]
    assert not Email.objects.exists()


@pytest.mark.django_db
def test_waits_beyond_the_per_user_limit_raise_with_the_time_to_retry(demo):
    user = demo["acme_admin"]
    with api_wait(user=user, seconds=4), api_wait(user=user, seconds=4):
        with pytest.raises(WaitRefused) as refused, api_wait(user=user, seconds=4):
            pass
        assert 1 <= refused.value.retry_after <= 5
        # A wait of 0 s holds no thread: it is never refused.
        with api_wait(user=user, seconds=0) as seconds:
            assert seconds == 0
    assert not ApiWait.objects.exists()
