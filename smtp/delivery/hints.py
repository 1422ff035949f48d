"""What a failed TLS handshake means, in words a person can act on."""

from __future__ import annotations

import ssl
from dataclasses import dataclass


@dataclass(frozen=True)
class Explanation:
    detail: str
    hint: str
    field: str


def explain_tls_error(error: Exception, *, host: str, port: int) -> Explanation | None:
    """A certificate or handshake failure explained; ``None`` for plain I/O errors."""
    if isinstance(error, ssl.SSLCertVerificationError):
        message = error.verify_message or str(error)
        code = error.verify_code
        if code in (18, 19):
            hint = (
                "The server's certificate is self-signed: install a certificate "
                "from a trusted CA on the server, or tick Insecure to skip "
                "verification (the connection is then open to impersonation)."
            )
        elif code == 10:
            hint = "The server's certificate has expired: renew it on the server."
        elif code == 62 or "hostname" in message.lower():
            hint = (
                f"The certificate is not valid for {host}: enter the host name "
                "the certificate was issued for, or fix the certificate."
            )
        elif code in (20, 21):
            hint = (
                "The certificate is signed by a CA this console does not trust: "
                "install the full certificate chain on the server, or tick "
                "Insecure to skip verification."
            )
        else:
            hint = "Fix the server's certificate, or tick Insecure to skip checks."
        return Explanation(
            detail=f"Certificate verification failed: {message}.",
            hint=hint,
            field="use_insecure" if code in (18, 19, 20, 21) else "host",
        )
    if isinstance(error, ssl.SSLError):
        reason = (error.reason or str(error)).lower().replace("_", " ")
        if "wrong version number" in reason or "record layer failure" in reason:
            return Explanation(
                detail=f"TLS handshake failed: {reason}.",
                hint=(
                    f"Wrong version number: you enabled TLS against a plain port "
                    f"({port}). Use port 465 for implicit TLS, or port 587 for "
                    "STARTTLS, or turn TLS off for a plain-text relay."
                ),
                field="port",
            )
        return Explanation(
            detail=f"TLS handshake failed: {reason}.",
            hint="The server and this console share no TLS version or cipher "
            "(at least TLS 1.2 is required).",
            field="use_tls",
        )
    return None
