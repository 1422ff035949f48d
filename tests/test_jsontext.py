"""JSON kept as text (``core.jsontext.JSONText``) and written out as it is by
the API renderer (``core.api.JSONRenderer``): the audit pages' event details."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent, Category
from core.api import JSONRenderer
from core.jsontext import JSONText


def rendered(data, media_type: str = "application/json") -> bytes:
    return JSONRenderer().render(data, media_type, {})


def test_a_json_text_goes_out_as_its_text_wherever_it_is():
    data = {
        "result": [
            {"id": 1, "detail": JSONText('{"to": "a@b.example", "n": [1, 2]}')},
            {"id": 2, "detail": JSONText("{}")},
        ],
        "nested": {"detail": JSONText('{"x": {"y": null}}')},
        "plain": "text",
    }
    body = rendered(data)
    assert b'"detail":{"to": "a@b.example", "n": [1, 2]}' in body
    assert json.loads(body) == {
        "result": [
            {"id": 1, "detail": {"to": "a@b.example", "n": [1, 2]}},
            {"id": 2, "detail": {}},
        ],
        "nested": {"detail": {"x": {"y": None}}},
        "plain": "text",
    }


def test_an_answer_without_json_text_is_drf_s():
    data = {"a": ["é", 1.5, None, True], "b": {"c": "\u2028"}}
    body = rendered(data)
    assert body == '{"a":["é",1.5,null,true],"b":{"c":"\\u2028"}}'.encode()


def test_values_that_look_like_markers_are_left_as_they_are():
    """The markers' random part is made for each answer: a value cannot
    guess it, so nothing in the answer is taken for a marker."""
    lookalikes = ["0" * 32 + "0", "f" * 32 + "1", '"' + "a" * 32 + '0"']
    data = {"values": lookalikes, "detail": JSONText('{"kept": "0"}')}
    assert json.loads(rendered(data)) == {
        "values": lookalikes,
        "detail": {"kept": "0"},
    }


def test_line_separators_in_a_json_text_are_escaped_as_drf_escapes_them():
    body = rendered({"detail": JSONText('{"s": "a\u2028b\u2029c"}')})
    assert "\u2028".encode() not in body and "\u2029".encode() not in body
    assert json.loads(body) == {"detail": {"s": "a\u2028b\u2029c"}}


def test_an_indented_answer_keeps_the_text():
    body = rendered({"detail": JSONText('{"a": 1}')}, "application/json; indent=2")
    assert json.loads(body) == {"detail": {"a": 1}}
    assert b'\n  "detail": {"a": 1}\n' in body


def test_a_json_text_reads_as_the_object_it_holds():
    detail = JSONText('{"recipient": "a@b.example", "steps": [{"n": 1}]}')
    assert detail == {"recipient": "a@b.example", "steps": [{"n": 1}]}
    assert detail["recipient"] == "a@b.example"
    assert detail.get("steps") == [{"n": 1}]
    assert detail.get("missing") is None
    assert dict(detail.items()) == {"recipient": "a@b.example", "steps": [{"n": 1}]}
    assert len(detail) == 2 and "steps" in detail
    # Decoded once: the same objects on every read.
    assert detail["steps"] is detail["steps"]


def test_a_json_text_that_is_not_an_object_says_so():
    with pytest.raises(TypeError, match="Not a JSON object"):
        JSONText("[1, 2]")["a"]


HOSTILE_DETAIL = {
    "recipient": 'quote"back\\slash@example.com',
    "subject": "Résumé \u2028 línea \u2029 fin </script>",
    "nested": {"list": [1, 2.5, None, True, {"deep": "ü"}]},
    "empty": {},
}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url", ["/opsauditlogs/?timefrom=now-1h", "/event/v1/auditlog"]
)
def test_the_audit_apis_answer_each_stored_detail_unchanged(demo, url):
    AuditEvent.objects.create(
        timestamp=timezone.now(),
        category=Category.SYSTEMAUDIT,
        type="email.sent",
        actor="system",
        partner=demo["acme"],
        summary="hostile detail",
        detail=HOSTILE_DETAIL,
    )
    client = Client()
    client.force_login(demo["acme_admin"])
    response = client.get(url)
    assert response.status_code == 200, response.content
    assert "\u2028".encode() not in response.content
    [event] = [
        event
        for event in response.json()["result"]
        if event["summary"] == "hostile detail"
    ]
    assert event["detail"] == HOSTILE_DETAIL
