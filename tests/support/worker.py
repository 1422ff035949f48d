"""A real Celery worker process for tests that are about queuing.

It runs ``celery worker`` as a child process with the suite's settings, pointed at
the test database and at a queue of its own, so that messages of other runs on the
same broker never reach it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def database_url_for_test_db() -> str:
    """A DATABASE_URL naming the test database the suite is using."""
    s = connection.settings_dict
    if s["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{s['NAME']}"
    user = quote(s.get("USER") or "")
    password = quote(s.get("PASSWORD") or "")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = s.get("HOST") or "127.0.0.1"
    port = s.get("PORT") or 5432
    return f"postgres://{auth}{host}:{port}/{s['NAME']}"


def wait_until(
    condition: Callable[[], object], *, timeout: float, interval: float = 0.05
) -> object:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        time.sleep(interval)


def deployed_pool() -> dict[str, object]:
    """``pool`` and ``concurrency`` of the Procfile's ``worker`` process, to run a
    worker as it is deployed."""
    line = next(
        line
        for line in (ROOT / "Procfile").read_text().splitlines()
        if line.startswith("worker:")
    )
    words = line.split()
    return {
        "pool": words[words.index("--pool") + 1],
        "concurrency": int(words[words.index("--concurrency") + 1]),
    }


class WorkerProcess:
    """One ``celery worker`` child process.

    By default it runs the suite's settings against the test database; ``env``
    replaces that environment (the browser stack and the benchmarks have their
    own), ``extra_env`` adds to it.
    """

    def __init__(
        self,
        *,
        queue: str,
        extra_env: dict[str, str] | None = None,
        env: dict[str, str] | None = None,
        pool: str = "threads",
        concurrency: int = 4,
        loglevel: str = "INFO",
        log_path: Path | None = None,
        interactive_only: bool = False,
    ):
        # ``interactive_only``: consumes only the interactive lane, as the
        # Procfile's worker-interactive does.
        self.interactive_only = interactive_only
        self.queue = queue
        self.extra_env = extra_env or {}
        self.env = env
        self.pool = pool
        self.concurrency = concurrency
        self.loglevel = loglevel
        self.process: subprocess.Popen | None = None
        self.log_path = log_path or ROOT / "var" / (
            f"test-worker-{queue}{'-interactive' if interactive_only else ''}.log"
        )

    def start(self) -> WorkerProcess:
        base = self.env
        if base is None:
            base = {
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "tests.settings",
                "DATABASE_URL": database_url_for_test_db(),
            }
        env = {**base, "CELERY_QUEUE": self.queue, **self.extra_env}
        self.log_path.parent.mkdir(exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "opsconsole",
                "worker",
                "--loglevel",
                self.loglevel,
                "--pool",
                self.pool,
                "--concurrency",
                str(self.concurrency),
                "--without-mingle",
                "--without-gossip",
                "--hostname",
                f"{'interactive-' if self.interactive_only else ''}{self.queue}@%h",
                *(
                    ["--queues", f"{self.queue}.interactive"]
                    if self.interactive_only
                    else []
                ),
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def kill(self) -> None:
        """SIGKILL: the worker dies mid-task, as in a crash."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def pause(self) -> None:
        """SIGSTOP: the worker and its sweeper do nothing until ``resume``."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(
            self.log_path.read_text(errors="replace").splitlines()[-lines:]
        )
