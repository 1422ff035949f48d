"""What SMTP sessions and token requests share: name resolution with a timeout,
and client TLS contexts built once."""

from __future__ import annotations

import concurrent.futures
import socket
import ssl
from collections.abc import Callable
from functools import lru_cache

from smtp.delivery.certificates import load_client_certificate
from smtp.delivery.server import ClientCertificate

Resolver = Callable[[str, int], list[tuple]]


def system_resolver(host: str, port: int) -> list[tuple]:
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)


@lru_cache(maxsize=1)
def dns_pool() -> concurrent.futures.ThreadPoolExecutor:
    # getaddrinfo has no timeout of its own; a lookup runs here and is waited
    # for at most SMTP_TIMEOUT.
    return concurrent.futures.ThreadPoolExecutor(
        max_workers=4, thread_name_prefix="smtp-dns"
    )


@lru_cache(maxsize=8)
def tls_context(
    bundle: str | None,
    bundle_mtime: int | None,
    *,
    insecure: bool,
    client: ClientCertificate | None = None,
) -> ssl.SSLContext:
    """A client TLS context, built once: loading the CA store takes ~20 ms.

    Contexts are not changed after this, so sessions of every thread share them.
    With ``client``, the context presents that certificate to servers that ask.
    """
    context = ssl.create_default_context(cafile=bundle)
    if bundle:
        context.load_default_certs()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if client is not None:
        load_client_certificate(context, client)
    return context
