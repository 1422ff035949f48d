"""An aiosmtpd server that limits its clients as providers do, and watches them.

It counts the connections open at once (and the most ever), answers
``432 4.3.2 Concurrent connections limit exceeded`` in place of a greeting to a
connection beyond ``max_connections`` (Microsoft 365), can answer
``421 4.7.0 throttled`` to every n-th DATA and close, and notes when each
message arrived (for rate checks).
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from smtp.sink import SinkHandler
from tests.support.smtp_servers import free_port

CONNECTIONS_EXCEEDED = "432 4.3.2 Concurrent connections limit exceeded"
THROTTLED = "421 4.7.0 throttled, try again later"


@dataclass
class Watch:
    """What the server saw, shared by its connections."""

    max_connections: int = 0  # 0: no limit
    throttle_every: int = 0  # every n-th DATA gets THROTTLED (0: never)
    data_delay: float = 0.0  # seconds before each DATA is answered
    refuse_recipients: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    open: int = 0
    most: int = 0
    refused_connections: int = 0
    data_calls: int = 0
    throttled: int = 0
    # (time.time(), Message-ID) of every accepted message.
    arrivals: list[tuple[float, str]] = field(default_factory=list)

    def most_in_window(self, seconds: float) -> int:
        """The most messages that arrived within any ``seconds`` (sliding)."""
        return most_in_window([at for at, _ in self.arrivals], seconds)


class WatchedSMTP(SMTP):
    def __init__(self, handler, *, watch: Watch, **kwargs):
        super().__init__(handler, **kwargs)
        self.watch = watch
        self.refused = False
        self.counted = False

    def connection_made(self, transport):
        if self.transport is not None:  # STARTTLS: the same connection
            super().connection_made(transport)
            return
        watch = self.watch
        with watch.lock:
            if watch.max_connections and watch.open >= watch.max_connections:
                watch.refused_connections += 1
                self.refused = True
            else:
                watch.open += 1
                watch.most = max(watch.most, watch.open)
                self.counted = True
        if self.refused:
            transport.write(f"{CONNECTIONS_EXCEEDED}\r\n".encode())
            transport.close()
            return
        super().connection_made(transport)

    def connection_lost(self, error):
        if self.refused:
            return
        if self.counted:
            self.counted = False
            with self.watch.lock:
                self.watch.open -= 1
        super().connection_lost(error)


class WatchedHandler(SinkHandler):
    def __init__(self, watch: Watch):
        super().__init__()
        self.watch = watch

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.watch.refuse_recipients:
            return "550 5.1.1 User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        watch = self.watch
        with watch.lock:
            watch.data_calls += 1
            throttle = (
                watch.throttle_every and watch.data_calls % watch.throttle_every == 0
            )
            if throttle:
                watch.throttled += 1
        if throttle:
            asyncio.get_running_loop().call_soon(server.transport.close)
            return THROTTLED
        if watch.data_delay:
            await asyncio.sleep(watch.data_delay)
        reply = await super().handle_DATA(server, session, envelope)
        with watch.lock:
            watch.arrivals.append((time.time(), self.messages[-1].message_id))
        return reply


class WatchedController(Controller):
    def __init__(self, handler: WatchedHandler, **kwargs):
        self.watch = handler.watch
        super().__init__(handler, **kwargs)

    def factory(self):
        return WatchedSMTP(self.handler, watch=self.watch, **self.SMTP_kwargs)


class LimitedServer:
    """A plain SMTP server on 127.0.0.1 with the limits of ``watch``."""

    def __init__(self, watch: Watch):
        self.watch = watch
        self.handler = WatchedHandler(watch)
        self.port = free_port()
        self.controller = WatchedController(
            self.handler, hostname="127.0.0.1", port=self.port, ready_timeout=10
        )
        self.controller.start()
        # start() connects once to check the server is up: not a client.
        deadline = time.monotonic() + 5
        while watch.open and time.monotonic() < deadline:
            time.sleep(0.01)
        with watch.lock:
            watch.most = 0

    @property
    def messages(self):
        return self.handler.messages

    def stop(self) -> None:
        self.controller.stop()


def most_in_window(times: list[float], seconds: float) -> int:
    """The most times within any ``seconds`` (a window starting anywhere)."""
    times = sorted(times)
    most, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= seconds:
            start += 1
        most = max(most, end - start + 1)
    return most
