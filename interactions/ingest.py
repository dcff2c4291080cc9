"""The common ingest shape: what every path (REST, bulk, provider webhooks) hands
to `interactions.services.interactions_ingest`.

`item_parse` validates one JSON object into an `IngestItem` or a dict of
per-field reasons. It is hand-written rather than a DRF serializer because bulk
ingestion parses a thousand items per request; the OpenAPI schema is derived
from the same `FIELDS` table, so the two cannot drift apart.
"""

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from crm.api import UNSTORABLE_MESSAGE, unstorable
from customers.identities import IDENTITY_KINDS, IdentityInvalid, identity_normalize
from interactions.models import Channel, Interaction


@dataclass(frozen=True)
class IdentityIn:
    kind: str
    value: str  # normalised


@dataclass
class IngestItem:
    source: str
    external_id: str
    channel: str
    kind: str
    direction: str
    author_type: str
    occurred_at: datetime
    identities: list[IdentityIn] = field(default_factory=list)
    customer_id: int | None = None
    customer_name: str = ""
    customer_attributes: dict = field(default_factory=dict)
    subject: str = ""
    body: str = ""
    author_name: str = ""
    agent_id: int | None = None
    sentiment: float | None = None
    intent: str = ""
    incident_at: datetime | None = None
    data: dict = field(default_factory=dict)
    # External ids (same source) of interactions this one answers: it joins their conversation.
    reply_to: list[str] = field(default_factory=list)
    # An explicit conversation to join, e.g. an agent replying in one.
    conversation_id: int | None = None


CHANNELS = tuple(Channel.values)
KINDS = tuple(Interaction.Kind.values)
DIRECTIONS = tuple(Interaction.Direction.values)
AUTHOR_TYPES = tuple(Interaction.AuthorType.values)
MAX_IDENTITIES = 20
MAX_BODY_CHARS = 200_000
MAX_REPLY_TO = 50

# name: (JSON type, required, description)
FIELDS = {
    "source": ("string", True, "The system that produced it, e.g. 'shop' or 'zendesk-import' (max 64)."),
    "external_id": ("string", False, "Its id in that system; (source, external_id) makes ingestion idempotent. Generated when absent."),
    "channel": ("string", True, f"One of: {', '.join(CHANNELS)}."),
    "kind": ("string", True, f"One of: {', '.join(KINDS)}."),
    "direction": ("string", True, f"One of: {', '.join(DIRECTIONS)}."),
    "author_type": ("string", True, f"One of: {', '.join(AUTHOR_TYPES)}."),
    "occurred_at": ("string", True, "ISO 8601 with a time zone."),
    "identities": ("array", False, "[{kind, value}] the customer is known by; kinds: " + ", ".join(IDENTITY_KINDS) + "."),
    "customer_id": ("integer", False, "A known customer; needed when no identities are given."),
    "customer": ("object", False, "{name, attributes} to fill in on the customer."),
    "subject": ("string", False, "Subject line (max 500)."),
    "body": ("string", False, "Text, any script, kept exactly."),
    "author_name": ("string", False, "Who wrote it, as shown in the timeline."),
    "agent_id": ("integer", False, "The staff user who wrote it."),
    "sentiment": ("number", False, "-1 (miserable) … 1 (delighted)."),
    "intent": ("string", False, "e.g. complaint, question, purchase (max 64)."),
    "incident_at": ("string", False, "When the trouble it reports began, ISO 8601 with a time zone."),
    "data": ("object", False, "Channel details: call duration, attachments, delivery status…"),
    "reply_to": ("array", False, "External ids (same source) this answers; it joins their conversation."),
    "conversation_id": ("integer", False, "A conversation to join."),
}


def item_schema():
    """The OpenAPI schema of one item, derived from FIELDS."""
    props = {}
    for name, (kind, _required, description) in FIELDS.items():
        prop = {"type": kind, "description": description}
        if name in ("occurred_at", "incident_at"):
            prop["format"] = "date-time"
        if name == "identities":
            prop["items"] = {
                "type": "object",
                "properties": {"kind": {"type": "string", "enum": list(IDENTITY_KINDS)}, "value": {"type": "string"}},
                "required": ["kind", "value"],
            }
        if name == "reply_to":
            prop["items"] = {"type": "string"}
        for enum_name, values in (("channel", CHANNELS), ("kind", KINDS), ("direction", DIRECTIONS), ("author_type", AUTHOR_TYPES)):
            if name == enum_name:
                prop["enum"] = list(values)
        props[name] = prop
    return {
        "type": "object",
        "properties": props,
        "required": [name for name, (_k, required, _d) in FIELDS.items() if required],
    }


def _err(errors, name, code, message):
    errors.setdefault(name, []).append({"code": code, "message": message})


def parse_datetime_aware(value):
    """An ISO 8601 timestamp with a zone, or raises ValueError with the reason."""
    if not isinstance(value, str):
        raise ValueError("Must be an ISO 8601 string.")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO 8601 timestamp.") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError("The timestamp has no time zone; add one, e.g. 'Z' or '+03:30'.")
    return parsed


def _string(payload, errors, name, *, required=False, max_length=None, choices=None, default=""):
    value = payload.get(name)
    if value is None:
        if required:
            _err(errors, name, "required", "This field is required.")
        return default
    if not isinstance(value, str):
        _err(errors, name, "invalid_type", "Must be a string.")
        return default
    if required and not value.strip():
        _err(errors, name, "blank", "Must not be blank.")
        return default
    if max_length is not None and len(value) > max_length:
        _err(errors, name, "too_long", f"At most {max_length} characters.")
        return default
    if choices is not None and value not in choices:
        _err(errors, name, "invalid_choice", f"{value!r} is not one of: {', '.join(choices)}.")
        return default
    return value


