"""Outbound webhook delivery and housekeeping tasks. Ids in, idempotent."""

from celery import shared_task
from django.conf import settings

from integrations import services


@shared_task(name="integrations.webhook_delivery_send")
def webhook_delivery_send(delivery_id: int) -> None:
    """One attempt at a delivery; a transient failure schedules the next one.

    Idempotent: a delivered, dead or held delivery is left alone. Without a
    broker (tasks in-process) the next attempt is left to the sweeper rather
    than run at once, which is what a countdown means in-process.
    """
    delay = services.webhook_delivery_attempt(delivery_id=delivery_id)
    if delay is not None and not settings.CELERY_TASK_ALWAYS_EAGER:
        webhook_delivery_send.apply_async(args=[delivery_id], countdown=max(delay, 0))


@shared_task(name="integrations.webhook_deliveries_send_many")
def webhook_deliveries_send_many(delivery_ids: list[int]) -> None:
    """Fan a batch of deliveries out to one task each."""
    for delivery_id in delivery_ids:
        webhook_delivery_send.delay(delivery_id)


@shared_task(name="integrations.webhook_deliveries_requeue_due")
def webhook_deliveries_requeue_due() -> int:
    """Beat: queue pending deliveries whose attempt is overdue (a lost task, a broker outage)."""
    return services.webhook_deliveries_requeue_due()


@shared_task(name="integrations.idempotency_keys_purge")
def idempotency_keys_purge() -> int:
    """Beat: delete stored Idempotency-Key responses past their expiry."""
    return services.idempotency_keys_purge()
