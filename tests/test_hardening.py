"""Production hardening: deploy checks, login lockout, CSP, security headers."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from axes.models import AccessAttempt
from django.test import Client

ROOT = Path(__file__).resolve().parents[1]


def production_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SECURE_", "SESSION_", "CSRF_", "STATIC_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="opsconsole.settings",
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(64),
        FERNET_KEYS=secrets.token_urlsafe(32),
        ALLOWED_HOSTS="ops-console.example.com",
        **extra,
    )
    return env


def test_check_deploy_has_no_warnings_with_production_settings():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=production_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_defaults_are_secure():
    code = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "print(json.dumps([s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, "
        "s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY, "
        "s.SESSION_COOKIE_SAMESITE, s.DEBUG]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=production_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [
        True,
        31536000,
        True,
        True,
        True,
        "Lax",
        False,
    ]


def fail(client: Client, email: str, times: int):
    for _ in range(times):
        response = client.post("/login/", {"username": email, "password": "wrong-pass"})
    return response


@pytest.mark.django_db
def test_repeated_failures_lock_the_account_out_of_this_address(demo, settings):
    client = Client()
    email = "partner-admin@acme.example"
    assert fail(client, email, settings.AXES_FAILURE_LIMIT - 1).status_code == 200
    locked = fail(client, email, 1)
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.content.decode()
    assert int(locked["Retry-After"]) == 15 * 60
    # Even the right password is refused while locked out...
    right = client.post(
        "/login/", {"username": email, "password": "Acme-Partner-Pass-1"}
    )
    assert right.status_code == 429
    assert "rsid" not in right.cookies
    # ...and the JSON API says so too.
    api = Client().post(
        "/auth/v1/login/",
        data=json.dumps({"username": email, "password": "Acme-Partner-Pass-1"}),
        content_type="application/json",
    )
    assert api.status_code == 429
    assert "Too many failed logins" in api.json()["error"]
    # Another account is not affected.
    other = Client().post(
        "/login/",
        {
            "username": "partner-admin@globex.example",
            "password": "Globex-Partner-Pass-1",
        },
    )
    assert other.status_code == 302


@pytest.mark.django_db
def test_a_successful_login_resets_the_failure_count(demo, settings):
    client = Client()
    email = "org-admin@acme-prod.example"
    fail(client, email, settings.AXES_FAILURE_LIMIT - 1)
    good = client.post("/login/", {"username": email, "password": "Acme-Prod-Pass-1"})
    assert good.status_code == 302
    client.post("/logout/")
    assert fail(Client(), email, settings.AXES_FAILURE_LIMIT - 1).status_code == 200


@pytest.mark.django_db
def test_json_login_failures_count_towards_the_lockout(demo, settings):
    client = Client()
    body = json.dumps({"username": "org-admin@acme-dev.example", "password": "nope"})
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = client.post(
            "/auth/v1/login/", data=body, content_type="application/json"
        )
        assert response.status_code == 401
    locked = client.post("/auth/v1/login/", data=body, content_type="application/json")
    assert locked.status_code == 429


@pytest.mark.django_db
def test_the_lockout_counts_every_spelling_of_an_address_as_one(demo, settings):
    # given: the lowercase address is locked out from this address
    client = Client()
    locked = fail(client, "partner-admin@globex.example", settings.AXES_FAILURE_LIMIT)
    assert locked.status_code == 429
    # when: the same address is typed with capitals and spaces, even with the
    # right password, on the page and on the JSON API
    page = client.post(
        "/login/",
        {
            "username": " Partner-Admin@GLOBEX.example ",
            "password": "Globex-Partner-Pass-1",
        },
    )
    api = Client().post(
        "/auth/v1/login/",
        data=json.dumps(
            {
                "username": "PARTNER-ADMIN@globex.example",
                "password": "Globex-Partner-Pass-1",
            }
        ),
        content_type="application/json",
    )
    # then: both get the lockout answer they get today, and no session
    assert page.status_code == 429
    assert "Too many failed logins" in page.content.decode()
    assert int(page["Retry-After"]) == 15 * 60
    assert "rsid" not in page.cookies
    assert api.status_code == 429
    assert "Too many failed logins" in api.json()["error"]
    assert "rsid" not in api.cookies


@pytest.mark.django_db
def test_failures_under_different_spellings_add_up_to_one_lockout(demo, settings):
    client = Client()
    spellings = [
        "org-admin@acme-prod.example",
        "Org-Admin@acme-prod.example",
        "ORG-ADMIN@ACME-PROD.EXAMPLE",
        " org-admin@Acme-Prod.example",
    ]
    body = {"password": "wrong-pass"}
    for number in range(settings.AXES_FAILURE_LIMIT - 1):
        username = spellings[number % len(spellings)]
        if number % 2:
            response = client.post(
                "/auth/v1/login/",
                data=json.dumps({**body, "username": username}),
                content_type="application/json",
            )
            assert response.status_code == 401
        else:
            response = client.post("/login/", {**body, "username": username})
            assert response.status_code == 200
    locked = client.post("/login/", {**body, "username": "Org-Admin@ACME-prod.example"})
    assert locked.status_code == 429
    assert list(AccessAttempt.objects.values_list("username", flat=True)) == [
        "org-admin@acme-prod.example"
    ]


@pytest.mark.django_db
def test_a_successful_login_in_capitals_resets_the_lowercase_count(demo, settings):
    email = "org-admin@acme-prod.example"
    fail(Client(), email, settings.AXES_FAILURE_LIMIT - 1)
    good = Client().post(
        "/login/",
        {"username": "ORG-ADMIN@acme-prod.example", "password": "Acme-Prod-Pass-1"},
    )
    assert good.status_code == 302
    assert fail(Client(), email, settings.AXES_FAILURE_LIMIT - 1).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/login/", "/api/docs/", "/admin/login/"])
def test_pages_carry_a_csp_without_inline_script(path):
    response = Client().get(path)
    policy = response["Content-Security-Policy"]
    script_src = re.search(r"script-src ([^;]*)", policy).group(1)
    assert script_src.strip() == "'self'"
    assert "frame-ancestors 'none'" in policy
    assert "object-src 'none'" in policy
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"


@pytest.mark.django_db
def test_the_csp_is_django_csps_and_follows_a_settings_change(demo, settings):
    from csp.utils import build_policy

    client = Client()
    client.force_login(demo["acme_admin"])
    # given: the policy django-csp builds from the settings, on a page and the API
    for path in ("/login/", "/event/v1/email/config", "/api/docs/"):
        response = client.get(path)
        assert response["Content-Security-Policy"] == build_policy(), path
    # when: the settings change (a stricter img-src)
    changed = {
        "DIRECTIVES": {
            **settings.CONTENT_SECURITY_POLICY["DIRECTIVES"],
            "img-src": ["'self'"],
        }
    }
    settings.CONTENT_SECURITY_POLICY = changed
    # then: the next answer carries the new policy
    policy = client.get("/event/v1/email/config")["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["img-src"] == "'self'"
    assert policy == build_policy()
    # and: a report-only policy is sent too when one is set
    settings.CONTENT_SECURITY_POLICY_REPORT_ONLY = changed
    response = client.get("/login/")
    assert response["Content-Security-Policy-Report-Only"] == policy


def test_no_template_has_an_inline_script():
    offenders = []
    for template in (ROOT / "templates").rglob("*.html"):
        for tag in re.findall(r"<script\b[^>]*>", template.read_text()):
            if "src=" not in tag:
                offenders.append(f"{template.relative_to(ROOT)}: {tag}")
    assert offenders == []
