"""Django's message middleware, making a request's message storage only when
the request uses it.

Django's makes the storage (the cookie and the session stores behind it) for
every request and asks it to store its messages on every response. The APIs,
the probes and most page views never add or show a message; a request that
does, through ``django.contrib.messages`` or the ``messages`` template context,
gets the same storage Django's would have made, when it first touches it.
"""

from __future__ import annotations

from django.contrib.messages.middleware import MessageMiddleware as DjangoMessages
from django.contrib.messages.storage import default_storage
from django.http import HttpRequest, HttpResponseBase
from django.utils.functional import SimpleLazyObject, empty


class MessageMiddleware(DjangoMessages):
    def process_request(self, request: HttpRequest) -> None:
        request._messages = SimpleLazyObject(lambda: default_storage(request))

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        messages = getattr(request, "_messages", None)
        if isinstance(messages, SimpleLazyObject) and messages._wrapped is empty:
            return response  # never used: nothing to store
        return super().process_response(request, response)
