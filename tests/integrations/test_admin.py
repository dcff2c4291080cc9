"""The admin for API tokens, webhook subscriptions and deliveries: pages render, actions go through services."""

import re
from unittest import mock

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from integrations.models import ApiToken, WebhookAttempt, WebhookDelivery, WebhookSubscription
from integrations.selectors import api_token_get_active
from integrations.services import api_token_create, events_emit
from tests.integrations.factories import WebhookSubscriptionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, django_user_model):
    user = django_user_model.objects.create_superuser(username="root", password=None, email="r@example.com")
    client.force_login(user)
    client.user = user
    return client


@pytest.fixture
def no_sending():
    with mock.patch("integrations.services.webhook_deliveries_queue") as queue:
        yield queue


def texts(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


# --- API tokens ----------------------------------------------------------------------


def test_adding_a_token_shows_the_raw_value_once(admin_client):
    # when
    response = admin_client.post(
        reverse("admin:integrations_apitoken_add"),
        {"name": "shop", "scopes": ["interactions:write", "customers:read"], "expires_at_0": "", "expires_at_1": ""},
        follow=True,
    )

    # then
    assert response.status_code == 200
    token = ApiToken.objects.get()
    (message,) = [m for m in texts(response) if "shown this once" in m]
    raw = re.search(r"<code>(crm_[^<]+)</code>", message).group(1)
    assert api_token_get_active(raw=raw) == token
    assert token.scopes == ["customers:read", "interactions:write"] and token.created_by == admin_client.user
    assert raw not in (token.token_hash, token.prefix)
    page = admin_client.get(reverse("admin:integrations_apitoken_change", args=[token.pk])).content.decode()
    assert raw not in page and "customers:read, interactions:write" in page


def test_adding_a_token_needs_a_scope(admin_client):
    response = admin_client.post(reverse("admin:integrations_apitoken_add"), {"name": "shop", "scopes": []})

    assert response.status_code == 200 and not ApiToken.objects.exists()
    assert "scopes" in response.context["adminform"].form.errors


def test_token_list_shows_scopes_and_state(admin_client):
    api_token_create(name="shop", scopes=["interactions:write"])
    revoked, _ = api_token_create(name="old-bridge", scopes=["customers:read"])
    revoked.revoked_at = timezone.now()
    revoked.save()

    page = admin_client.get(reverse("admin:integrations_apitoken_changelist")).content.decode()

    assert "interactions:write" in page and "customers:read" in page
    assert "revoked" in page and "active" in page


def test_revoke_action_revokes_through_the_service(admin_client):
    token, raw = api_token_create(name="shop", scopes=["customers:read"])
    assert api_token_get_active(raw=raw) is not None

    response = admin_client.post(
        reverse("admin:integrations_apitoken_changelist"),
        {"action": "revoke_selected", "_selected_action": [token.pk]},
        follow=True,
    )

    assert response.status_code == 200
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert api_token_get_active(raw=raw) is None
    assert any("Revoked 1 token" in m for m in texts(response))


# --- subscriptions -------------------------------------------------------------------


def test_adding_a_subscription_shows_its_secret_once(admin_client):
    response = admin_client.post(
        reverse("admin:integrations_webhooksubscription_add"),
        {"url": "https://hooks.example.com/crm", "event_types": ["customer.created"], "is_active": "on", "description": ""},
        follow=True,
    )

    assert response.status_code == 200
    subscription = WebhookSubscription.objects.get()
    assert subscription.event_types == ["customer.created"]
    assert any(f"<code>{subscription.secret}</code>" in m for m in texts(response))
    page = admin_client.get(reverse("admin:integrations_webhooksubscription_change", args=[subscription.pk]))
    assert subscription.secret not in page.content.decode()


@pytest.mark.parametrize("url", ["http://127.0.0.1/hook", "http://169.254.169.254/", "http://localhost:8000/"])
def test_admin_refuses_private_subscription_urls(admin_client, url):
    response = admin_client.post(
        reverse("admin:integrations_webhooksubscription_add"), {"url": url, "is_active": "on", "description": ""}
    )

    assert response.status_code == 200
    assert "url" in response.context["adminform"].form.errors
    assert not WebhookSubscription.objects.exists()


def test_editing_a_subscription_goes_through_the_service(admin_client):
    subscription = WebhookSubscriptionFactory(event_types=["customer.created"])

    response = admin_client.post(
        reverse("admin:integrations_webhooksubscription_change", args=[subscription.pk]),
        {"url": "https://other.example.com/x", "event_types": [], "description": "all events"},
    )

    assert response.status_code == 302
    subscription.refresh_from_db()
    assert (subscription.url, subscription.event_types, subscription.is_active) == ("https://other.example.com/x", [], False)
    assert subscription.updated_at > subscription.created_at


def test_rotate_secret_action(admin_client):
    subscription = WebhookSubscriptionFactory()
    old = subscription.secret

    response = admin_client.post(
        reverse("admin:integrations_webhooksubscription_changelist"),
        {"action": "rotate_secret", "_selected_action": [subscription.pk]},
        follow=True,
    )

    subscription.refresh_from_db()
    assert subscription.secret != old and subscription.previous_secret == old
    assert subscription.previous_secret_expires_at > timezone.now()
    assert any(f"<code>{subscription.secret}</code>" in m for m in texts(response))
    page = admin_client.get(reverse("admin:integrations_webhooksubscription_change", args=[subscription.pk]))
    assert "previous secret also signs until" in page.content.decode()


def test_subscription_list_counts_pending_and_dead(admin_client, no_sending, django_assert_max_num_queries):
    subscription = WebhookSubscriptionFactory(url="https://counted.example.com/")
    events_emit(events=[("customer.created", {"customer_id": n}) for n in range(3)])
    WebhookDelivery.objects.filter(pk=WebhookDelivery.objects.order_by("id").first().pk).update(status="dead")
    for _ in range(10):
        WebhookSubscriptionFactory()

    # a page of subscriptions is a fixed number of queries, not one per row
    with django_assert_max_num_queries(8):
        response = admin_client.get(reverse("admin:integrations_webhooksubscription_changelist"))

    row = next(r for r in response.context["cl"].result_list if r.pk == subscription.pk)
    assert (row.pending_count, row.dead_count) == (2, 1)


# --- deliveries ----------------------------------------------------------------------


def test_delivery_page_shows_payload_and_attempts(admin_client, no_sending):
    WebhookSubscriptionFactory()
    events_emit(events=[("customer.created", {"customer_id": 71, "name": "Zoë"})])
    delivery = WebhookDelivery.objects.get()
    WebhookAttempt.objects.create(delivery=delivery, number=1, status_code=503, error="HTTP 503")
    WebhookAttempt.objects.create(delivery=delivery, number=2, status_code=200, response_excerpt="thanks")

    page = admin_client.get(reverse("admin:integrations_webhookdelivery_change", args=[delivery.pk])).content.decode()

    assert delivery.webhook_id in page and "Zoë" in page and "&quot;customer_id&quot;: 71" in page
    assert "HTTP 503" in page and "thanks" in page
    listing = admin_client.get(reverse("admin:integrations_webhookdelivery_changelist"), {"status__exact": "pending"})
    assert delivery.webhook_id in listing.content.decode()


def test_delivery_list_is_a_fixed_number_of_queries(admin_client, no_sending, django_assert_num_queries):
    for _ in range(3):
        WebhookSubscriptionFactory()
    events_emit(events=[("customer.created", {"customer_id": 1})])
    url = reverse("admin:integrations_webhookdelivery_changelist")
    admin_client.get(url)

    with django_assert_num_queries(8) as few:
        admin_client.get(url)
    events_emit(events=[("customer.created", {"customer_id": n}) for n in range(10)])
    with django_assert_num_queries(len(few.captured_queries)):
        response = admin_client.get(url)

    assert response.context["cl"].result_count == 33


def test_redeliver_action_makes_deliveries_pending_and_queues_them(admin_client, no_sending, django_capture_on_commit_callbacks):
    WebhookSubscriptionFactory()
    events_emit(events=[("customer.created", {"customer_id": 1})])
    delivery = WebhookDelivery.objects.get()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status="dead", cycle_attempts=8, attempt_count=8)
    no_sending.reset_mock()

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:integrations_webhookdelivery_changelist"),
            {"action": "redeliver", "_selected_action": [delivery.pk]},
            follow=True,
        )

    delivery.refresh_from_db()
    assert (delivery.status, delivery.cycle_attempts) == ("pending", 0)
    no_sending.assert_called_once_with(delivery_ids=[delivery.pk])
    assert any("Queued 1" in m for m in texts(response))


