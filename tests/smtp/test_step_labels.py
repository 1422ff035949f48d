"""Steps are named alike wherever a person reads them."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from django.template import Context, Template

from smtp.delivery.steps import STEP_LABELS, Step, step_label

ROOT = Path(__file__).resolve().parents[2]


def live_view_labels() -> dict[str, str]:
    script = (ROOT / "static" / "js" / "console.js").read_text()
    block = re.search(r"var STEP_LABELS = \{(.*?)\};", script, re.S)
    assert block, "console.js has no STEP_LABELS"
    pairs = re.findall(r'(\w+): ("[^"]*")', block[1])
    return {name: json.loads(label) for name, label in pairs}


def test_the_live_view_and_the_pages_name_every_step_alike():
    live = live_view_labels()
    assert live, "no labels read from console.js"
    assert {name: STEP_LABELS[name] for name in live} == live


def test_a_step_without_a_label_keeps_its_name():
    assert step_label("rcpt_to") == "RCPT TO (recipient)"
    assert step_label("something_new") == "something_new"


def test_the_template_filter_labels_a_step():
    rendered = Template("{% load smtp_labels %}{{ name|step_label }}").render(
        Context({"name": "mail_from"})
    )
    assert rendered == "MAIL FROM (sender)"


def test_a_step_is_stored_as_every_one_of_its_fields():
    step = Step(
        "rcpt_to",
        status="failed",
        duration_ms=12,
        reply_code=550,
        reply="550 5.1.1 unknown",
        detail="The server refused the recipient.",
        hint="Check the address.",
        field="recipient",
        hint_code="recipient_refused",
    )
    stored = step.as_dict()
    assert stored == dataclasses.asdict(step)
    assert list(stored) == [f.name for f in dataclasses.fields(Step)]
    stored["reply"] = "changed"
    assert step.reply == "550 5.1.1 unknown"
