"""The documented API ``/event/v1/email/config``, as the curl commands send it."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from audit.models import AuditEvent
from smtp.models import SmtpConfiguration
from tenants.models import User

pytestmark = pytest.mark.django_db

URL = "/event/v1/email/config"
CANARY = "canary-api-pw-X81v"
# curl --data-raw sends this content type; the documented commands set no other.
CURL_CONTENT_TYPE = "application/x-www-form-urlencoded"


def documented_body(**changes) -> str:
    smtp_config = {
        "username": "mailer@acme.example",
        "password": CANARY,
        "host": "smtp.acme.example",
        "port": 587,
        "use_tls": True,
        "use_insecure": False,
        "retries": 3,
    }
    smtp_config.update(changes)
    return json.dumps({"email_config": {"smtp_config": smtp_config}})


def cookie_client(user) -> Client:
    """A client carrying only the ``rsid`` cookie, like ``curl -b 'rsid=...'``."""
    session = Client()
    session.force_login(user)
    client = Client()
    client.cookies["rsid"] = session.cookies["rsid"].value
    return client


def post(client, body: str):
    return client.post(URL, data=body, content_type=CURL_CONTENT_TYPE)


def state() -> list[tuple]:
    return [
        (c.host, c.port, c.security, c.username, c.password, c.retries)
        for c in SmtpConfiguration.objects.order_by("pk")
    ]


def test_documented_post_creates_the_partner_configuration(demo):
    client = cookie_client(demo["acme_admin"])
    response = post(client, documented_body())
    assert response.status_code == 201
    body = response.json()
    assert body["email_config"]["smtp_config"] == {
        "host": "smtp.acme.example",
        "port": 587,
        "use_tls": True,
        "security": "starttls",
        "use_insecure": False,
        "username": "mailer@acme.example",
        "password_set": True,
        "retries": 3,
        "sender_email": "",
        "auth_method": "password",
        "oauth2": None,
        "client_certificate": None,
        "client_key_set": False,
        # The sender identity: optional, so omitted by the documented body.
        "sender_name": "",
        "reply_to": "",
        "bounce_address": "",
        # Delivery limits and failover: optional too; null is the default.
        "messages_per_minute": None,
        "effective_messages_per_minute": 0,
        "max_connections": None,
        "effective_max_connections": 4,
        "failover": False,
        "updated_at": body["email_config"]["smtp_config"]["updated_at"],
        "updated_by": "partner-admin@acme.example",
    }
    assert body["effective"]["source"] == "partner"
    assert CANARY not in response.content.decode()
    assert SmtpConfiguration.objects.get().password == CANARY


def test_documented_post_again_replaces_and_answers_200(demo):
    client = cookie_client(demo["acme_admin"])
    post(client, documented_body())
    response = post(client, documented_body(port=465, retries=5))
    assert response.status_code == 200
    smtp_config = response.json()["email_config"]["smtp_config"]
    assert (smtp_config["port"], smtp_config["security"]) == (465, "ssl")
    assert SmtpConfiguration.objects.count() == 1


def test_documented_get_answers_the_config_with_password_set(demo):
    client = cookie_client(demo["acme_admin"])
    post(client, documented_body())
    response = client.get(URL)
    assert response.status_code == 200
    body = response.json()
    assert body["email_config"]["smtp_config"]["password_set"] is True
    assert "password" not in body["email_config"]["smtp_config"]
    assert body["effective"]["source"] == "partner"
    assert body["effective"]["host"] == "smtp.acme.example"
    assert CANARY not in response.content.decode()


def test_the_answer_is_the_output_serializers_for_each_tenant_in_turn(demo):
    # The output serializers are built once per thread and reused: each answer
    # must still be exactly what a fresh serializer makes of its own data.
    from smtp.apis.config import ConfigOutputSerializer, _answer
    from smtp.selectors import smtp_config_get_and_effective
    from tenants.selectors import TenantScope

    acme = cookie_client(demo["acme_admin"])
    globex = cookie_client(demo["globex_admin"])
    post(acme, documented_body(sender_name="Acme Alerts"))
    post(
        globex,
        json.dumps(
            {
                "email_config": {
                    "smtp_config": {
                        "host": "smtp.office365.com",
                        "port": 587,
                        "use_tls": True,
                        "username": "alerts@globex.example",
                        "auth_method": "oauth2",
                        "oauth2": {
                            "provider": "microsoft",
                            "tenant_id": "contoso.onmicrosoft.com",
                            "client_id": "app-1",
                            "client_secret": "oauth-secret-1",
                        },
                    }
                }
            }
        ),
    )
    for _ in range(2):
        for client, user in ((acme, "acme_admin"), (globex, "globex_admin")):
            response = client.get(URL)
            assert response.status_code == 200, response.content
            partner = demo[user].partner
            configuration, effective = smtp_config_get_and_effective(partner=partner)
            scope = TenantScope(partner=partner, organization=None)
            fresh = ConfigOutputSerializer(_answer(scope, configuration, effective))
            assert response.json() == json.loads(json.dumps(fresh.data))
    assert acme.get(URL).json()["email_config"]["smtp_config"]["oauth2"] is None
    oauth2 = globex.get(URL).json()["email_config"]["smtp_config"]["oauth2"]
    assert oauth2["client_secret_set"] is True
    assert "oauth-secret-1" not in globex.get(URL).content.decode()


def test_get_without_a_configuration_is_404_and_tells_what_is_in_effect(
    demo, controller_smtp
):
    controller_smtp(ADDR="mail.controller.example", PORT="25", USE_TLS="false")
    response = cookie_client(demo["acme_admin"]).get(URL)
    assert response.status_code == 404
    body = response.json()
    assert "No SMTP configuration at the partner level" in body["error"]
    assert body["effective"]["source"] == "controller"
    assert body["effective"]["host"] == "mail.controller.example"


def test_documented_delete_removes_it_and_the_source_falls_back(demo, controller_smtp):
    controller_smtp(ADDR="mail.controller.example", PORT="25", USE_TLS="false")
    client = cookie_client(demo["acme_admin"])
    post(client, documented_body())
    response = client.delete(URL)
    assert response.status_code == 204
    assert not SmtpConfiguration.objects.exists()
    assert client.get(URL).json()["effective"]["source"] == "controller"
    again = client.delete(URL)
    assert again.status_code == 404
    assert "to delete" in again.json()["error"]


def test_org_user_acts_on_the_organization_level(demo):
    post(cookie_client(demo["acme_admin"]), documented_body())
    client = cookie_client(demo["prod_admin"])
    inherited = client.get(URL)
    assert inherited.status_code == 404
    assert inherited.json()["effective"]["source"] == "partner"
    response = post(client, documented_body(host="smtp.prod.example"))
    assert response.status_code == 201
    assert response.json()["effective"]["source"] == "organization"
    assert SmtpConfiguration.objects.get(organization=demo["acme-prod"]).host == (
        "smtp.prod.example"
    )


@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_org_user_with_the_feature_off_gets_404(demo, method):
    client = cookie_client(demo["dev_admin"])
    if method == "post":
        response = post(client, documented_body())
    else:
        response = getattr(client, method)(URL)
    assert response.status_code == 404
    assert "not enabled for this organization" in response.json()["error"]
    assert not SmtpConfiguration.objects.exists()


def test_tenants_never_see_or_change_each_other(demo):
    post(cookie_client(demo["acme_admin"]), documented_body())
    globex = cookie_client(demo["globex_admin"])
    assert globex.get(URL).status_code == 404
    assert globex.delete(URL).status_code == 404
    assert SmtpConfiguration.objects.get().host == "smtp.acme.example"
    other_org = cookie_client(demo["globex_main_admin"])
    body = other_org.get(URL).json()
    assert body["effective"]["source"] == "none"
    assert "smtp.acme.example" not in json.dumps(body)


def test_without_a_session_the_api_answers_401(db):
    response = Client().get(URL)
    assert response.status_code == 401
    assert "error" in response.json()


def test_an_api_request_carries_the_user_itself_not_a_lazy_stand_in(demo):
    """Once authenticated, the request's user is the user read with the
    session, not the middleware's ``SimpleLazyObject`` around it (through which
    every attribute read is a call more)."""
    # Nothing stored at the partner's level yet: 404, past authentication.
    response = cookie_client(demo["acme_admin"]).get(URL)
    assert response.status_code == 404
    assert type(response.wsgi_request.user) is User
    assert response.wsgi_request.user.pk == demo["acme_admin"].pk


@pytest.mark.parametrize(
    ("changes", "field", "message_part"),
    [
        ({"host": ""}, "host", "Host is required"),
        ({"host": "https://smtp.acme.example"}, "host", "remove 'https://'"),
        ({"host": "smtp.acme.example:587"}, "host", "must not include a port"),
        ({"port": 0}, "port", "1 to 65535"),
        ({"port": 65536}, "port", "1 to 65535"),
        ({"retries": 11}, "retries", "0 to 10"),
        ({"password": ""}, "password", "Enter the password for this username"),
        ({"username": ""}, "username", "Enter the username that goes with"),
        ({"use_tls": False}, "use_tls", "Without TLS enabled, authentication will"),
        ({"username": "a@b.example\r\nBcc: x@y.example"}, "username", "line breaks"),
        ({"sender_email": "x@y.example\nBcc: z@w.example"}, "sender_email", "line"),
        ({"port": "587"}, "port", "whole number"),
        ({"use_tls": "true"}, "use_tls", "true or false"),
        ({"retries": 2.5}, "retries", "0 to 10"),
        ({"host": 42}, "host", "string"),
        ({"timeout": 5}, "timeout", "Unknown field"),
    ],
)
def test_each_rule_and_type_is_refused_with_400_and_nothing_changes(
    demo, changes, field, message_part
):
    client = cookie_client(demo["acme_admin"])
    post(client, documented_body(username="", password="", host="before.example"))
    before = state()
    events_before = AuditEvent.objects.count()
    response = post(client, documented_body(**changes))
    assert response.status_code == 400
    body = response.json()
    key = f"email_config.smtp_config.{field}"
    assert key in body["fields"], body
    assert message_part in " ".join(body["fields"][key])
    assert body["error"]
    assert state() == before
    assert AuditEvent.objects.count() == events_before
    assert CANARY not in response.content.decode()


@pytest.mark.parametrize(
    ("body", "message_part"),
    [
        ('{"email_config": {"smtp_config": {"host": ', "Malformed JSON"),
        ("not json at all", "Malformed JSON"),
        ('{"email_config": []}', "email_config"),
        ('{"smtp_config": {}}', "Unknown field"),
        ("[]", "Expected a JSON object"),
    ],
)
def test_malformed_bodies_get_400_naming_the_problem(demo, body, message_part):
    response = post(cookie_client(demo["acme_admin"]), body)
    assert response.status_code == 400
    assert message_part in json.dumps(response.json())
    assert not SmtpConfiguration.objects.exists()


def test_a_body_over_64_kib_gets_413(demo):
    body = documented_body(host="a" * (70 * 1024))
    response = post(cookie_client(demo["acme_admin"]), body)
    assert response.status_code == 413
    assert "64 KiB" in response.json()["error"]
    assert not SmtpConfiguration.objects.exists()


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        # Browsers that send neither Origin nor Sec-Fetch-Site still send this.
        {"Referer": "https://evil.example/x"},
        {"Referer": "http://testserver.evil.example/"},
        {"Referer": "not a url"},
    ],
)
@pytest.mark.parametrize("method", ["post", "delete"])
def test_cross_site_browser_requests_are_refused(demo, headers, method):
    client = cookie_client(demo["acme_admin"])
    post(client, documented_body())
    before = state()
    if method == "post":
        response = client.post(
            URL,
            data=documented_body(host="attacker.example"),
            content_type=CURL_CONTENT_TYPE,
            headers=headers,
        )
    else:
        response = client.delete(URL, headers=headers)
    assert response.status_code == 403
    assert "Cross-site request refused" in response.json()["error"]
    assert state() == before


def test_same_origin_browser_requests_are_accepted(demo):
    client = cookie_client(demo["acme_admin"])
    response = client.post(
        URL,
        data=documented_body(),
        content_type="application/json",
        headers={"Sec-Fetch-Site": "same-origin", "Origin": "http://testserver"},
    )
    assert response.status_code == 201


@pytest.mark.parametrize(
    "headers",
    [
        {},  # curl sends no Origin, Sec-Fetch-Site or Referer
        {"Referer": "http://testserver/ops/smtp/"},
        {"Referer": "http://testserver/console/x", "Sec-Fetch-Site": "same-origin"},
    ],
)
def test_same_origin_referers_and_none_are_accepted(demo, headers):
    response = cookie_client(demo["acme_admin"]).post(
        URL, data=documented_body(), content_type=CURL_CONTENT_TYPE, headers=headers
    )
    assert response.status_code == 201
    assert SmtpConfiguration.objects.get().host == "smtp.acme.example"


def test_a_read_only_user_can_read_but_not_write(demo):
    post(cookie_client(demo["acme_admin"]), documented_body())
    user = demo["acme_admin"]
    user.role = "read_only"
    user.save()
    client = cookie_client(user)
    assert client.get(URL).status_code == 200
    response = post(client, documented_body(port=2525))
    assert response.status_code == 403
    assert "read-only" in response.json()["error"]
    assert client.delete(URL).status_code == 403
    assert SmtpConfiguration.objects.get().port == 587


def test_the_openapi_schema_describes_the_endpoints(demo, login):
    response = login(demo["acme_admin"]).get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = json.loads(response.content)
    assert "/event/v1/email/config" in schema["paths"]
    assert set(schema["paths"]["/event/v1/email/config"]) >= {"get", "post", "delete"}
    assert schema["components"]["securitySchemes"]["rsid"]["in"] == "cookie"
    docs = login(demo["acme_admin"]).get("/api/docs/")
    assert docs.status_code == 200


@pytest.mark.parametrize(
    ("changes", "message_part"),
    [
        ({"use_insecure": True}, "Certificate verification turned off"),
        ({"use_tls": False, "username": "mailer@acme.example"}, "TLS turned off"),
    ],
)
def test_weakening_the_server_checks_asks_for_the_password_again(
    demo, changes, message_part
):
    client = cookie_client(demo["acme_admin"])
    assert post(client, documented_body()).status_code == 201
    before = state()
    events_before = AuditEvent.objects.count()
    response = post(client, documented_body(password="", **changes))
    assert response.status_code == 400
    messages = response.json()["fields"]["email_config.smtp_config.password"]
    assert message_part in messages[0]
    assert "enter the password again" in messages[0]
    assert state() == before
    assert not SmtpConfiguration.objects.get().use_insecure
    assert AuditEvent.objects.count() == events_before


def test_a_tls_mode_change_keeps_the_password(demo):
    client = cookie_client(demo["acme_admin"])
    assert post(client, documented_body()).status_code == 201
    response = post(client, documented_body(password="", security="ssl"))
    assert response.status_code == 200
    configuration = SmtpConfiguration.objects.get()
    assert (configuration.security, configuration.password) == ("ssl", CANARY)
