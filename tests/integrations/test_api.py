"""The webhooks API: subscriptions (secret shown once), rotation, deliveries, redelivery, event types."""

import base64
import json
from datetime import timedelta
from unittest import mock

import pytest
from django.urls import reverse
from django.utils import timezone

from integrations.events import EVENT_TYPES
from integrations.models import WebhookAttempt, WebhookDelivery, WebhookSubscription
from integrations.services import events_emit
from tests.integrations.factories import WebhookSubscriptionFactory

pytestmark = pytest.mark.django_db


def iso(value):
    return value.isoformat().replace("+00:00", "Z")


@pytest.fixture
def no_sending():
    with mock.patch("integrations.services.webhook_deliveries_queue") as queue:
        yield queue


@pytest.fixture
def warm_api(api):
    """The token's last_used_at is fresh and the token cached, so counted requests neither write nor read it."""
    api.get(reverse("webhook-event-type-list"))
    return api


def subscription_json(subscription, **extra):
    return {
        "id": subscription.pk,
        "url": subscription.url,
        "event_types": subscription.event_types,
        "is_active": subscription.is_active,
        "description": subscription.description,
        "previous_secret_expires_at": None,
        "created_at": iso(subscription.created_at),
        "updated_at": iso(subscription.updated_at),
        **extra,
    }


# --- subscriptions -------------------------------------------------------------------


def test_create_subscription_shows_the_secret_once(api):
    # when
    response = api.post(
        reverse("webhook-subscription-list"),
        {
            "url": "https://hooks.example.com/crm",
            "event_types": ["interaction.created", "customer.created", "customer.created"],
            "description": "Shop",
        },
        format="json",
    )

    # then
    assert response.status_code == 201, response.content
    subscription = WebhookSubscription.objects.get()
    assert response.json() == subscription_json(subscription, secret=subscription.secret)
    assert subscription.event_types == ["customer.created", "interaction.created"]
    assert subscription.secret.startswith("whsec_") and len(base64.b64decode(subscription.secret[6:])) >= 24
    detail = api.get(reverse("webhook-subscription-detail", args=[subscription.pk])).json()
    assert detail == subscription_json(subscription)
    assert subscription.secret not in json.dumps(detail) and "secret" not in detail
    assert subscription.secret not in json.dumps(api.get(reverse("webhook-subscription-list")).json())


def test_create_subscription_with_a_given_secret_and_every_type(api):
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()

    response = api.post(
        reverse("webhook-subscription-list"),
        {"url": "https://hooks.example.com/a", "event_types": ["*"], "secret": secret, "is_active": False},
        format="json",
    )

    assert response.status_code == 201, response.content
    subscription = WebhookSubscription.objects.get()
    assert (subscription.secret, subscription.event_types, subscription.is_active) == (secret, [], False)
    assert response.json()["secret"] == secret


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "http://127.0.0.1:8000/hook"}, "url"),
        ({"url": "http://10.1.2.3/hook"}, "url"),
        ({"url": "http://169.254.169.254/latest/meta-data/"}, "url"),
        ({"url": "http://[::1]/hook"}, "url"),
        ({"url": "http://localhost/hook"}, "url"),
        ({"url": "ftp://hooks.example.com/"}, "url"),
        ({"url": "https://user:pw@hooks.example.com/"}, "url"),
        ({"url": "https://hooks.example.com/", "event_types": ["no.such"]}, "event_types"),
        ({"url": "https://hooks.example.com/", "event_types": "customer.created"}, "event_types"),
        ({"url": "https://hooks.example.com/", "secret": "not-a-secret"}, "secret"),
        ({}, "url"),
    ],
)
def test_create_subscription_refuses_bad_input(api, body, field):
    response = api.post(reverse("webhook-subscription-list"), body, format="json")

    assert response.status_code == 400, response.content
    payload = response.json()
    assert payload["code"] == "invalid" and field in payload["errors"], payload
    assert not WebhookSubscription.objects.exists()


