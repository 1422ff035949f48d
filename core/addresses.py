"""Email addresses as SMTP carries them: IDNA domains and UTF-8 local parts.

Domains are converted with the ``idna`` package (IDNA 2008 with the UTS #46
mapping, non-transitional), not with Python's ``idna`` codec (IDNA 2003): the
codec turns ``straße.example`` into ``strasse.example``, another domain, keeps
symbols IDNA 2008 forbids (``☃.example``) and silently drops a zero-width
joiner. UTS #46 maps what people type (capitals, full-width letters) to the
name the domain's owner registered, as browsers and registries do.

A local part that is not ASCII has no ASCII form: only a server that offers
SMTPUTF8 (RFC 6531) can take it.
"""

from __future__ import annotations

from dataclasses import dataclass

import idna
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

# RFC 5321 4.5.3.1.1, in octets.
LOCAL_PART_MAX_BYTES = 64
# RFC 5322 atext: what a dot-atom local part may hold besides letters and digits.
_ASCII_ATEXT = frozenset("!#$%&'*+/=?^_`{|}~-")


class AddressError(ValueError):
    """An address that cannot be written in SMTP; the message says why and what
    to do. ``syntax``: it is no email address at all."""

    def __init__(self, message: str, *, syntax: bool = False):
        super().__init__(message)
        self.syntax = syntax


@dataclass(frozen=True)
class WireAddress:
    """An address in the forms SMTP needs."""

    # MAIL FROM / RCPT TO: the domain as A-labels.
    envelope: str
    # From / To: the envelope form, or, when the local part is not ASCII (the
    # message then goes as UTF-8 anyway, RFC 6532), the domain as U-labels too.
    header: str
    # The local part is not ASCII: the server must offer SMTPUTF8.
    utf8: bool


def split_address(address: str) -> tuple[str, str]:
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise AddressError(f"{address} is not an email address.", syntax=True)
    return local, domain


def ascii_domain(domain: str) -> str:
    """The domain as A-labels; ASCII names and address literals as they are."""
    if domain.isascii():
        return domain
    try:
        return idna.encode(domain, uts46=True, transitional=False).decode("ascii")
    except idna.IDNAError as error:
        raise AddressError(
            f"{domain} is not a valid international domain name ({error}): check "
            "its spelling."
        ) from None


def unicode_domain(domain: str) -> str:
    """The domain as a person reads it (U-labels), or as it is if it has none."""
    try:
        return idna.decode(ascii_domain(domain))
    except UnicodeError:  # idna.IDNAError is one
        return domain


def _utf8_local_part_problem(local: str) -> str | None:
    if len(local.encode("utf-8")) > LOCAL_PART_MAX_BYTES:
        return f"the part before @ must be at most {LOCAL_PART_MAX_BYTES} bytes"
    for atom in local.split("."):
        if not atom:
            return "the part before @ must not start or end with a dot, or hold two"
        for char in atom:
            if char.isascii():
                if not (char.isalnum() or char in _ASCII_ATEXT):
                    return f"the part before @ must not contain {char!r}"
            elif not char.isprintable() or char.isspace():
                return f"the part before @ must not contain U+{ord(char):04X}"
    return None


def check_address(address: str) -> None:
    """Raise ``AddressError`` unless ``address`` can be sent to (by a server that
    offers SMTPUTF8, when its local part is not ASCII)."""
    local, domain = split_address(address)
    if local.isascii():
        syntax_checked = address
    else:
        problem = _utf8_local_part_problem(local)
        if problem:
            raise AddressError(f"{problem}.")
        # Django checks ASCII local parts only; the domain is checked the same.
        syntax_checked = f"x@{domain}"
    try:
        validate_email(syntax_checked)
    except ValidationError:
        raise AddressError(f"{address} is not an email address.", syntax=True) from None
    ascii_domain(domain)


def wire_address(address: str) -> WireAddress:
    """``address`` for the envelope and the headers; ``AddressError`` if it has no
    form SMTP can carry."""
    local, domain = split_address(address)
    if local.isascii():
        envelope = f"{local}@{ascii_domain(domain)}"
        return WireAddress(envelope=envelope, header=envelope, utf8=False)
    problem = _utf8_local_part_problem(local)
    if problem:
        raise AddressError(f"{problem}.")
    return WireAddress(
        envelope=f"{local}@{ascii_domain(domain)}",
        header=f"{local}@{unicode_domain(domain)}",
        utf8=True,
    )
