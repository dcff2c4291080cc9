"""Meta: Messenger, Instagram messaging, WhatsApp Cloud API and Page feed (comments, reactions).

Verification: the GET handshake (`hub.mode=subscribe`, `hub.verify_token` equal to
META_VERIFY_TOKEN, answer `hub.challenge`), and on every POST
`X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body, keyed with META_APP_SECRET>`.
https://developers.facebook.com/docs/graph-api/webhooks/getting-started

One POST can carry many entries; each message becomes its own interaction with the
provider's id (mid, wamid, comment id) as external id, source "meta". Statuses
(delivered, read, failed) and Messenger delivery/read receipts update the outbound
interaction that has that id; they are not new interactions. An outbound message
sent through Meta must therefore be recorded with source "meta" and the provider's
message id for its receipts to find it.
"""

import hashlib
import hmac
import json

from interactions.channels import (
    Parsed,
    PayloadInvalid,
    SignatureInvalid,
    SignatureMissing,
    StatusUpdate,
    WatermarkUpdate,
    from_unix,
    identity,
    secure_equal,
)
from interactions.ingest import MAX_BODY_CHARS, IngestItem

SOURCE = "meta"


def verify(*, body, app_secret, header):
    if not header:
        raise SignatureMissing("The X-Hub-Signature-256 header is missing.")
    scheme, _sep, given = header.strip().partition("=")
    if scheme.lower() != "sha256" or not given:
        raise SignatureInvalid("X-Hub-Signature-256 must read sha256=<hex digest>.")
    expected = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    if not secure_equal(expected, given.lower()):
        raise SignatureInvalid("The X-Hub-Signature-256 signature does not match the body.")


def handshake(*, params, verify_token):
    """The hub.challenge to answer, or raises SignatureInvalid/SignatureMissing."""
    if params.get("hub.mode") != "subscribe" or "hub.verify_token" not in params:
        raise SignatureMissing("Expected hub.mode=subscribe with hub.verify_token and hub.challenge.")
    if not secure_equal(params.get("hub.verify_token", ""), verify_token):
        raise SignatureInvalid("hub.verify_token does not match.")
    return params.get("hub.challenge", "")


def parse(*, body, received_at):
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadInvalid(f"The body is not JSON: {exc}") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("entry"), list):
        raise PayloadInvalid("Expected an object with an `entry` list.")
    kind = payload.get("object")
    parsed = Parsed()
    for index, entry in enumerate(payload["entry"]):
        if not isinstance(entry, dict):
            parsed.skipped.append(f"entry[{index}] is not an object")
            continue
        try:
            if kind in ("page", "instagram"):
                channel = "facebook" if kind == "page" else "instagram"
                for event in entry.get("messaging") or entry.get("standby") or []:
                    parsed.extend(_messaging_event(event, channel, received_at))
                for change in entry.get("changes") or []:
                    parsed.extend(_change(change, channel, str(entry.get("id", "")), received_at))
            elif kind == "whatsapp_business_account":
                for change in entry.get("changes") or []:
                    parsed.extend(_whatsapp_change(change, received_at))
            else:
                parsed.skipped.append(f"object {kind!r} is not supported")
                break
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            parsed.skipped.append(f"entry[{index}] is malformed: {exc.__class__.__name__}: {exc}")
    return parsed


# --- Messenger and Instagram messaging --------------------------------------------------------