def test_admin_index_lists_the_models(admin_client):
    page = admin_client.get(reverse("admin:app_list", args=["integrations"])).content.decode()

    for name in ("API tokens", "Webhook subscriptions", "Webhook deliveries"):
        assert name in page


def test_redeliver_button_on_the_delivery_page(admin_client, no_sending, django_capture_on_commit_callbacks):
    WebhookSubscriptionFactory()
    events_emit(events=[("customer.created", {"customer_id": 1})])
    delivery = WebhookDelivery.objects.get()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status="dead", cycle_attempts=8)
    no_sending.reset_mock()
    url = reverse("admin:integrations_webhookdelivery_redeliver", args=[delivery.pk])
    page = admin_client.get(reverse("admin:integrations_webhookdelivery_change", args=[delivery.pk])).content.decode()
    assert f'action="{url}"' in page
    assert admin_client.get(url).status_code == 405

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url)

    assert response.status_code == 302
    assert response["Location"] == reverse("admin:integrations_webhookdelivery_change", args=[delivery.pk])
    delivery.refresh_from_db()
    assert (delivery.status, delivery.cycle_attempts) == ("pending", 0)
    no_sending.assert_called_once_with(delivery_ids=[delivery.pk])


def test_redeliver_button_needs_a_staff_user_with_permission(client, django_user_model, no_sending):
    WebhookSubscriptionFactory()
    events_emit(events=[("customer.created", {"customer_id": 1})])
    delivery = WebhookDelivery.objects.get()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status="dead")
    client.force_login(django_user_model.objects.create_user(username="viewer", password=None, is_staff=True))

    response = client.post(reverse("admin:integrations_webhookdelivery_redeliver", args=[delivery.pk]))

    assert response.status_code == 403
    delivery.refresh_from_db()
    assert delivery.status == "dead"
