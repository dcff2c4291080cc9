"""Provider webhooks: check size and signature, store the raw event, then answer 2xx.

Plain Django views rather than DRF: providers sign their requests instead of
holding API tokens. Nothing is stored unless the request verifies; processing
happens in a task queued after the row commits (interactions.tasks).
"""

import logging
import time

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from crm.middleware import body_too_large_response
from interactions.channels import SignatureInvalid, SignatureMissing, chat, email, mailgun, meta, sendgrid, twilio
from interactions.inbound import inbound_event_store
from interactions.models import InboundEvent

logger = logging.getLogger(__name__)
TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def _error(code, detail, status):
    return JsonResponse({"code": code, "detail": detail}, status=status)


def _not_configured(setting):
    return _error(
        "provider_not_configured", f"This provider is not configured on this server ({setting} is empty).", 503
    )


def _receive(request, *, provider, verify, keep_headers=(), respond=None):
    """The common path: size, signature, store, acknowledge."""
    try:
        body = request.body
    except RequestDataTooBig:
        return body_too_large_response()
    if len(body) > settings.MAX_BODY_BYTES:
        return body_too_large_response()
    try:
        verify(body)
    except SignatureMissing as exc:
        return _error("signature_missing", str(exc), 401)
    except SignatureInvalid as exc:
        return _error("signature_invalid", str(exc), 403)
    headers = {name: request.headers[name] for name in keep_headers if name in request.headers}
    try:
        event, created = inbound_event_store(
            provider=provider, body=body, content_type=request.content_type_header, headers=headers
        )
    except DatabaseError:
        # Not stored, so not acknowledged: a 503 makes the provider retry later.
        logger.exception("could not store a %s webhook", provider)
        return _error("temporarily_unavailable", "The event could not be stored; retry later.", 503)
    if respond is not None:
        return respond(event, created)
    return JsonResponse({"status": "accepted" if created else "duplicate", "event_id": event.pk}, status=200)


def _content_type(request):
    return request.META.get("CONTENT_TYPE", "")


@csrf_exempt
@require_http_methods(["POST"])
def email_raw(request, secret=None):
    """A raw RFC 5322 message (message/rfc822), authenticated by EMAIL_INBOUND_SECRET."""
    if not settings.EMAIL_INBOUND_SECRET:
        return _not_configured("EMAIL_INBOUND_SECRET")
    request.content_type_header = _content_type(request)

    def verify(body):
        email.verify_secret(
            secret=settings.EMAIL_INBOUND_SECRET, path_secret=secret, authorization=request.headers.get("Authorization", "")
        )

    return _receive(request, provider=InboundEvent.Provider.EMAIL, verify=verify)


@csrf_exempt
@require_http_methods(["POST"])
def mailgun_inbound(request):
    if not settings.MAILGUN_SIGNING_KEY:
        return _not_configured("MAILGUN_SIGNING_KEY")
    request.content_type_header = _content_type(request)

    def verify(body):
        mailgun.verify(
            body=body,
            content_type=request.content_type_header,
            signing_key=settings.MAILGUN_SIGNING_KEY,
            replay_window_seconds=settings.MAILGUN_REPLAY_WINDOW_SECONDS,
            now=timezone.now(),
        )

    return _receive(request, provider=InboundEvent.Provider.MAILGUN, verify=verify)


@csrf_exempt
@require_http_methods(["POST"])
def sendgrid_inbound(request, secret=None):
    if not settings.SENDGRID_INBOUND_SECRET:
        return _not_configured("SENDGRID_INBOUND_SECRET")
    request.content_type_header = _content_type(request)

    def verify(body):
        sendgrid.verify(
            secret=settings.SENDGRID_INBOUND_SECRET,
            path_secret=secret,
            authorization=request.headers.get("Authorization", ""),
        )

    return _receive(request, provider=InboundEvent.Provider.SENDGRID, verify=verify)


def _twilio(request, provider):
    if not (settings.TWILIO_AUTH_TOKEN and settings.TWILIO_PUBLIC_BASE_URL):
        return _not_configured("TWILIO_AUTH_TOKEN or TWILIO_PUBLIC_BASE_URL")
    request.content_type_header = _content_type(request)
    url = settings.TWILIO_PUBLIC_BASE_URL.rstrip("/") + request.get_full_path()

    def verify(body):
        twilio.verify(
            body=body,
            content_type=request.content_type_header,
            url=url,
            auth_token=settings.TWILIO_AUTH_TOKEN,
            header=request.headers.get("X-Twilio-Signature", ""),
        )

    def respond(event, created):
        # Twilio reads the answer as TwiML: an empty response does nothing further.
        return HttpResponse(TWIML_EMPTY, content_type="text/xml")

    return _receive(request, provider=provider, verify=verify, keep_headers=("X-Twilio-Signature",), respond=respond)


@csrf_exempt
@require_http_methods(["POST"])
def twilio_voice(request):
    return _twilio(request, InboundEvent.Provider.TWILIO_VOICE)


@csrf_exempt
@require_http_methods(["POST"])
def twilio_messaging(request):
    return _twilio(request, InboundEvent.Provider.TWILIO_MESSAGING)


@csrf_exempt
@require_http_methods(["GET", "POST"])
def meta_webhook(request):
    if request.method == "GET":
        if not settings.META_VERIFY_TOKEN:
            return _not_configured("META_VERIFY_TOKEN")
        try:
            challenge = meta.handshake(params=request.GET, verify_token=settings.META_VERIFY_TOKEN)
        except SignatureMissing as exc:
            return _error("verification_missing", str(exc), 400)
        except SignatureInvalid as exc:
            return _error("verify_token_invalid", str(exc), 403)
        return HttpResponse(challenge, content_type="text/plain")
    if not settings.META_APP_SECRET:
        return _not_configured("META_APP_SECRET")
    request.content_type_header = _content_type(request)

    def verify(body):
        meta.verify(body=body, app_secret=settings.META_APP_SECRET, header=request.headers.get("X-Hub-Signature-256", ""))

    return _receive(request, provider=InboundEvent.Provider.META, verify=verify, keep_headers=("X-Hub-Signature-256",))


@csrf_exempt
@require_http_methods(["POST"])
def chat_widget(request):
    if not settings.CHAT_WIDGET_SECRET:
        return _not_configured("CHAT_WIDGET_SECRET")
    request.content_type_header = _content_type(request)

    def verify(body):
        chat.verify(
            body=body,
            secret=settings.CHAT_WIDGET_SECRET,
            msg_id=request.headers.get("webhook-id", ""),
            timestamp=request.headers.get("webhook-timestamp", ""),
            header=request.headers.get("webhook-signature", ""),
            now=time.time(),
        )

    return _receive(
        request,
        provider=InboundEvent.Provider.CHAT,
        verify=verify,
        keep_headers=("webhook-id", "webhook-timestamp", "webhook-signature"),
    )
