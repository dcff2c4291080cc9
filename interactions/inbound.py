"""The inbound event store: provider webhooks are stored raw, then processed into interactions.

A verified request becomes an `InboundEvent` row before the provider gets its 2xx
(nothing acknowledged is lost); a Celery task turns it into interactions through
`interactions_ingest`, the same door the REST API uses. An event ends processed or
failed with its reason, and any event can be replayed while its body is kept.
"""

import hashlib
import logging
from datetime import timedelta

from django.conf import settings
from django.db import DataError, transaction
from django.db.models import F
from django.utils import timezone

from interactions.channels import Parsed, PayloadInvalid, StatusUpdate, WatermarkUpdate, item_clean, text_clean
from interactions.channels import chat, email, mailgun, meta, sendgrid, twilio
from interactions.models import InboundEvent, Interaction
from interactions.services import interactions_ingest

logger = logging.getLogger(__name__)

# Later states win over earlier ones whatever order the callbacks arrive in.
STATUS_RANK = {
    "accepted": 0,
    "queued": 0,
    "scheduled": 0,
    "initiated": 1,
    "sending": 1,
    "ringing": 2,
    "sent": 2,
    "in-progress": 3,
    "delivered": 3,
    "undelivered": 3,
    "failed": 3,
    "read": 4,
    "completed": 4,
    "busy": 4,
    "no-answer": 4,
    "canceled": 4,
}
# Flags that change the interaction whatever its delivery status.
FLAG_STATUSES = {"deleted", "edited", "removed"}


def _parse(event: InboundEvent) -> Parsed:
    body = bytes(event.body)
    received_at = event.received_at
    provider = event.provider
    if provider == InboundEvent.Provider.EMAIL:
        return email.parse(body=body, received_at=received_at)
    if provider == InboundEvent.Provider.MAILGUN:
        return mailgun.parse(body=body, content_type=event.content_type, received_at=received_at)
    if provider == InboundEvent.Provider.SENDGRID:
        return sendgrid.parse(body=body, content_type=event.content_type, received_at=received_at)
    if provider == InboundEvent.Provider.TWILIO_VOICE:
        return twilio.parse_voice(body=body, content_type=event.content_type, received_at=received_at)
    if provider == InboundEvent.Provider.TWILIO_MESSAGING:
        return twilio.parse_messaging(body=body, content_type=event.content_type, received_at=received_at)
    if provider == InboundEvent.Provider.META:
        return meta.parse(body=body, received_at=received_at)
    if provider == InboundEvent.Provider.CHAT:
        return chat.parse(body=body, received_at=received_at)
    raise PayloadInvalid(f"No adapter for provider {provider!r}.")


def _enqueue(event_id):
    from interactions.tasks import inbound_event_process_task

    try:
        inbound_event_process_task.delay(event_id)
    except Exception:  # noqa: BLE001 - the row is stored; the pending sweep queues it again
        logger.exception("could not queue inbound event %s; the pending sweep will retry", event_id)


def inbound_event_store(*, provider: str, body: bytes, content_type: str = "", headers: dict | None = None):
    """Store a verified request and queue its processing; (event, created).

    A provider's retry of the same body answers the stored row and creates nothing.
    """
    digest = hashlib.sha256(body).hexdigest()
    with transaction.atomic():
        event, created = InboundEvent.objects.get_or_create(
            provider=provider,
            body_sha256=digest,
            defaults={
                "content_type": content_type[:255],
                "headers": headers or {},
                "body": body,
                "body_size": len(body),
                "received_at": timezone.now(),
            },
        )
        if created:
            transaction.on_commit(lambda: _enqueue(event.pk))
    return event, created


def inbound_event_process(*, event_id: int) -> InboundEvent:
    """Turn a pending event into interactions; a no-op for an event already processed or failed.

    Unparseable payloads end failed with the reason. Database errors propagate so
    the task retries them.
    """
    InboundEvent.objects.filter(pk=event_id, status=InboundEvent.Status.PENDING).update(attempts=F("attempts") + 1)
    with transaction.atomic():
        # The row lock makes a redelivered task wait for, then skip, one already running.
        event = InboundEvent.objects.select_for_update().get(pk=event_id)
        if event.status != InboundEvent.Status.PENDING:
            return event
        if event.body is None:
            return _finish(event, InboundEvent.Status.FAILED, "The raw body was purged after the retention period.")
        try:
            parsed = _parse(event)
        except PayloadInvalid as exc:
            return _finish(event, InboundEvent.Status.FAILED, str(exc))
        except Exception as exc:  # noqa: BLE001 - a parser bug is not transient: record it, replay after a fix
            logger.exception("inbound event %s could not be parsed", event.pk)
            return _finish(event, InboundEvent.Status.FAILED, f"The adapter failed: {exc.__class__.__name__}: {exc}")

        parsed.items = [item_clean(item) for item in parsed.items]
        try:
            with transaction.atomic():
                results = interactions_ingest(items=parsed.items) if parsed.items else []
        except DataError as exc:
            # A value the database refuses is not transient: retrying cannot help, a fix and a replay can.
            return _finish(event, InboundEvent.Status.FAILED, f"The database refused a value: {exc}"[:2000])
        counts = {"created": 0, "duplicate": 0, "rejected": 0}
        skipped = list(parsed.skipped)
        interaction_ids = []
        for item, result in zip(parsed.items, results):
            counts[result.status] = counts.get(result.status, 0) + 1
            if result.interaction is not None:
                interaction_ids.append(result.interaction.pk)
            if result.status == "rejected":
                skipped.append(f"{item.source}:{item.external_id} rejected: {result.errors}")
        updated = 0
        for update in parsed.updates:
            changed = interaction_status_update(update=update)
            if changed is None:
                skipped.append(f"no interaction for status {update.status!r} of {getattr(update, 'external_id', '')!r}")
            else:
                updated += changed
        event.result = {**counts, "updated": updated, "interactions": interaction_ids[:100], "skipped": skipped[:50]}
        if not parsed.items and not updated and skipped:
            # Nothing stored and nothing updated: failed, so it can be replayed once the
            # interaction a status names has been recorded (a receipt may beat its message).
            return _finish(event, InboundEvent.Status.FAILED, "; ".join(skipped)[:2000])
        if parsed.items and counts["created"] + counts["duplicate"] == 0 and not updated:
            return _finish(event, InboundEvent.Status.FAILED, "; ".join(skipped)[:2000])
        return _finish(event, InboundEvent.Status.PROCESSED, "")


