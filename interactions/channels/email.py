"""Email: a raw RFC 5322 message POSTed as message/rfc822 (e.g. from an MTA pipe).

Verification: a per-endpoint secret (EMAIL_INBOUND_SECRET) in the URL path or as
the HTTP basic-auth password, since a raw message carries no provider signature.

Parsing uses the standard library's `email` package with `policy.default`:
RFC 2047 headers and any body charset are decoded; text/plain is preferred and
HTML turned into text otherwise; attachments are kept as metadata only. The
Message-ID is the external id (source "email"), so the same mail arriving via two
providers is one interaction; In-Reply-To and References thread it. Auto-replies
and delivery-status bounces become system events, not the customer speaking.

The Mailgun and SendGrid adapters reuse `email_item` for their parsed forms.
"""

import base64
import binascii
import hashlib
import re
from datetime import UTC, datetime
from email import policy
from email.header import decode_header
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from html.parser import HTMLParser

from interactions.channels import Parsed, PayloadInvalid, SignatureInvalid, SignatureMissing, identity, secure_equal
from interactions.ingest import MAX_BODY_CHARS, MAX_REPLY_TO, IngestItem

SOURCE = "email"
MAX_SUBJECT = 500
_MSGID = re.compile(r"<([^<>\s]+)>")


# --- verification ---------------------------------------------------------------------


def verify_secret(*, secret, path_secret=None, authorization=""):
    """A per-endpoint secret, given in the URL or as the basic-auth password."""
    given = path_secret
    if given is None and authorization[:6].lower() == "basic ":
        try:
            _user, _sep, given = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, ValueError):
            raise SignatureInvalid("The basic-auth credentials are not valid base64.") from None
    if not given:
        raise SignatureMissing("Give the endpoint secret in the URL or as the basic-auth password.")
    if not secure_equal(given, secret):
        raise SignatureInvalid("The endpoint secret does not match.")


# --- header decoding --------------------------------------------------------------------


def header_text(message, name):
    """A header decoded to text (RFC 2047, any charset), or "" when absent or undecodable."""
    try:
        value = message.get(name)
    except Exception:  # noqa: BLE001 - a malformed header must not fail the whole message
        value = None
    if value is None:
        raw = _raw_header(message, name)
        if raw is None:
            return ""
        value = raw
    text = str(value)
    raw = _raw_header(message, name)
    if raw is not None and ("=?" in raw or _has_8bit(raw)):
        # Decoded here rather than by the policy, so mislabelled charsets (GB2312
        # text using GBK characters, Latin-1 meaning windows-1252) read as meant.
        decoded = decode_rfc2047(raw)
        if decoded is not None:
            text = decoded
    return text.replace("\r\n", " ").replace("\r", " ").replace("\n", " ").strip()


# Labels that mail software uses for a superset; decoding with the superset reads the text as meant.
CHARSET_SUPERSETS = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "us-ascii": "utf-8",
    "ascii": "utf-8",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "big5": "big5hkscs",
    "tis-620": "cp874",
    "windows-874": "cp874",
    "iso-8859-8-i": "iso-8859-8",
    "iso-8859-6-i": "iso-8859-6",
    "unknown-8bit": "utf-8",
    "x-unknown": "utf-8",
}


def charset_for(label):
    label = (label or "").strip().strip('"').lower()
    return CHARSET_SUPERSETS.get(label, label or "utf-8")


def _has_8bit(raw):
    """Undecoded bytes a BytesParser kept as surrogate escapes."""
    return any("\udc80" <= ch <= "\udcff" for ch in raw)


