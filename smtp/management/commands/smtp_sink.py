"""Run the development SMTP sink: accepts every message and prints it."""

from __future__ import annotations

import logging
import signal
import threading

from aiosmtpd.controller import Controller
from django.core.management.base import BaseCommand

from smtp.sink import SinkHandler, describe


class Command(BaseCommand):
    help = "Run a local SMTP server that prints every message it receives."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=1025)

    def handle(self, *args, host: str, port: int, **options) -> None:
        def show(received) -> None:
            self.stdout.write(describe(received))
            self.stdout.flush()

        # aiosmtpd logs its own readiness probe as a lost connection; not news.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        controller = Controller(
            SinkHandler(on_message=show), hostname=host, port=port, ready_timeout=10
        )
        controller.start()
        self.stdout.write(f"SMTP sink listening on {host}:{port} (no TLS, no AUTH)")
        self.stdout.flush()
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        try:
            stop.wait()
        finally:
            controller.stop()
