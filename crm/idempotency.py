"""`Idempotency-Key` for every POST of the REST API.

A POST under /api/v1/ that carries the header is remembered per caller, method,
path and key: the first response that completes (any status below 500 except
401, 403 and 429, which say nothing was done) is stored with a hash of the
request body. The same key again with the same body gets that response back,
marked `Idempotent-Replayed: true`; with another body, 422
`idempotency_key_reused`; while the first request is still running, 409.

The caller is authenticated here (API token, else the session user), so one
caller can never read another's stored response; requests nobody can be
identified for go on to the view, which answers 401.
"""

import hashlib
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import IntegrityError, transaction
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from rest_framework import exceptions

from crm.api import ApiTokenAuthentication
from crm.middleware import body_too_large_response

HEADER = "HTTP_IDEMPOTENCY_KEY"
MAX_KEY_LENGTH = 255
API_PREFIX = "/api/v1/"
# Responses that mean nothing was done, so a retry with the same key must run again.
NOT_STORED = {401, 403, 429}


class IdempotencyKeyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method != "POST" or HEADER not in request.META or not request.path_info.startswith(API_PREFIX):
            return self.get_response(request)
        key = request.META[HEADER].strip()
        if not key or len(key) > MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
            detail = f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters."
            return JsonResponse(
                {
                    "code": "invalid_idempotency_key",
                    "detail": detail,
                    "errors": {"Idempotency-Key": [{"message": detail, "code": "invalid"}]},
                },
                status=400,
            )
        owner = caller(request)
        if owner is None:
            return self.get_response(request)
        try:
            body = request.body
        except RequestDataTooBig:
            return body_too_large_response()

        from integrations.models import IdempotencyKey

        fingerprint = hashlib.sha256(f"{owner}\n{request.method}\n{request.path}\n{key}".encode()).hexdigest()
        # The query string is part of the request: the same key with other parameters is another request.
        query = request.META.get("QUERY_STRING", "").encode("latin-1", "replace")
        request_hash = hashlib.sha256(query + b"\n" + body).hexdigest()
        row, existing = key_claim(
            fingerprint=fingerprint,
            owner=owner,
            key=key,
            method=request.method,
            path=request.path,
            request_hash=request_hash,
        )
        if existing is not None:
            return answer_existing(existing, request_hash)

        try:
            response = self.get_response(request)
        except BaseException:
            IdempotencyKey.objects.filter(pk=row.pk).delete()
            raise
        if response.status_code >= 500 or response.status_code in NOT_STORED or response.streaming:
            # Nothing reliable to replay: the key is free for a retry.
            IdempotencyKey.objects.filter(pk=row.pk).delete()
            return response
        IdempotencyKey.objects.filter(pk=row.pk).update(
            status=IdempotencyKey.Status.COMPLETED,
            response_status=response.status_code,
            response_body=bytes(response.content),
            response_content_type=response.get("Content-Type", ""),
        )
        return response


def caller(request) -> str | None:
    """`token:<id>` or `user:<id>` for the request's caller, None when unidentified."""
    try:
        result = ApiTokenAuthentication().authenticate(request)
    except exceptions.AuthenticationFailed:
        return None
    if result is not None:
        return f"token:{result[1].pk}"
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.pk is not None:
        return f"user:{user.pk}"
    return None


def key_claim(*, fingerprint, owner, key, method, path, request_hash):
    """(our new in-flight row, None) or (None, the row someone else holds)."""
    from integrations.models import IdempotencyKey

    now = timezone.now()
    fields = {
        "owner": owner,
        "key": key,
        "method": method,
        "path": path[:2000],
        "request_hash": request_hash,
        "status": IdempotencyKey.Status.IN_FLIGHT,
        "response_status": None,
        "response_body": None,
        "response_content_type": "",
        "created_at": now,
        "expires_at": now + timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS),
    }
    for _ in range(3):
        try:
            # The unique fingerprint decides between concurrent first requests.
            with transaction.atomic():
                return IdempotencyKey.objects.create(fingerprint=fingerprint, **fields), None
        except IntegrityError:
            pass
        existing = IdempotencyKey.objects.filter(fingerprint=fingerprint).first()
        if existing is None:
            continue  # purged in between: try again
        stale = existing.status == IdempotencyKey.Status.IN_FLIGHT and existing.created_at < now - timedelta(
            seconds=settings.IDEMPOTENCY_IN_FLIGHT_SECONDS
        )
        if existing.expires_at > now and not stale:
            return None, existing
        # Expired, or its request died without finishing: take it over unless someone just did.
        taken = IdempotencyKey.objects.filter(
            pk=existing.pk, status=existing.status, created_at=existing.created_at
        ).update(**fields)
        if taken:
            existing.refresh_from_db()
            return existing, None
    return None, IdempotencyKey.objects.get(fingerprint=fingerprint)


def answer_existing(existing, request_hash):
    from integrations.models import IdempotencyKey

    if existing.request_hash != request_hash:
        return JsonResponse(
            {
                "code": "idempotency_key_reused",
                "detail": "This Idempotency-Key was used with a different request body.",
            },
            status=422,
        )
    if existing.status == IdempotencyKey.Status.IN_FLIGHT:
        return JsonResponse(
            {"code": "idempotency_key_in_flight", "detail": "A request with this Idempotency-Key is still running."},
            status=409,
        )
    response = HttpResponse(
        bytes(existing.response_body or b""),
        status=existing.response_status,
        content_type=existing.response_content_type or None,
    )
    response["Idempotent-Replayed"] = "true"
    return response
