"""``make run``: migrate, seed the demo, then run web server, worker and SMTP sink.

Ctrl-C (or the end of any one of them) stops all three.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from core.env import BASE_DIR, dev_stack

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


def _manage(environment: dict[str, str], *args: str) -> None:
    subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=environment, check=True
    )


def port_in_use(port: int) -> bool:
    """Whether something already listens on 127.0.0.1:``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the servers do: a closed connection's TIME_WAIT does not count.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _free_port_after(port: int, taken: set[int]) -> int:
    candidate = port + 1
    while candidate <= 65535 and (candidate in taken or port_in_use(candidate)):
        candidate += 1
    return candidate


def port_problem(web_port: int, sink_port: int) -> str | None:
    """One line naming the variable to change when a port cannot be used."""
    if web_port == sink_port:
        free = _free_port_after(sink_port, {web_port})
        return (
            f"PORT and DEV_SMTP_PORT are both {web_port}: set DEV_SMTP_PORT to "
            f"another port, e.g. DEV_SMTP_PORT={free} make run."
        )
    for variable, port, what in (
        ("PORT", web_port, "the web server"),
        ("DEV_SMTP_PORT", sink_port, "the development SMTP sink"),
    ):
        if port_in_use(port):
            free = _free_port_after(port, {web_port, sink_port})
            return (
                f"Port {port} for {what} is already in use on 127.0.0.1: set "
                f"{variable} to a free port, e.g. {variable}={free} make run."
            )
    return None


def main() -> int:
    try:
        stack = dev_stack()
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    port, sink_port = stack.web_port, stack.sink_port
    problem = port_problem(port, sink_port)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    environment = stack.environment
    (BASE_DIR / "var").mkdir(exist_ok=True)
    try:
        _manage(environment, "migrate", "--noinput", "-v", "0")
        _manage(environment, "seed_demo")
    except subprocess.CalledProcessError as error:
        print(
            f"manage.py {error.cmd[2]} failed (see above); stopping.", file=sys.stderr
        )
        return error.returncode
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
            "--pool",
            "threads",
            "--concurrency",
            "4",
            "--without-mingle",
            "--without-gossip",
            "--schedule",
            str(BASE_DIR / "var" / "celerybeat-schedule"),
        ],
        "web": [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}"],
    }
    processes = {
        name: subprocess.Popen(command, cwd=BASE_DIR, env=environment)  # noqa: S603
        for name, command in commands.items()
    }
    print(
        f"\nOps Console is starting at http://127.0.0.1:{port}/\n"
        f"Development SMTP sink: 127.0.0.1:{sink_port} (messages print here)\n"
        f"Controller SMTP default: {environment['FW_EVENT_SMTP_SERVER_ADDR']}:"
        f"{environment.get('FW_EVENT_SMTP_SERVER_PORT') or 587}; "
        f"links in emails: {environment['PUBLIC_URL']}\n\n"
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
