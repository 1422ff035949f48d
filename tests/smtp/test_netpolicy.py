"""Network policy (SSRF): what untrusted configurations may reach."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from smtp.delivery import POLICY_MESSAGE, deliver
from smtp.netpolicy import address_permitted
from tests.support.smtp_servers import SilentListener, SmtpTestServer, smtp_settings

BLOCKED = [
    "127.0.0.1",  # loopback
    "127.255.255.254",
    "10.1.2.3",  # private
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254",  # link-local, cloud metadata
    "100.64.0.1",  # CGNAT
    "100.100.100.200",  # Alibaba Cloud metadata (CGNAT)
    "192.0.0.192",  # Oracle Cloud metadata (IETF protocol assignments)
    "224.0.0.1",  # multicast
    "239.255.255.250",
    "240.0.0.1",  # reserved
    "255.255.255.255",  # broadcast
    "0.0.0.0",
    "198.18.0.1",  # benchmarking
    "::1",  # IPv6 loopback
    "::",
    "fe80::1",  # IPv6 link-local
    "fc00::1",  # unique local
    "fd00:ec2::254",  # AWS metadata over IPv6
    "ff02::1",  # IPv6 multicast
    "::ffff:127.0.0.1",  # IPv4-mapped forms
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "::ffff:7f00:1",
    "::127.0.0.1",  # IPv4-compatible
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:a00:1::1",  # 6to4 of 10.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
]

PUBLIC = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2002:808:808::1"]


@pytest.fixture
def no_allowed_networks(settings):
    settings.SMTP_ALLOWED_NETWORKS = []


@pytest.mark.parametrize("address", BLOCKED)
def test_blocked_ranges_are_refused(no_allowed_networks, address):
    assert not address_permitted(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_permitted(no_allowed_networks, address):
    assert address_permitted(ipaddress.ip_address(address))


def test_the_operator_can_allow_a_private_network(settings):
    settings.SMTP_ALLOWED_NETWORKS = ["10.20.0.0/16"]
    assert address_permitted(ipaddress.ip_address("10.20.3.4"))
    assert address_permitted(ipaddress.ip_address("::ffff:10.20.3.4"))
    assert not address_permitted(ipaddress.ip_address("10.21.0.1"))
    assert not address_permitted(ipaddress.ip_address("127.0.0.1"))


def fixed_resolver(*answers: str):
    """A resolver answering ``answers`` (a stand-in for DNS, which cannot be
    pointed at test answers here); it counts its calls."""

    def resolve(host: str, port: int) -> list[tuple]:
        resolve.calls += 1
        return [
            (
                socket.AF_INET6 if ":" in address else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (address, port),
            )
            for address in answers
        ]

    resolve.calls = 0
    return resolve


def test_a_blocked_host_gets_one_generic_message_and_no_connection(
    no_allowed_networks,
):
    listener = SilentListener()
    try:
        outcome = deliver(
            smtp_settings(listener.port, host="127.0.0.1"),
            None,
            sender="alerts@acme.example",
            recipients=["ops@example.com"],
            verify_only=True,
        )
    finally:
        listener.stop()
    assert not outcome.ok and outcome.blocked and not outcome.transient
    assert [s.name for s in outcome.steps] == ["resolve"]
    step = outcome.steps[0]
    assert step.detail == POLICY_MESSAGE
    assert "127.0.0.1" not in step.detail + step.hint + step.reply
    assert listener.accepted == []


def test_open_and_closed_ports_on_blocked_hosts_look_the_same(no_allowed_networks):
    from tests.support.smtp_servers import free_port

    listener = SilentListener()
    try:
        answers = [
            deliver(
                smtp_settings(port, host=host),
                None,
                sender="alerts@acme.example",
                recipients=["ops@example.com"],
                verify_only=True,
            )
            for port in (listener.port, free_port())
            for host in ("127.0.0.1", "localhost", "::ffff:127.0.0.1")
        ]
    finally:
        listener.stop()
    shown = {
        tuple((s.name, s.detail, s.hint, s.reply, s.reply_code) for s in a.steps)
        for a in answers
    }
    assert len(shown) == 1
    assert listener.accepted == []


def test_a_name_that_does_not_resolve_looks_like_a_blocked_one(no_allowed_networks):
    # Otherwise the answers would tell which internal names exist.
    def no_such_name(host: str, port: int) -> list[tuple]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    answers = [
        deliver(
            smtp_settings(25, host=host),
            None,
            sender="alerts@acme.example",
            recipients=["ops@example.com"],
            verify_only=True,
            resolver=resolver,
        )
        for host, resolver in (
            ("missing.internal.example", no_such_name),
            ("db.internal.example", fixed_resolver("10.1.2.3")),
        )
    ]
    shown = {
        (
            answer.transient,
            answer.blocked,
            *((s.name, s.status, s.detail, s.hint, s.field) for s in answer.steps),
        )
        for answer in answers
    }
    assert len(shown) == 1
    assert "not known" not in answers[0].steps[0].detail


def test_controller_defaults_are_trusted(no_allowed_networks):
    server = SmtpTestServer()
    try:
        outcome = deliver(
            smtp_settings(server.port, host="127.0.0.1", trusted=True),
            None,
            sender="alerts@acme.example",
            recipients=["ops@example.com"],
            verify_only=True,
        )
    finally:
        server.stop()
    assert outcome.ok


def test_a_second_resolver_answer_cannot_redirect_the_connection(settings):
    # Only 127.0.0.2 is allowed; a trap listens on the blocked 127.0.0.1.
    settings.SMTP_ALLOWED_NETWORKS = ["127.0.0.2/32"]
    # The trap first, on a port free on 127.0.0.1 (where outgoing connections
    # take their local ports), then the server on the same port of 127.0.0.2:
    # a connection redirected by a second answer lands in the trap.
    trap = SilentListener(address="127.0.0.1")
    server = SmtpTestServer(address="127.0.0.2", port=trap.port)
    answers = iter([["127.0.0.2"], ["127.0.0.1"]])

    def rebinding_resolver(host: str, port: int) -> list[tuple]:
        rebinding_resolver.calls += 1
        return fixed_resolver(*next(answers))(host, port)

    rebinding_resolver.calls = 0
    try:
        outcome = deliver(
            smtp_settings(server.port, host="mail.rebind.example"),
            None,
            sender="alerts@acme.example",
            recipients=["ops@example.com"],
            verify_only=True,
            resolver=rebinding_resolver,
        )
    finally:
        server.stop()
        trap.stop()
    assert outcome.ok, [s.as_dict() for s in outcome.steps]
    assert rebinding_resolver.calls == 1
    assert "127.0.0.2" in outcome.steps[1].detail
    assert trap.accepted == []


def test_any_blocked_answer_fails_closed(settings):
    settings.SMTP_ALLOWED_NETWORKS = ["127.0.0.2/32"]
    server = SmtpTestServer(address="127.0.0.2")
    try:
        outcome = deliver(
            smtp_settings(server.port, host="mixed.example"),
            None,
            sender="alerts@acme.example",
            recipients=["ops@example.com"],
            verify_only=True,
            resolver=fixed_resolver("127.0.0.2", "127.0.0.1"),
        )
    finally:
        server.stop()
    assert outcome.blocked
    assert outcome.steps[0].detail == POLICY_MESSAGE


def test_each_checked_address_is_tried_in_turn(settings):
    settings.SMTP_ALLOWED_NETWORKS = ["127.0.0.2/32", "127.0.0.3/32"]
    server = SmtpTestServer(address="127.0.0.2")
    try:
        outcome = deliver(
            smtp_settings(server.port, host="two-answers.example"),
            None,
            sender="alerts@acme.example",
            recipients=["ops@example.com"],
            verify_only=True,
            # Nothing listens on 127.0.0.3: refused, then the next answer.
            resolver=fixed_resolver("127.0.0.3", "127.0.0.2"),
        )
    finally:
        server.stop()
    assert outcome.ok
    assert outcome.steps[1].detail == f"Connected to 127.0.0.2 port {server.port}."
