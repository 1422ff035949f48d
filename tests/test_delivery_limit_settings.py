"""Start-up refuses delivery limit settings that cannot work, naming them."""

from __future__ import annotations

import pytest

from tests.test_settings import start_django

DEVELOPMENT = {"DEBUG": "true", "SECRET_KEY": None, "FERNET_KEYS": None}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"SMTP_RATE_WINDOW_SECONDS": "0"},
            "SMTP_RATE_WINDOW_SECONDS (0) must be a positive number of seconds",
        ),
        (
            {"SMTP_THROTTLE_PAUSE_SECONDS": "-5"},
            "SMTP_THROTTLE_PAUSE_SECONDS (-5) must be a positive number",
        ),
        (
            {"SMTP_MAX_DEFER_SECONDS": "0"},
            "SMTP_MAX_DEFER_SECONDS (0) must be a positive number",
        ),
        (
            {
                "SMTP_THROTTLE_PAUSE_SECONDS": "120",
                "SMTP_THROTTLE_MAX_PAUSE_SECONDS": "60",
            },
            "SMTP_THROTTLE_MAX_PAUSE_SECONDS (60 s) must be at least "
            "SMTP_THROTTLE_PAUSE_SECONDS (120 s)",
        ),
        (
            {"SMTP_SESSION_DEADLINE": "60", "SMTP_CONNECTION_LEASE_SECONDS": "90"},
            "SMTP_CONNECTION_LEASE_SECONDS (90 s) must be at least twice "
            "SMTP_SESSION_DEADLINE (60 s)",
        ),
    ],
)
def test_start_up_refuses_delivery_limits_that_cannot_work(changes, message):
    result = start_django(**DEVELOPMENT, **changes)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr
    assert "started" not in result.stdout


def test_start_up_takes_shorter_windows_and_pauses():
    result = start_django(
        **DEVELOPMENT,
        SMTP_RATE_WINDOW_SECONDS="2.5",
        SMTP_THROTTLE_PAUSE_SECONDS="0.5",
        SMTP_THROTTLE_MAX_PAUSE_SECONDS="0.5",
    )
    assert result.returncode == 0, result.stderr
    assert "started" in result.stdout
