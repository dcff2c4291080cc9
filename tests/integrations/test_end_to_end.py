"""The events the product emits reach subscribers: REST ingest, merge, undo and resolve produce signed deliveries."""

import json

import pytest
from django.core.serializers.json import DjangoJSONEncoder
from django.urls import reverse

from customers.models import Customer, Merge
from interactions.models import Conversation, Interaction
from integrations.models import WebhookDelivery
from tests.integrations.factories import WebhookSubscriptionFactory
from tests.integrations.test_delivery import standard_webhooks_verify
from tests.integrations.test_tasks import in_process_tasks  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db


def as_json(value):
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def item(**overrides):
    return {
        "source": "shop",
        "external_id": "msg-1",
        "channel": "email",
        "kind": "message",
        "direction": "inbound",
        "author_type": "customer",
        "occurred_at": "2026-03-01T10:00:00Z",
        "identities": [{"kind": "email", "value": "lisa@example.com"}],
        "customer": {"name": "Lisa"},
        "subject": "Where is my parcel?",
        "body": "It was due yesterday.",
        **overrides,
    }


def received(receiver, subscription):
    """{event type: event body} of every request the receiver got, each checked against the signature."""
    events = {}
    for request in receiver.requests:
        headers = {k.lower(): v for k, v in request["headers"].items()}
        assert standard_webhooks_verify(subscription.secret, headers, request["body"]), "bad signature"
        event = json.loads(request["body"])
        assert WebhookDelivery.objects.get(webhook_id=headers["webhook-id"]).event_id == event["id"]
        events.setdefault(event["type"], []).append(event)
    return events


@pytest.fixture
def subscribed(receiver, private_targets, in_process_tasks):  # noqa: F811
    return WebhookSubscriptionFactory(url=receiver.url)


def test_api_ingest_delivers_customer_conversation_and_interaction_events(
    api, receiver, subscribed, django_capture_on_commit_callbacks
):
    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(reverse("interaction-create"), item(), format="json")

    # then every delivery is a row, delivered once, signed
    assert response.status_code == 201, response.content
    customer, conversation, interaction = Customer.objects.get(), Conversation.objects.get(), Interaction.objects.get()
    deliveries = WebhookDelivery.objects.all()
    assert sorted(d.event_type for d in deliveries) == ["conversation.opened", "customer.created", "interaction.created"]
    assert {d.status for d in deliveries} == {WebhookDelivery.Status.DELIVERED}
    events = received(receiver, subscribed)
    assert {t: len(e) for t, e in events.items()} == {"customer.created": 1, "conversation.opened": 1, "interaction.created": 1}
    assert events["customer.created"][0]["data"] == {"customer_id": customer.pk}
    assert events["conversation.opened"][0]["data"] == {
        "id": conversation.pk,
        "customer_id": customer.pk,
        "status": "open",
        "channels": ["email"],
        "opened_at": as_json(conversation.opened_at),
        "resolved_at": None,
        "reopen_count": 0,
    }
    assert events["interaction.created"][0]["data"] == {
        "id": interaction.pk,
        "customer_id": customer.pk,
        "conversation_id": conversation.pk,
        "channel": "email",
        "kind": "message",
        "direction": "inbound",
        "author_type": "customer",
        "occurred_at": "2026-03-01T10:00:00Z",
        "subject": "Where is my parcel?",
        "body": "It was due yesterday.",
        "sentiment": None,
        "intent": "",
        "source": "shop",
        "external_id": "msg-1",
    }


def test_a_provider_retry_of_the_same_interaction_sends_nothing_new(
    api, receiver, subscribed, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        api.post(reverse("interaction-create"), item(), format="json")
    with django_capture_on_commit_callbacks(execute=True):
        again = api.post(reverse("interaction-create"), item(), format="json")

    assert again.status_code == 200
    assert WebhookDelivery.objects.count() == 3 and receiver.count() == 3


def test_bulk_ingest_delivers_one_interaction_event_per_stored_item(
    api, receiver, subscribed, django_capture_on_commit_callbacks
):
    items = [item(external_id=f"m-{n}", occurred_at=f"2026-03-01T10:0{n}:00Z") for n in range(3)]
    items.append({"channel": "pigeon"})  # rejected: no event

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(reverse("interaction-bulk"), {"items": items}, format="json")

    assert response.status_code in (200, 201, 207), response.content
    events = received(receiver, subscribed)
    assert sorted(e["data"]["external_id"] for e in events["interaction.created"]) == ["m-0", "m-1", "m-2"]
    assert len(events["customer.created"]) == 1 and len(events["conversation.opened"]) == 1


def test_merge_and_undo_deliver_merged_and_unmerged(api, receiver, subscribed, django_capture_on_commit_callbacks):
    # given two customers
    with django_capture_on_commit_callbacks(execute=True):
        api.post(reverse("interaction-create"), item(), format="json")
        api.post(
            reverse("interaction-create"),
            item(external_id="msg-2", identities=[{"kind": "phone", "value": "+4915112345678"}], customer={"name": "L"}),
            format="json",
        )
    first, second = Customer.objects.order_by("id")
    receiver.requests.clear()

    # when they are merged, then the merge undone
    with django_capture_on_commit_callbacks(execute=True):
        merged = api.post(reverse("customer-merge", args=[first.pk]), {"other": second.pk}, format="json")
    assert merged.status_code == 201, merged.content
    merge = Merge.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        undone = api.post(reverse("merge-undo", args=[merge.pk]))
    assert undone.status_code == 200, undone.content

    # then
    events = received(receiver, subscribed)
    expected = {"merge_id": merge.pk, "survivor_id": first.pk, "merged_id": second.pk, "reason": "manual"}
    assert [e["data"] for e in events["customer.merged"]] == [expected]
    assert [e["data"] for e in events["customer.unmerged"]] == [expected]
    assert set(events) == {"customer.merged", "customer.unmerged"}


def test_resolving_a_conversation_delivers_resolved(api, receiver, subscribed, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        api.post(reverse("interaction-create"), item(), format="json")
    conversation = Conversation.objects.get()
    receiver.requests.clear()

    with django_capture_on_commit_callbacks(execute=True):
        response = api.patch(reverse("conversation-detail", args=[conversation.pk]), {"status": "resolved"}, format="json")

    assert response.status_code == 200, response.content
    conversation.refresh_from_db()
    events = received(receiver, subscribed)
    assert list(events) == ["conversation.resolved"]
    data = events["conversation.resolved"][0]["data"]
    assert data["id"] == conversation.pk and data["status"] == "resolved"
    assert data["resolved_at"] == as_json(conversation.resolved_at) is not None


def test_a_subscription_gets_only_the_types_it_names(api, receiver, private_targets, in_process_tasks, django_capture_on_commit_callbacks):  # noqa: F811
    WebhookSubscriptionFactory(url=receiver.url, event_types=["customer.created"])
    other = WebhookSubscriptionFactory(url=receiver.url, event_types=["conversation.resolved"])

    with django_capture_on_commit_callbacks(execute=True):
        api.post(reverse("interaction-create"), item(), format="json")

    assert list(WebhookDelivery.objects.values_list("event_type", flat=True)) == ["customer.created"]
    assert not WebhookDelivery.objects.filter(subscription=other).exists()
    assert receiver.count() == 1


def test_a_rejected_ingest_records_and_sends_nothing(api, receiver, subscribed, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(reverse("interaction-create"), item(channel="pigeon"), format="json")

    assert response.status_code == 400
    assert not WebhookDelivery.objects.exists() and receiver.count() == 0
