from datetime import timedelta
from unittest import mock

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from integrations.models import WebhookDelivery
from integrations.services import events_emit
from tests.integrations.factories import WebhookSubscriptionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def deliveries():
    """Three dead deliveries on two subscriptions, one of them old, and one delivered."""
    with mock.patch("integrations.services.webhook_deliveries_queue"):
        first = WebhookSubscriptionFactory(event_types=["customer.created", "customer.merged"])
        second = WebhookSubscriptionFactory(event_types=["customer.created"])
        events_emit(events=[("customer.created", {"customer_id": 1}), ("customer.merged", {"merge_id": 2})])
    WebhookDelivery.objects.update(status="dead", cycle_attempts=8)
    delivered = WebhookDelivery.objects.get(subscription=second)
    WebhookDelivery.objects.filter(pk=delivered.pk).update(status="delivered")
    old = WebhookDelivery.objects.get(subscription=first, event_type="customer.merged")
    WebhookDelivery.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=3))
    return first, second


def pending_ids():
    return set(WebhookDelivery.objects.filter(status="pending", cycle_attempts=0).values_list("pk", flat=True))


def test_redeliver_by_id(deliveries, django_capture_on_commit_callbacks, capsys):
    target = WebhookDelivery.objects.filter(status="dead").first()

    with mock.patch("integrations.services.webhook_deliveries_queue") as queue:
        with django_capture_on_commit_callbacks(execute=True):
            call_command("webhook_redeliver", str(target.pk))

    assert pending_ids() == {target.pk}
    queue.assert_called_once_with(delivery_ids=[target.pk])
    assert "Queued 1 deliveries again." in capsys.readouterr().out


def test_redeliver_dead_since(deliveries, django_capture_on_commit_callbacks):
    first, _ = deliveries
    recent = WebhookDelivery.objects.get(subscription=first, event_type="customer.created")

    with mock.patch("integrations.services.webhook_deliveries_queue"):
        with django_capture_on_commit_callbacks(execute=True):
            call_command("webhook_redeliver", "--dead", "--since", (timezone.now() - timedelta(days=1)).isoformat())

    assert pending_ids() == {recent.pk}


def test_redeliver_every_dead_of_one_subscription(deliveries):
    first, _ = deliveries

    with mock.patch("integrations.services.webhook_deliveries_queue"):
        call_command("webhook_redeliver", "--dead", "--subscription", str(first.pk))

    assert pending_ids() == set(WebhookDelivery.objects.filter(subscription=first).values_list("pk", flat=True))
    assert WebhookDelivery.objects.filter(status="delivered").count() == 1


@pytest.mark.parametrize(
    "args", [[], ["1", "--dead"], ["999"], ["--dead", "--since", "yesterday"], ["--dead", "--since", "2026-01-01T00:00"]]
)
def test_redeliver_refuses_unclear_requests(deliveries, args):
    with pytest.raises(CommandError):
        call_command("webhook_redeliver", *args)
    assert pending_ids() == set()
