"""One error shape for the whole API: a code, a sentence, and per-field reasons."""

from django.core.exceptions import RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from crm.api import MissingScope


def api_exception_handler(exc, context):
    if isinstance(exc, RequestDataTooBig):
        from crm.middleware import body_too_large_response

        return body_too_large_response()
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = {
            "code": "invalid",
            "detail": "The request has invalid fields.",
            "errors": exc.get_full_details(),
        }
        if response.status_code == status.HTTP_400_BAD_REQUEST and getattr(exc, "status_code", 400) != 400:
            response.status_code = exc.status_code
        return response
    if isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        body = {"code": codes if isinstance(codes, str) else exc.default_code, "detail": str(exc.detail)}
        if isinstance(exc, MissingScope):
            body["required_scope"] = exc.scope
        response.data = body
    return response


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"
    default_detail = "The request conflicts with the current state."


class Unprocessable(exceptions.APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_code = "unprocessable"
    default_detail = "The request cannot be processed."


def error_response(code, detail, status_code, **extra):
    return Response({"code": code, "detail": detail, **extra}, status=status_code)
