"""``core.api.render``: the planned output is DRF's output, value for value.

Each case renders the same instance twice, once through ``render`` and once
through the serializer's own ``.data``, and compares.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from typing import Any

import pytest
from django.core.exceptions import ObjectDoesNotExist
from rest_framework import serializers

from core.api import render
from smtp.apis.config import ConfigOutputSerializer, NotFoundOutputSerializer, _answer
from smtp.selectors import smtp_config_get_and_effective
from tenants.models import Partner
from tenants.selectors import tenant_scope_for_user


def drf(serializer_class, instance, *, many: bool = False) -> Any:
    """What DRF itself answers, as plain JSON values."""
    return json.loads(json.dumps(serializer_class(instance, many=many).data))


def planned(serializer_class, instance, *, many: bool = False) -> Any:
    return json.loads(json.dumps(render(serializer_class, instance, many=many)))


class Owner:
    email = "owner@acme.example"


class Missing:
    @property
    def related(self):
        raise ObjectDoesNotExist("no row")


class Callable:
    """Called by DRF only if it is a function or method: a callable object
    is passed on as it is."""

    def __call__(self):
        return "called"

    def __str__(self) -> str:
        return "not called"


@dataclass
class Row:
    name: str
    count: int
    flag: Any
    level: str
    stamp: datetime.datetime
    day: datetime.date
    extra: dict
    tags: list
    owner: Owner | None

    def shout(self) -> str:
        return self.name.upper()

    @property
    def broken(self):
        raise AttributeError("not here")


class InnerSerializer(serializers.Serializer):
    name = serializers.CharField()
    shouted = serializers.CharField(source="shout")


class RowSerializer(serializers.Serializer):
    name = serializers.CharField()
    count = serializers.IntegerField()
    flag = serializers.BooleanField(allow_null=True)
    level = serializers.ChoiceField(choices=["partner", "organization"])
    stamp = serializers.DateTimeField()
    day = serializers.DateField()
    extra = serializers.DictField()
    tags = serializers.ListField(child=serializers.CharField())
    owner_email = serializers.CharField(source="owner.email", allow_null=True)
    shouted = serializers.CharField(source="shout")
    inner = InnerSerializer(source="*")
    method = serializers.SerializerMethodField()
    absent = serializers.CharField(source="broken", required=False)
    defaulted = serializers.CharField(source="broken", default="fallback")
    secret = serializers.CharField(write_only=True)

    def get_method(self, row: Row) -> str:
        return f"{row.name}:{row.count}"


def row(**changes) -> Row:
    values = {
        "name": "relay",
        "count": 3,
        "flag": "true",
        "level": "partner",
        "stamp": datetime.datetime(2026, 11, 27, 3, 4, 5, 678, tzinfo=datetime.UTC),
        "day": datetime.date(2026, 12, 1),
        "extra": {"a": [1, 2], "b": None},
        "tags": ["x", 5],
        "owner": Owner(),
    }
    values.update(changes)
    return Row(**values)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"owner": None},
        {"flag": True},
        {"flag": False},
        {"flag": 0},
        {"flag": 1},
        {"flag": None},
        {"flag": "maybe"},
        {"count": True},
        {"tags": []},
        {"level": "unknown"},
        {"stamp": datetime.datetime(1, 1, 1, tzinfo=datetime.UTC)},
    ],
)
def test_an_object_renders_as_drf_renders_it(changes):
    instance = row(**changes)
    assert planned(RowSerializer, instance) == drf(RowSerializer, instance)


class AbsentSerializer(serializers.Serializer):
    """Each way DRF answers for an attribute or key that is not there."""

    nullable = serializers.CharField(source="owner.email", allow_null=True)
    optional = serializers.CharField(source="owner.email", required=False)
    both = serializers.CharField(source="broken", allow_null=True, required=False)
    defaulted = serializers.CharField(source="owner.email", default="nobody")
    called_default = serializers.CharField(
        source="broken", default=lambda: "from a callable"
    )


@pytest.mark.parametrize("instance", [row(owner=None), {"owner": None}, {}])
def test_what_is_not_there_renders_as_drf_renders_it(instance):
    assert planned(AbsentSerializer, instance) == drf(AbsentSerializer, instance)


def test_a_write_only_field_is_left_out_and_a_missing_optional_one_skipped():
    answer = render(RowSerializer, row())
    assert "secret" not in answer
    assert "absent" not in answer
    assert answer["defaulted"] == "fallback"


class MappingSerializer(serializers.Serializer):
    host = serializers.CharField(source="settings.host", required=False)
    port = serializers.IntegerField(source="settings.port", required=False)
    source = serializers.CharField()
    maybe = serializers.CharField(allow_null=True)


@pytest.mark.parametrize(
    "instance",
    [
        {"settings": {"host": "smtp.example", "port": 25}, "source": "x", "maybe": "y"},
        {"settings": None, "source": "x"},
        {"source": "x"},
        {"settings": {"host": "only-host"}, "source": 7, "maybe": None},
    ],
)
def test_a_mapping_renders_as_drf_renders_it(instance):
    assert planned(MappingSerializer, instance) == drf(MappingSerializer, instance)


class OddSerializer(serializers.Serializer):
    related = serializers.CharField(source="related.name", allow_null=True)
    callable_object = serializers.CharField()


def test_a_missing_object_is_null_and_a_callable_object_is_not_called():
    instance = Missing()
    instance.callable_object = Callable()
    expected = {"related": None, "callable_object": "not called"}
    assert drf(OddSerializer, instance) == expected
    assert planned(OddSerializer, instance) == expected


def test_a_missing_required_attribute_fails_as_drf_fails():
    class Strict(serializers.Serializer):
        name = serializers.CharField(source="broken")

    with pytest.raises(AttributeError) as drf_error:
        Strict(row()).data  # noqa: B018
    with pytest.raises(AttributeError) as planned_error:
        render(Strict, row())
    assert str(planned_error.value) == str(drf_error.value)


def test_many_renders_a_list_as_drf_does():
    rows = [row(), row(name="second", owner=None)]
    assert planned(RowSerializer, rows, many=True) == drf(
        RowSerializer, rows, many=True
    )
    assert render(RowSerializer, [], many=True) == []


class Shouting(serializers.Serializer):
    name = serializers.CharField()

    def to_representation(self, instance):
        return {"name": str(instance.name).upper()}


class PartnerSerializer(serializers.Serializer):
    slug = serializers.CharField()
    console = serializers.SerializerMethodField()
    shouted = Shouting(source="*")
    organizations = serializers.PrimaryKeyRelatedField(many=True, read_only=True)

    def get_console(self, partner) -> str:
        return partner.name


@pytest.mark.django_db
def test_related_fields_managers_and_own_representations_are_drf_s(demo):
    partners = Partner.objects.order_by("pk")
    assert planned(PartnerSerializer, partners, many=True) == drf(
        PartnerSerializer, partners, many=True
    )
    organizations = planned(PartnerSerializer, demo["acme"])["organizations"]
    assert sorted(organizations) == sorted(
        demo["acme"].organizations.values_list("pk", flat=True)
    )


def documented_config(client, **changes) -> None:
    body = {
        "username": "mailer@acme.example",
        "password": "render-pw",
        "host": "smtp.acme.example",
        "port": 587,
        "use_tls": True,
        **changes,
    }
    response = client.post(
        "/event/v1/email/config",
        data=json.dumps({"email_config": {"smtp_config": body}}),
        content_type="application/json",
    )
    assert response.status_code in (200, 201), response.content


@pytest.mark.django_db
def test_the_config_answers_are_drf_s(demo, login):
    acme = tenant_scope_for_user(user=demo["acme_admin"])
    # Nothing stored yet: the not-found answer.
    _, effective = smtp_config_get_and_effective(
        partner=acme.partner, organization=None
    )
    answer = {"error": "none", "effective": effective}
    assert planned(NotFoundOutputSerializer, answer) == drf(
        NotFoundOutputSerializer, answer
    )
    documented_config(login(demo["acme_admin"]), messages_per_minute=60)
    documented_config(
        login(demo["prod_admin"]),
        host="smtp.office365.com",
        password="",
        auth_method="oauth2",
        oauth2={
            "provider": "microsoft",
            "tenant_id": "fabrikam.onmicrosoft.com",
            "client_id": "11111111-2222-3333-4444-555555555555",
            "client_secret": "render-secret",
        },
    )
    for user in ("acme_admin", "prod_admin", "dev_admin"):
        scope = tenant_scope_for_user(user=demo[user])
        configuration, effective = smtp_config_get_and_effective(
            partner=scope.partner, organization=scope.organization
        )
        if configuration is None:
            answer = {"error": "none", "effective": effective}
            serializer = NotFoundOutputSerializer
        else:
            answer = _answer(scope, configuration, effective)
            serializer = ConfigOutputSerializer
        assert planned(serializer, answer) == drf(serializer, answer), user
