"""Client certificates (mutual TLS): read, checked, and loaded into a TLS context.

The certificate is public and kept as PEM text; the key is a ``Secret``. OpenSSL
loads a key only from a file, so ``load_client_certificate`` hands it over
through an anonymous in-memory file (``memfd_create``: no name, no disk) and
closes it at once; where that is missing, through a private (0600) temporary
file that is deleted right after loading.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from smtp.delivery.server import ClientCertificate

# The health check warns this long before the certificate expires.
EXPIRY_WARNING = datetime.timedelta(days=30)


class CertificateError(ValueError):
    """A certificate or key that cannot be used; the message says why."""


@dataclass(frozen=True)
class CertificateInfo:
    subject: str
    issuer: str
    not_after: datetime.datetime

    def expired(self, now: datetime.datetime | None = None) -> bool:
        return self.not_after <= (now or datetime.datetime.now(datetime.UTC))

    def expires_soon(self, now: datetime.datetime | None = None) -> bool:
        """Expired, or expiring within ``EXPIRY_WARNING``."""
        now = now or datetime.datetime.now(datetime.UTC)
        return self.not_after - now <= EXPIRY_WARNING

    def days_left(self, now: datetime.datetime | None = None) -> int:
        now = now or datetime.datetime.now(datetime.UTC)
        return (self.not_after - now).days


def _leaf(pem: str) -> x509.Certificate:
    text = (pem or "").strip()
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise CertificateError(
            "is not a PEM certificate: paste the certificate, from "
            "-----BEGIN CERTIFICATE----- to -----END CERTIFICATE-----."
        )
    if "PRIVATE KEY-----" in text:
        raise CertificateError(
            "contains a private key: paste only the certificate here, and the key "
            "in Client key."
        )
    try:
        chain = x509.load_pem_x509_certificates(text.encode())
    except ValueError as error:
        raise CertificateError(
            "could not be read as a PEM certificate: paste it again, whole and "
            "unchanged."
        ) from error
    return chain[0]


def certificate_info(pem: str) -> CertificateInfo:
    """The subject, issuer and expiry of the first (leaf) certificate of ``pem``;
    ``CertificateError`` if it is not one."""
    leaf = _leaf(pem)
    return CertificateInfo(
        subject=leaf.subject.rfc4514_string() or "(empty subject)",
        issuer=leaf.issuer.rfc4514_string(),
        not_after=leaf.not_valid_after_utc,
    )


def certificate_info_or_none(pem: str) -> CertificateInfo | None:
    if not pem:
        return None
    try:
        return certificate_info(pem)
    except CertificateError:
        return None


def check_key(key_pem: str, *, cert_pem: str) -> None:
    """``CertificateError`` unless ``key_pem`` is an unencrypted private key that
    belongs to the certificate."""
    text = (key_pem or "").strip()
    if "PRIVATE KEY-----" not in text:
        raise CertificateError(
            "is not a PEM private key: paste the key, from -----BEGIN PRIVATE "
            "KEY----- to -----END PRIVATE KEY-----."
        )
    if "ENCRYPTED" in text:
        raise CertificateError(
            "is protected by a passphrase: export it without one (for example "
            "openssl pkey -in key.pem -out plain.pem)."
        )
    try:
        key = serialization.load_pem_private_key(text.encode(), password=None)
    except (ValueError, TypeError) as error:
        # The library's message is not shown: it could quote the key.
        raise CertificateError(
            "could not be read as a private key: paste it again, whole and unchanged."
        ) from error
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    encoding = serialization.Encoding.DER
    leaf = _leaf(cert_pem)
    if key.public_key().public_bytes(
        encoding, public
    ) != leaf.public_key().public_bytes(encoding, public):
        raise CertificateError(
            "does not belong to the client certificate: paste the key the "
            "certificate was issued for."
        )


@contextlib.contextmanager
def _private_file(data: bytes) -> Iterator[str]:
    """A path to ``data`` that only this process can read, gone on exit."""
    if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
        descriptor = os.memfd_create("smtp-client-key", os.MFD_CLOEXEC)
        try:
            os.write(descriptor, data)
            yield f"/proc/self/fd/{descriptor}"
        finally:
            os.close(descriptor)
        return
    descriptor, path = tempfile.mkstemp(prefix="smtp-client-key-")  # 0600
    try:
        os.write(descriptor, data)
        os.close(descriptor)
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.close(descriptor)
        os.unlink(path)


def load_client_certificate(
    context: ssl.SSLContext, certificate: ClientCertificate
) -> None:
    """Present ``certificate`` in every handshake of ``context``."""
    data = certificate.cert.strip() + "\n" + certificate.key.reveal().strip() + "\n"
    with _private_file(data.encode()) as path:
        context.load_cert_chain(path)
