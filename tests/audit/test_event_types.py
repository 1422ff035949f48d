"""Event types: every type the code records is registered, and the filter offers it."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured

from audit.models import AuditEvent, Category
from audit.registry import EventTypes, event_types
from smtp.models import Security, SmtpConfiguration
from smtp.services import smtp_config_health_check
from tests.support.smtp_servers import SmtpTestServer, free_port

ROOT = Path(__file__).resolve().parents[2]
OPS = "/ops/audit-logs/"
WEB = "/console/audit-logs/"
# The two ways code records an event (audit.services).
RECORDERS = {"audit_event_record", "EventData"}
HEALTH_TYPES = ("smtp_config.health.failing", "smtp_config.health.recovered")


@dataclass(frozen=True)
class Recorded:
    """A call that records events: where, in which categories, with which types."""

    where: str
    categories: frozenset[str] | None
    types: frozenset[str] | None


def _parameters(function: ast.AST) -> set[str]:
    if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
        return set()
    arguments = function.args
    every = arguments.posonlyargs + arguments.args + arguments.kwonlyargs
    return {argument.arg for argument in every}


def _assigned(name: str, scope: ast.AST) -> list[ast.expr]:
    values = []
    for node in ast.walk(scope):
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets = [node.target]
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            values.append(node.value)
    return values


def _strings(node: ast.expr, scope: ast.AST) -> set[str] | None:
    """Every string ``node`` can be, read from its function; None if unknown."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return {node.attr} if node.value.id == "Category" else None
    if isinstance(node, ast.IfExp):
        body, orelse = _strings(node.body, scope), _strings(node.orelse, scope)
        return None if body is None or orelse is None else body | orelse
    if isinstance(node, ast.JoinedStr):
        results = {""}
        for part in node.values:
            inner = part.value if isinstance(part, ast.FormattedValue) else part
            pieces = _strings(inner, scope)
            if pieces is None:
                return None
            results = {done + piece for done in results for piece in pieces}
        return results
    if isinstance(node, ast.Name):
        assigned = _assigned(node.id, scope)
        results: set[str] = set()
        for value in assigned:
            pieces = _strings(value, scope)
            if pieces is None:
                return None
            results |= pieces
        return results or None
    return None


class _Finder(ast.NodeVisitor):
    def __init__(self, module: ast.Module, path: str):
        self.scopes: list[ast.AST] = [module]
        self.path = path
        self.found: list[Recorded] = []

    def _function(self, node) -> None:
        self.scopes.append(node)
        self.generic_visit(node)
        self.scopes.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = _function

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = getattr(func, "id", None) or getattr(func, "attr", None)
        if name in RECORDERS:
            self._record(node)
        self.generic_visit(node)

    def _record(self, node: ast.Call) -> None:
        scope = self.scopes[-1]
        given = {k.arg: k.value for k in node.keywords if k.arg}
        kind = given.get("type")
        if isinstance(kind, ast.Name) and kind.id in _parameters(scope):
            return  # passes its caller's type on; the caller is read instead
        category = given.get("category")
        self.found.append(
            Recorded(
                where=f"{self.path}:{node.lineno}",
                categories=None
                if category is None
                else _frozen(_strings(category, scope)),
                types=None if kind is None else _frozen(_strings(kind, scope)),
            )
        )


def _frozen(values: set[str] | None) -> frozenset[str] | None:
    return None if values is None else frozenset(values)


def recorded_in_the_code() -> list[Recorded]:
    """Every call in the project's apps that records an audit event."""
    found: list[Recorded] = []
    for config in apps.get_app_configs():
        folder = Path(config.path).resolve()
        if not folder.is_relative_to(ROOT):
            continue  # Django's and third-party apps
        for path in sorted(folder.rglob("*.py")):
            if "migrations" in path.parts:
                continue
            module = ast.parse(path.read_text(), filename=str(path))
            finder = _Finder(module, str(path.relative_to(ROOT)))
            finder.visit(module)
            found.extend(finder.found)
    return found


def filter_options(html: str) -> list[str]:
    datalist = re.search(r'<datalist id="event-types">(.*?)</datalist>', html, re.S)
    assert datalist, "the page has no type filter"
    return re.findall(r'<option value="([^"]+)">', datalist[1])


