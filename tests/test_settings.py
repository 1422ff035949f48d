"""Start-up refuses to run in production without its secrets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def start_django(
    code: str = "print('started')", **env_changes: str | None
) -> subprocess.CompletedProcess:
    """Set Django up in a new process with these environment changes (``None``:
    unset), then run ``code`` there."""
    env = {k: v for k, v in os.environ.items() if k not in env_changes}
    env.update({k: v for k, v in env_changes.items() if v is not None})
    env["DJANGO_SETTINGS_MODULE"] = "opsconsole.settings"
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
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


def manage_check(**env_changes: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in env_changes}
    env.update({k: v for k, v in env_changes.items() if v is not None})
    env["DJANGO_SETTINGS_MODULE"] = "opsconsole.settings"
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def example_value(path: str, name: str) -> str:
    """The value an example file gives ``name``: ``NAME=...`` or ``NAME: "..."``."""
    for line in (ROOT / path).read_text().splitlines():
        for separator in ("=", ": "):
            if line.strip().startswith(name + separator):
                return line.split(separator, 1)[1].strip().strip('"')
    raise AssertionError(f"{name} is not in {path}")


ENV_EXAMPLE_FERNET = example_value(".env.example", "FERNET_KEYS")
K8S_EXAMPLE_FERNET = example_value(
    "deploy/kubernetes/secret.example.yaml", "FERNET_KEYS"
)


@pytest.mark.parametrize(
    ("fernet_keys", "message"),
    [
        (", ", "FERNET_KEYS holds no key"),
        (" , ,, ", "FERNET_KEYS holds no key"),
        (ENV_EXAMPLE_FERNET, "FERNET_KEYS is the example placeholder"),
        (f"{'k' * 40},{ENV_EXAMPLE_FERNET}", "FERNET_KEYS is the example placeholder"),
        (K8S_EXAMPLE_FERNET, "FERNET_KEYS is the example placeholder"),
    ],
)
def test_production_start_up_refuses_fernet_keys_that_encrypt_nothing_or_are_public(
    fernet_keys, message
):
    # Both passed `manage.py check`; then every encryption failed, or used a key
    # published in the example files.
    result = manage_check(DEBUG="false", SECRET_KEY="s" * 50, FERNET_KEYS=fernet_keys)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr
    assert "System check identified" not in result.stdout


@pytest.mark.parametrize(
    "secret_key",
    [
        example_value(".env.example", "SECRET_KEY"),
        example_value("deploy/kubernetes/secret.example.yaml", "SECRET_KEY"),
    ],
)
def test_production_start_up_refuses_the_example_secret_key(secret_key):
    result = manage_check(DEBUG="false", SECRET_KEY=secret_key, FERNET_KEYS="k" * 40)
    assert result.returncode != 0
    assert "SECRET_KEY is the example placeholder" in result.stderr


def test_production_start_up_takes_real_keys_and_drops_blank_entries():
    keys = f" {'k' * 40} ,, {'o' * 40},"
    code = "from django.conf import settings; print(settings.FERNET_KEYS)"
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "opsconsole.settings",
            "DEBUG": "false",
            "SECRET_KEY": "s" * 50,
            "FERNET_KEYS": keys,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(["k" * 40, "o" * 40])


def test_development_start_up_takes_the_example_values_and_blank_keys():
    # `cp .env.example .env` with DEBUG=true is the documented local set-up.
    result = manage_check(
        DEBUG="true",
        SECRET_KEY=example_value(".env.example", "SECRET_KEY"),
        FERNET_KEYS=", ",
    )
    assert result.returncode == 0, result.stderr
    result = manage_check(DEBUG="true", FERNET_KEYS=ENV_EXAMPLE_FERNET)
    assert result.returncode == 0, result.stderr
