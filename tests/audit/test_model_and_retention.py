"""Audit events are append-only; retention deletes only what is old enough."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from audit.models import AppendOnlyError, AuditEvent

pytestmark = pytest.mark.django_db


def test_events_cannot_be_changed_or_deleted(demo, make_events):
    event = make_events(1, partner=demo["acme"])[0]
    event.summary = "rewritten"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(summary="rewritten")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).delete()
    assert AuditEvent.objects.get(pk=event.pk).summary == "event 0"


def test_support_sees_the_log_in_the_admin_but_cannot_change_it(
    demo, login, make_events
):
    event = make_events(1, partner=demo["acme"])[0]
    client = login(demo["support"])
    assert client.get("/admin/audit/auditevent/").status_code == 200
    page = client.get(f"/admin/audit/auditevent/{event.pk}/change/")
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert client.post(f"/admin/audit/auditevent/{event.pk}/delete/").status_code == 403


def test_prune_deletes_only_events_older_than_the_age(demo, make_events):
    now = timezone.now()
    make_events(3, partner=demo["acme"], start=now - timedelta(days=400))
    make_events(2, partner=demo["acme"], start=now - timedelta(days=10))
    before = AuditEvent.objects.count()
    call_command("prune_audit", "--older-than", "365d", verbosity=0)
    assert AuditEvent.objects.count() == before - 3
    assert not AuditEvent.objects.filter(
        timestamp__lt=now - timedelta(days=365)
    ).exists()


def test_prune_dry_run_deletes_nothing(demo, make_events):
    make_events(3, partner=demo["acme"], start=timezone.now() - timedelta(days=400))
    before = AuditEvent.objects.count()
    call_command("prune_audit", "--older-than", "365d", "--dry-run", verbosity=0)
    assert AuditEvent.objects.count() == before


def test_prune_refuses_a_bad_age(db):
    with pytest.raises(CommandError, match="--older-than"):
        call_command("prune_audit", "--older-than", "a year")
