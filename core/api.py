"""What every JSON API of the console shares.

- Authentication by the ``rsid`` session cookie. The documented curl commands send
  no CSRF token and no JSON content type, so instead of a token, unsafe requests
  that a browser marks as cross-site (``Sec-Fetch-Site``) or that carry a foreign
  ``Origin`` (or, with neither header, a foreign ``Referer``) are refused; the
  cookie itself is HttpOnly and SameSite=Lax. Clients that send none of the three,
  like curl, are not browsers and pass.
- Bodies are parsed as JSON whatever the content type, up to 64 KiB; JSON nested
  deeper than the parser's recursion limit is a 400, not a crash.
- Serializers refuse unknown fields.
- Errors are ``{"error": "...", "fields": {"name": ["..."]}}``.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db.models.manager import BaseManager
from django.http import Http404, HttpRequest
from django.utils.functional import SimpleLazyObject, empty
from rest_framework import exceptions, serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.fields import Field, SkipField
from rest_framework.fields import empty as no_default
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.renderers import JSONRenderer as DRFJSONRenderer
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder as DRFJSONEncoder

from core.jsontext import JSONText

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

CROSS_SITE_MESSAGE = (
    "Cross-site request refused: call the API from the console's own pages or "
    "from a non-browser client such as curl."
)


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body too large."
    default_code = "payload_too_large"


def _origin_is_ours(request: HttpRequest, origin: str) -> bool:
    own = f"{request.scheme}://{request.get_host()}"
    return origin == own or origin in settings.CSRF_TRUSTED_ORIGINS


def _origin_of(url: str) -> str:
    """``scheme://host[:port]`` of an absolute URL; empty for anything else."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def cross_site_reason(request: HttpRequest) -> str | None:
    """Why an unsafe request looks cross-site, or ``None`` when it does not."""
    if request.method in SAFE_METHODS:
        return None
    fetch_site = request.META.get("HTTP_SEC_FETCH_SITE", "")
    if fetch_site and fetch_site not in ("same-origin", "none"):
        return f"Sec-Fetch-Site is {fetch_site}"
    origin = request.META.get("HTTP_ORIGIN", "")
    if origin and not _origin_is_ours(request, origin):
        return f"Origin {origin} is not this console"
    referer = request.META.get("HTTP_REFERER", "")
    if referer and not fetch_site and not origin:
        # Older browsers send neither header, but still the page's address.
        referer_origin = _origin_of(referer)
        if not _origin_is_ours(request, referer_origin):
            return f"Referer {referer_origin or 'header'} is not this console"
    return None


class SessionCookieAuthentication(SessionAuthentication):
    """The ``rsid`` session, with the cross-site guard in place of a CSRF token."""

    def authenticate(self, request):
        reason = cross_site_reason(request._request)
        if reason is not None:
            raise exceptions.PermissionDenied(f"{CROSS_SITE_MESSAGE} ({reason}).")
        authenticated = super().authenticate(request)
        if authenticated is None:
            return None
        user, credentials = authenticated
        # The user itself rather than the middleware's lazy stand-in, which it
        # has loaded by now: DRF sets it on the request, and every attribute
        # read through the stand-in is a call more.
        if isinstance(user, SimpleLazyObject) and user._wrapped is not empty:
            user = user._wrapped
        return user, credentials

    def enforce_csrf(self, request) -> None:
        # Replaced by the cross-site guard in ``authenticate``.
        return None

    def authenticate_header(self, request) -> str:
        # Makes DRF answer 401 (not 403) when no session is sent.
        return 'Cookie realm="rsid"'


# The renderer DRF chose, by Accept header, format and renderer classes.
_renderer_chosen: dict[tuple, tuple[int, str]] = {}
# Accept headers are the client's to choose: the ones remembered are bounded.
RENDERER_CHOICES_KEPT = 256


