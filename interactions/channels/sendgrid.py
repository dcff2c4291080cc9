"""SendGrid Inbound Parse: multipart/form-data, default (parsed fields) or raw (`email`) mode.

SendGrid does not sign Inbound Parse posts, so the endpoint is protected by a
secret of ours (SENDGRID_INBOUND_SECRET) in the URL path or as the basic-auth
password of the URL configured in SendGrid.
https://www.twilio.com/docs/sendgrid/for-developers/parsing-email/setting-up-the-inbound-parse-webhook
"""

import json

from interactions.channels import Parsed, PayloadInvalid, form_fields
from interactions.channels import email as email_channel

verify = email_channel.verify_secret


def parse(*, body, content_type, received_at):
    fields = form_fields(body, content_type)
    by_name = {}
    for item in fields:
        if item.filename is None:
            by_name.setdefault(item.name, item)
    try:
        charsets = json.loads(by_name["charsets"].text()) if "charsets" in by_name else {}
    except ValueError:
        charsets = {}
    if not isinstance(charsets, dict):
        charsets = {}

    def text(name):
        item = by_name.get(name)
        if item is None:
            return ""
        return email_channel.decode_bytes(item.value, email_channel.charset_for(charsets.get(name)) if charsets.get(name) else "utf-8")

    if "email" in by_name:  # raw mode: the whole message
        return email_channel.parse(body=by_name["email"].value, received_at=received_at, provider="sendgrid")

    headers = by_name.get("headers")
    if headers is None:
        raise PayloadInvalid("The SendGrid post carries neither `email` (raw mode) nor `headers`.")
    message = email_channel.email_parse_bytes(headers.value.rstrip(b"\r\n") + b"\r\n\r\n")

    attachments = []
    try:
        info = json.loads(text("attachment-info") or "{}")
    except ValueError:
        info = {}
    files = {item.name: item for item in fields if item.filename is not None}
    for key, meta in (info.items() if isinstance(info, dict) else []):
        meta = meta if isinstance(meta, dict) else {}
        upload = files.pop(key, None)
        attachments.append(
            {
                "name": meta.get("filename") or (upload.filename if upload else ""),
                "content_type": meta.get("type") or (upload.content_type if upload else ""),
                "size": len(upload.value) if upload else 0,
            }
        )
    for upload in files.values():
        attachments.append({"name": upload.filename or "", "content_type": upload.content_type, "size": len(upload.value)})

    item = email_channel.email_item(
        message=message, received_at=received_at, text=text("text"), html=text("html"), attachments=attachments, provider="sendgrid"
    )
    return Parsed(items=[item])
