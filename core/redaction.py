"""Secrets never reach a log, a step or an audit row, in any form.

``secret_pattern(values)`` matches a secret as a hostile SMTP server might echo
it back: plain in any case, spaced out, reversed, as hex, and base64 of the
forms AUTH sends (the password, ``\\0user\\0password``). ``remember(value)``
registers a secret of this process (every ``Secret`` does, the settings' own
secrets are registered at start-up), and ``install()`` makes every log record,
traceback and uncaught exception of the process pass through ``scrub``.
"""

from __future__ import annotations

import base64
import logging
import re
import sys
import threading
import traceback
from collections import OrderedDict
from collections.abc import Iterable

MASK = "********"
# Spaced and reversed forms of very short values would match ordinary text.
FUZZY_MIN_LENGTH = 4
# Long secrets (access tokens, private keys) are matched as they are and in
# base64 only: nobody echoes a kilobyte spaced out, and the pattern stays small.
FUZZY_MAX_LENGTH = 256
# Distinct secrets a process remembers (a worker sees one per configuration).
REMEMBERED_MAX = 4096
_SEPARATORS = r"[\s.:_\-]{0,3}"


def _spaced(text: str) -> str:
    """``text`` with up to three separators between its characters."""
    return _SEPARATORS.join(re.escape(char) for char in text)


def _encodings(value: str, username: str) -> set[str]:
    raw = value.encode()
    forms = {value}
    payloads = (raw, f"\0{username}\0{value}".encode(), f"{username}\0{value}".encode())
    for payload in payloads:
        encoded = base64.b64encode(payload).decode()
        forms.add(encoded)
        forms.add(encoded.rstrip("="))
    if FUZZY_MIN_LENGTH <= len(value) <= FUZZY_MAX_LENGTH:
        forms.add(raw.hex())
    if not value.isascii():
        # As Python writes it in a repr: escaped text, or escaped UTF-8 bytes.
        forms.add(value.encode("unicode_escape").decode())
        forms.add(ascii(value)[1:-1])
        forms.add(repr(raw)[2:-1])
    return forms


def secret_pattern(values: Iterable[tuple[str, str]]) -> re.Pattern | None:
    """One pattern for every form of these ``(secret, username)`` pairs."""
    exact: set[str] = set()
    fuzzy: set[str] = set()
    for value, username in values:
        if not value:
            continue
        exact |= _encodings(value, username)
        if FUZZY_MIN_LENGTH <= len(value) <= FUZZY_MAX_LENGTH:
            fuzzy |= {value, value[::-1], value.encode().hex()}
    if not exact:
        return None
    # Longest first, so that a longer form is masked whole.
    parts = [re.escape(form) for form in sorted(exact, key=len, reverse=True)]
    parts += [_spaced(form) for form in sorted(fuzzy, key=len, reverse=True)]
    return re.compile("|".join(parts), re.IGNORECASE)


def redact(text: str, pattern: re.Pattern | None) -> str:
    if pattern is None or not text:
        return text
    return pattern.sub(MASK, text)


# -- the process's registry --------------------------------------------------------

_lock = threading.Lock()
_remembered: OrderedDict[tuple[str, str], None] = OrderedDict()
_pattern: re.Pattern | None = None
_stale = False


def remember(value: str | None, *, username: str = "") -> None:
    """Scrub ``value`` (and its AUTH encodings) from this process's logs from now on."""
    global _stale
    if not value:
        return
    key = (value, username)
    with _lock:
        if key in _remembered:
            _remembered.move_to_end(key)
            return
        _remembered[key] = None
        while len(_remembered) > REMEMBERED_MAX:
            _remembered.popitem(last=False)
        _stale = True


def scrub(text: str) -> str:
    """``text`` without any secret this process knows."""
    global _pattern, _stale
    if _stale:
        with _lock:
            if _stale:
                _pattern = secret_pattern(list(_remembered))
                _stale = False
    return redact(text, _pattern)


# -- logs and tracebacks -------------------------------------------------------------


def _scrubbed_record_factory(factory):
    def make(*args, **kwargs) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is logged as it is
            return record
        record.msg, record.args = scrub(message), None
        if record.exc_info and record.exc_info[0] is not None:
            text = "".join(traceback.format_exception(*record.exc_info))
            record.exc_text = scrub(text).rstrip("\n")
            record.exc_info = None
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return record

    make.scrubs_secrets = True
    return make


def _print_scrubbed(exc_type, exc_value, exc_traceback) -> None:
    text = "".join(traceback.format_exception(exc_type, exc_value, exc_traceback))
    sys.stderr.write(scrub(text))


def _thread_hook(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "unknown"
    sys.stderr.write(f"Exception in thread {name}:\n")
    _print_scrubbed(args.exc_type, args.exc_value, args.exc_traceback)


def install(*, static_secrets: Iterable[str] = ()) -> None:
    """Scrub every log record, traceback and uncaught exception of this process."""
    for value in static_secrets:
        remember(value)
    factory = logging.getLogRecordFactory()
    if not getattr(factory, "scrubs_secrets", False):
        logging.setLogRecordFactory(_scrubbed_record_factory(factory))
    sys.excepthook = _print_scrubbed
    threading.excepthook = _thread_hook