class RememberedContentNegotiation(DefaultContentNegotiation):
    """DRF's content negotiation, remembering its choice for each ``Accept``
    header, format and list of renderers: a client sends the same header with
    every request, and DRF parses and matches it each time. What it refuses
    (406, an unknown format) it refuses each time."""

    def select_renderer(self, request, renderers, format_suffix=None):
        format_query_param = self.settings.URL_FORMAT_OVERRIDE
        key = (
            request.META.get("HTTP_ACCEPT", ""),
            format_suffix or request.query_params.get(format_query_param),
            tuple(type(renderer) for renderer in renderers),
        )
        chosen = _renderer_chosen.get(key)
        if chosen is None:
            renderer, media_type = super().select_renderer(
                request, renderers, format_suffix
            )
            chosen = (renderers.index(renderer), media_type)
            if len(_renderer_chosen) < RENDERER_CHOICES_KEPT:
                _renderer_chosen[key] = chosen
        index, media_type = chosen
        return renderers[index], media_type


class _JSONTextEncoder(DRFJSONEncoder):
    """DRF's encoder, writing each ``JSONText`` as its text.

    Python's encoder cannot insert text it did not encode: each ``JSONText``
    is encoded as a marker string naming it, then the markers are replaced.
    The markers carry a random part made for this answer, which no value in
    the answer can contain by chance or by design.
    """

    def encode(self, o: Any) -> str:
        self._texts: list[str] = []
        self._marker = ""
        encoded = super().encode(o)
        if not self._texts:
            return encoded
        # Each marker is encoded as '"<marker><index>"'.
        pieces = encoded.split(f'"{self._marker}')
        answer = [pieces[0]]
        for piece in pieces[1:]:
            index, _, after = piece.partition('"')
            answer += (self._texts[int(index)], after)
        return "".join(answer)

    def default(self, obj: Any) -> Any:
        if isinstance(obj, JSONText):
            # Drawn for the first text only: most answers carry none.
            self._marker = self._marker or secrets.token_hex(16)
            self._texts.append(obj.text)
            return f"{self._marker}{len(self._texts) - 1}"
        return super().default(obj)


class JSONRenderer(DRFJSONRenderer):
    """DRF's JSON renderer; a ``JSONText`` in the answer goes out as its text."""

    encoder_class = _JSONTextEncoder


class AnyContentJSONParser(BaseParser):
    """Parse the body as JSON whatever Content-Type says (curl ``--data-raw``)."""

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        limit = settings.API_MAX_BODY_BYTES
        raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise PayloadTooLarge(
                f"Request body is over {limit // 1024} KiB; send a smaller JSON body."
            )
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as error:
            raise exceptions.ParseError(
                "Request body is not UTF-8 text; send JSON encoded as UTF-8."
            ) from error
        except json.JSONDecodeError as error:
            raise exceptions.ParseError(
                f"Malformed JSON: {error.msg} at line {error.lineno} column "
                f"{error.colno}."
            ) from error
        except RecursionError as error:
            # json's decoder recurses once per level: "[[[[..." exhausts the stack.
            raise exceptions.ParseError(TOO_DEEP) from error
        # Python 3.13's decoder no longer runs out of stack at a few thousand
        # levels, so the limit is checked on what it returns.
        if _depth_over(data, MAX_JSON_DEPTH):
            raise exceptions.ParseError(TOO_DEEP)
        return data


MAX_JSON_DEPTH = 500
TOO_DEEP = "JSON nested too deeply; no API takes more than a few levels."


def _depth_over(data: Any, limit: int) -> bool:
    """Whether lists and objects in ``data`` nest deeper than ``limit``."""
    pending = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False


class StrictSerializer(serializers.Serializer):
    """A serializer that names unknown fields instead of ignoring them."""

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError(
                {
                    "non_field_errors": [
                        f"Expected a JSON object, got {type(data).__name__}."
                    ]
                }
            )
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            allowed = ", ".join(sorted(self.fields))
            message = f"Unknown field. Allowed fields: {allowed}."
            raise serializers.ValidationError({name: [message] for name in unknown})
        return super().to_internal_value(data)


