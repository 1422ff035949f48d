"""PIPELINING (RFC 2920): to a server that offers it, MAIL FROM, RCPT TO and DATA
go in one write, two round trips a message instead of four; refusals inside
such a transaction are read to the end, and a session is never left where the
server waits for a message that must not be sent."""

from __future__ import annotations

import socket
import threading

import pytest

from smtp.delivery import SmtpConnection, StepFailed, build_message, deliver
from tests.support.smtp_servers import Behaviour, smtp_settings, stopped_after

SENDER = "alerts@acme.example"


def message(message_id: str = "<pipe-1@opsconsole.test>") -> bytes:
    return build_message(
        sender=SENDER,
        recipient="ops@example.com",
        subject="Pipelined",
        body="Hello.\n.A line that starts with a dot.\n",
        message_id=message_id,
    )


class ScriptedServer:
    """A plain-socket SMTP server for one session. It answers EHLO (offering
    PIPELINING when asked), then reads what the client sends before it says
    anything more: ``before_reply`` holds the commands that had arrived when
    the reply to MAIL FROM was due. It answers MAIL FROM, RCPT TO and DATA with
    ``replies``, keeps a message if it gets one, and answers RSET, NOOP and
    QUIT."""

    def __init__(self, *, pipelining: bool, replies=("250 OK", "250 OK", "354 Go")):
        self.pipelining = pipelining
        self.replies = list(replies)
        self.before_reply: list[str] = []
        self.lines: list[str] = []
        self.message: bytes | None = None
        self.closed_by_client = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(10)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        conn.settimeout(10)
        buffer = b""

        def line() -> str | None:
            nonlocal buffer
            while b"\r\n" not in buffer:
                chunk = conn.recv(65536)
                if not chunk:
                    return None
                buffer += chunk
            text, _, buffer = buffer.partition(b"\r\n")
            self.lines.append(text.decode())
            return text.decode()

        with conn:
            conn.sendall(b"220 scripted ESMTP\r\n")
            line()  # EHLO
            offer = "250-PIPELINING\r\n" if self.pipelining else ""
            conn.sendall(f"250-scripted\r\n{offer}250 8BITMIME\r\n".encode())
            line()  # MAIL FROM
            conn.settimeout(0.3)  # what else arrives unasked, a moment later
            try:
                while True:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    buffer += chunk
            except TimeoutError:
                pass
            conn.settimeout(10)
            self.before_reply = [self.lines[-1]] + [
                part.decode() for part in buffer.split(b"\r\n") if part
            ]
            for number, reply in enumerate(self.replies):
                if number and line() is None:
                    self.closed_by_client.set()
                    return
                conn.sendall(f"{reply}\r\n".encode())
            if self.replies[-1].startswith("354"):
                # The message ends at a line holding a lone dot (an empty
                # message: at once).
                buffer = b"\r\n" + buffer
                while b"\r\n.\r\n" not in buffer:
                    chunk = conn.recv(65536)
                    if not chunk:
                        self.closed_by_client.set()
                        return
                    buffer += chunk
                message, _, buffer = buffer.partition(b"\r\n.\r\n")
                self.message = message[2:]
                conn.sendall(b"250 2.0.0 Queued\r\n")
            while (command := line()) is not None:
                verb = command.split()[0].upper() if command else ""
                if verb == "QUIT":
                    conn.sendall(b"221 Bye\r\n")
                    return
                conn.sendall(b"250 OK\r\n")
            self.closed_by_client.set()

    def stop(self) -> None:
        self.listener.close()
        self.thread.join(timeout=10)


@pytest.fixture
def scripted():
    yield from stopped_after(ScriptedServer)


def send(port: int, data: bytes | None = None):
    return deliver(
        smtp_settings(port),
        data or message(),
        sender=SENDER,
        recipients=["ops@example.com"],
        timeout=5,
    )


