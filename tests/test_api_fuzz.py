"""The API fuzzed from its own OpenAPI schema (schemathesis): no 5xx, ever, and
every 4xx answer is JSON with a message a person can act on."""

from __future__ import annotations

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error

from opsconsole.wsgi import application

schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)
# Logging out would end the session every later example relies on.
schema = schema.exclude(path="/auth/v1/logout/")


@schemathesis.check
def errors_are_json_with_a_message(ctx, response, case) -> None:
    if 400 <= response.status_code < 500:
        body = response.json()
        if not (
            isinstance(body, dict)
            and isinstance(body.get("error"), str)
            and body["error"]
        ):
            raise AssertionError(
                f"{case.operation.label} answered {response.status_code} without "
                f'{{"error": "..."}}: {response.text[:300]}'
            )


@pytest.fixture
def in_process_wsgi():
    """Keep the test's database connection across WSGI calls, as Django's test
    client does: the end of each request would otherwise close it."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def partner_session(demo, in_process_wsgi) -> str:
    client = Client()
    client.force_login(demo["acme_admin"])
    return client.cookies["rsid"].value


@pytest.mark.django_db
@schema.parametrize()
@hypothesis_settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_the_api_never_fails_with_5xx_and_explains_every_4xx(case, partner_session):
    if case.query and str(case.query.get("wait", "")).isdigit():
        # A valid ?wait would make the example sleep until it times out: no
        # worker runs here. Its bounds are still fuzzed (invalid values pass).
        case.query["wait"] = "0"
    response = case.call(cookies={"rsid": partner_session})
    case.validate_response(
        response, checks=[not_a_server_error, errors_are_json_with_a_message]
    )
