"""Which addresses a partner's or organization's SMTP configuration may reach.

A configuration typed into the console must not turn the server into a probe of
its own network: loopback, private, link-local, CGNAT, multicast, reserved and
cloud-metadata addresses are refused, also when hidden inside IPv6 forms
(IPv4-mapped, 6to4, Teredo, NAT64), unless the operator allows the network in
``SMTP_ALLOWED_NETWORKS``. Controller defaults come from the operator and are
trusted.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Named explicitly (most are also "not global") so that the policy does not
# depend on one Python version's idea of the special-purpose registries.
BLOCKED_NETWORKS = tuple(
    ipaddress.ip_network(cidr)
    for cidr in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8",  # private
        "100.64.0.0/10",  # CGNAT (also Alibaba Cloud metadata 100.100.100.200)
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local, cloud metadata 169.254.169.254
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments (Oracle metadata 192.0.0.192)
        "192.0.2.0/24",  # documentation
        "192.168.0.0/16",  # private
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and broadcast
        "::/128",  # unspecified
        "::1/128",  # loopback
        "::/96",  # IPv4-compatible (deprecated)
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard
        "2001:db8::/32",  # documentation
        "fc00::/7",  # unique local (AWS metadata fd00:ec2::254)
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
    )
)
NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo, NAT64)."""
    if address.version != 6:
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in NAT64_PREFIX:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


@lru_cache(maxsize=16)
def _allowed_networks(cidrs: tuple[str, ...]):
    return tuple(ipaddress.ip_network(cidr.strip(), strict=False) for cidr in cidrs)


def allowed_networks() -> tuple:
    """``SMTP_ALLOWED_NETWORKS``, parsed (read at use time)."""
    return _allowed_networks(tuple(c for c in settings.SMTP_ALLOWED_NETWORKS if c))


def _is_blocked(address: IPAddress) -> bool:
    if any(address in network for network in BLOCKED_NETWORKS):
        return True
    return (
        address.is_multicast
        or address.is_reserved
        or address.is_loopback
        or address.is_link_local
        or address.is_unspecified
        or not address.is_global
    )


def _is_allowed_explicitly(address: IPAddress) -> bool:
    return any(
        address.version == network.version and address in network
        for network in allowed_networks()
    )


def address_permitted(address: IPAddress) -> bool:
    """May an untrusted configuration connect to ``address``?

    An IPv6 address that carries an IPv4 address (mapped, 6to4, Teredo, NAT64)
    reaches that IPv4 address, so the IPv4 address decides.
    """
    inner = embedded_ipv4(address)
    target = inner if inner is not None else address
    return not _is_blocked(target) or _is_allowed_explicitly(target)