def _finish(event, status, error):
    event.status = status
    event.error = text_clean(error)
    event.result = text_clean(event.result)
    event.processed_at = timezone.now()
    event.save(update_fields=["status", "error", "processed_at", "result"])
    return event


@transaction.atomic
def inbound_event_fail(*, event_id: int, reason: str) -> InboundEvent:
    """Give up on a pending event (its retries ran out), keeping it replayable."""
    event = InboundEvent.objects.select_for_update().get(pk=event_id)
    if event.status == InboundEvent.Status.PENDING:
        _finish(event, InboundEvent.Status.FAILED, reason[:2000])
    return event


@transaction.atomic
def inbound_event_replay(*, event_id: int) -> InboundEvent:
    """Process an event again (after a fix); duplicates are not doubled. Raises ValueError once purged."""
    event = InboundEvent.objects.select_for_update().get(pk=event_id)
    if event.body is None:
        raise ValueError(f"Inbound event {event_id} has no body left (purged after the retention period).")
    event.status = InboundEvent.Status.PENDING
    event.error = ""
    event.processed_at = None
    event.save(update_fields=["status", "error", "processed_at"])
    transaction.on_commit(lambda: _enqueue(event.pk))
    return event


def inbound_events_replay(*, event_ids) -> tuple[list[int], list[int]]:
    """Replay several events: (queued ids, ids skipped because their body was purged)."""
    queued, purged = [], []
    for event_id in event_ids:
        try:
            inbound_event_replay(event_id=event_id)
        except ValueError:
            purged.append(event_id)
        else:
            queued.append(event_id)
    return queued, purged


def inbound_events_requeue_pending(*, older_than_seconds: int = 600) -> int:
    """Queue again events still pending after a while (their task was lost, e.g. the broker was down)."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    ids = list(
        InboundEvent.objects.filter(status=InboundEvent.Status.PENDING, received_at__lt=cutoff)
        .order_by("received_at")
        .values_list("pk", flat=True)[:1000]
    )
    for event_id in ids:
        _enqueue(event_id)
    return len(ids)


def inbound_events_purge(*, now=None) -> int:
    """Drop the raw bodies of processed events older than INBOUND_RETENTION_DAYS; failed ones keep theirs."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.INBOUND_RETENTION_DAYS)
    return InboundEvent.objects.filter(
        status=InboundEvent.Status.PROCESSED, received_at__lt=cutoff, body__isnull=False
    ).update(body=None, headers={}, purged_at=now)


def _apply_status(interaction, status, occurred_at, data):
    """Merge a status into the interaction's data; True when something changed."""
    current = dict(interaction.data or {})
    before = dict(current)
    data = text_clean(data)
    if status in FLAG_STATUSES:
        current.update(data)
        current.setdefault("flags", {})
        current["flags"] = {**current["flags"], status: occurred_at.isoformat()}
    else:
        history = dict(current.get("status_history") or {})
        history.setdefault(status, occurred_at.isoformat())
        current["status_history"] = history
        if STATUS_RANK.get(status, 0) >= STATUS_RANK.get(current.get("status", ""), -1):
            current.update(data)
            current["status"] = status
    if current == before:
        return False
    interaction.data = current
    interaction.save(update_fields=["data"])
    return True


@transaction.atomic
def interaction_status_update(*, update: StatusUpdate | WatermarkUpdate) -> int | None:
    """Apply a delivery/call status to the interaction(s) it names; how many changed, or None when none is known."""
    if isinstance(update, WatermarkUpdate):
        rows = list(
            Interaction.objects.select_for_update()
            .filter(
                source=update.source,
                direction=Interaction.Direction.OUTBOUND,
                identity__kind=update.identity.kind,
                identity__value=update.identity.value,
                occurred_at__lte=update.watermark,
            )
            .order_by("-occurred_at")[:200]
        )
        if not rows:
            return None
        return sum(_apply_status(row, update.status, update.watermark, {}) for row in rows)
    row = Interaction.objects.select_for_update().filter(source=update.source, external_id=update.external_id).first()
    if row is None:
        return None
    return int(_apply_status(row, update.status, update.occurred_at, update.data))
