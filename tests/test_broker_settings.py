"""Which broker each REDIS_URL gets: the project's file system transport
(core/filebroker.py) without one, its Redis transport (core/broker.py) for
redis:// and rediss://."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.redis_server import RedisServer
from tests.support.smtp_servers import make_certificates

ROOT = Path(__file__).resolve().parents[1]

CONNECT = """
import django
django.setup()
from opsconsole.celery import app
with app.connection_for_write() as connection:
    connection.ensure_connection(max_retries=1)
    print(type(connection.transport).__module__, connection.transport.driver_type)
"""


def connect(**env_changes: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in env_changes}
    env.update({k: v for k, v in env_changes.items() if v is not None})
    return subprocess.run(
        [sys.executable, "-c", CONNECT],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "tests.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_without_redis_url_the_broker_is_the_file_system(tmp_path):
    # What `make run` uses: no server at all.
    result = connect(REDIS_URL=None, DATABASE_URL=f"sqlite:///{tmp_path / 'db'}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["core.filebroker", "filesystem"]


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_a_tls_broker_is_reached_with_its_certificate_checked(tmp_path):
    certificates = make_certificates(tmp_path / "certs")
    redis = RedisServer(tls=certificates.server)
    redis.start(ca=str(certificates.ca))
    try:
        trusted = connect(REDIS_URL=f"{redis.url}?ssl_ca_certs={certificates.ca}")
        unknown_ca = connect(REDIS_URL=redis.url)
    finally:
        redis.stop()
    assert trusted.returncode == 0, trusted.stderr[-2000:]
    assert trusted.stdout.split() == ["core.broker", "redis"]
    # Without the CA the certificate cannot be checked, and TLS is not
    # quietly used without checking it.
    assert unknown_ca.returncode != 0
    assert "certificate verify failed" in unknown_ca.stderr