def test_a_server_that_offers_pipelining_gets_the_envelope_and_data_at_once(
    scripted,
):
    server = scripted(pipelining=True)

    outcome = send(server.port)

    assert outcome.ok, [step.as_dict() for step in outcome.steps]
    assert server.before_reply == [
        "mail from:<alerts@acme.example>",
        "rcpt to:<ops@example.com>",
        "data",
    ]
    # Dot-stuffed on the wire, as smtplib's data() does it.
    assert b"\r\n..A line that starts with a dot." in server.message
    assert [step.name for step in outcome.steps][-3:] == [
        "mail_from",
        "rcpt_to",
        "data",
    ]


def test_a_server_that_does_not_offer_it_gets_one_command_at_a_time(scripted):
    server = scripted(pipelining=False)

    outcome = send(server.port)

    assert outcome.ok, [step.as_dict() for step in outcome.steps]
    assert server.before_reply == ["mail from:<alerts@acme.example>"]
    assert b"\r\n..A line that starts with a dot." in server.message


def test_data_taken_after_every_recipient_was_refused_sends_no_message(scripted):
    """A server that answers DATA with 354 though it refused the recipient (RFC
    2920 says it must not): the client sends nothing more, not even the lone
    dot of an empty message, and hangs up so that the server drops it."""
    server = scripted(
        pipelining=True,
        replies=("250 OK", "550 5.1.1 User unknown", "354 Go ahead anyway"),
    )

    outcome = send(server.port)

    assert not outcome.ok
    assert outcome.failed_step.name == "rcpt_to"
    assert outcome.failed_step.reply_code == 550
    assert server.closed_by_client.wait(10)
    assert server.message is None


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-by-one"])
@pytest.mark.parametrize(
    ("behaviour", "refused_at", "code"),
    [
        (Behaviour(refuse_sender=True), "mail_from", 553),
        (Behaviour(refuse_recipients={"nobody@example.com"}), "rcpt_to", 550),
        (Behaviour(data_reply="554 5.7.1 Message refused by policy"), "data", 554),
    ],
    ids=["sender", "recipient", "data"],
)
def test_a_refusal_leaves_the_session_usable(
    smtp_server, pipelining, behaviour, refused_at, code
):
    behaviour.pipelining = pipelining
    server = smtp_server(behaviour=behaviour)
    connection = SmtpConnection(smtp_settings(server.port))
    connection.open()
    try:
        assert connection.client.has_extn("pipelining") is pipelining
        with pytest.raises(StepFailed) as refused:
            connection.send(
                message("<refused@opsconsole.test>"),
                sender=SENDER,
                recipients=["nobody@example.com"],
            )
        assert refused.value.step.name == refused_at
        assert refused.value.step.reply_code == code
        assert connection.reset()
        if refused_at == "rcpt_to":
            connection.send(
                message("<accepted@opsconsole.test>"),
                sender=SENDER,
                recipients=["ops@example.com"],
            )
        assert connection.alive()
    finally:
        connection.close()
    assert server.connections == 1
    delivered = [m.message_id for m in server.messages]
    assert delivered == (
        ["<accepted@opsconsole.test>"] if refused_at == "rcpt_to" else []
    )


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-by-one"])
def test_many_messages_over_one_session(smtp_server, pipelining):
    server = smtp_server(behaviour=Behaviour(pipelining=pipelining))
    connection = SmtpConnection(smtp_settings(server.port))
    connection.open()
    try:
        for number in range(5):
            connection.send(
                message(f"<many-{number}@opsconsole.test>"),
                sender=SENDER,
                recipients=[f"ops{number}@example.com"],
            )
    finally:
        connection.close()
    assert [m.message_id for m in server.messages] == [
        f"<many-{number}@opsconsole.test>" for number in range(5)
    ]
    assert [m.rcpt_tos for m in server.messages] == [
        [f"ops{number}@example.com"] for number in range(5)
    ]
