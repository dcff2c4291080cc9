import json
from unittest import mock

import pytest
from django.db import transaction

from integrations.events import EVENT_TYPES
from integrations.models import WebhookDelivery
from integrations.services import event_emit, events_emit
from tests.integrations.factories import WebhookSubscriptionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_sending():
    """Deliveries are recorded but not sent: these tests are about emitting."""
    with mock.patch("integrations.services.webhook_deliveries_queue") as queue:
        yield queue


def test_event_types_include_the_issue_minimum():
    assert {
        "customer.created",
        "customer.merged",
        "customer.unmerged",
        "interaction.created",
        "conversation.opened",
        "conversation.resolved",
    } <= set(EVENT_TYPES)


def test_unknown_event_type_raises_value_error(no_sending):
    with pytest.raises(ValueError):
        event_emit(event_type="customer.exploded", payload={})


def test_emit_without_subscriptions_is_one_query(django_assert_num_queries, no_sending):
    events = [("interaction.created", {"id": n}) for n in range(1000)]

    with django_assert_num_queries(1):
        events_emit(events=events)

    assert WebhookDelivery.objects.count() == 0


def test_emit_records_one_delivery_per_matching_subscription(
    django_assert_num_queries, django_capture_on_commit_callbacks, no_sending
):
    # given
    everything = WebhookSubscriptionFactory(event_types=[])
    customers_only = WebhookSubscriptionFactory(event_types=["customer.created"])
    WebhookSubscriptionFactory(event_types=["customer.created"], is_active=False)
    events = [("customer.created", {"id": 1}), ("interaction.created", {"id": 2})]

    # when
    # savepoint, the subscriptions, one insert, release
    with django_capture_on_commit_callbacks(execute=True), django_assert_num_queries(4):
        with transaction.atomic():
            events_emit(events=events)

    # then
    rows = list(WebhookDelivery.objects.order_by("id").values_list("subscription_id", "event_type"))
    assert rows == [
        (everything.pk, "customer.created"),
        (customers_only.pk, "customer.created"),
        (everything.pk, "interaction.created"),
    ]
    ids = [d.pk for d in WebhookDelivery.objects.order_by("id")]
    no_sending.assert_called_once_with(delivery_ids=ids)


def test_deliveries_of_one_event_share_body_and_event_id_but_not_webhook_id(no_sending):
    WebhookSubscriptionFactory.create_batch(2)

    event_emit(event_type="customer.created", payload={"customer": {"id": 7, "name": "Zahra"}})

    first, second = WebhookDelivery.objects.order_by("id")
    assert first.body == second.body
    assert first.event_id == second.event_id
    assert first.webhook_id != second.webhook_id
    assert first.webhook_id.startswith("msg_")
    body = json.loads(first.body)
    assert body["type"] == "customer.created"
    assert body["id"] == first.event_id
    assert body["data"] == {"customer": {"id": 7, "name": "Zahra"}}
    assert first.status == WebhookDelivery.Status.PENDING


def test_rollback_drops_the_deliveries_and_sends_nothing(no_sending):
    WebhookSubscriptionFactory()

    with pytest.raises(RuntimeError):
        with transaction.atomic():
            event_emit(event_type="customer.created", payload={"id": 1})
            raise RuntimeError("writer failed")

    assert WebhookDelivery.objects.count() == 0
    no_sending.assert_not_called()


def test_payload_datetimes_are_serialised(no_sending):
    from django.utils import timezone

    WebhookSubscriptionFactory()
    at = timezone.now()

    event_emit(event_type="interaction.created", payload={"occurred_at": at})

    body = json.loads(WebhookDelivery.objects.get().body)
    assert body["data"]["occurred_at"].startswith(at.strftime("%Y-%m-%dT%H:%M:%S"))
