"""Our chat widget: a JSON webhook signed like our outbound webhooks (Standard Webhooks).

Headers: `webhook-id`, `webhook-timestamp` (Unix seconds, within 5 minutes of now)
and `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`
(several space-separated entries allowed, e.g. during a key rotation). The key is
CHAT_WIDGET_SECRET: a `whsec_<base64>` secret is base64-decoded as Standard
Webhooks does; any other value is used as UTF-8 bytes.

Body (one message per request):

    {
      "id": "msg_01H…",                        # the message id, unique per widget; the dedupe key
      "visitor": {"id": "v_8f2…", "email": "lisa@example.com", "phone": "+4915112345678", "name": "Lisa"},
      "message": "Hello, my order has not arrived",
      "timestamp": "2025-03-01T10:15:00Z",     # ISO 8601 with a zone, or Unix seconds
      "author": "visitor" | "agent" | "bot",   # optional, default "visitor"
      "conversation_id": "c_42"                # optional, kept in data
    }

Only `id`, `visitor.id` and `message` are required; email, phone and name are optional.
"""

import base64
import binascii
import hashlib
import hmac
import json
import time

from interactions.channels import Parsed, PayloadInvalid, SignatureInvalid, SignatureMissing, from_unix, identity, secure_equal
from interactions.ingest import MAX_BODY_CHARS, IngestItem, parse_datetime_aware

SOURCE = "chat"
TOLERANCE_SECONDS = 300
AUTHORS = {"visitor": ("inbound", "customer"), "agent": ("outbound", "agent"), "bot": ("outbound", "bot")}


def secret_key(secret):
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret[len("whsec_") :], validate=True)
        except (binascii.Error, ValueError):
            pass
    return secret.encode()


def sign(*, secret, msg_id, timestamp, body):
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(secret_key(secret), signed, hashlib.sha256).digest()).decode("ascii")


def verify(*, body, secret, msg_id, timestamp, header, now=None):
    if not (msg_id and timestamp and header):
        raise SignatureMissing("The webhook-id, webhook-timestamp and webhook-signature headers are required.")
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise SignatureInvalid("webhook-timestamp is not a number of seconds.") from None
    if abs((now if now is not None else time.time()) - sent_at) > TOLERANCE_SECONDS:
        raise SignatureInvalid(f"webhook-timestamp is more than {TOLERANCE_SECONDS} s away from now.")
    expected = sign(secret=secret, msg_id=msg_id, timestamp=timestamp, body=body)
    matched = False
    for entry in header.split():
        matched |= secure_equal(entry, expected)
    if not matched:
        raise SignatureInvalid("The webhook-signature does not match.")


def parse(*, body, received_at):
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadInvalid(f"The body is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise PayloadInvalid("The body must be a JSON object.")
    visitor = payload.get("visitor")
    if not isinstance(visitor, dict) or not visitor.get("id"):
        raise PayloadInvalid("visitor.id is required.")
    if not payload.get("id") or not isinstance(payload.get("id"), str):
        raise PayloadInvalid("id (the message id) is required.")
    message = payload.get("message")
    if not isinstance(message, str):
        raise PayloadInvalid("message must be a string.")
    chat_identity = identity("chat", visitor["id"])
    if chat_identity is None:
        raise PayloadInvalid("visitor.id must be one word without spaces.")
    identities, skipped = [chat_identity], []
    for kind in ("email", "phone"):
        if visitor.get(kind):
            found = identity(kind, visitor[kind])
            if found is None:
                skipped.append(f"visitor.{kind} {visitor[kind]!r} is not valid")
            else:
                identities.append(found)
    author = payload.get("author", "visitor")
    if author not in AUTHORS:
        raise PayloadInvalid(f"author must be one of {', '.join(AUTHORS)}.")
    direction, author_type = AUTHORS[author]
    timestamp = payload.get("timestamp")
    try:
        if isinstance(timestamp, (int, float)) and not isinstance(timestamp, bool):
            occurred_at = from_unix(timestamp)
        elif isinstance(timestamp, str):
            occurred_at = parse_datetime_aware(timestamp)
        else:
            occurred_at = received_at
    except (ValueError, OverflowError) as exc:
        raise PayloadInvalid(f"timestamp: {exc}") from None
    data = {"visitor_id": chat_identity.value}
    if payload.get("conversation_id"):
        data["widget_conversation_id"] = str(payload["conversation_id"])[:255]
    if skipped:
        data["skipped"] = skipped
    item = IngestItem(
        source=SOURCE,
        external_id=payload["id"][:255],
        channel="chat",
        kind="message",
        direction=direction,
        author_type=author_type,
        occurred_at=occurred_at,
        # An agent's or bot's message still belongs on the visitor's timeline.
        identities=identities,
        customer_name=str(visitor.get("name") or "")[:200],
        body=message[:MAX_BODY_CHARS],
        author_name=str(payload.get("author_name") or "")[:200],
        data=data,
    )
    return Parsed(items=[item], skipped=skipped)
