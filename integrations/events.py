"""The event types outbound webhooks carry.

Subscriptions name the types they want from this registry; emitting a type
that is not here is a programming error (`event_emit` raises ValueError).
Adding a type: one line here, then emit it from the service that causes it.
"""

EVENT_TYPES = {
    "customer.created": "A new customer was created (by ingestion, the API or the admin).",
    "customer.merged": "Two customers were merged into one; the payload names survivor and merged.",
    "customer.unmerged": "A merge was undone; both customers exist again.",
    "interaction.created": "An interaction was stored (message, call, reaction, visit, purchase, survey answer...).",
    "conversation.opened": "A conversation was opened or reopened.",
    "conversation.resolved": "A conversation was resolved.",
    "journey.opened": "A customer journey started.",
    "journey.closed": "A customer journey ended.",
    "customer.at_risk": "A customer's metrics crossed the at-risk threshold.",
    "standard.breach_warning": "A service standard is about to be breached on a conversation.",
    "standard.breached": "A service standard was breached on a conversation.",
}


def event_type_validate(event_type: str) -> str:
    if event_type not in EVENT_TYPES:
        raise ValueError(f"Unknown webhook event type {event_type!r}; known: {', '.join(EVENT_TYPES)}.")
    return event_type
