"""What every API view shares: token authentication, scopes, pagination, JSON the database can store."""

import base64
import binascii
import json
import re
from datetime import datetime

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions, pagination, serializers
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.parsers import JSONParser
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.response import Response

# Every scope a token can hold. A view names the one each request needs.
SCOPES = {
    "interactions:read": "Read interactions and surveys",
    "interactions:write": "Push interactions, surveys and signals",
    "customers:read": "Read customers, identities and timelines",
    "customers:write": "Edit, merge and unmerge customers",
    "conversations:read": "Read conversations",
    "conversations:write": "Change conversation status and assignee",
    "metrics:read": "Read customer metrics and organisation KPIs",
    "webhooks:read": "Read outbound webhook subscriptions and deliveries",
    "webhooks:write": "Manage outbound webhook subscriptions",
    "standards:read": "Read service standards, compliance and canned responses",
    "standards:write": "Record canned response use and standard changes",
}


class MissingScope(exceptions.PermissionDenied):
    default_code = "missing_scope"

    def __init__(self, scope):
        self.scope = scope
        super().__init__(detail=f"This token lacks the scope '{scope}'.")


class ApiTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer <token>`; tokens are looked up by their SHA-256."""

    keywords = (b"bearer", b"token")

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() not in self.keywords:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("The Authorization header must be 'Bearer <token>'.")
        try:
            raw = parts[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed("The token has characters no token has.") from exc

        from integrations.selectors import api_token_get_active

        token = api_token_get_active(raw=raw)
        if token is None:
            raise exceptions.AuthenticationFailed("The token is unknown, revoked or expired.")
        return (token.as_user(), token)

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """Tells the OpenAPI schema that the API takes `Authorization: Bearer <token>`."""

    target_class = ApiTokenAuthentication
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token (`manage.py create_api_token` or the admin); each carries scopes.",
        }


def required_scope(view, request):
    """The scope a request needs: `view.get_required_scope()` or `view.required_scopes`."""
    getter = getattr(view, "get_required_scope", None)
    if getter is not None:
        return getter(request)
    scopes = getattr(view, "required_scopes", None)
    if not scopes:
        return None
    if isinstance(scopes, str):
        return scopes
    kind = "read" if request.method in SAFE_METHODS else "write"
    return scopes.get(request.method, scopes.get(kind))


class HasScope(BasePermission):
    """Tokens need the view's scope; staff signed in with a session hold every scope."""

    def has_permission(self, request, view):
        if request.user is None or not request.user.is_authenticated:
            raise exceptions.NotAuthenticated()
        scope = required_scope(view, request)
        if scope is None:
            # A view that names no scope is closed, not open.
            raise exceptions.PermissionDenied("This endpoint has no scope configured.")
        token = request.auth
        if token is not None and hasattr(token, "has_scope"):
            if not token.has_scope(scope):
                raise MissingScope(scope)
            return True
        if request.user.is_active and request.user.is_staff:
            return True
        raise MissingScope(scope)


class PageNumberPagination(pagination.PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 200


class KeysetPagination:
    """Newest-first pages over (occurred_at, id), resumed from an opaque cursor.

    The cursor carries the last row's (occurred_at, id), so each page is one
    index range scan however deep the reader has scrolled.
    """

    def __init__(self, *, default_size, max_size):
        self.default_size = default_size
        self.max_size = max_size

    def page_size(self, request):
        raw = request.query_params.get("page_size")
        if raw is None:
            return self.default_size
        try:
            size = int(raw)
        except ValueError:
            raise exceptions.ValidationError({"page_size": ["Must be a whole number."]}) from None
        if not 1 <= size <= self.max_size:
            raise exceptions.ValidationError({"page_size": [f"Must be between 1 and {self.max_size}."]})
        return size

    @staticmethod
    def encode(occurred_at, pk):
        raw = json.dumps([occurred_at.isoformat(), pk]).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @staticmethod
    def decode(cursor):
        try:
            padded = cursor + "=" * (-len(cursor) % 4)
            at, pk = json.loads(base64.urlsafe_b64decode(padded.encode()))
            occurred_at = datetime.fromisoformat(at)
            if timezone.is_naive(occurred_at) or not isinstance(pk, int):
                raise ValueError
        except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
            raise exceptions.ValidationError({"cursor": ["The cursor is not one this API issued."]}) from None
        return occurred_at, pk

    def cursor_from(self, request):
        cursor = request.query_params.get("cursor")
        return self.decode(cursor) if cursor else None

    def response(self, request, rows, size, data, extra=None):
        """`rows` were fetched with one row beyond `size` to know if more follow."""
        next_url = None
        if len(rows) > size:
            last = rows[size - 1]
            params = request.query_params.copy()
            params["cursor"] = self.encode(last.occurred_at, last.pk)
            next_url = request.build_absolute_uri(request.path) + "?" + params.urlencode()
        body = {"next": next_url, "results": data}
        if extra:
            body = {**extra, **body}
        return Response(body)


class AwareDateTimeField(serializers.DateTimeField):
    """An ISO 8601 timestamp that must carry its time zone; a naive one is refused, not guessed."""

    default_error_messages = {"naive": "Give a time zone, e.g. 'Z' or '+03:30'."}

    def to_internal_value(self, value):
        if isinstance(value, str):
            parsed = parse_datetime(value.strip())
            if parsed is not None and timezone.is_naive(parsed):
                self.fail("naive")
        return super().to_internal_value(value)


# JSON may carry "\u0000" and a lone "\ud83d"; PostgreSQL stores neither in text or jsonb.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
UNSTORABLE_MESSAGE = "Holds text that cannot be stored: a NUL character (\\u0000) or an unpaired surrogate."


def unstorable(value) -> bool:
    """Whether decoded JSON `value` holds such text anywhere, keys included."""
    if isinstance(value, str):
        return UNSTORABLE.search(value) is not None
    if isinstance(value, dict):
        return any(unstorable(key) or unstorable(item) for key, item in value.items())
    if isinstance(value, list):
        return any(unstorable(item) for item in value)
    return False


class StorableJSONParser(JSONParser):
    """JSON, refused with a 400 naming the field when it holds text the database cannot store.

    Without this, such a value reaches PostgreSQL and fails there as a 500.
    The ingest views parse with plain `JSONParser`: `item_parse` judges each item.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        if isinstance(data, dict):
            bad = [key for key, value in data.items() if unstorable(key) or unstorable(value)]
        else:
            bad = ["non_field_errors"] if unstorable(data) else []
        if bad:
            raise exceptions.ValidationError(
                {name if not UNSTORABLE.search(name) else "non_field_errors": [
                    exceptions.ErrorDetail(UNSTORABLE_MESSAGE, code="unstorable_text")
                ] for name in bad}
            )
        return data
