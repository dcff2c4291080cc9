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
    """Beat, nightly: recompute every customer (time moves windows: churn, came back, at risk) and every roll-up."""
    return services.all_recompute()
