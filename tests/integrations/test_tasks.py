import json
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


@pytest.mark.redis
@pytest.mark.postgres
def test_real_worker_delivers_what_an_api_ingest_emits_honouring_retry_after(celery_worker_process, receiver):
    # given a receiver that asks for a 1 s pause once, a subscriber to everything, and a worker
    from django.urls import reverse
    from rest_framework.test import APIClient

    from customers.models import Customer
    from integrations.services import api_token_create
    from interactions.models import Conversation, Interaction

    receiver.respond((429, {"Retry-After": "1"}))
    subscription = WebhookSubscriptionFactory(url=receiver.url)
    _, raw = api_token_create(name="shop", scopes=["interactions:write"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    celery_worker_process(extra_env={"WEBHOOK_ALLOW_PRIVATE_TARGETS": "true", "WEBHOOK_RETRY_BASE_SECONDS": "0.2"})
    item = {
        "source": "shop", "external_id": "o-1", "channel": "chat", "kind": "message", "direction": "inbound",
        "author_type": "customer", "occurred_at": "2026-03-01T10:00:00Z",
        "identities": [{"kind": "email", "value": "sam@example.com"}], "body": "Hello",
    }

    # when the API stores an interaction, and the client retries the POST with its Idempotency-Key
    first = client.post(reverse("interaction-create"), item, format="json", HTTP_IDEMPOTENCY_KEY="o-1")
    again = client.post(reverse("interaction-create"), item, format="json", HTTP_IDEMPOTENCY_KEY="o-1")
    assert first.status_code == 201 and again["Idempotent-Replayed"] == "true"

    # then the worker delivers all three events, one of them after the receiver's pause
    wait_until(
        lambda: WebhookDelivery.objects.filter(status=WebhookDelivery.Status.DELIVERED).count() == 3,
        timeout=30,
        message="three delivered events",
    )
    time.sleep(0.5)  # any stray extra request would arrive by now
    assert receiver.count() == 4 and WebhookDelivery.objects.count() == 3
    customer, conversation, interaction = Customer.objects.get(), Conversation.objects.get(), Interaction.objects.get()
    bodies = {}
    for request in receiver.requests:
        headers = {k.lower(): v for k, v in request["headers"].items()}
        assert standard_webhooks_verify(subscription.secret, headers, request["body"])
        event = json.loads(request["body"])
        bodies.setdefault(event["type"], set()).add((headers["webhook-id"], request["body"]))
    assert {t: len(v) for t, v in bodies.items()} == {"customer.created": 1, "conversation.opened": 1, "interaction.created": 1}
    data = {t: json.loads(next(iter(v))[1])["data"] for t, v in bodies.items()}
    assert data["customer.created"] == {"customer_id": customer.pk}
    assert (data["conversation.opened"]["id"], data["conversation.opened"]["channels"]) == (conversation.pk, ["chat"])
    assert (data["interaction.created"]["id"], data["interaction.created"]["body"]) == (interaction.pk, "Hello")
    paused = WebhookDelivery.objects.get(attempt_count=2)
    first_try, second_try = paused.attempts.order_by("number")
    assert (first_try.status_code, second_try.status_code) == (429, 200)
    assert (second_try.attempted_at - first_try.attempted_at).total_seconds() >= 0.9
