"""A JSON value kept as the text the database gave, decoded only if read.

An audit event's ``detail`` is JSON in PostgreSQL. A page of events read for
the API is written out as JSON again: decoding each detail into Python objects
and encoding them back costs more than the rest of the page's rows. A
``JSONText`` keeps the text: the API's renderer (``core.api.JSONRenderer``)
puts it into the answer as it is, and anything that reads it as a mapping (a
page's template) gets it decoded, once, on first use.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any


class JSONText(Mapping):
    """The JSON text of an object, and that object as a read-only mapping."""

    __slots__ = ("_decoded", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._decoded: dict[str, Any] | None = None

    def _object(self) -> dict[str, Any]:
        if self._decoded is None:
            decoded = json.loads(self.text)
            if not isinstance(decoded, dict):
                raise TypeError(f"Not a JSON object: {self.text[:40]!r}")
            self._decoded = decoded
        return self._decoded

    def __getitem__(self, key: str) -> Any:
        return self._object()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._object())

    def __len__(self) -> int:
        return len(self._object())

    def __repr__(self) -> str:
        return f"JSONText({self.text!r})"
