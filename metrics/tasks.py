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

    On PostgreSQL the chunks are shared by METRICS_FULL_PROCESSES processes
    forked from this one, each making one ordered pass over its customers'
    interactions (see metrics.storage.stream_chunks); `metrics.chunk_recompute`
    recomputes a single chunk (by id range) when only part of the customers is wanted.
    """
    return services.all_recompute()


@shared_task(name="metrics.chunk_recompute", acks_late=True)
def chunk_recompute_task(chunk):
    """Recompute one chunk of METRICS_FULL_BATCH_SIZE customer ids."""
    return services.chunk_recompute(chunk=chunk)
