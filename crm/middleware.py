from django.conf import settings
from django.http import JsonResponse


class BodySizeLimitMiddleware:
    """Answers 413 before reading a body the request itself declares too large.

    Bodies without a Content-Length are capped when read, through
    DATA_UPLOAD_MAX_MEMORY_SIZE; the API's exception handler turns that into a
    413 as well.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        length = request.META.get("CONTENT_LENGTH")
        if length:
            try:
                size = int(length)
            except ValueError:
                return JsonResponse(
                    {"code": "invalid_content_length", "detail": "Content-Length is not a number."}, status=400
                )
            if size > settings.MAX_BODY_BYTES:
                return body_too_large_response()
        return self.get_response(request)


def body_too_large_response():
    return JsonResponse(
        {
            "code": "body_too_large",
            "detail": f"The request body is larger than the limit of {settings.MAX_BODY_BYTES} bytes.",
        },
        status=413,
    )