def decode_rfc2047(raw):
    """A raw header value with RFC 2047 encoded words (any charset) or raw 8-bit bytes, as text."""
    raw = raw.replace("\r\n", "").replace("\n", "")  # unfold
    try:
        chunks = decode_header(raw)
    except Exception:  # noqa: BLE001 - malformed encoded words: leave it to the policy's reading
        return None
    pieces = []
    for chunk, charset in chunks:
        if isinstance(chunk, str):
            try:
                chunk = chunk.encode("ascii", errors="surrogateescape")  # bytes a BytesParser could not decode
            except UnicodeEncodeError:
                pieces.append(chunk)  # already text
                continue
        pieces.append(decode_bytes(chunk, charset_for(charset) if charset else "utf-8"))
    return "".join(pieces)


def _raw_header(message, name):
    for key, value in getattr(message, "_headers", []):
        if key.lower() == name.lower():
            return value if isinstance(value, str) else str(value)
    return None


def addresses(message, name):
    """[(display name, address)] of an address header; tolerant of malformed ones."""
    try:
        header = message.get(name)
        if header is not None and getattr(header, "addresses", None) is not None:
            found = [(a.display_name or "", a.addr_spec or "") for a in header.addresses]
            if any(addr for _n, addr in found) and not any("\ufffd" in n for n, _a in found):
                return [(n, a) for n, a in found if a and "@" in a]
    except Exception:  # noqa: BLE001 - fall back to the lenient parser below
        pass
    raw = header_text(message, name)
    return [(n, a) for n, a in getaddresses([raw]) if a and "@" in a]


def message_ids(value):
    return _MSGID.findall(value or "")


def _message_id(value):
    ids = message_ids(value)
    found = ids[0] if ids else (value or "").strip().strip("<>").strip()
    if not found or " " in found:
        return ""
    if len(found) > 255:
        return "sha256:" + hashlib.sha256(found.encode()).hexdigest()
    return found


def _occurred_at(message, fallback):
    try:
        header = message.get("date")
        when = getattr(header, "datetime", None) if header is not None else None
        if when is None and header is not None:
            when = parsedate_to_datetime(str(header))
    except Exception:  # noqa: BLE001 - unparseable dates fall back to the receipt time
        when = None
    if when is None:
        return fallback
    if when.tzinfo is None or when.utcoffset() is None:
        when = when.replace(tzinfo=UTC)  # "-0000": the zone is unknown; read it as UTC
    if not datetime(1971, 1, 1, tzinfo=UTC) <= when <= datetime(9000, 1, 1, tzinfo=UTC):
        return fallback
    return when


# --- body decoding -------------------------------------------------------------------------


class _HTMLText(HTMLParser):
    _BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "hr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "head", "title"):
            self._skip += 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in ("script", "style", "head", "title"):
            self._skip = max(0, self._skip - 1)
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def html_to_text(html):
    parser = _HTMLText()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # noqa: BLE001 - HTMLParser is lenient; this is a last resort
        return re.sub(r"<[^>]+>", " ", html).strip()
    lines = [" ".join(line.split()) for line in "".join(parser.parts).splitlines()]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def decode_bytes(payload, charset):
    """Bytes in a declared charset; an unknown or wrong declaration falls back to UTF-8, then windows-1252."""
    for candidate in (charset_for(charset) if charset else None, charset, "utf-8"):
        if not candidate:
            continue
        try:
            return payload.decode(candidate)
        except (LookupError, UnicodeDecodeError):
            continue
    return payload.decode("cp1252", errors="replace")


def _part_text(part):
    try:
        payload = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001 - broken transfer encodings
        payload = None
    if payload is None:
        raw = part.get_payload()
        return raw if isinstance(raw, str) else ""
    try:
        charset = part.get_content_charset()
    except Exception:  # noqa: BLE001
        charset = None
    return decode_bytes(payload, charset)


def _is_attachment(part):
    try:
        disposition = part.get_content_disposition()
        filename = part.get_filename()
    except Exception:  # noqa: BLE001
        disposition, filename = None, None
    return disposition == "attachment" or bool(filename)


