"""`make run` (opsconsole.devstack): ports, and defaults that follow them."""

from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from core import env as core_env
from opsconsole.devstack import port_in_use, port_problem
from tests.support.smtp_servers import free_port

ROOT = Path(__file__).resolve().parent.parent
# A password-reset link as the email's body carries it.
LINK = re.compile(r"https?://\S+/password-reset/\S+/\S+")


@pytest.fixture
def clean_environment(monkeypatch):
    for name in (
        "PORT",
        "DEV_SMTP_PORT",
        "PUBLIC_URL",
        "FW_EVENT_SMTP_SERVER_ADDR",
        "FW_EVENT_SMTP_SERVER_PORT",
        "FW_EVENT_SMTP_SERVER_USE_TLS",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_dev_smtp_port_moves_the_controller_default_with_it(clean_environment):
    # given
    clean_environment.setenv("DEV_SMTP_PORT", "2526")
    clean_environment.setenv("PORT", "8011")
    # when
    stack = core_env.dev_stack()
    # then the controller default the pages show is the sink, links use PORT
    assert (stack.web_port, stack.sink_port) == (8011, 2526)
    for name, value in stack.environment.items():
        clean_environment.setenv(name, value)
    controller = core_env.controller_smtp()
    assert (controller.host, controller.port, controller.use_tls) == (
        "127.0.0.1",
        2526,
        False,
    )
    assert stack.environment["PUBLIC_URL"] == "http://127.0.0.1:8011"


def test_a_controller_server_of_ones_own_is_kept(clean_environment):
    clean_environment.setenv("DEV_SMTP_PORT", "2526")
    clean_environment.setenv("FW_EVENT_SMTP_SERVER_ADDR", "smtp.example.com")
    clean_environment.setenv("PUBLIC_URL", "https://console.example.com")
    stack = core_env.dev_stack()
    assert stack.environment["FW_EVENT_SMTP_SERVER_ADDR"] == "smtp.example.com"
    assert "FW_EVENT_SMTP_SERVER_PORT" not in stack.environment
    assert stack.environment["PUBLIC_URL"] == "https://console.example.com"


def test_a_malformed_port_names_the_variable(clean_environment):
    clean_environment.setenv("DEV_SMTP_PORT", "twenty-five")
    with pytest.raises(ValueError, match=r"^DEV_SMTP_PORT must be a port number"):
        core_env.dev_stack()


def test_the_same_port_twice_names_dev_smtp_port():
    port = free_port()
    assert port_problem(port, port).startswith(
        f"PORT and DEV_SMTP_PORT are both {port}: set DEV_SMTP_PORT"
    )


def _run_devstack(**variables: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, **variables}
    return subprocess.run(
        [sys.executable, "-m", "opsconsole.devstack"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("variable", "what"),
    [("PORT", "the web server"), ("DEV_SMTP_PORT", "the development SMTP sink")],
)
def test_a_port_in_use_stops_make_run_with_one_line_naming_the_variable(variable, what):
    # given something listening where make run would
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        busy = listener.getsockname()[1]
        ports = {"PORT": str(free_port()), "DEV_SMTP_PORT": str(free_port())}
        ports[variable] = str(busy)
        # when
        result = _run_devstack(**ports)
    # then: one line, no traceback, nothing started
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(
        f"Port {busy} for {what} is already in use on 127.0.0.1: set {variable} "
        f"to a free port, e.g. {variable}="
    )
    assert lines[0].endswith(" make run.")


def test_a_malformed_port_stops_make_run_with_one_line():
    result = _run_devstack(PORT="80 80")
    assert result.returncode == 2
    assert result.stderr == (
        "PORT must be a port number (1-65535), not '80 80': "
        "for example PORT=8000 make run.\n"
    )


def _get(opener, url: str) -> str:
    with opener.open(url, timeout=10) as response:
        return response.read().decode()


def _wait_for(
    predicate, *, timeout: float, what: str, log: Path, process: subprocess.Popen
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(
        f"{what} within {timeout} s; make run said:\n{log.read_text()}"
    )


@pytest.mark.e2e
def test_make_run_on_other_ports_delivers_a_password_reset_with_the_served_link(
    tmp_path,
):
    """The whole development stack (web, worker, sink) on ports other than the
    defaults, on its own SQLite database and file-system broker."""
    web_port, sink_port = free_port(), free_port()
    log = tmp_path / "make-run.log"
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("FW_EVENT_SMTP_SERVER_")
        and name not in ("REDIS_URL", "PUBLIC_URL", "DJANGO_SETTINGS_MODULE", "DEBUG")
    }
    environment |= {
        "PORT": str(web_port),
        "DEV_SMTP_PORT": str(sink_port),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "PYTHONUNBUFFERED": "1",
    }
    with log.open("w") as output:
        stack = subprocess.Popen(
            [sys.executable, "-m", "opsconsole.devstack"],
            cwd=ROOT,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{web_port}"
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )

    def serving() -> bool:
        try:
            _get(opener, f"{base}/password-reset/")
        except OSError:
            return False
        return "worker" not in log.read_text() or "ready" in log.read_text()

    try:
        _wait_for(
            serving, timeout=180, what="the web server answers", log=log, process=stack
        )
        # when: someone asks for a password reset
        form = _get(opener, f"{base}/password-reset/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)[1]
        request = urllib.request.Request(  # noqa: S310 (http only)
            f"{base}/password-reset/",
            data=urllib.parse.urlencode(
                {
                    "csrfmiddlewaretoken": token,
                    "email": "partner-admin@acme.example",
                }
            ).encode(),
            headers={"Referer": f"{base}/password-reset/"},
        )
        opener.open(request, timeout=10).close()
        # then: the sink on DEV_SMTP_PORT prints it, with a link on PORT
        _wait_for(
            lambda: LINK.search(log.read_text()),
            timeout=60,
            what="the reset email reaches the sink",
            log=log,
            process=stack,
        )
        text = log.read_text()
        assert f"Controller SMTP default: 127.0.0.1:{sink_port}" in text
        links = LINK.findall(text)
        assert links, text
        assert all(
            link.startswith(f"http://127.0.0.1:{web_port}/") for link in links
        ), links
    finally:
        stack.send_signal(signal.SIGTERM)
        try:
            stack.wait(timeout=30)
        except subprocess.TimeoutExpired:
            stack.kill()
            stack.wait(timeout=10)
    assert not port_in_use(web_port) and not port_in_use(sink_port)
