"""Hostile inputs at every documented API and at login: a 4xx, never a 500.

An outside review found these shapes answered 500: times that fall outside years
1-9999 once in UTC, hand-made cursors of year 9999, JSON nested 60,000 levels
deep, and 60 KB usernames (SQLite's LIKE limit, the lockout table's column). The
operations come from the OpenAPI schema, so an API added later is covered too.
Run on SQLite as well as PostgreSQL (unset DATABASE_URL): each fails differently.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.test import Client
from drf_spectacular.generators import SchemaGenerator

from audit.models import AuditEvent
from smtp.models import Email, SmtpConfiguration

pytestmark = pytest.mark.django_db

SCHEMA = SchemaGenerator().get_schema(request=None, public=True)
# Logging out would end the session the other requests rely on.
OPERATIONS = [
    (method.upper(), path, operation)
    for path, operations in SCHEMA["paths"].items()
    for method, operation in operations.items()
    if path != "/auth/v1/logout/"
]
HUGE = "x" * 60_000


def cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


# Times that parse, but are year 0 or year 10000 in UTC.
OUTSIDE_THE_CALENDAR = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]


def label(value: Any) -> str | None:
    """Test ids: the method, path and parameter; not the operation's schema."""
    return value if isinstance(value, str) else None


def with_parameter(operations, *, where: str, named=lambda name: True) -> list:
    return [
        (method, path, operation, parameter["name"])
        for method, path, operation in operations
        for parameter in operation.get("parameters", [])
        if parameter["in"] == where and named(parameter["name"])
    ]


def with_body(operations) -> list:
    return [op for op in operations if "requestBody" in op[2]]


def resolve(schema: dict) -> dict:
    while "$ref" in schema:
        schema = SCHEMA["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def string_fields(schema: dict, prefix: tuple = ()) -> list[tuple[str, ...]]:
    """Paths to every string property of a request body."""
    schema = resolve(schema)
    if schema.get("type") == "string" and prefix:
        return [prefix]
    return [
        path
        for name, child in schema.get("properties", {}).items()
        for path in string_fields(child, (*prefix, name))
    ]


def body_with(schema: dict, target: tuple[str, ...], value: Any) -> dict:
    """The required properties with plain values, and ``value`` at ``target``."""
    schema = resolve(schema)
    body: dict[str, Any] = {}
    for name, child in schema.get("properties", {}).items():
        child = resolve(child)
        if target and name == target[0]:
            body[name] = (
                value if len(target) == 1 else body_with(child, target[1:], value)
            )
        elif name in schema.get("required", []):
            plain = {"string": "ops@example.com", "integer": 587, "boolean": True}
            body[name] = plain.get(child.get("type"), body_with(child, (), value))
    return body


def request_body_schema(operation: dict) -> dict:
    return next(iter(operation["requestBody"]["content"].values()))["schema"]


@pytest.fixture
def api(demo) -> Client:
    """A partner admin's session as curl sends it: the ``rsid`` cookie only."""
    session = Client()
    session.force_login(demo["acme_admin"])
    client = Client()
    client.cookies["rsid"] = session.cookies["rsid"].value
    return client


def call(client: Client, method: str, path: str, *, query=None, body=None):
    url = path.replace("{email_id}", "1")
    if query:
        url += "?" + "&".join(f"{k}={v}" for k, v in query.items())
    if body is None:
        return client.generic(method, url)
    return client.generic(
        method, url, data=body, content_type="application/x-www-form-urlencoded"
    )


def nothing_written() -> bool:
    return not (SmtpConfiguration.objects.exists() or Email.objects.exists())


def assert_explained_4xx(response, *, naming: str | None = None) -> dict:
    assert 400 <= response.status_code < 500, response.content[:500]
    body = response.json()
    assert isinstance(body.get("error"), str) and body["error"]
    if naming is not None and response.status_code == 400:
        assert naming in body.get("fields", {}), body
    return body


# -- query parameters ------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "operation", "parameter"),
    with_parameter(OPERATIONS, where="query"),
    ids=label,
)
def test_a_huge_query_parameter_is_a_4xx_naming_it(
    api, method, path, operation, parameter
):
    before = AuditEvent.objects.count()
    response = call(api, method, path, query={parameter: HUGE})
    assert response.status_code == 400
    assert_explained_4xx(response, naming=parameter)
    assert nothing_written() and AuditEvent.objects.count() == before