def _messaging_event(event, channel, received_at):
    parsed = Parsed()
    sender = str((event.get("sender") or {}).get("id", ""))
    recipient = str((event.get("recipient") or {}).get("id", ""))
    occurred_at = from_unix(event["timestamp"]) if event.get("timestamp") else received_at

    if "message" in event:
        message = event["message"]
        echo = bool(message.get("is_echo"))
        person = identity(channel, recipient if echo else sender)
        mid = message.get("mid")
        if person is None or not mid:
            parsed.skipped.append(f"a {channel} message without a valid person id or mid")
            return parsed
        if message.get("is_deleted"):
            parsed.updates.append(StatusUpdate(SOURCE, mid, "deleted", occurred_at, {"deleted": True}))
            return parsed
        attachments = [
            {"type": a.get("type", ""), "url": (a.get("payload") or {}).get("url", "")}
            for a in message.get("attachments") or []
            if isinstance(a, dict)
        ]
        data = {"attachments": attachments} if attachments else {}
        if message.get("quick_reply"):
            data["quick_reply"] = message["quick_reply"].get("payload", "")
        reply_to = [message["reply_to"]["mid"]] if isinstance(message.get("reply_to"), dict) and message["reply_to"].get("mid") else []
        parsed.items.append(
            IngestItem(
                source=SOURCE,
                external_id=mid,
                channel=channel,
                kind="message",
                direction="outbound" if echo else "inbound",
                author_type="agent" if echo else "customer",
                occurred_at=occurred_at,
                identities=[person],
                body=(message.get("text") or "")[:MAX_BODY_CHARS],
                data=data,
                reply_to=reply_to,
            )
        )
    elif "reaction" in event:
        reaction = event["reaction"]
        person = identity(channel, sender)
        if person is None:
            parsed.skipped.append(f"a {channel} reaction without a valid sender id")
            return parsed
        target = reaction.get("mid", "")
        action = reaction.get("action", "react")
        parsed.items.append(
            IngestItem(
                source=SOURCE,
                # A reaction has no id of its own: derive one from what makes it unique.
                external_id=f"reaction:{target}:{person.value}:{action}:{event.get('timestamp', '')}"[:255],
                channel=channel,
                kind="reaction",
                direction="inbound",
                author_type="customer",
                occurred_at=occurred_at,
                identities=[person],
                body=reaction.get("emoji") or reaction.get("reaction") or "",
                data={"reaction": reaction.get("reaction", ""), "action": action, "target_mid": target},
                reply_to=[target] if target else [],
            )
        )
    elif "delivery" in event:
        for mid in event["delivery"].get("mids") or []:
            parsed.updates.append(StatusUpdate(SOURCE, mid, "delivered", occurred_at, {}))
        if not event["delivery"].get("mids") and event["delivery"].get("watermark") and identity(channel, sender):
            parsed.updates.append(
                WatermarkUpdate(SOURCE, identity(channel, sender), "delivered", from_unix(event["delivery"]["watermark"]))
            )
    elif "read" in event:
        person = identity(channel, sender)
        if person is None or not event["read"].get("watermark"):
            parsed.skipped.append(f"a {channel} read receipt without sender or watermark")
        else:
            parsed.updates.append(WatermarkUpdate(SOURCE, person, "read", from_unix(event["read"]["watermark"])))
    elif "postback" in event:
        postback = event["postback"]
        person = identity(channel, sender)
        if person is None:
            parsed.skipped.append(f"a {channel} postback without a valid sender id")
            return parsed
        parsed.items.append(
            IngestItem(
                source=SOURCE,
                external_id=postback.get("mid") or f"postback:{person.value}:{event.get('timestamp', '')}",
                channel=channel,
                kind="message",
                direction="inbound",
                author_type="customer",
                occurred_at=occurred_at,
                identities=[person],
                body=postback.get("title", ""),
                data={"postback_payload": postback.get("payload", "")},
            )
        )
    else:
        known = sorted(set(event) - {"sender", "recipient", "timestamp"})
        parsed.skipped.append(f"{channel} event {known} is not supported")
    return parsed


# --- Page feed and Instagram comments ------------------------------------------------------------


