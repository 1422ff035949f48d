"""Login: the HTML page and the JSON API, both setting the ``rsid`` session cookie."""

from __future__ import annotations

import json

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_login_page_renders_email_and_password_fields(client):
    response = client.get("/login/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="username"' in html and 'type="email"' in html
    assert 'name="password"' in html and 'type="password"' in html


@pytest.mark.parametrize(
    ("email", "password", "console_url"),
    [
        ("partner-admin@acme.example", "Acme-Partner-Pass-1", "/ops/"),
        ("org-admin@acme-prod.example", "Acme-Prod-Pass-1", "/console/"),
    ],
)
def test_html_login_sets_rsid_and_lands_in_the_users_console(
    demo, email, password, console_url
):
    client = Client()
    response = client.post("/login/", {"username": email, "password": password})
    assert response.status_code == 302
    assert "rsid" in response.cookies
    assert response.cookies["rsid"]["httponly"]
    assert response.cookies["rsid"]["samesite"] == "Lax"
    landing = client.get(response["Location"], follow=True)
    assert landing.redirect_chain[0][0] == console_url
    assert landing.status_code == 200


def test_html_login_is_case_insensitive_for_the_email(demo):
    client = Client()
    response = client.post(
        "/login/",
        {"username": "Partner-Admin@ACME.example", "password": "Acme-Partner-Pass-1"},
    )
    assert response.status_code == 302


def test_html_login_with_a_wrong_password_shows_an_error_and_no_session(demo):
    client = Client()
    response = client.post(
        "/login/",
        {"username": "partner-admin@acme.example", "password": "wrong-password"},
    )
    assert response.status_code == 200
    assert "Invalid email or password" in response.content.decode()
    assert "rsid" not in response.cookies


def test_json_login_answers_the_user_and_sets_rsid(demo):
    client = Client()
    response = client.post(
        "/auth/v1/login/",
        data=json.dumps(
            {"username": "org-admin@acme-prod.example", "password": "Acme-Prod-Pass-1"}
        ),
        content_type="application/json",
    )
    assert response.status_code == 200
    assert response.json() == {
        "user": {
            "email": "org-admin@acme-prod.example",
            "role": "admin",
            "console": "web",
            "partner": "acme",
            "organization": "acme-prod",
        }
    }
    assert response.cookies["rsid"].value
    # The cookie alone authenticates the documented API.
    bare = Client()
    bare.cookies["rsid"] = response.cookies["rsid"].value
    assert bare.get("/console/infrastructure/system/settings/").status_code == 200


def test_json_login_accepts_curl_data_raw_without_json_content_type(demo):
    client = Client()
    response = client.post(
        "/auth/v1/login/",
        data='{"username": "partner-admin@acme.example", '
        '"password": "Acme-Partner-Pass-1"}',
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    assert response.json()["user"]["console"] == "ops"


def test_json_login_with_bad_credentials_answers_401_with_a_message(demo):
    response = Client().post(
        "/auth/v1/login/",
        data=json.dumps({"username": "partner-admin@acme.example", "password": "x"}),
        content_type="application/json",
    )
    assert response.status_code == 401
    assert response.json() == {"error": "Invalid email or password."}
    assert "rsid" not in response.cookies


@pytest.mark.parametrize(
    ("body", "message_part"),
    [
        ('{"username": ', "Malformed JSON"),
        ("[1, 2]", "Expected a JSON object"),
        ('{"username": "a@b.example"}', "password"),
    ],
)
def test_json_login_with_malformed_input_answers_400_naming_the_problem(
    demo, body, message_part
):
    response = Client().post(
        "/auth/v1/login/", data=body, content_type="application/json"
    )
    assert response.status_code == 400
    assert message_part in json.dumps(response.json())


def test_json_login_names_unknown_fields(demo):
    response = Client().post(
        "/auth/v1/login/",
        data=json.dumps({"username": "a@b.example", "password": "x", "otp": "1"}),
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "otp" in response.json()["fields"]


def test_cross_site_login_is_refused(demo):
    response = Client().post(
        "/auth/v1/login/",
        data=json.dumps(
            {
                "username": "partner-admin@acme.example",
                "password": "Acme-Partner-Pass-1",
            }
        ),
        content_type="application/json",
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    assert response.status_code == 403
    assert "Cross-site request refused" in response.json()["error"]
    assert "rsid" not in response.cookies


def test_json_logout_ends_the_session(demo, login):
    client = login(demo["acme_admin"])
    assert client.get("/ops/organizations/").status_code == 200
    assert client.post("/auth/v1/logout/").status_code == 204
    assert client.get("/ops/organizations/").status_code == 302


def test_html_logout_ends_the_session(demo, login):
    client = login(demo["acme_admin"])
    response = client.post("/logout/")
    assert response.status_code == 302
    assert client.get("/ops/organizations/").status_code == 302
