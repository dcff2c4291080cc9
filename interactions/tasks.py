"""Tasks of the inbound event store: process, sweep pending, purge raw bodies."""

import logging
import time

from celery import shared_task
from django.conf import settings

from interactions.inbound import (
    inbound_event_fail,
    inbound_event_process,
    inbound_events_purge,
    inbound_events_requeue_pending,
)

logger = logging.getLogger(__name__)


@shared_task(name="interactions.inbound_event_process", bind=True, acks_late=True, max_retries=None)
def inbound_event_process_task(self, event_id):
    """Process one stored event; transient failures retry with exponential backoff up to a cap.

    acks_late: a worker killed half-way leaves the message unacknowledged, so the
    broker hands it to another worker; the event stays pending until then.
    """
    delay = settings.INBOUND_PROCESS_DELAY_SECONDS
    if delay:
        # Test-only: widens the window in which a worker can be killed mid-processing.
        time.sleep(delay)
    try:
        inbound_event_process(event_id=event_id)
    except Exception as exc:  # noqa: BLE001 - anything past the parser (database, locks) may pass
        retries = self.request.retries
        if retries >= settings.INBOUND_PROCESS_MAX_RETRIES:
            logger.exception("inbound event %s failed after %s attempts", event_id, retries + 1)
            inbound_event_fail(event_id=event_id, reason=f"Gave up after {retries + 1} attempts: {exc.__class__.__name__}: {exc}")
            return
        countdown = min(settings.INBOUND_RETRY_BACKOFF_MAX_SECONDS, settings.INBOUND_RETRY_BACKOFF_SECONDS * 2**retries)
        raise self.retry(exc=exc, countdown=countdown) from exc


@shared_task(name="interactions.inbound_events_requeue_pending")
def inbound_events_requeue_pending_task():
    """Queue again events left pending (their task was lost before reaching a worker)."""
    return inbound_events_requeue_pending(older_than_seconds=settings.INBOUND_REQUEUE_AFTER_SECONDS)


@shared_task(name="interactions.inbound_events_purge")
def inbound_events_purge_task():
    """Drop raw bodies past INBOUND_RETENTION_DAYS."""
    return inbound_events_purge()
