"""Celery tasks of the metrics app: ids in, a service call, done. All idempotent."""

from celery import shared_task

from metrics import services


@shared_task(name="metrics.customers_recompute", acks_late=True)
def customers_recompute_task(customer_ids):
    """Recompute these customers now (an urgent mark: merge, undo, survey answer, agent's mark)."""
    count = services.customers_recompute(customer_ids=customer_ids)
    services.rollups_rebuild_dirty()
    return count


@shared_task(name="metrics.dirty_customers_recompute", acks_late=True)
def dirty_customers_recompute_task():
    """Beat, every minute: recompute the customers marked dirty, in batches, then their days' roll-ups."""
    return services.dirty_customers_recompute()


@shared_task(name="metrics.all_recompute", acks_late=True)
def all_recompute_task():
    """Beat, nightly: recompute every customer (time moves windows: churn, came back, at risk) and every roll-up.

    With a broker, the chunks fan out to every worker (`metrics.chunk_recompute`);
    the roll-ups of the days whose rows changed are rebuilt by the minute task,
    and the whole roll-up table once more by `metrics.rollups_rebuild` after the
    chunks (queued last, so on a single worker it runs after them).
    """
    from django.conf import settings

    if settings.CELERY_TASK_ALWAYS_EAGER:
        return services.all_recompute()
    chunks = services.chunks_count()
    for chunk in range(chunks):
        chunk_recompute_task.delay(chunk)
    rollups_rebuild_task.delay()
    return chunks


@shared_task(name="metrics.chunk_recompute", acks_late=True)
def chunk_recompute_task(chunk):
    """Recompute one chunk of METRICS_FULL_BATCH_SIZE customer ids (part of the nightly full recompute)."""
    return services.chunk_recompute(chunk=chunk)


@shared_task(name="metrics.rollups_rebuild", acks_late=True)
def rollups_rebuild_task():
    """Rebuild every daily roll-up from the stored journeys, clocks and survey answers."""
    return services.rollups_rebuild(days=None)