def _attachment_meta(part):
    try:
        name = part.get_filename() or ""
    except Exception:  # noqa: BLE001
        name = ""
    content_type = part.get_content_type()
    if content_type == "message/rfc822" or part.is_multipart():
        try:
            size = len(part.as_bytes())
        except Exception:  # noqa: BLE001
            size = 0
        if not name and content_type == "message/rfc822":
            inner = part.get_payload()
            if isinstance(inner, list) and inner:
                name = header_text(inner[0], "subject")
    else:
        try:
            payload = part.get_payload(decode=True)
        except Exception:  # noqa: BLE001
            payload = None
        size = len(payload or b"")
    return {"name": name, "content_type": content_type, "size": size}


def message_parts(message):
    """(plain text, html, [attachment metadata]) of a parsed message."""
    plain, html, attachments = [], [], []

    def walk(part, depth=0):
        if depth > 20:
            return
        content_type = part.get_content_type()
        if part.is_multipart():
            payload = part.get_payload()
            if content_type == "message/rfc822" or not isinstance(payload, list):
                attachments.append(_attachment_meta(part))
                return
            for child in payload:
                walk(child, depth + 1)
            return
        if content_type == "message/rfc822" or _is_attachment(part) and depth > 0:
            attachments.append(_attachment_meta(part))
        elif content_type == "text/plain":
            plain.append(_part_text(part))
        elif content_type == "text/html":
            html.append(_part_text(part))
        elif depth > 0 and not content_type.startswith(("message/", "text/rfc822-headers")):
            attachments.append(_attachment_meta(part))

    walk(message)
    return "\n".join(t for t in plain if t.strip()), "\n".join(html), attachments


# --- auto-replies and bounces -----------------------------------------------------------------


def email_event_kind(message):
    """'bounce', 'auto_reply' or '' for a message written by a person."""
    content_type = message.get_content_type()
    report_type = (message.get_param("report-type") or "") if content_type == "multipart/report" else ""
    if content_type == "multipart/report" and str(report_type).lower() == "delivery-status":
        return "bounce"
    auto_submitted = header_text(message, "auto-submitted").lower()
    if auto_submitted and auto_submitted != "no":
        return "auto_reply"
    if header_text(message, "x-autoreply") or header_text(message, "x-autorespond"):
        return "auto_reply"
    if header_text(message, "precedence").lower() == "auto_reply":
        return "auto_reply"
    return ""


def _bounce_details(message):
    """(failed recipients, message ids of the bounced mail) from a delivery-status report."""
    recipients, original_ids = [], []
    for part in message.walk():
        content_type = part.get_content_type()
        if content_type == "message/delivery-status":
            for block in part.get_payload() if isinstance(part.get_payload(), list) else []:
                value = header_text(block, "final-recipient") or header_text(block, "original-recipient")
                if ";" in value:
                    value = value.split(";", 1)[1]
                if "@" in value:
                    recipients.append(value.strip().strip("<>"))
        elif content_type in ("message/rfc822", "text/rfc822-headers"):
            inner = part.get_payload()
            if isinstance(inner, list) and inner:
                original_ids += message_ids(header_text(inner[0], "message-id"))
            elif isinstance(inner, str):
                headers = BytesParser(policy=policy.default).parsebytes(inner.encode("utf-8", "replace"), headersonly=True)
                original_ids += message_ids(header_text(headers, "message-id"))
    return recipients, original_ids


# --- the item ----------------------------------------------------------------------------------


def email_parse_bytes(raw):
    """A parsed EmailMessage; raises PayloadInvalid for an empty body."""
    if not raw or not raw.strip():
        raise PayloadInvalid("The email is empty.")
    try:
        return BytesParser(policy=policy.default).parsebytes(raw)
    except Exception as exc:  # noqa: BLE001 - the parser is lenient; anything else is a broken message
        raise PayloadInvalid(f"The email cannot be parsed: {exc}") from exc


