import time
from datetime import timedelta
from unittest import mock

import pytest
from django.db import transaction
from django.utils import timezone

from crm.celery import app as celery_app
from integrations.models import WebhookDelivery
from integrations.services import event_emit, events_emit, webhook_deliveries_requeue_due
from tests.conftest import wait_until
from tests.integrations.factories import WebhookSubscriptionFactory
from tests.integrations.test_delivery import standard_webhooks_verify


@pytest.fixture
def in_process_tasks(settings):
    """Tasks run in-process (the embedded default), whatever the environment."""
    was = celery_app.conf.task_always_eager
    settings.CELERY_TASK_ALWAYS_EAGER = True
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = was


@pytest.mark.django_db
def test_in_process_delivery_happens_after_commit(
    receiver, private_targets, in_process_tasks, django_capture_on_commit_callbacks
):
    subscription = WebhookSubscriptionFactory(url=receiver.url)

    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            event_emit(event_type="conversation.opened", payload={"conversation": {"id": 3}})
            assert receiver.count() == 0

    delivery = WebhookDelivery.objects.get()
    assert delivery.status == WebhookDelivery.Status.DELIVERED
    headers = {k.lower(): v for k, v in receiver.requests[0]["headers"].items()}
    assert standard_webhooks_verify(subscription.secret, headers, receiver.requests[0]["body"])


@pytest.mark.django_db
def test_many_deliveries_fan_out_in_process(receiver, private_targets, in_process_tasks, django_capture_on_commit_callbacks):
    WebhookSubscriptionFactory(url=receiver.url, event_types=["interaction.created"])

    with django_capture_on_commit_callbacks(execute=True):
        events_emit(events=[("interaction.created", {"id": n}) for n in range(30)])

    assert WebhookDelivery.objects.filter(status=WebhookDelivery.Status.DELIVERED).count() == 30
    assert receiver.count() == 30


@pytest.mark.django_db
def test_sweeper_requeues_overdue_pending_deliveries(receiver, private_targets, in_process_tasks):
    # given a delivery whose task was lost, and one not yet due
    WebhookSubscriptionFactory(url=receiver.url)
    with mock.patch("integrations.services.webhook_deliveries_queue"):
        events_emit(events=[("customer.created", {"id": 1}), ("customer.created", {"id": 2})])
    lost, later = WebhookDelivery.objects.order_by("id")
    WebhookDelivery.objects.filter(pk=lost.pk).update(next_attempt_at=timezone.now() - timedelta(minutes=5))
    WebhookDelivery.objects.filter(pk=later.pk).update(next_attempt_at=timezone.now() + timedelta(minutes=5))

    # when
    assert webhook_deliveries_requeue_due() == 1

    # then
    lost.refresh_from_db()
    later.refresh_from_db()
    assert lost.status == WebhookDelivery.Status.DELIVERED
    assert later.status == WebhookDelivery.Status.PENDING
    assert receiver.count() == 1


@pytest.mark.redis
@pytest.mark.postgres
def test_real_worker_retries_a_failing_receiver_until_it_succeeds(celery_worker_process, receiver):
    # given a receiver that fails three times, then succeeds
    receiver.respond((500,), (500,), (500,), (200,))
    subscription = WebhookSubscriptionFactory(url=receiver.url)
    celery_worker_process(
        extra_env={
            "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
            "WEBHOOK_RETRY_BASE_SECONDS": "0.2",
            "WEBHOOK_RETRY_MAX_SECONDS": "1",
        }
    )

    # when an event is emitted (committed: the worker sees it)
    event_emit(event_type="customer.created", payload={"customer": {"id": 42}})

    # then
    delivery = WebhookDelivery.objects.get()
    wait_until(
        lambda: WebhookDelivery.objects.filter(pk=delivery.pk, status=WebhookDelivery.Status.DELIVERED).exists(),
        timeout=30,
        message="the delivery to succeed",
    )
    time.sleep(1.5)  # long enough for any stray retry to arrive
    assert receiver.count() == 4
    assert {r["headers"]["webhook-id"] for r in receiver.requests} == {delivery.webhook_id}
    for request in receiver.requests:
        headers = {k.lower(): v for k, v in request["headers"].items()}
        assert standard_webhooks_verify(subscription.secret, headers, request["body"]) == [headers["webhook-signature"]]
        assert request["body"] == delivery.body.encode()
    assert list(delivery.attempts.values_list("number", "status_code")) == [(1, 500), (2, 500), (3, 500), (4, 200)]
