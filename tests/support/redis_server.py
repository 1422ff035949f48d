"""A redis-server process of a test's own, on a free port, that it can stop.

Tests that take the broker away use one of these, never the shared Redis of
``REDIS_URL``. It keeps nothing on disk: a restart starts empty, as a Redis
without persistence does.
"""

from __future__ import annotations

import subprocess

import redis

from tests.support.smtp_servers import CertPair, free_port
from tests.support.worker import wait_until


class RedisServer:
    """redis-server on 127.0.0.1; with ``tls``, TLS only, with that certificate."""

    def __init__(self, *, tls: CertPair | None = None) -> None:
        self.port = free_port()
        self.tls = tls
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://127.0.0.1:{self.port}/0"

    def start(self, *, ca: str | None = None) -> None:
        """Start (again, on the same port); ``ca`` checks a TLS server answers."""
        command = ["redis-server", "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no"]
        if self.tls:
            command += ["--port", "0", "--tls-port", str(self.port)]
            command += ["--tls-cert-file", str(self.tls.cert)]
            command += ["--tls-key-file", str(self.tls.key)]
            command += ["--tls-auth-clients", "no"]
        else:
            command += ["--port", str(self.port)]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        client = redis.Redis(
            host="127.0.0.1",
            port=self.port,
            ssl=bool(self.tls),
            ssl_ca_certs=ca,
            socket_timeout=2,
        )
        wait_until(lambda: self._answers(client), timeout=20)

    @staticmethod
    def _answers(client: redis.Redis) -> bool:
        try:
            return client.ping()
        except redis.RedisError:  # not up yet
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
