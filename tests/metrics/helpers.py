"""Ingest helpers for metrics tests: real rows through the one ingestion door."""

import itertools

from interactions.ingest import IdentityIn, IngestItem
from interactions.services import interactions_ingest

_ids = itertools.count(1)


def ingest(email=None, *, customer_id=None, when, channel="chat", kind="message", direction="inbound",
           author="customer", body="", **extra):
    item = IngestItem(
        source="test", external_id=f"m-{next(_ids)}", channel=channel, kind=kind, direction=direction,
        author_type=author, occurred_at=when, identities=[IdentityIn("email", email)] if email else [],
        customer_id=customer_id, body=body, **extra,
    )
    [result] = interactions_ingest(items=[item])
    assert result.status == "created", result.errors
    return result.interaction
