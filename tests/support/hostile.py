"""SMTP servers that misbehave on purpose: plain sockets on loopback.

``HostileServer(script)`` accepts connections and runs ``script(connection)`` for
each one in a thread of its own; the scripts below drip, flood or echo.
"""

from __future__ import annotations

import base64
import contextlib
import socket
import threading
import time
from collections.abc import Callable


class HostileServer:
    def __init__(self, script: Callable[[socket.socket], None]):
        self.script = script
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.received: list[bytes] = []
        self._open: list[socket.socket] = []
        self._stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            self._open.append(connection)
            threading.Thread(target=self._run, args=(connection,), daemon=True).start()

    def _run(self, connection: socket.socket) -> None:
        try:
            self.script(connection)
        except OSError:
            pass
        finally:
            connection.close()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def stop(self) -> None:
        self._stopped.set()
        self.sock.close()
        for connection in self._open:
            with contextlib.suppress(OSError):
                connection.close()


def read_line(connection: socket.socket) -> bytes:
    """One command line from the client (empty when it hung up)."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = connection.recv(1)
        if not chunk:
            return data
        data += chunk
    return data


def drip(interval: float) -> Callable[[socket.socket], None]:
    """Starts a greeting, then sends one byte every ``interval`` seconds, for ever."""

    def script(connection: socket.socket) -> None:
        connection.sendall(b"220-")
        while True:
            time.sleep(interval)
            connection.sendall(b"A")

    return script


def flood(connection: socket.socket) -> None:
    """Endless ``220-AAAA...`` continuation lines, as fast as the client reads."""
    line = b"220-" + b"A" * 1000 + b"\r\n"
    block = line * 64
    while True:
        connection.sendall(block)


def echo_auth(
    forms: Callable[[str, str], list[str]],
) -> Callable[[socket.socket], None]:
    """A server that offers AUTH PLAIN and LOGIN, and answers every AUTH with a 535
    whose text echoes the credentials back in the ``forms(user, password)``."""

    def script(connection: socket.socket) -> None:
        connection.sendall(b"220 echo.test ESMTP\r\n")
        while True:
            line = read_line(connection)
            if not line:
                return
            verb = line.split(b" ", 1)[0].strip().upper()
            if verb in (b"EHLO", b"HELO"):
                connection.sendall(b"250-echo.test\r\n250 AUTH PLAIN LOGIN\r\n")
            elif verb == b"AUTH":
                parts = line.split()
                if len(parts) < 3:
                    connection.sendall(b"501 PLAIN with an initial response only\r\n")
                    continue
                _, user, password = base64.b64decode(parts[2]).split(b"\0")
                echoed = " ".join(forms(user.decode(), password.decode()))
                reply = f"535 5.7.139 Authentication unsuccessful: {echoed}\r\n"
                connection.sendall(reply.encode())
            elif verb == b"QUIT":
                connection.sendall(b"221 bye\r\n")
                return
            else:
                connection.sendall(b"250 OK\r\n")

    return script
