"""A real stack for real-browser journeys.

The session starts, against a fresh database of its own: migrations and the demo
data, gunicorn serving the app (static files collected, DEBUG off, as in
production), a Celery worker, and aiosmtpd servers: a plain sink (the controller
default) and a STARTTLS server with AUTH and a certificate from a test CA.
Chromium (Debian's package) is driven by Playwright.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.oauth2 import TokenServer, XOAuth2Handler
from tests.support.smtp_servers import (
    Behaviour,
    Certificates,
    SmtpTestServer,
    free_port,
    make_certificates,
)
from tests.support.worker import WorkerProcess

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SCREENSHOTS = ROOT / "var" / "screenshots"
# The password typed in the journeys: it must never come back from the server.
CANARY = "Canary-Pw-7xQ!e2e"
SMTP_USER = "mailer@acme.example"


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(
        reason="Chromium is not installed (apt-get install chromium); "
        ".ci/run installs it, so CI runs these journeys."
    )
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
            if not Path(CHROMIUM).exists():
                item.add_marker(skip)


@dataclass
class Stack:
    base_url: str
    env: dict[str, str]
    sink: SmtpTestServer
    auth_server: SmtpTestServer
    # The OAuth2 token endpoint (Microsoft's authority for the stack) and an SMTP
    # server that takes only XOAUTH2 with its tokens.
    token_server: TokenServer
    xoauth2_server: SmtpTestServer
    # Requires a client certificate signed by ``certs.client_ca`` (mutual TLS).
    mtls_server: SmtpTestServer | None = None
    certs: Certificates | None = None
    processes: list[subprocess.Popen] = field(default_factory=list)
    workers: list = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def manage(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )

    def log_tail(self) -> str:
        return "\n".join(
            f"== {log.name}\n"
            + "\n".join(log.read_text(errors="replace").splitlines()[-30:])
            for log in self.logs
            if log.exists()
        )


def _database(tag: str) -> tuple[str, callable]:
    """A fresh database URL for the stack, and how to drop it afterwards."""
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        import psycopg

        base, _, _name = url.rpartition("/")
        name = f"e2e_{tag}"
        with psycopg.connect(f"{base}/postgres", autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')

        def drop() -> None:
            with psycopg.connect(f"{base}/postgres", autocommit=True) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        return f"{base}/{name}", drop
    path = ROOT / "var" / f"e2e-{tag}.sqlite3"

    def remove() -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)

    return f"sqlite:///{path}", remove


def _wait_for(url: str, timeout: float, stack: Stack) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer:\n{stack.log_tail()}")


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed")
    tag = uuid.uuid4().hex[:10]
    certs = make_certificates(tmp_path_factory.mktemp("e2e-certs"))
    sink = SmtpTestServer()
    auth_server = SmtpTestServer(starttls=certs.server, users={SMTP_USER: CANARY})
    token_server = TokenServer(cert=certs.server)
    xoauth2_server = SmtpTestServer(
        starttls=certs.server, handler=XOAuth2Handler(Behaviour(), token_server)
    )
    mtls_server = SmtpTestServer(starttls=certs.server, client_ca=certs.client_ca)
    database_url, drop_database = _database(tag)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FW_EVENT_")},
        "DJANGO_SETTINGS_MODULE": "opsconsole.settings",
        "DEBUG": "false",
        "SECRET_KEY": f"e2e-secret-{uuid.uuid4().hex}{uuid.uuid4().hex}",
        "FERNET_KEYS": f"e2e-fernet-{uuid.uuid4().hex}",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "PUBLIC_URL": base_url,
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
        "SECURE_SSL_REDIRECT": "false",
        "SECURE_HSTS_SECONDS": "0",
        "DATABASE_URL": database_url,
        "CELERY_QUEUE": f"e2e-{tag}",
        "STATIC_MANIFEST": "true",
        "STATIC_ROOT": str(tmp_path_factory.mktemp("e2e-static")),
        "SMTP_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128",
        "SMTP_CA_BUNDLE": str(certs.ca),
        "SMTP_OAUTH2_CA_BUNDLE": str(certs.ca),
        "SMTP_OAUTH2_MICROSOFT_AUTHORITY": f"https://localhost:{token_server.port}",
        "SMTP_OAUTH2_GOOGLE_TOKEN_URL": token_server.url("/google/token"),
        "SMTP_TIMEOUT": "5",
        "FW_EVENT_SMTP_SERVER_ADDR": "127.0.0.1",
        "FW_EVENT_SMTP_SERVER_PORT": str(sink.port),
        "FW_EVENT_SMTP_SERVER_USE_TLS": "false",
        "ACCOUNT_CREATION_STRATEGY": "VERIFY",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "2",
        "GUNICORN_THREADS": "4",
    }
    stack = Stack(
        base_url=base_url,
        env=env,
        sink=sink,
        auth_server=auth_server,
        token_server=token_server,
        xoauth2_server=xoauth2_server,
        mtls_server=mtls_server,
        certs=certs,
    )
    try:
        stack.manage("migrate", "--noinput", "-v", "0")
        stack.manage("seed_demo", "--force", "-v", "0")
        stack.manage("collectstatic", "--noinput", "-v", "0")
        web_log = ROOT / "var" / f"e2e-{tag}-web.log"
        stack.logs.append(web_log)
        stack.processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "opsconsole.wsgi:application",
                    "--config",
                    "gunicorn.conf.py",
                ],
                cwd=ROOT,
                env=env,
                stdout=web_log.open("ab"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        worker = WorkerProcess(
            queue=env["CELERY_QUEUE"],
            env=env,
            log_path=ROOT / "var" / f"e2e-{tag}-worker.log",
        ).start()
        stack.logs.append(worker.log_path)
        stack.workers.append(worker)
        _wait_for(f"{base_url}/login/", 60, stack)
        yield stack
    finally:
        for worker in stack.workers:
            worker.stop()
        for process in stack.processes:
            if process.poll() is None:
                process.terminate()
        for process in stack.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        sink.stop()
        auth_server.stop()
        xoauth2_server.stop()
        token_server.stop()
        mtls_server.stop()
        drop_database()


@pytest.fixture(scope="session")
def browser(stack):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@dataclass
class Seen:
    """What a browser context saw: console errors and every response."""

    console_errors: list[str] = field(default_factory=list)
    responses: list = field(default_factory=list)
    # Errors a journey causes on purpose (e.g. opening a page that is a 404).
    expected: list[str] = field(default_factory=list)


def expect_console_error(page, text: str) -> None:
    """Declare that ``page`` will log an error containing ``text`` on purpose."""
    page.seen.expected.append(text)


@pytest.fixture
def open_browser(browser, stack, request):
    """``open_browser(width, height, color_scheme)``: a fresh browser context
    (``color_scheme`` "light" or "dark" is what prefers-color-scheme answers);
    checked at teardown.

    Every response body, every page's HTML and the console are checked for the
    canary password, and the console for errors.
    """
    contexts = []

    def make(
        width: int = 1280, height: int = 800, color_scheme: str = "light", **options
    ):
        # options: more of Playwright's context options, e.g. timezone_id.
        context = browser.new_context(
            viewport={"width": width, "height": height},
            color_scheme=color_scheme,
            base_url=stack.base_url,
            accept_downloads=True,
            **options,
        )
        context.set_default_timeout(20_000)
        seen = Seen()
        page = context.new_page()
        page.seen = seen

        def on_console(message) -> None:
            if message.type == "error":
                where = (message.location or {}).get("url", "")
                seen.console_errors.append(f"{message.text} [{where}]")
            if CANARY in message.text:
                seen.console_errors.append(f"canary in console: {message.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda error: seen.console_errors.append(str(error)))
        context.on("response", lambda response: seen.responses.append(response))
        contexts.append((context, page, seen))
        request.node.pages = [p for _, p, _ in contexts]
        return page

    yield make
    problems = []
    for context, page, seen in contexts:
        for response in seen.responses:
            try:
                body = response.body()
            except Exception:  # noqa: S112 - redirects and aborted requests have no body
                continue
            if CANARY.encode() in body:
                problems.append(f"canary in the response of {response.url}")
        if not page.is_closed() and CANARY in page.content():
            problems.append(f"canary in the HTML of {page.url}")
        problems.extend(
            f"console: {error}"
            for error in seen.console_errors
            if not any(expected in error for expected in seen.expected)
        )
        context.close()
    assert not problems, problems


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for number, page in enumerate(getattr(item, "pages", [])):
            if not page.is_closed():
                page.screenshot(
                    path=str(SCREENSHOTS / f"{item.name}-failed-{number}.png"),
                    full_page=True,
                )


def screenshot(page, name: str) -> Path:
    """Save the page (full length) under var/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def login(page, email: str, password: str) -> None:
    page.goto("/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()


def api_call(
    browser, stack: Stack, email: str, password: str, method: str, url: str, data=None
):
    """Log in through the JSON API and make one call (a journey's precondition)."""
    context = browser.new_context(base_url=stack.base_url)
    try:
        login_answer = context.request.post(
            "/auth/v1/login/", data={"username": email, "password": password}
        )
        assert login_answer.ok, login_answer.text()
        answer = context.request.fetch(url, method=method, data=data)
        return answer.status, answer.json() if answer.body() else None
    finally:
        context.close()


def set_partner_smtp(
    browser, stack: Stack, email: str, password: str, smtp_config: dict
):
    """Precondition of a journey: the partner's configuration, via the API."""
    status, body = api_call(
        browser,
        stack,
        email,
        password,
        "POST",
        "/event/v1/email/config",
        {"email_config": {"smtp_config": smtp_config}},
    )
    assert status in (200, 201), body


def wait_for_message(server: SmtpTestServer, recipient: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in list(server.messages):
            if recipient in message.rcpt_tos:
                return message
        time.sleep(0.1)
    raise AssertionError(f"no message to {recipient} within {timeout} s")


SECURITY_LABELS = {
    "none": "None: plain SMTP, not encrypted",
    "starttls": "STARTTLS (required)",
    "ssl": "Implicit TLS (SMTPS)",
}


def set_security(page, value: str) -> None:
    """Pick the SMTP form's Security choice (none, starttls or ssl)."""
    page.get_by_label(SECURITY_LABELS[value], exact=True).check()
