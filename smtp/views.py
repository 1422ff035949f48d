"""SMTP configuration pages."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from tenants.access import console_page, ops_page
from tenants.models import Console


@ops_page
def ops_smtp(request: HttpRequest) -> HttpResponse:
    return render(request, "ops/smtp.html", {"nav": "smtp"})


@console_page(Console.WEB, smtp_feature=True)
def web_smtp(request: HttpRequest) -> HttpResponse:
    return render(request, "console/smtp.html", {"nav": "settings"})
