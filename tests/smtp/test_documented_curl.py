"""The documented curl commands, run as written by real curl against a live server."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from smtp.models import SmtpConfiguration

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")

CANARY = "canary-curl-pw-Wq5"
# The documented body, line for line, with the placeholders filled in.
DOCUMENTED_POST_BODY = """{
"email_config": {
"smtp_config": {
"username": "mailer@acme.example",
"password": "<SMTP_PASSWORD>",
"host": "smtp.acme.example",
"port": 587,
"use_tls": true,
"use_insecure": false,
"retries": 3
}
}
}"""


def curl(*args: str) -> tuple[int, str]:
    """Run curl; return the HTTP status and the body."""
    result = subprocess.run(
        ["curl", "-sS", "-w", "\n%{http_code}", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    body, _, code = result.stdout.rpartition("\n")
    return int(code), body


@pytest.fixture
def session_id(live_server, demo, tmp_path) -> str:
    jar = tmp_path / "cookies.txt"
    status, body = curl(
        "-X",
        "POST",
        f"{live_server.url}/auth/v1/login/",
        "-c",
        str(jar),
        "--data-raw",
        '{"username": "partner-admin@acme.example", "password": "Acme-Partner-Pass-1"}',
    )
    assert status == 200, body
    for line in jar.read_text().splitlines():
        fields = line.split("\t")
        if len(fields) == 7 and fields[5] == "rsid":
            return fields[6]
    raise AssertionError("the login set no rsid cookie")


def test_the_documented_post_get_delete_work_as_written(live_server, session_id):
    url = live_server.url
    # Configure SMTP via API (documented).
    status, body = curl(
        "-X",
        "POST",
        f"{url}/event/v1/email/config",
        "-b",
        f"rsid={session_id}",
        "--data-raw",
        DOCUMENTED_POST_BODY.replace("<SMTP_PASSWORD>", CANARY),
    )
    assert status == 201, body
    assert json.loads(body)["email_config"]["smtp_config"]["password_set"] is True
    assert CANARY not in body
    assert SmtpConfiguration.objects.get().password == CANARY

    # Get SMTP configuration (documented).
    status, body = curl(f"{url}/event/v1/email/config", "-b", f"rsid={session_id}")
    assert status == 200, body
    assert json.loads(body)["effective"]["source"] == "partner"
    assert CANARY not in body

    # Delete SMTP configuration (documented).
    status, body = curl(
        "-X", "DELETE", f"{url}/event/v1/email/config", "-b", f"rsid={session_id}"
    )
    assert status == 204, body
    assert not SmtpConfiguration.objects.exists()