def _flatten_fields(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """Nested serializer errors as ``{"a.b": ["message"]}``."""
    fields: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = key if not prefix else f"{prefix}.{key}"
            if key == "non_field_errors" and prefix:
                name = prefix
            fields.update(_flatten_fields(value, name))
    elif isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            fields.setdefault(prefix or "non_field_errors", []).extend(
                str(item) for item in detail
            )
        else:
            for index, item in enumerate(detail):
                fields.update(_flatten_fields(item, f"{prefix}[{index}]"))
    else:
        fields.setdefault(prefix or "non_field_errors", []).append(str(detail))
    return fields


def validation_error_body(detail: Any) -> dict[str, Any]:
    """The JSON body for invalid input: a summary and the messages by field."""
    fields = _flatten_fields(detail)
    general = fields.pop("non_field_errors", [])
    named = sorted(fields)
    if general:
        message = " ".join(general)
    elif named:
        message = f"Invalid input in {', '.join(named)}: see fields."
    else:
        message = "Invalid input."
    body: dict[str, Any] = {"error": message}
    if fields:
        body["fields"] = fields
    return body


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF errors as ``{"error", "fields"}``."""
    if isinstance(exc, Http404):
        message = str(exc) or "Not found."
        return Response({"error": message}, status=status.HTTP_404_NOT_FOUND)
    if isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    # Imported at call time: rest_framework.views imports this module's
    # authentication class while it is itself being imported.
    from rest_framework import views as drf_views

    response = drf_views.exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = validation_error_body(exc.detail)
    else:
        detail = getattr(exc, "detail", None)
        response.data = {"error": str(detail) if detail else str(exc)}
    return response


class StrictIntegerField(serializers.IntegerField):
    """A JSON number without a fraction; strings and booleans are wrong types."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        if isinstance(data, float) and not data.is_integer():
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """JSON ``true`` or ``false`` only."""

    default_error_messages = {"invalid": "Must be true or false (JSON boolean)."}

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class StrictCharField(serializers.CharField):
    """A JSON string; numbers, booleans, lists and objects are wrong types."""

    default_error_messages = {"invalid": "Must be a string."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


_bound_serializers = threading.local()

# Output fields whose ``to_representation`` is a plain conversion.
_PLAIN_CONVERSIONS: dict[Callable[..., Any], Callable[[Any], Any]] = {
    serializers.CharField.to_representation: str,
    serializers.IntegerField.to_representation: int,
}


# Whether a type is a Mapping, by type: ``isinstance`` against an abstract
# class costs a lookup in its cache on every call.
_is_mapping: dict[type, bool] = {dict: True}
MAPPING_TYPES_KEPT = 256


def _remember_mapping(kind: type) -> bool:
    is_mapping = issubclass(kind, Mapping)
    if len(_is_mapping) < MAPPING_TYPES_KEPT:
        _is_mapping[kind] = is_mapping
    return is_mapping


def _attribute_getter(field: Field) -> Callable[[Any], Any]:
    """``field.get_attribute``: a plain attribute or key read here, with what
    DRF answers when one is not there; DRF's own call for a callable on the
    way, a missing object, or a default to work out."""
    attrs = tuple(field.source_attrs)
    if not attrs:
        return _itself
    drf_get_attribute = field.get_attribute
    when_absent = _when_absent(field)
    if len(attrs) == 1:
        return _one_attribute_getter(attrs[0], drf_get_attribute, when_absent)

    def get_attribute(instance: Any) -> Any:
        value = instance
        try:
            for attr in attrs:
                kind = type(value)
                is_mapping = _is_mapping.get(kind)
                if is_mapping is None:
                    is_mapping = _remember_mapping(kind)
                value = value[attr] if is_mapping else getattr(value, attr)
                if callable(value):
                    return drf_get_attribute(instance)
        except ObjectDoesNotExist:
            return drf_get_attribute(instance)
        except (KeyError, AttributeError):
            return when_absent(instance)
        return value

    return get_attribute


def _one_attribute_getter(
    attr: str,
    drf_get_attribute: Callable[[Any], Any],
    when_absent: Callable[[Any], Any],
) -> Callable[[Any], Any]:
    """``_attribute_getter`` for a source of one name (most of them), without
    the walk."""

    def get_attribute(instance: Any) -> Any:
        kind = type(instance)
        is_mapping = _is_mapping.get(kind)
        if is_mapping is None:
            is_mapping = _remember_mapping(kind)
        try:
            value = instance[attr] if is_mapping else getattr(instance, attr)
        except ObjectDoesNotExist:
            return drf_get_attribute(instance)
        except (KeyError, AttributeError):
            return when_absent(instance)
        return drf_get_attribute(instance) if callable(value) else value

    return get_attribute


def _when_absent(field: Field) -> Callable[[Any], Any]:
    """What DRF answers for an attribute or key that is not there: null for a
    field that allows it, no entry for an optional one; a default, or the
    message naming the field, from DRF itself."""
    if field.default is no_default:
        if field.allow_null:
            return _null
        if not field.required:
            return _skip
    return field.get_attribute


def _null(instance: Any) -> None:
    return None


def _skip(instance: Any) -> Any:
    raise SkipField()


def _conversion(serializer: serializers.Serializer, field: Field) -> Callable:
    """``field.to_representation``, or what it comes to for this field."""
    method = type(field).to_representation
    plain = _PLAIN_CONVERSIONS.get(method)
    if plain is not None:
        return plain
    if method is serializers.SerializerMethodField.to_representation:
        # DRF looks the method up on the serializer at every call.
        return getattr(serializer, field.method_name)
    if method is serializers.BooleanField.to_representation:
        return _boolean(field.to_representation)
    return field.to_representation


def _boolean(drf_convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A boolean as it is; anything else as DRF reads it (``"yes"``, ``0``)."""

    def convert(value: Any) -> Any:
        return value if value is True or value is False else drf_convert(value)

    return convert


def _itself(instance: Any) -> Any:
    return instance


def _planned(serializer: serializers.BaseSerializer) -> Callable[[Any], Any]:
    """``serializer.to_representation``, with its fields looked at once.

    DRF walks a serializer's fields on every call, looks each attribute up
    through a general function, and calls a method per value; here the walk is
    planned when the serializer is bound. The answer is the same as DRF's; any
    serializer or field whose reading or output is its own (a related field, an
    overridden ``to_representation``) keeps DRF's.
    """
    kind = type(serializer)
    if isinstance(serializer, serializers.ListSerializer):
        if kind.to_representation is not serializers.ListSerializer.to_representation:
            return serializer.to_representation
        child = _planned(serializer.child)

        def represent_many(data: Any) -> list[Any]:
            items = data.all() if isinstance(data, BaseManager) else data
            return [child(item) for item in items]

        return represent_many
    if (
        not isinstance(serializer, serializers.Serializer)
        or kind.to_representation is not serializers.Serializer.to_representation
    ):
        return serializer.to_representation
    steps = []
    for field in serializer._readable_fields:
        if type(field).get_attribute is not Field.get_attribute:
            return serializer.to_representation
        if isinstance(field, serializers.BaseSerializer):
            convert = _planned(field)
        else:
            convert = _conversion(serializer, field)
        steps.append((field.field_name, _attribute_getter(field), convert))

    def represent(instance: Any) -> dict[str, Any]:
        answer: dict[str, Any] = {}
        for name, get_attribute, convert in steps:
            try:
                attribute = get_attribute(instance)
            except SkipField:
                continue
            answer[name] = None if attribute is None else convert(attribute)
        return answer

    return represent


def render(
    serializer_class: type[serializers.BaseSerializer],
    instance: Any,
    *,
    many: bool = False,
) -> Any:
    """``serializer_class(instance, many=many).data`` for an output serializer
    without context, without building its fields again on every call.

    DRF deep-copies a serializer's declared fields (and those of every nested
    serializer) each time one is made: most of the cost of a small answer. Here
    each thread makes one serializer of each class, binds its fields once,
    plans its output once (``_planned``) and reuses both; output serializers
    keep no state between calls.
    """
    made = _bound_serializers.__dict__.setdefault("made", {})
    represent = made.get((serializer_class, many))
    if represent is None:
        represent = made[(serializer_class, many)] = _planned(
            serializer_class(many=many)
        )
    return represent(instance)
