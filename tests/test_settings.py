"""Start-up refuses to run in production without its secrets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def start_django(**env_changes: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in env_changes}
    env.update({k: v for k, v in env_changes.items() if v is not None})
    env["DJANGO_SETTINGS_MODULE"] = "opsconsole.settings"
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); print('started')"],
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("variable", ["SECRET_KEY", "FERNET_KEYS"])
def test_production_start_up_stops_when_a_secret_is_missing(variable):
    env: dict[str, str | None] = {
        "DEBUG": "false",
        "SECRET_KEY": "s" * 50,
        "FERNET_KEYS": "k" * 40,
    }
    env[variable] = None
    result = start_django(**env)
    assert result.returncode != 0
    assert f"{variable} is not set" in result.stderr
    assert "started" not in result.stdout


def test_production_start_up_succeeds_with_its_secrets():
    result = start_django(DEBUG="false", SECRET_KEY="s" * 50, FERNET_KEYS="k" * 40)
    assert result.returncode == 0, result.stderr
    assert "started" in result.stdout


def test_development_start_up_needs_no_secret():
    result = start_django(DEBUG="true", SECRET_KEY=None, FERNET_KEYS=None)
    assert result.returncode == 0, result.stderr
