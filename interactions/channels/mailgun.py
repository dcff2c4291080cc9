"""Mailgun inbound routes: the message as form fields (parsed) or as `body-mime` (raw MIME).

Signature: form fields `timestamp`, `token` and `signature` = hex HMAC-SHA256 of
timestamp + token keyed with the webhook signing key (MAILGUN_SIGNING_KEY); a
timestamp outside the replay window (MAILGUN_REPLAY_WINDOW_SECONDS, 0 = off) is
refused. https://documentation.mailgun.com/docs/mailgun/user-manual/receive-forward-store/
"""

import hashlib
import hmac
import json

from interactions.channels import (
    Parsed,
    PayloadInvalid,
    SignatureInvalid,
    SignatureMissing,
    form_dict,
    form_fields,
    from_unix,
    secure_equal,
)
from interactions.channels import email as email_channel


def verify(*, body, content_type, signing_key, replay_window_seconds=0, now=None):
    try:
        fields = form_dict(form_fields(body, content_type))
    except PayloadInvalid as exc:
        raise SignatureMissing(f"No signature fields: {exc}") from None
    timestamp, token, signature = (fields.get(name, "").strip() for name in ("timestamp", "token", "signature"))
    if not (timestamp and token and signature):
        raise SignatureMissing("The timestamp, token and signature fields are required.")
    expected = hmac.new(signing_key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    if not secure_equal(expected, signature.lower()):
        raise SignatureInvalid("The Mailgun signature does not match.")
    if replay_window_seconds and now is not None:
        try:
            age = abs((now - from_unix(timestamp)).total_seconds())
        except (ValueError, OverflowError):
            raise SignatureInvalid("The timestamp is not a number.") from None
        if age > replay_window_seconds:
            raise SignatureInvalid(f"The timestamp is {int(age)} s away from now; the window is {replay_window_seconds} s.")


def parse(*, body, content_type, received_at):
    fields = form_fields(body, content_type)
    values = form_dict(fields)
    mime = values.get("body-mime")
    if mime:
        return email_channel.parse(body=mime.encode("utf-8", errors="surrogateescape"), received_at=received_at, provider="mailgun")

    try:
        header_pairs = json.loads(values.get("message-headers") or "[]")
    except ValueError:
        header_pairs = []
    if not isinstance(header_pairs, list) or not header_pairs:
        # Without message-headers, the capitalised fields Mailgun posts are the headers.
        header_pairs = [(name, value) for name, value in values.items() if name[:1].isupper()]
        for name, header in (("from", "From"), ("subject", "Subject"), ("sender", "Sender")):
            if name in values and header not in values:
                header_pairs.append((header, values[name]))
    pairs = [tuple(pair) for pair in header_pairs if isinstance(pair, (list, tuple)) and len(pair) == 2]
    message = email_channel.headers_message(pairs)
    if not message.keys():
        raise PayloadInvalid("The Mailgun post carries neither body-mime nor message headers.")

    attachments = [
        {"name": item.filename or "", "content_type": item.content_type, "size": len(item.value)}
        for item in fields
        if item.filename is not None
    ]
    try:
        stored = json.loads(values.get("attachments") or "[]")  # store-and-notify routes
    except ValueError:
        stored = []
    for entry in stored if isinstance(stored, list) else []:
        if isinstance(entry, dict):
            attachments.append(
                {"name": entry.get("name", ""), "content_type": entry.get("content-type", ""), "size": entry.get("size", 0)}
            )
    item = email_channel.email_item(
        message=message,
        received_at=received_at,
        text=values.get("body-plain", ""),
        html=values.get("body-html", ""),
        attachments=attachments,
        provider="mailgun",
    )
    return Parsed(items=[item])