def _change(change, channel, page_id, received_at):
    parsed = Parsed()
    field = change.get("field")
    value = change.get("value") or {}
    if channel == "facebook" and field == "feed":
        item = value.get("item")
        verb = value.get("verb", "add")
        sender = value.get("from") or {}
        person = identity("facebook", sender.get("id"))
        occurred_at = from_unix(value["created_time"]) if str(value.get("created_time", "")).isdigit() else received_at
        own_page = str(sender.get("id", "")) == page_id
        if item in ("reaction", "like"):
            if person is None:
                parsed.skipped.append("a feed reaction without a valid sender id")
                return parsed
            target = value.get("comment_id") or value.get("post_id") or ""
            reaction_type = value.get("reaction_type", "like")
            parsed.items.append(
                IngestItem(
                    source=SOURCE,
                    external_id=f"feed-reaction:{target}:{person.value}:{reaction_type}:{verb}:{value.get('created_time', '')}"[:255],
                    channel="facebook",
                    kind="reaction",
                    direction="inbound",
                    author_type="customer",
                    occurred_at=occurred_at,
                    identities=[person],
                    customer_name=(sender.get("name") or "")[:200],
                    body=reaction_type,
                    data={"reaction": reaction_type, "verb": verb, "post_id": value.get("post_id", ""), "comment_id": value.get("comment_id", "")},
                )
            )
        elif item == "comment":
            comment_id = value.get("comment_id")
            if person is None or not comment_id:
                parsed.skipped.append("a feed comment without a valid sender id or comment_id")
                return parsed
            if verb == "remove":
                parsed.updates.append(StatusUpdate(SOURCE, comment_id, "removed", occurred_at, {"removed": True}))
                return parsed
            external_id = comment_id if verb == "add" else f"{comment_id}:{verb}:{value.get('created_time', '')}"
            parent = value.get("parent_id")
            parsed.items.append(
                IngestItem(
                    source=SOURCE,
                    external_id=external_id[:255],
                    channel="facebook",
                    kind="comment",
                    direction="outbound" if own_page else "inbound",
                    author_type="agent" if own_page else "customer",
                    occurred_at=occurred_at,
                    identities=[person],
                    customer_name="" if own_page else (sender.get("name") or "")[:200],
                    body=(value.get("message") or "")[:MAX_BODY_CHARS],
                    data={"post_id": value.get("post_id", ""), "parent_id": parent or "", "verb": verb},
                    reply_to=[parent] if parent and parent != value.get("post_id") else [],
                )
            )
        else:
            parsed.skipped.append(f"feed item {item!r} ({verb}) is not supported")
    elif channel == "instagram" and field == "comments":
        sender = value.get("from") or {}
        person = identity("instagram", sender.get("id")) or identity("instagram", sender.get("username"))
        if person is None or not value.get("id"):
            parsed.skipped.append("an Instagram comment without a valid sender or id")
            return parsed
        parsed.items.append(
            IngestItem(
                source=SOURCE,
                external_id=str(value["id"]),
                channel="instagram",
                kind="comment",
                direction="inbound",
                author_type="customer",
                occurred_at=received_at,
                identities=[person],
                body=(value.get("text") or "")[:MAX_BODY_CHARS],
                data={"media_id": (value.get("media") or {}).get("id", ""), "username": sender.get("username", "")},
            )
        )
    elif channel == "instagram" and field == "messages":
        parsed.extend(_messaging_event(value, channel, received_at))
    else:
        parsed.skipped.append(f"{channel} change {field!r} is not supported")
    return parsed


# --- WhatsApp Cloud API ------------------------------------------------------------------------------

_MEDIA = ("image", "video", "audio", "document", "sticker")


def _whatsapp_body(message):
    kind = message.get("type", "")
    content = message.get(kind) if isinstance(message.get(kind), dict) else {}
    if kind == "text":
        return content.get("body", ""), {}
    if kind in _MEDIA:
        media = {key: content[key] for key in ("id", "mime_type", "filename", "sha256") if key in content}
        return content.get("caption", ""), {"media": {"type": kind, **media}}
    if kind == "location":
        text = " ".join(str(content.get(key, "")) for key in ("name", "address") if content.get(key))
        return text, {"location": {key: content.get(key) for key in ("latitude", "longitude", "name", "address")}}
    if kind == "contacts":
        names = [((c.get("name") or {}).get("formatted_name") or "") for c in message.get("contacts") or []]
        return ", ".join(n for n in names if n), {"contacts": message.get("contacts")}
    if kind == "interactive":
        reply = content.get("button_reply") or content.get("list_reply") or content.get("nfm_reply") or {}
        return reply.get("title") or reply.get("body") or "", {"interactive": content}
    if kind == "button":
        return content.get("text", ""), {"button_payload": content.get("payload", "")}
    if kind == "order":
        return content.get("text", ""), {"order": content}
    return "", {"unsupported_type": kind}