def email_item(*, message, received_at, text=None, html=None, attachments=None, provider="email", raw=b""):
    """The IngestItem of one email; headers from `message`, bodies from it unless given.

    Raises PayloadInvalid when the message names no usable sender.
    """
    if text is None and html is None:
        text, html, attachments = message_parts(message)
    attachments = attachments or []
    body = text if (text or "").strip() else html_to_text(html or "")
    # One line-ending convention whatever the transport; the transport's final newline is not text.
    body = (body or "").replace("\r\n", "\n").replace("\r", "\n").rstrip()
    event = email_event_kind(message)

    senders = addresses(message, "from") or addresses(message, "sender")
    reply_addresses = addresses(message, "reply-to")
    idents, skipped = [], []
    customer_name = senders[0][0] if senders else ""
    # Oldest first, the nearest parent last (References, then In-Reply-To), as interactions_ingest reads them.
    reply_to_ids = message_ids(header_text(message, "references")) + message_ids(header_text(message, "in-reply-to"))

    if event == "bounce":
        recipients, original_ids = _bounce_details(message)
        candidates = recipients
        reply_to_ids = reply_to_ids + original_ids
        customer_name = ""
    else:
        candidates = [addr for _n, addr in senders + reply_addresses]
    for addr in candidates:
        found = identity("email", addr)
        if found is None:
            skipped.append(f"not an email address: {addr!r}")
        elif found not in idents:
            idents.append(found)
    if not idents:
        if event == "bounce":
            raise PayloadInvalid("The delivery-status report names no failed recipient.")
        raise PayloadInvalid("The email has no valid sender address in From, Sender or Reply-To.")

    message_id = _message_id(header_text(message, "message-id"))
    if not message_id:
        # No Message-ID: the hash of the message stands in, so a retry is still one interaction.
        message_id = "sha256:" + hashlib.sha256(raw or message.as_bytes(policy=policy.compat32)).hexdigest()
    reply_to = []
    for ref in reversed(reply_to_ids):  # keep the last mention of each id
        if ref != message_id and len(ref) <= 255 and ref not in reply_to:
            reply_to.append(ref)
    reply_to = reply_to[:MAX_REPLY_TO][::-1]
    data = {
        "provider": provider,
        "message_id": message_id,
        "from": [addr for _n, addr in senders],
        "to": [addr for _n, addr in addresses(message, "to")],
        "cc": [addr for _n, addr in addresses(message, "cc")],
        "attachments": attachments,
    }
    if event:
        data["email_event"] = event
    if skipped:
        data["skipped"] = skipped
    subject = header_text(message, "subject")
    return IngestItem(
        source=SOURCE,
        external_id=message_id,
        channel="email",
        kind="event" if event else "message",
        direction="inbound",
        author_type="system" if event else "customer",
        occurred_at=_occurred_at(message, received_at),
        identities=idents,
        customer_name=customer_name[:200],
        subject=subject[:MAX_SUBJECT],
        body=(body or "")[:MAX_BODY_CHARS],
        author_name=(senders[0][0] or senders[0][1])[:200] if senders else "",
        data=data,
        reply_to=reply_to,
    )


def parse(*, body, received_at, provider="email"):
    """A raw RFC 5322 message -> Parsed with one item."""
    message = email_parse_bytes(body)
    return Parsed(items=[email_item(message=message, received_at=received_at, provider=provider, raw=body)])


def headers_message(header_pairs):
    """An EmailMessage holding only the given (name, value) headers, values already decoded."""
    message = EmailMessage(policy=policy.default)
    for name, value in header_pairs:
        if not isinstance(name, str) or not isinstance(value, str) or not re.fullmatch(r"[!-9;-~]+", name):
            continue
        # Values come decoded from a provider's JSON: fold line breaks so no value forges a header.
        value = " ".join(value.split())
        try:
            message[name] = value
        except Exception:  # noqa: BLE001 - skip a header the policy refuses
            continue
    return message
