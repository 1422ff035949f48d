"""One session to a server some milliseconds away: PIPELINING against one command
at a time.

Starts the benchmarks' sink (``bench/sink.py``), offering PIPELINING or not,
behind a loopback proxy that holds every chunk for half the round trip in each
direction, and sends the same messages over one session of the delivery engine
(``SmtpConnection``): to a server that does not offer PIPELINING, to one that
does, and to one that does but writes each reply on its own with Nagle's
algorithm on (the proxy's side towards the client without ``TCP_NODELAY``; its
acknowledgements take no time on loopback, so this shows what a delayed
acknowledgement would cost, not the round trip a real one takes). Prints
messages per second for each and the ratio of the second to the first. No
database: the engine alone.

    python bench/latency.py [--rtt-ms MS] [--messages N]
"""

from __future__ import annotations

import argparse
import os
import queue
import socket
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import setup_django, table
from bench.sink import TimedSink

SENDER = "alerts@bench.example"


class DelayProxy:
    """A loopback TCP proxy that delivers every chunk ``delay`` seconds after it
    arrived, in order, in both directions; ``nagle``: towards the client with
    Nagle's algorithm on."""

    def __init__(self, target_port: int, delay: float, *, nagle: bool = False):
        self.target_port = target_port
        self.delay = delay
        self.nagle = nagle
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            # Forwarded as it came: Nagle's algorithm holds a chunk back until
            # the previous one was acknowledged.
            upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if not self.nagle:
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for source, sink in ((client, upstream), (upstream, client)):
                held: queue.Queue = queue.Queue()
                threading.Thread(
                    target=self._receive, args=(source, held), daemon=True
                ).start()
                threading.Thread(
                    target=self._deliver, args=(sink, held), daemon=True
                ).start()

    def _receive(self, source: socket.socket, held: queue.Queue) -> None:
        while True:
            try:
                chunk = source.recv(65536)
            except OSError:
                chunk = b""
            held.put((time.monotonic() + self.delay, chunk))
            if not chunk:
                return

    @staticmethod
    def _deliver(sink: socket.socket, held: queue.Queue) -> None:
        while True:
            due, chunk = held.get()
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                if not chunk:
                    sink.shutdown(socket.SHUT_WR)
                    return
                sink.sendall(chunk)
            except OSError:
                return

    def stop(self) -> None:
        self.listener.close()


def messages_per_second(port: int, count: int) -> float:
    from smtp.delivery import SmtpConnection, build_message
    from tests.support.smtp_servers import smtp_settings

    messages = [
        build_message(
            sender=SENDER,
            recipient=f"oncall{n}@bench.example",
            subject=f"[ALERT] Disk almost full {n}",
            body="Node 3 is at 91%.\n",
            message_id=f"<latency-{n}-{time.time_ns()}@bench.example>",
        )
        for n in range(count)
    ]
    connection = SmtpConnection(smtp_settings(port, host="127.0.0.1", sender=SENDER))
    connection.open()
    try:
        started = time.perf_counter()
        for n, message in enumerate(messages):
            connection.send(
                message, sender=SENDER, recipients=[f"oncall{n}@bench.example"]
            )
        return count / (time.perf_counter() - started)
    finally:
        connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rtt-ms", type=float, default=10.0)
    parser.add_argument("--messages", type=int, default=200)
    args = parser.parse_args()
    os.environ["SMTP_ALLOWED_NETWORKS"] = "127.0.0.0/8,::1/128"
    setup_django()
    rates = {}
    for label, pipelining, nagle in (
        ("one command at a time", False, False),
        ("PIPELINING", True, False),
        ("PIPELINING, replies held by Nagle", True, True),
    ):
        sink = TimedSink(pipelining=pipelining)
        proxy = DelayProxy(sink.port, args.rtt_ms / 2000, nagle=nagle)
        try:
            rates[label] = messages_per_second(proxy.port, args.messages)
        finally:
            proxy.stop()
            sink.stop()
    print(f"\n{args.messages} messages over one session, {args.rtt_ms:g} ms round trip")
    print(
        table(
            [
                (label, f"{rate:.1f}", f"{1000 / rate:.1f}")
                for label, rate in rates.items()
            ],
            ("server", "messages/s", "ms a message"),
        )
    )
    ratio = rates["PIPELINING"] / rates["one command at a time"]
    print(f"\nratio (PIPELINING / one command at a time): {ratio:.2f}")


if __name__ == "__main__":
    main()