def test_every_event_type_the_code_records_is_registered_in_its_category():
    recorded = recorded_in_the_code()
    unknown = [r.where for r in recorded if r.types is None or r.categories is None]
    assert unknown == [], (
        "Cannot tell which category and type these calls record; give category=, "
        f"and type= as a string or a name assigned strings: {unknown}"
    )
    pairs = {
        (kind, category)
        for r in recorded
        for kind in r.types
        for category in r.categories
    }
    # The scan reads every app: the types of both recording apps are among them.
    kinds = {kind for kind, _ in pairs}
    assert {"email.queued", "email.failed", "user.password_set", *HEALTH_TYPES} <= kinds
    unregistered = sorted(
        f"{kind} ({category})"
        for kind, category in pairs
        if event_types.category(kind) != Category[category]
    )
    assert unregistered == [], (
        "Register these in the recording app's AppConfig.ready() with "
        f"audit.registry.register_event_types: {unregistered}"
    )


@pytest.mark.django_db
def test_both_filters_offer_every_registered_type_on_an_empty_log(demo, login):
    AuditEvent.objects.all().prune()
    for user, page in ((demo["acme_admin"], OPS), (demo["prod_admin"], WEB)):
        html = login(user).get(page).content.decode()
        assert filter_options(html) == event_types.names()
    assert set(HEALTH_TYPES) <= set(event_types.names())


@pytest.mark.django_db
def test_health_events_are_offered_and_selected_by_the_type_filter(demo, login):
    # given: a partner's SMTP server that is down at one check and up at the next,
    # recorded by the health check itself
    configuration = SmtpConfiguration.objects.create(
        partner=demo["acme"],
        host="127.0.0.1",
        port=free_port(),
        security=Security.NONE,
        sender_email="alerts@acme.example",
    )
    assert smtp_config_health_check(configuration_id=configuration.pk) == "failing"
    server = SmtpTestServer()
    try:
        SmtpConfiguration.objects.filter(pk=configuration.pk).update(port=server.port)
        assert smtp_config_health_check(configuration_id=configuration.pk) == "ok"
    finally:
        server.stop()
    client = login(demo["acme_admin"])
    for kind in HEALTH_TYPES:
        # then: the page offers the type, and the page and the API select its event
        assert kind in filter_options(client.get(OPS).content.decode())
        html = client.get(OPS, {"range": "1h", "type": kind}).content.decode()
        assert html.count('class="event"') == 1
        shown = kind.replace(".", ".<wbr>")
        assert f'<code class="event-type">{shown}</code>' in html
        body = client.get("/opsauditlogs/", {"timefrom": "now-1h", "type": kind})
        assert [event["type"] for event in body.json()["result"]] == [kind]
        assert body.json()["result"][0]["category"] == Category.SYSTEMAUDIT


def test_registering_a_type_again_in_its_category_changes_nothing():
    types = EventTypes()
    types.register(Category.SYSTEMAUDIT, "email.sent", "email.deferred")
    types.register(Category.SYSTEMAUDIT, "email.sent")
    types.register(Category.AUDIT, "organization.created")
    assert types.names() == ["email.deferred", "email.sent", "organization.created"]
    assert types.category("email.sent") == Category.SYSTEMAUDIT
    assert types.category("email.bounced") is None


def test_a_type_cannot_be_registered_in_both_categories():
    types = EventTypes()
    types.register(Category.SYSTEMAUDIT, "email.sent")
    refused = r"'email\.sent' is registered as SYSTEMAUDIT"
    with pytest.raises(ImproperlyConfigured, match=refused):
        types.register(Category.AUDIT, "email.sent")
    assert types.category("email.sent") == Category.SYSTEMAUDIT


@pytest.mark.parametrize(
    "name", ["email", "Email.Sent", "email.sent ", "email..sent", "a." + "b" * 63]
)
def test_a_type_the_log_cannot_hold_is_refused(name):
    types = EventTypes()
    with pytest.raises(ImproperlyConfigured, match="dotted lower-case words"):
        types.register(Category.AUDIT, name)
    assert types.names() == []
