"""Content negotiation (``core.api.RememberedContentNegotiation``): DRF's
choice, remembered for each Accept header; what DRF refuses is refused every
time, and a header not remembered is still negotiated."""

from __future__ import annotations

import pytest

from core import api

pytestmark = pytest.mark.django_db

URL = "/opsauditlogs/?timefrom=now-1h"


@pytest.fixture
def client(demo, login):
    api._renderer_chosen.clear()
    yield login(demo["acme_admin"])
    api._renderer_chosen.clear()


@pytest.mark.parametrize(
    "accept", ["application/json", "*/*", "text/html, application/json;q=0.9", None]
)
def test_json_is_answered_to_every_header_that_accepts_it_each_time(client, accept):
    headers = {"HTTP_ACCEPT": accept} if accept else {}
    answers = [client.get(URL, **headers) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert {a["Content-Type"] for a in answers} == {"application/json"}
    assert all("result" in a.json() for a in answers)


def test_a_header_that_accepts_no_json_is_refused_each_time(client):
    assert client.get(URL).status_code == 200
    for _ in range(3):
        refused = client.get(URL, HTTP_ACCEPT="text/html")
        assert refused.status_code == 406
        assert "Accept" in refused.json()["error"]
    assert client.get(URL, HTTP_ACCEPT="application/json").status_code == 200


def test_an_unknown_format_is_refused_each_time(client):
    for _ in range(2):
        assert client.get(URL + "&format=xml").status_code == 404


def test_headers_past_the_bound_are_still_negotiated_not_kept(client, monkeypatch):
    monkeypatch.setattr(api, "RENDERER_CHOICES_KEPT", 2)
    for n in range(5):
        accepted = client.get(URL, HTTP_ACCEPT=f"application/json;q=0.{n + 1}")
        assert accepted.status_code == 200
    assert client.get(URL, HTTP_ACCEPT="text/html").status_code == 406
    assert len(api._renderer_chosen) == 2
