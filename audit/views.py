"""Audit log pages."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from tenants.access import ops_page, web_page


@ops_page
def ops_audit_logs(request: HttpRequest) -> HttpResponse:
    return render(request, "ops/audit_logs.html", {"nav": "audit"})


@web_page
def web_audit_logs(request: HttpRequest) -> HttpResponse:
    return render(request, "console/audit_logs.html", {"nav": "audit"})
