"""Fixtures of the SMTP tests: certificates, servers, and settings builders."""

from __future__ import annotations

import pytest

from tests.support.smtp_servers import (
    SilentListener,
    SmtpTestServer,
    make_certificates,
    stopped_after,
)


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def trust_test_ca(settings, certs):
    """Make the delivery engine trust the test CA (as SMTP_CA_BUNDLE would)."""
    settings.SMTP_CA_BUNDLE = str(certs.ca)


@pytest.fixture
def smtp_server():
    """``smtp_server(starttls=..., implicit_tls=..., users=..., behaviour=...)``."""
    yield from stopped_after(SmtpTestServer)


@pytest.fixture
def silent_listener():
    listener = SilentListener()
    yield listener
    listener.stop()
