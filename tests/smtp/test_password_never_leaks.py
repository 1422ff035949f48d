"""A distinctive password never appears in pages, API answers, audit or logs."""

from __future__ import annotations

import json
import logging

import pytest
from django.test import Client

from audit.models import AuditEvent

pytestmark = pytest.mark.django_db

CANARY = "canary-NEVER-SHOWN-8vQp"


@pytest.fixture
def all_logs(caplog):
    caplog.set_level(logging.DEBUG)
    return caplog


def test_the_password_appears_nowhere(demo, login, all_logs, controller_smtp):
    controller_smtp(ADDR="mail.controller.example", PASSWORD=CANARY + "-controller")
    seen: list[str] = []
    partner = login(demo["acme_admin"])
    org = login(demo["prod_admin"])
    form = {
        "action": "save",
        "host": "smtp.acme.example",
        "port": "587",
        "use_tls": "on",
        "username": "mailer@acme.example",
        "password": CANARY,
        "retries": "3",
    }
    seen.append(partner.post("/ops/smtp/", form, follow=True).content.decode())
    seen.append(partner.post("/ops/smtp/", {**form, "port": "0"}).content.decode())
    seen.append(partner.get("/ops/smtp/").content.decode())
    seen.append(
        org.get("/console/infrastructure/system/settings/smtp/").content.decode()
    )
    api_config = {
        "host": "smtp.prod.example",
        "port": 587,
        "use_tls": True,
        "username": "mailer@acme.example",
        "password": CANARY,
        "retries": 3,
    }
    response = org.post(
        "/event/v1/email/config",
        data=json.dumps({"email_config": {"smtp_config": api_config}}),
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    seen.append(response.content.decode())
    seen.append(org.get("/event/v1/email/config").content.decode())
    bad = org.post(
        "/event/v1/email/config",
        data=json.dumps({"email_config": {"smtp_config": {**api_config, "port": 0}}}),
        content_type="application/json",
    )
    assert bad.status_code == 400
    seen.append(bad.content.decode())
    support = login(demo["support"])
    seen.append(support.get("/admin/smtp/smtpconfiguration/").content.decode())
    for configuration_id in (1, 2):
        seen.append(
            support.get(
                f"/admin/smtp/smtpconfiguration/{configuration_id}/change/"
            ).content.decode()
        )
    seen.append(
        support.get(
            f"/admin/tenants/organization/{demo['acme-prod'].pk}/change/"
        ).content.decode()
    )
    seen.append(Client().get("/api/schema/").content.decode())
    for event in AuditEvent.objects.all():
        seen.append(event.summary + json.dumps(event.detail))
    seen.append(all_logs.text)
    everything = "\n".join(seen)
    assert "smtp.acme.example" in everything  # the checks saw real content
    assert CANARY not in everything