def _whatsapp_change(change, received_at):
    parsed = Parsed()
    field = change.get("field")
    value = change.get("value") or {}
    if field not in ("messages", "smb_message_echoes"):
        parsed.skipped.append(f"WhatsApp change {field!r} is not supported")
        return parsed
    names = {str(c.get("wa_id")): (c.get("profile") or {}).get("name", "") for c in value.get("contacts") or [] if isinstance(c, dict)}

    for message in value.get("messages") or []:
        kind = message.get("type", "")
        occurred_at = from_unix(message["timestamp"]) if message.get("timestamp") else received_at
        if kind == "revoke":
            original = (message.get("revoke") or {}).get("original_message_id")
            if original:
                parsed.updates.append(StatusUpdate(SOURCE, original, "deleted", occurred_at, {"deleted": True}))
            continue
        if kind == "edit":
            edit = message.get("edit") or {}
            edited_body, _data = _whatsapp_body(edit.get("message") or {})
            if edit.get("original_message_id"):
                parsed.updates.append(
                    StatusUpdate(SOURCE, edit["original_message_id"], "edited", occurred_at, {"edited_body": edited_body})
                )
            continue
        if kind == "system":
            parsed.skipped.append(f"WhatsApp system message {message.get('id')!r} is not supported")
            continue
        sender = str(message.get("from", ""))
        person = identity("whatsapp", "+" + sender.lstrip("+"))
        if person is None or not message.get("id"):
            parsed.skipped.append(f"WhatsApp message {message.get('id')!r}: sender {sender!r} is not a valid phone number")
            continue
        context_id = (message.get("context") or {}).get("id")
        if kind == "reaction":
            reaction = message.get("reaction") or {}
            target = reaction.get("message_id", "")
            parsed.items.append(
                IngestItem(
                    source=SOURCE,
                    external_id=message["id"],
                    channel="whatsapp",
                    kind="reaction",
                    direction="inbound",
                    author_type="customer",
                    occurred_at=occurred_at,
                    identities=[person],
                    customer_name=names.get(sender, "")[:200],
                    body=reaction.get("emoji", ""),
                    data={"reaction": reaction.get("emoji", ""), "target_id": target},
                    reply_to=[target] if target else [],
                )
            )
            continue
        body, data = _whatsapp_body(message)
        data["type"] = kind
        parsed.items.append(
            IngestItem(
                source=SOURCE,
                external_id=message["id"],
                channel="whatsapp",
                kind="message",
                direction="inbound",
                author_type="customer",
                occurred_at=occurred_at,
                identities=[person],
                customer_name=names.get(sender, "")[:200],
                body=(body or "")[:MAX_BODY_CHARS],
                data=data,
                reply_to=[context_id] if context_id else [],
            )
        )

    for echo in value.get("message_echoes") or []:
        person = identity("whatsapp", "+" + str(echo.get("to", "")).lstrip("+"))
        if echo.get("type") == "revoke":
            original = (echo.get("revoke") or {}).get("original_message_id")
            if original:
                parsed.updates.append(StatusUpdate(SOURCE, original, "deleted", received_at, {"deleted": True}))
            continue
        if person is None or not echo.get("id"):
            parsed.skipped.append(f"WhatsApp echo {echo.get('id')!r}: recipient is not a valid phone number")
            continue
        body, data = _whatsapp_body(echo)
        data["type"] = echo.get("type", "")
        parsed.items.append(
            IngestItem(
                source=SOURCE,
                external_id=echo["id"],
                channel="whatsapp",
                kind="message",
                direction="outbound",
                author_type="agent",
                occurred_at=from_unix(echo["timestamp"]) if echo.get("timestamp") else received_at,
                identities=[person],
                body=(body or "")[:MAX_BODY_CHARS],
                data=data,
            )
        )

    for status in value.get("statuses") or []:
        if not status.get("id") or not status.get("status"):
            parsed.skipped.append("a WhatsApp status without id or status")
            continue
        data = {}
        if status.get("errors"):
            data["errors"] = status["errors"]
        occurred_at = from_unix(status["timestamp"]) if status.get("timestamp") else received_at
        parsed.updates.append(StatusUpdate(SOURCE, status["id"], status["status"], occurred_at, data))
    return parsed
