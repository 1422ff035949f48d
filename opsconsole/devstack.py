"""``make run``: migrate, seed the demo, then run web server, worker and SMTP sink.

Ctrl-C (or the end of any one of them) stops all three.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from core.env import BASE_DIR, env

DEMO_LOGINS = """\
  Ops Console (partner admins)
    partner-admin@acme.example      Acme-Partner-Pass-1
    partner-admin@globex.example    Globex-Partner-Pass-1
  Web Console (organization admins)
    org-admin@acme-prod.example     Acme-Prod-Pass-1     (SMTP feature on)
    org-admin@acme-dev.example      Acme-Dev-Pass-1      (SMTP feature off)
    org-admin@globex-main.example   Globex-Main-Pass-1   (SMTP feature on)
  Support (/admin/)
    support@ops.example             Support-Pass-1"""


def _manage(*args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, check=True)  # noqa: S603


def main() -> int:
    port = env.int("PORT", default=8000)
    sink_port = env.int("DEV_SMTP_PORT", default=1025)
    (BASE_DIR / "var").mkdir(exist_ok=True)
    _manage("migrate", "--noinput", "-v", "0")
    _manage("seed_demo")
    bin_dir = Path(sys.executable).parent
    commands = {
        "smtp-sink": [
            sys.executable,
            "manage.py",
            "smtp_sink",
            "--port",
            str(sink_port),
        ],
        "worker": [
            str(bin_dir / "celery"),
            "-A",
            "opsconsole",
            "worker",
            "--beat",
            "--loglevel",
            "INFO",
            "--concurrency",
            "2",
            "--without-mingle",
            "--without-gossip",
            "--schedule",
            str(BASE_DIR / "var" / "celerybeat-schedule"),
        ],
        "web": [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}"],
    }
    processes = {
        name: subprocess.Popen(command, cwd=BASE_DIR)  # noqa: S603
        for name, command in commands.items()
    }
    print(
        f"\nOps Console is starting at http://127.0.0.1:{port}/\n"
        f"Development SMTP sink: 127.0.0.1:{sink_port} (messages print here)\n\n"
        f"Demo logins:\n{DEMO_LOGINS}\n\nCtrl-C stops everything.\n",
        flush=True,
    )
    stopping = False

    def request_stop(*_args) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    exit_code = 0
    while not stopping:
        for name, process in processes.items():
            if process.poll() is not None:
                print(f"{name} exited with code {process.returncode}; stopping.")
                exit_code = process.returncode or 1
                stopping = True
        time.sleep(0.3)
    for process in processes.values():
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + 10
    for process in processes.values():
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
