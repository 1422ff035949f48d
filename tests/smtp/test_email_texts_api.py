"""``/event/v1/email/texts``: a partner's subject and intro per kind, over the API."""

from __future__ import annotations

import json

import pytest

from smtp.models import EmailTextOverride

pytestmark = pytest.mark.django_db

URL = "/event/v1/email/texts"


def post(client, texts: dict):
    return client.post(
        URL, json.dumps({"texts": texts}), content_type="application/json"
    )


def test_a_partner_sets_a_subject_and_reads_it_back(demo, login):
    client = login(demo["acme_admin"])
    response = post(
        client, {"password_reset": {"subject": "{{ product_name }}: new password"}}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["texts"]["password_reset"] == {
        "subject": "{{ product_name }}: new password",
        "intro": "",
    }
    assert "user_name" in body["placeholders"]
    assert client.get(URL).json()["texts"]["password_reset"]["subject"] == (
        "{{ product_name }}: new password"
    )


def test_an_unknown_placeholder_is_a_400_naming_it_and_nothing_changes(demo, login):
    EmailTextOverride.objects.create(
        partner=demo["acme"], kind="alert", subject="Alert: {{ title }}"
    )
    response = post(
        login(demo["acme_admin"]),
        {
            "alert": {"subject": "Alert: {{ titel }}"},
            "test": {"intro": "Hello {{ user_name }}"},
        },
    )
    assert response.status_code == 400
    fields = response.json()["fields"]
    assert list(fields) == ["texts.alert.subject"]
    assert "unknown placeholder {{ titel }}" in " ".join(fields["texts.alert.subject"])
    assert list(EmailTextOverride.objects.values_list("kind", "subject", "intro")) == [
        ("alert", "Alert: {{ title }}", "")
    ]


def test_an_unknown_kind_is_a_400(demo, login):
    response = post(login(demo["acme_admin"]), {"verify": {"subject": "x"}})
    assert response.status_code == 400
    assert "Unknown kind verify" in json.dumps(response.json())
    assert not EmailTextOverride.objects.exists()


def test_organizations_cannot_set_texts(demo, login):
    response = post(login(demo["prod_admin"]), {"alert": {"subject": "x"}})
    assert response.status_code == 403
    assert not EmailTextOverride.objects.exists()