def _integer(payload, errors, name):
    value = payload.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        _err(errors, name, "invalid_type", "Must be a positive integer.")
        return None
    return value


def _timestamp(payload, errors, name, *, required=False):
    value = payload.get(name)
    if value is None:
        if required:
            _err(errors, name, "required", "This field is required.")
        return None
    try:
        return parse_datetime_aware(value)
    except ValueError as exc:
        code = "naive_datetime" if "time zone" in str(exc) else "invalid_datetime"
        _err(errors, name, code, str(exc))
        return None


def _identities(payload, errors):
    raw = payload.get("identities")
    if raw is None:
        return []
    if not isinstance(raw, list):
        _err(errors, "identities", "invalid_type", "Must be a list of {kind, value} objects.")
        return []
    if len(raw) > MAX_IDENTITIES:
        _err(errors, "identities", "too_many", f"At most {MAX_IDENTITIES} identities.")
        return []
    found = []
    for index, entry in enumerate(raw):
        if not isinstance(entry, dict) or not isinstance(entry.get("kind"), str) or "value" not in entry:
            _err(errors, f"identities[{index}]", "invalid_type", "Must be an object with 'kind' and 'value'.")
            continue
        try:
            identity = IdentityIn(entry["kind"], identity_normalize(entry["kind"], entry["value"]))
        except IdentityInvalid as exc:
            _err(errors, f"identities[{index}]", exc.code, exc.message)
            continue
        if identity not in found:
            found.append(identity)
    return found


def item_parse(payload):
    """Validate one JSON object: (IngestItem, None) or (None, {field: [{code, message}]})."""
    if not isinstance(payload, dict):
        return None, {"non_field_errors": [{"code": "invalid_type", "message": "Each item must be a JSON object."}]}
    errors = {}
    unknown = sorted(set(payload) - set(FIELDS))
    for name in unknown:
        _err(errors, name, "unknown_field", f"Unknown field; known: {', '.join(FIELDS)}.")
    for name, value in payload.items():
        if name in FIELDS and unstorable(value):
            _err(errors, name, "unstorable_text", UNSTORABLE_MESSAGE)

    source = _string(payload, errors, "source", required=True, max_length=64)
    external_id = _string(payload, errors, "external_id", max_length=255)
    channel = _string(payload, errors, "channel", required=True, choices=CHANNELS)
    kind = _string(payload, errors, "kind", required=True, choices=KINDS)
    direction = _string(payload, errors, "direction", required=True, choices=DIRECTIONS)
    author_type = _string(payload, errors, "author_type", required=True, choices=AUTHOR_TYPES)
    occurred_at = _timestamp(payload, errors, "occurred_at", required=True)
    incident_at = _timestamp(payload, errors, "incident_at")
    identities = _identities(payload, errors)
    customer_id = _integer(payload, errors, "customer_id")
    agent_id = _integer(payload, errors, "agent_id")
    conversation_id = _integer(payload, errors, "conversation_id")
    subject = _string(payload, errors, "subject", max_length=500)
    body = _string(payload, errors, "body", max_length=MAX_BODY_CHARS)
    author_name = _string(payload, errors, "author_name", max_length=200)
    intent = _string(payload, errors, "intent", max_length=64)

    sentiment = payload.get("sentiment")
    if sentiment is not None:
        if isinstance(sentiment, bool) or not isinstance(sentiment, (int, float)) or not -1 <= sentiment <= 1:
            _err(errors, "sentiment", "out_of_range", "Must be a number from -1 to 1.")
            sentiment = None
        else:
            sentiment = float(sentiment)

    customer_name, customer_attributes = "", {}
    customer = payload.get("customer")
    if customer is not None:
        if not isinstance(customer, dict) or set(customer) - {"name", "attributes"}:
            _err(errors, "customer", "invalid_type", "Must be an object with 'name' and/or 'attributes'.")
        else:
            customer_name = _string(customer, errors, "name", max_length=200)
            customer_attributes = customer.get("attributes") or {}
            if not isinstance(customer_attributes, dict):
                _err(errors, "customer.attributes", "invalid_type", "Must be an object.")
                customer_attributes = {}

    data = payload.get("data")
    if data is None:
        data = {}
    elif not isinstance(data, dict):
        _err(errors, "data", "invalid_type", "Must be an object.")

    reply_to = payload.get("reply_to")
    if reply_to is None:
        reply_to = []
    elif not isinstance(reply_to, list) or len(reply_to) > MAX_REPLY_TO or not all(
        isinstance(ref, str) and 0 < len(ref) <= 255 for ref in reply_to
    ):
        _err(errors, "reply_to", "invalid_type", f"Must be a list of at most {MAX_REPLY_TO} external ids.")
        reply_to = []

    if not identities and customer_id is None and "identities" not in errors and not any(
        name.startswith("identities[") for name in errors
    ):
        _err(errors, "identities", "required", "Give at least one identity, or a customer_id.")

    if errors:
        return None, errors
    return (
        IngestItem(
            source=source,
            external_id=external_id or f"gen-{uuid.uuid4()}",
            channel=channel,
            kind=kind,
            direction=direction,
            author_type=author_type,
            occurred_at=occurred_at,
            identities=identities,
            customer_id=customer_id,
            customer_name=customer_name,
            customer_attributes=customer_attributes,
            subject=subject,
            body=body,
            author_name=author_name,
            agent_id=agent_id,
            sentiment=sentiment,
            intent=intent,
            incident_at=incident_at,
            data=data,
            reply_to=reply_to,
            conversation_id=conversation_id,
        ),
        None,
    )
