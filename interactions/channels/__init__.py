"""Provider adapters: one module per provider, each verifies a request and parses
its body into the common ingest shape (`interactions.ingest.IngestItem`).

What the adapters share lives here: the exceptions a view maps to status codes,
the `Parsed` result, and decoding of the form bodies providers post. Adapters
are pure functions of bytes and settings values: no database, no request.
"""

import hmac
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser
from urllib.parse import parse_qsl

from crm.api import UNSTORABLE
from customers.identities import IdentityInvalid, identity_normalize
from interactions.ingest import IdentityIn, IngestItem


class SignatureMissing(Exception):
    """The request carries no signature (or no credential): 401."""


class SignatureInvalid(Exception):
    """The request carries a signature that does not match: 403."""


class PayloadInvalid(Exception):
    """The body cannot be turned into interactions; the event ends failed with this reason."""


@dataclass
class StatusUpdate:
    """A later state of an interaction we already hold: a delivery receipt, a call's end."""

    source: str
    external_id: str
    status: str
    occurred_at: datetime
    data: dict = field(default_factory=dict)


@dataclass
class WatermarkUpdate:
    """Every outbound message to one identity up to a moment reached a status (Messenger reads)."""

    source: str
    identity: IdentityIn
    status: str
    watermark: datetime


@dataclass
class Parsed:
    """What one provider request means: new items, updates of known ones, and what was skipped and why."""

    items: list[IngestItem] = field(default_factory=list)
    updates: list[StatusUpdate | WatermarkUpdate] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def extend(self, other):
        self.items.extend(other.items)
        self.updates.extend(other.updates)
        self.skipped.extend(other.skipped)
        return self


def secure_equal(a, b):
    """Constant-time comparison of two str/bytes values."""
    if isinstance(a, str):
        a = a.encode()
    if isinstance(b, str):
        b = b.encode()
    return hmac.compare_digest(a, b)


def identity(kind, raw):
    """IdentityIn with the value normalised, or None when the value is not a valid one."""
    if raw is None or raw == "":
        return None
    try:
        return IdentityIn(kind, identity_normalize(kind, raw))
    except IdentityInvalid:
        return None


def from_unix(value):
    """An aware datetime from seconds (int/str) or milliseconds (ints above 10^11)."""
    number = float(value)
    if number > 1e11:  # Messenger and Instagram send milliseconds
        number /= 1000
    return datetime.fromtimestamp(number, tz=UTC)


@dataclass
class FormField:
    name: str
    value: bytes
    filename: str | None = None
    content_type: str = ""

    def text(self, charset="utf-8"):
        try:
            return self.value.decode(charset or "utf-8")
        except (LookupError, UnicodeDecodeError):
            return self.value.decode("utf-8", errors="replace")


def form_fields(body, content_type):
    """The fields of an application/x-www-form-urlencoded or multipart/form-data body, in order.

    Parsed with the standard library rather than Django's request parser so a
    stored body can be parsed again, outside a request, byte for byte.
    """
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == "multipart/form-data":
        head = b"Content-Type: " + content_type.encode("latin-1", errors="replace") + b"\r\nMIME-Version: 1.0\r\n\r\n"
        message = BytesParser(policy=policy.compat32).parsebytes(head + body)
        if not message.is_multipart():
            raise PayloadInvalid("The multipart/form-data body has no parts (boundary missing or wrong).")
        fields = []
        for part in message.get_payload():
            name = part.get_param("name", header="content-disposition")
            if name is None:
                continue
            if isinstance(name, tuple):  # RFC 2231 encoded
                name = name[2]
            filename = part.get_filename()
            payload = part.get_payload(decode=True)
            if payload is None:
                raw = part.get_payload()
                payload = raw.encode("utf-8", errors="surrogateescape") if isinstance(raw, str) else b""
            fields.append(FormField(name, payload, filename, part.get_content_type() if filename else ""))
        return fields
    if media in ("application/x-www-form-urlencoded", ""):
        try:
            text = body.decode("ascii")
        except UnicodeDecodeError:
            text = body.decode("utf-8", errors="replace")
        return [
            FormField(name, value.encode("utf-8", errors="surrogateescape"))
            for name, value in parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="replace")
        ]
    raise PayloadInvalid(f"Expected a form body, got {media!r}.")


def form_dict(fields):
    """The first value of each field name, decoded as UTF-8 text (files left out)."""
    found = {}
    for item in fields:
        if item.filename is None and item.name not in found:
            found[item.name] = item.text()
    return found


def text_clean(value):
    """Text any database stores: NUL dropped, lone surrogates (undecodable bytes) as U+FFFD."""
    if isinstance(value, str):
        if UNSTORABLE.search(value):
            return UNSTORABLE.sub(lambda m: "" if m.group() == "\x00" else "\ufffd", value)
        return value
    if isinstance(value, dict):
        return {text_clean(k): text_clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [text_clean(v) for v in value]
    return value


def item_clean(item: IngestItem) -> IngestItem:
    """The item with every text field storable (PostgreSQL refuses NUL and lone surrogates)."""
    changes = {}
    for spec in fields(item):
        if spec.name in ("identities", "occurred_at", "incident_at"):
            continue
        value = getattr(item, spec.name)
        cleaned = text_clean(value)
        if cleaned != value or type(cleaned) is not type(value):
            changes[spec.name] = cleaned
    return replace(item, **changes) if changes else item