def test_private_targets_are_accepted_when_the_setting_allows_them(api, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True

    response = api.post(reverse("webhook-subscription-list"), {"url": "http://127.0.0.1:9/hook"}, format="json")

    assert response.status_code == 201, response.content


def test_list_subscriptions_full_payload_and_query_count(warm_api, django_assert_num_queries):
    # given
    older = WebhookSubscriptionFactory(event_types=["customer.created"], created_at=timezone.now() - timedelta(days=1))
    newer = WebhookSubscriptionFactory(description="CRM mirror")
    for _ in range(5):
        WebhookSubscriptionFactory(created_at=timezone.now() - timedelta(days=2))

    # when: count, page (the token is cached)
    with django_assert_num_queries(2):
        response = warm_api.get(reverse("webhook-subscription-list"), {"page_size": 2})

    # then
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 7
    assert body["results"] == [subscription_json(newer), subscription_json(older)]
    assert body["next"] and body["previous"] is None


def test_update_subscription(api):
    subscription = WebhookSubscriptionFactory(event_types=["customer.created"])

    response = api.patch(
        reverse("webhook-subscription-detail", args=[subscription.pk]),
        {"event_types": ["conversation.opened"], "is_active": False, "description": "paused"},
        format="json",
    )

    assert response.status_code == 200, response.content
    subscription.refresh_from_db()
    assert response.json() == subscription_json(subscription)
    assert (subscription.event_types, subscription.is_active, subscription.description) == (
        ["conversation.opened"],
        False,
        "paused",
    )


def test_update_refuses_a_private_url_and_keeps_the_old_one(api):
    subscription = WebhookSubscriptionFactory()
    url = subscription.url

    response = api.patch(
        reverse("webhook-subscription-detail", args=[subscription.pk]), {"url": "http://192.168.1.1/"}, format="json"
    )

    assert response.status_code == 400 and "url" in response.json()["errors"]
    subscription.refresh_from_db()
    assert subscription.url == url


def test_delete_subscription(api):
    subscription = WebhookSubscriptionFactory()

    response = api.delete(reverse("webhook-subscription-detail", args=[subscription.pk]))

    assert response.status_code == 204
    assert not WebhookSubscription.objects.exists()
    assert api.get(reverse("webhook-subscription-detail", args=[subscription.pk])).status_code == 404


def test_rotate_secret_shows_the_new_one_and_keeps_the_old_for_the_window(api, settings):
    settings.WEBHOOK_SECRET_ROTATION_HOURS = 6
    subscription = WebhookSubscriptionFactory()
    old = subscription.secret

    response = api.post(reverse("webhook-subscription-rotate-secret", args=[subscription.pk]), {}, format="json")

    assert response.status_code == 200, response.content
    subscription.refresh_from_db()
    assert subscription.secret != old and subscription.previous_secret == old
    expires = subscription.previous_secret_expires_at
    assert timedelta(hours=5, minutes=59) < expires - timezone.now() <= timedelta(hours=6)
    assert response.json() == subscription_json(
        subscription, secret=subscription.secret, previous_secret_expires_at=iso(expires)
    )


def test_rotate_secret_refuses_a_malformed_secret(api):
    subscription = WebhookSubscriptionFactory()
    old = subscription.secret

    response = api.post(
        reverse("webhook-subscription-rotate-secret", args=[subscription.pk]), {"secret": "whsec_%%%"}, format="json"
    )

    assert response.status_code == 400 and "secret" in response.json()["errors"]
    subscription.refresh_from_db()
    assert subscription.secret == old and subscription.previous_secret == ""


def test_read_scope_cannot_write(scoped_api):
    reader = scoped_api("webhooks:read")

    assert reader.get(reverse("webhook-subscription-list")).status_code == 200
    response = reader.post(reverse("webhook-subscription-list"), {"url": "https://hooks.example.com/"}, format="json")
    assert response.status_code == 403 and response.json()["required_scope"] == "webhooks:write"


# --- deliveries ----------------------------------------------------------------------


def delivery_json(delivery):
    return {
        "id": delivery.pk,
        "subscription": delivery.subscription_id,
        "webhook_id": delivery.webhook_id,
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "status": delivery.status,
        "attempt_count": delivery.attempt_count,
        "next_attempt_at": iso(delivery.next_attempt_at),
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "delivered_at": iso(delivery.delivered_at) if delivery.delivered_at else None,
        "created_at": iso(delivery.created_at),
        "updated_at": iso(delivery.updated_at),
    }


def test_list_deliveries_filters_and_query_count(warm_api, no_sending, django_assert_num_queries):
    # given two subscriptions and several events
    first = WebhookSubscriptionFactory(event_types=["customer.created"])
    second = WebhookSubscriptionFactory()
    events_emit(events=[("customer.created", {"customer_id": n}) for n in range(3)] + [("conversation.opened", {})])
    WebhookDelivery.objects.filter(event_type="conversation.opened").update(status="dead", last_status_code=410)

    # when
    with django_assert_num_queries(2):
        everything = warm_api.get(reverse("webhook-delivery-list"))
    with django_assert_num_queries(2):
        filtered = warm_api.get(
            reverse("webhook-delivery-list"), {"subscription": first.pk, "event_type": "customer.created"}
        )
    dead = warm_api.get(reverse("webhook-delivery-list"), {"status": "dead"})

    # then
    assert everything.json()["count"] == 7
    expected = [delivery_json(d) for d in WebhookDelivery.objects.filter(subscription=first).order_by("-created_at", "-id")]
    assert filtered.json()["results"] == expected and len(expected) == 3
    dead_rows = dead.json()["results"]
    assert [(d["subscription"], d["event_type"], d["last_status_code"]) for d in dead_rows] == [
        (second.pk, "conversation.opened", 410)
    ]
    assert warm_api.get(reverse("webhook-delivery-list"), {"status": "nope"}).status_code == 400


def test_delivery_detail_has_payload_and_attempts(warm_api, no_sending, django_assert_num_queries):
    subscription = WebhookSubscriptionFactory()
    events_emit(events=[("customer.created", {"customer_id": 7})])
    delivery = WebhookDelivery.objects.get()
    now = timezone.now()
    WebhookAttempt.objects.create(delivery=delivery, number=1, attempted_at=now, status_code=503, error="HTTP 503")
    WebhookAttempt.objects.create(delivery=delivery, number=2, attempted_at=now, status_code=200, response_excerpt="ok")

    with django_assert_num_queries(2):
        response = warm_api.get(reverse("webhook-delivery-detail", args=[delivery.pk]))

    assert response.status_code == 200
    assert response.json() == {
        **delivery_json(delivery),
        "subscription": subscription.pk,
        "payload": {
            "id": delivery.event_id,
            "type": "customer.created",
            "timestamp": json.loads(delivery.body)["timestamp"],
            "data": {"customer_id": 7},
        },
        "attempts": [
            {"number": 1, "attempted_at": iso(now), "status_code": 503, "response_excerpt": "", "error": "HTTP 503", "duration_ms": 0},
            {"number": 2, "attempted_at": iso(now), "status_code": 200, "response_excerpt": "ok", "error": "", "duration_ms": 0},
        ],
    }
    assert warm_api.get(reverse("webhook-delivery-detail", args=[delivery.pk + 100])).status_code == 404


def test_redeliver_makes_a_dead_delivery_pending_and_queues_it(api, no_sending, django_capture_on_commit_callbacks):
    WebhookSubscriptionFactory()
    events_emit(events=[("customer.created", {"customer_id": 1})])
    delivery = WebhookDelivery.objects.get()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status="dead", cycle_attempts=8, attempt_count=8)
    no_sending.reset_mock()

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(reverse("webhook-delivery-redeliver", args=[delivery.pk]))

    assert response.status_code == 202, response.content
    delivery.refresh_from_db()
    assert response.json() == delivery_json(delivery)
    assert (delivery.status, delivery.cycle_attempts, delivery.attempt_count) == ("pending", 0, 8)
    no_sending.assert_called_once_with(delivery_ids=[delivery.pk])


def test_event_types_lists_the_registry(api):
    response = api.get(reverse("webhook-event-type-list"))

    assert response.status_code == 200
    assert response.json() == {"results": [{"type": t, "description": d} for t, d in EVENT_TYPES.items()]}
