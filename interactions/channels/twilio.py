"""Twilio: voice status callbacks, inbound SMS and WhatsApp messages, message status callbacks.

Signature: `X-Twilio-Signature` = base64 HMAC-SHA1 (auth token) of the full public
URL followed by every POST parameter name and value, names sorted. The public base
URL comes from TWILIO_PUBLIC_BASE_URL because the app runs behind a proxy; the URL
is checked with and without the scheme's default port, since Twilio signs the URL
as configured in the console. https://www.twilio.com/docs/usage/webhooks/webhooks-security

Voice: one call interaction per CallSid; later callbacks of the same call update its
status and duration (a StatusUpdate) rather than adding rows.
Messaging: one message per MessageSid; `whatsapp:+…` senders are WhatsApp.
"""

import base64
import hashlib
import hmac
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit, urlunsplit

from interactions.channels import (
    Parsed,
    PayloadInvalid,
    SignatureInvalid,
    SignatureMissing,
    StatusUpdate,
    form_fields,
    identity,
    secure_equal,
)
from interactions.ingest import IngestItem

SOURCE = "twilio"
DEFAULT_PORTS = {"https": 443, "http": 80}
FINAL_CALL_STATUSES = {"completed", "busy", "no-answer", "failed", "canceled"}


def signature(*, auth_token, url, params):
    """base64 HMAC-SHA1 over the URL and the sorted parameters (every value of a repeated name, sorted)."""
    payload = url
    names = sorted({name for name, _value in params})
    for name in names:
        for value in sorted(value for key, value in params if key == name):
            payload += name + value
    digest = hmac.new(auth_token.encode(), payload.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def url_variants(url):
    """The URL as given, without its default port, and with it."""
    parts = urlsplit(url)
    default = DEFAULT_PORTS.get(parts.scheme)
    host = parts.hostname or ""
    if ":" in host:  # IPv6
        host = f"[{host}]"
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = userinfo + "@" if userinfo else ""
    variants = [url]
    if default is None:
        return variants
    if parts.port in (None, default):
        without = urlunsplit(parts._replace(netloc=f"{prefix}{host}"))
        with_port = urlunsplit(parts._replace(netloc=f"{prefix}{host}:{default}"))
        variants += [v for v in (without, with_port) if v not in variants]
    return variants


def verify(*, body, content_type, url, auth_token, header):
    if not header:
        raise SignatureMissing("The X-Twilio-Signature header is missing.")
    try:
        params = [(item.name, item.text()) for item in form_fields(body, content_type)]
    except PayloadInvalid as exc:
        raise SignatureInvalid(str(exc)) from None
    matched = False
    for candidate in url_variants(url):
        matched |= secure_equal(signature(auth_token=auth_token, url=candidate, params=params), header.strip())
    if not matched:
        raise SignatureInvalid("The Twilio signature does not match this URL and these parameters.")


def _params(body, content_type):
    params = {}
    for item in form_fields(body, content_type):
        params.setdefault(item.name, item.text())
    return params


def _timestamp(value, fallback):
    if not value:
        return fallback
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return fallback
    return when if when.tzinfo else fallback


def parse_voice(*, body, content_type, received_at):
    """A voice status callback -> one call item (created once per CallSid) and its current status."""
    params = _params(body, content_type)
    call_sid = params.get("CallSid", "").strip()
    if not call_sid:
        raise PayloadInvalid("A voice callback without CallSid.")
    status = params.get("CallStatus", "").strip().lower()
    direction_raw = params.get("Direction", "inbound").strip().lower()
    outbound = direction_raw.startswith("outbound")
    customer_number = params.get("To" if outbound else "From", "")
    found = identity("phone", customer_number)
    if found is None:
        raise PayloadInvalid(f"The caller {customer_number!r} is not a valid phone number (withheld or anonymous).")
    occurred_at = _timestamp(params.get("Timestamp"), received_at)
    data = {"call_status": status, "twilio_direction": direction_raw, "from": params.get("From", ""), "to": params.get("To", "")}
    duration = params.get("CallDuration") or params.get("Duration")
    if duration and duration.strip().isdigit():
        data["duration_seconds"] = int(duration)
    if status in FINAL_CALL_STATUSES:
        data["outcome"] = status.replace("-", "_")
    item = IngestItem(
        source=SOURCE,
        external_id=call_sid,
        channel="phone",
        kind="call",
        direction="outbound" if outbound else "inbound",
        author_type="agent" if outbound else "customer",
        occurred_at=occurred_at,
        identities=[found],
        customer_name=params.get("CallerName", "")[:200] if not outbound else "",
        data=data,
    )
    update = StatusUpdate(source=SOURCE, external_id=call_sid, status=status, occurred_at=occurred_at, data=data)
    return Parsed(items=[item], updates=[update])


def parse_messaging(*, body, content_type, received_at):
    """An inbound SMS/WhatsApp message -> one message; a status callback -> a status update."""
    params = _params(body, content_type)
    sid = (params.get("MessageSid") or params.get("SmsSid") or "").strip()
    if not sid:
        raise PayloadInvalid("A messaging webhook without MessageSid.")
    status = (params.get("MessageStatus") or params.get("SmsStatus") or "").strip().lower()
    sender = params.get("From", "")
    whatsapp = sender.lower().startswith("whatsapp:")
    if "Body" not in params and status not in ("", "received", "receiving"):
        # A status callback of a message we sent: sent, delivered, read, failed, undelivered.
        data = {"delivery_status": status}
        if params.get("ErrorCode"):
            data["error_code"] = params["ErrorCode"]
        return Parsed(updates=[StatusUpdate(source=SOURCE, external_id=sid, status=status, occurred_at=received_at, data=data)])

    found = identity("whatsapp" if whatsapp else "phone", sender)
    if found is None:
        raise PayloadInvalid(f"The sender {sender!r} is not a valid phone number.")
    media = []
    try:
        count = int(params.get("NumMedia") or 0)
    except ValueError:
        count = 0
    for index in range(min(count, 10)):
        media.append({"url": params.get(f"MediaUrl{index}", ""), "content_type": params.get(f"MediaContentType{index}", "")})
    data = {"to": params.get("To", ""), "from": sender}
    if media:
        data["media"] = media
    for key in ("Latitude", "Longitude", "ButtonText", "ButtonPayload", "OriginalRepliedMessageSid"):
        if params.get(key):
            data[key[0].lower() + key[1:]] = params[key]
    reply_to = [params["OriginalRepliedMessageSid"]] if params.get("OriginalRepliedMessageSid") else []
    item = IngestItem(
        source=SOURCE,
        external_id=sid,
        channel="whatsapp" if whatsapp else "sms",
        kind="message",
        direction="inbound",
        author_type="customer",
        occurred_at=received_at,
        identities=[found],
        customer_name=params.get("ProfileName", "")[:200],
        body=params.get("Body", ""),
        data=data,
        reply_to=reply_to,
    )
    return Parsed(items=[item])