def outside_the_calendar() -> list:
    """Time parameters with times, cursor parameters with cursors, of such years."""
    cases = []
    for method, path, _, parameter in with_parameter(OPERATIONS, where="query"):
        kind = parameter.rsplit(".", 1)[-1]
        if kind in ("timefrom", "timeto"):
            cases += [(method, path, parameter, t) for t in OUTSIDE_THE_CALENDAR]
        elif kind == "cursor":
            cases += [
                (method, path, parameter, cursor(f"{t}|5"))
                for t in OUTSIDE_THE_CALENDAR
            ]
    return cases


@pytest.mark.parametrize(
    ("method", "path", "parameter", "value"), outside_the_calendar()
)
def test_times_outside_the_calendar_are_400_naming_the_parameter(
    api, method, path, parameter, value
):
    response = call(api, method, path, query={parameter: value.replace("+", "%2B")})
    assert response.status_code == 400
    body = assert_explained_4xx(response, naming=parameter)
    assert list(body["fields"]) == [parameter]


@pytest.mark.parametrize("value", ["9" * 30, "9" * 5000])
@pytest.mark.parametrize(
    ("method", "path", "operation", "parameter"),
    with_parameter(OPERATIONS, where="path"),
    ids=label,
)
def test_huge_path_numbers_are_a_4xx(api, method, path, operation, parameter, value):
    response = call(api, method, path.replace("{" + parameter + "}", value))
    assert_explained_4xx(response)


# -- bodies ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "operation"), with_body(OPERATIONS), ids=label
)
@pytest.mark.parametrize("body", ["[" * 60_000, "[" * 5_000 + "]" * 5_000])
def test_deeply_nested_json_is_a_400(api, method, path, operation, body):
    response = call(api, method, path, body=body)
    assert response.status_code == 400
    assert "nested too deeply" in assert_explained_4xx(response)["error"]
    assert nothing_written()


@pytest.mark.parametrize(
    ("method", "path", "operation"), with_body(OPERATIONS), ids=label
)
def test_json_nested_within_the_limit_in_every_field_is_a_4xx(
    api, method, path, operation
):
    schema = request_body_schema(operation)
    for target in string_fields(schema):
        nested: Any = "ops@example.com"
        for _ in range(200):
            nested = [nested]
        body = json.dumps(body_with(schema, target, nested))
        assert_explained_4xx(call(api, method, path, body=body))
    assert nothing_written()


@pytest.mark.parametrize(
    ("method", "path", "operation"), with_body(OPERATIONS), ids=label
)
def test_a_huge_string_in_every_body_field_is_a_4xx_naming_it(
    api, method, path, operation
):
    schema = request_body_schema(operation)
    for target in string_fields(schema):
        body = json.dumps(body_with(schema, target, HUGE))
        response = call(api, method, path, body=body)
        assert_explained_4xx(response, naming=".".join(target))
    assert nothing_written()
    assert not AccessAttempt.objects.filter(username=HUGE).exists()


@pytest.mark.parametrize(
    ("method", "path", "operation"), with_body(OPERATIONS), ids=label
)
def test_a_body_over_the_limit_is_a_413(api, method, path, operation):
    response = call(api, method, path, body=json.dumps({"x": "y" * 70_000}))
    assert response.status_code == 413
    assert "64 KiB" in assert_explained_4xx(response)["error"]


# -- login -----------------------------------------------------------------------


@pytest.mark.parametrize("length", [255, 300, 60_000])
def test_a_long_username_at_the_json_login_is_a_400_before_any_lookup(demo, length):
    username = "x" * (length - len("@example.com")) + "@example.com"
    response = Client().post(
        "/auth/v1/login/",
        data=json.dumps({"username": username, "password": "Acme-Partner-Pass-1"}),
        content_type="application/json",
    )
    assert response.status_code == 400
    body = response.json()
    assert body["fields"]["username"] == ["Email must be at most 254 characters."]
    assert "rsid" not in response.cookies
    assert not AccessAttempt.objects.exists()


@pytest.mark.parametrize("length", [255, 300, 60_000])
def test_a_long_username_at_the_login_page_is_a_form_error(demo, length):
    username = "x" * (length - len("@example.com")) + "@example.com"
    response = Client().post(
        "/login/", {"username": username, "password": "Acme-Partner-Pass-1"}
    )
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert "Email must be at most 254 characters." in errors["username"]
    assert "rsid" not in response.cookies
    assert not AccessAttempt.objects.exists()


def test_an_email_of_254_characters_still_reaches_the_login_check(demo):
    username = "x" * (254 - len("@example.com")) + "@example.com"
    response = Client().post(
        "/auth/v1/login/",
        data=json.dumps({"username": username, "password": "wrong-pass"}),
        content_type="application/json",
    )
    assert response.status_code == 401
    assert AccessAttempt.objects.get().username == username
