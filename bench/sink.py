"""The benchmarks' SMTP sink: aiosmtpd in a process of its own, noting when it
accepted each Message-ID.

In its own process the sink's CPU is not the benchmark's: a loop queuing emails
in the benchmark's interpreter does not hold up the sink's replies, as it did
when the sink was a thread of the same process. The child writes one line per
accepted message, ``<epoch seconds> <Message-ID>``, and a thread of the parent
reads them.

    python -m bench.sink PORT DELAY pipelining|one-by-one   (by ``TimedSink``)
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def message_id_of(data: bytes) -> str:
    """The Message-ID header of a message's bytes ("" without one)."""
    for line in data.split(b"\r\n"):
        if line.lower().startswith(b"message-id:"):
            return line.split(b":", 1)[1].strip().decode()
        if not line:
            break
    return ""


class TimedSink:
    """A sink process on a free loopback port; ``accepted`` maps each Message-ID
    to when it was first accepted, ``count`` counts every accepted message
    (duplicates too). After ``delay`` seconds a message: a slower server. It
    offers PIPELINING (RFC 2920), as Postfix, Microsoft 365 and Gmail do, unless
    ``pipelining`` is False."""

    def __init__(self, delay: float = 0.0, *, pipelining: bool = True) -> None:
        from tests.support.smtp_servers import free_port

        self.accepted: dict[str, float] = {}
        self.count = 0
        self.lock = threading.Lock()
        self.port = free_port()
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.sink",
                str(self.port),
                str(delay),
                "pipelining" if pipelining else "one-by-one",
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        ready = self._process.stdout.readline()
        if ready.strip() != b"ready":
            self._process.kill()
            raise RuntimeError(f"the sink did not start: {ready!r}")
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        """The sink process's id."""
        return self._process.pid

    def _read(self) -> None:
        for line in self._process.stdout:
            at, _, message_id = line.decode().rstrip("\n").partition(" ")
            with self.lock:
                self.accepted.setdefault(message_id, float(at))
                self.count += 1

    def wait_for(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.count < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the sink has {self.count} of {count} messages")
            time.sleep(0.005)

    def stop(self) -> None:
        self._process.stdin.close()  # the child's cue to stop
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._reader.join(timeout=10)


def serve(port: int, delay: float, pipelining: bool) -> None:
    """The child: accept everything on ``port`` until stdin closes."""
    import asyncio

    from aiosmtpd.controller import Controller

    out = sys.stdout

    class Handler:
        async def handle_EHLO(self, server, session, envelope, hostname, responses):
            session.host_name = hostname
            if pipelining:
                responses.insert(-1, "250-PIPELINING")
            return responses

        async def handle_DATA(self, server, session, envelope) -> str:
            if delay:
                await asyncio.sleep(delay)
            data = envelope.original_content or envelope.content
            out.write(f"{time.time():.6f} {message_id_of(data)}\n")
            out.flush()
            return "250 2.0.0 Message accepted for delivery"

    controller = Controller(
        Handler(), hostname="127.0.0.1", port=port, ready_timeout=10
    )
    controller.start()
    out.write("ready\n")
    out.flush()
    try:
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    serve(int(sys.argv[1]), float(sys.argv[2]), sys.argv[3] == "pipelining")
