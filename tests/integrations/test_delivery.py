import base64
import hashlib
import hmac
import ipaddress
import json
import socket
from datetime import timedelta
from unittest import mock

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from integrations.models import WebhookAttempt, WebhookDelivery
from integrations.services import (
    event_emit,
    retry_delay_seconds,
    webhook_delivery_attempt,
    webhook_delivery_redeliver,
    webhook_subscription_create,
    webhook_subscription_rotate_secret,
)
from integrations.transport import address_refusal
from tests.integrations.factories import WebhookSubscriptionFactory

pytestmark = pytest.mark.django_db


def standard_webhooks_verify(secret, headers, body):
    """An independent Standard Webhooks verifier, written from the specification.

    Returns the list of entries in `webhook-signature` that this secret signed.
    """
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed_content = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.{body.decode()}"
    expected = base64.b64encode(hmac.new(key, signed_content.encode(), hashlib.sha256).digest()).decode()
    matches = []
    for versioned in headers["webhook-signature"].split(" "):
        version, signature = versioned.split(",", 1)
        if version == "v1" and hmac.compare_digest(signature, expected):
            matches.append(versioned)
    return matches


@pytest.fixture
def queued():
    """Deliveries are recorded and queued nowhere: each test makes the attempts itself."""
    with mock.patch("integrations.services.webhook_deliveries_queue") as queue:
        yield queue


def delivery_for(subscription, event_type="customer.created", payload=None):
    event_emit(event_type=event_type, payload=payload or {"customer": {"id": 1}})
    return WebhookDelivery.objects.get(subscription=subscription, event_type=event_type)


def test_delivery_is_signed_per_standard_webhooks_and_recorded(receiver, private_targets, queued):
    # given
    subscription = WebhookSubscriptionFactory(url=receiver.url)
    delivery = delivery_for(subscription, payload={"customer": {"id": 5, "name": "Мария"}})

    # when
    assert webhook_delivery_attempt(delivery_id=delivery.pk) is None

    # then
    (request,) = receiver.requests
    headers = {name.lower(): value for name, value in request["headers"].items()}
    assert request["path"] == "/hooks/crm?source=test"
    assert headers["content-type"] == "application/json"
    assert headers["webhook-id"] == delivery.webhook_id
    assert abs(int(headers["webhook-timestamp"]) - timezone.now().timestamp()) < 60
    assert request["body"] == delivery.body.encode()
    assert standard_webhooks_verify(subscription.secret, headers, request["body"]) == [headers["webhook-signature"]]
    assert json.loads(request["body"])["data"] == {"customer": {"id": 5, "name": "Мария"}}
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.DELIVERED
    assert delivery.delivered_at is not None
    (attempt,) = delivery.attempts.all()
    assert (attempt.number, attempt.status_code, attempt.error) == (1, 200, "")
    assert attempt.response_excerpt == "ok"


def test_signature_fails_with_one_byte_changed(receiver, private_targets, queued):
    subscription = WebhookSubscriptionFactory(url=receiver.url)
    delivery = delivery_for(subscription)
    webhook_delivery_attempt(delivery_id=delivery.pk)
    (request,) = receiver.requests
    headers = {name.lower(): value for name, value in request["headers"].items()}

    tampered = request["body"].replace(b"customer", b"custimer", 1)

    assert standard_webhooks_verify(subscription.secret, headers, tampered) == []


def test_delivered_delivery_is_not_sent_again(receiver, private_targets, queued):
    delivery = delivery_for(WebhookSubscriptionFactory(url=receiver.url))
    webhook_delivery_attempt(delivery_id=delivery.pk)

    assert webhook_delivery_attempt(delivery_id=delivery.pk) is None

    assert receiver.count() == 1
    assert WebhookAttempt.objects.count() == 1


def test_client_error_is_not_retried(receiver, private_targets, queued):
    receiver.respond((400, {}, '{"error": "bad"}'))
    delivery = delivery_for(WebhookSubscriptionFactory(url=receiver.url))

    assert webhook_delivery_attempt(delivery_id=delivery.pk) is None
    assert webhook_delivery_attempt(delivery_id=delivery.pk) is None

    delivery.refresh_from_db()
    assert receiver.count() == 1
    assert delivery.status == WebhookDelivery.Status.DEAD
    assert delivery.last_error == "HTTP 400; not retried"
    assert delivery.attempts.get().response_excerpt == '{"error": "bad"}'


def test_too_many_requests_is_retried_after_retry_after(receiver, private_targets, queued):
    # given
    receiver.respond((429, {"Retry-After": "7"}))
    delivery = delivery_for(WebhookSubscriptionFactory(url=receiver.url))

    # when
    delay = webhook_delivery_attempt(delivery_id=delivery.pk)

    # then
    assert delay == 7
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.PENDING
    assert timedelta(seconds=5) < delivery.next_attempt_at - timezone.now() <= timedelta(seconds=7)
    # not due yet: an early task does nothing but report the wait
    assert 5 < webhook_delivery_attempt(delivery_id=delivery.pk) <= 7
    assert receiver.count() == 1

    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    assert webhook_delivery_attempt(delivery_id=delivery.pk) is None
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.DELIVERED
    assert [r["headers"]["webhook-id"] for r in receiver.requests] == [delivery.webhook_id] * 2
    assert list(delivery.attempts.values_list("number", "status_code")) == [(1, 429), (2, 200)]


def test_server_errors_retry_until_the_cap_then_dead(receiver, private_targets, queued, settings):
    # given
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    settings.WEBHOOK_RETRY_BASE_SECONDS = 0
    receiver.respond((500,), (503,), (502,), (200,))
    delivery = delivery_for(WebhookSubscriptionFactory(url=receiver.url))

    # when
    delays = [webhook_delivery_attempt(delivery_id=delivery.pk) for _ in range(4)]

    # then
    assert delays == [0, 0, None, None]
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.DEAD
    assert delivery.last_error == "HTTP 502; gave up after 3 attempts"
    assert receiver.count() == 3
    assert list(delivery.attempts.values_list("status_code", flat=True)) == [500, 503, 502]


def test_network_error_is_retried_and_recorded(private_targets, queued):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # nothing listens on that port any more
    delivery = delivery_for(WebhookSubscriptionFactory(url=f"http://127.0.0.1:{port}/"))

    delay = webhook_delivery_attempt(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    assert delay == 60
    assert delivery.status == WebhookDelivery.Status.PENDING
    attempt = delivery.attempts.get()
    assert attempt.status_code is None
    assert "Connection" in attempt.error or "refused" in attempt.error.lower()


def test_private_targets_are_refused_by_default(receiver, queued, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    delivery = delivery_for(WebhookSubscriptionFactory(url=receiver.url.replace("127.0.0.1", "localhost")))

    assert webhook_delivery_attempt(delivery_id=delivery.pk) is None

    delivery.refresh_from_db()
    assert receiver.count() == 0
    assert delivery.status == WebhookDelivery.Status.DEAD
    assert delivery.last_error.startswith("refused: localhost resolves to ")
    assert "loopback" in delivery.last_error


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
     "224.0.0.1", "240.0.0.1", "::1", "fe80::1", "fc00::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
     "2002:7f00:1::", "2002:a9fe:a9fe::", "64:ff9b::7f00:1", "::127.0.0.1"],
)
def test_non_public_addresses_are_refused(address):
    assert address_refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address):
    assert address_refusal(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/x", "file:///etc/passwd", "http://127.0.0.1/x", "http://[::1]:8080/", "http://10.0.0.2/",
     "https://user:pw@example.com/", "not a url"],
)
def test_subscription_urls_must_be_public_http(url, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    with pytest.raises(ValidationError):
        webhook_subscription_create(url=url)


def test_subscription_gets_a_standard_webhooks_secret():
    subscription = webhook_subscription_create(url="https://hooks.example.com/crm", event_types=["*"])

    assert subscription.secret.startswith("whsec_")
    assert len(base64.b64decode(subscription.secret.removeprefix("whsec_"))) == 32
    assert subscription.event_types == []


def test_rotation_signs_with_new_and_old_secret_until_expiry(receiver, private_targets, queued):
    # given
    subscription = WebhookSubscriptionFactory(url=receiver.url)
    old_secret = subscription.secret
    webhook_subscription_rotate_secret(subscription=subscription)
    subscription.refresh_from_db()
    delivery = delivery_for(subscription)

    # when
    webhook_delivery_attempt(delivery_id=delivery.pk)

    # then
    headers = {k.lower(): v for k, v in receiver.requests[0]["headers"].items()}
    new_entry, old_entry = headers["webhook-signature"].split(" ")
    assert standard_webhooks_verify(subscription.secret, headers, receiver.requests[0]["body"]) == [new_entry]
    assert standard_webhooks_verify(old_secret, headers, receiver.requests[0]["body"]) == [old_entry]
    assert subscription.previous_secret_expires_at - timezone.now() > timedelta(hours=23)

    # and once the old secret expires, only the new one signs
    subscription.previous_secret_expires_at = timezone.now() - timedelta(seconds=1)
    subscription.save()
    webhook_delivery_redeliver(delivery=delivery)
    webhook_delivery_attempt(delivery_id=delivery.pk)
    headers = {k.lower(): v for k, v in receiver.requests[1]["headers"].items()}
    assert len(headers["webhook-signature"].split(" ")) == 1
    assert standard_webhooks_verify(old_secret, headers, receiver.requests[1]["body"]) == []


def test_redeliver_sends_again_with_the_same_webhook_id(receiver, private_targets, queued, settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 1
    receiver.respond((500,))
    delivery = delivery_for(WebhookSubscriptionFactory(url=receiver.url))
    webhook_delivery_attempt(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.DEAD

    webhook_delivery_redeliver(delivery=delivery)
    webhook_delivery_attempt(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.DELIVERED
    assert [r["headers"]["webhook-id"] for r in receiver.requests] == [delivery.webhook_id] * 2
    assert [r["body"] for r in receiver.requests] == [delivery.body.encode()] * 2
    assert list(delivery.attempts.values_list("number", flat=True)) == [1, 2]


def test_a_delivery_held_by_another_sender_is_left_alone(receiver, private_targets, queued):
    delivery = delivery_for(WebhookSubscriptionFactory(url=receiver.url))
    WebhookDelivery.objects.filter(pk=delivery.pk).update(locked_until=timezone.now() + timedelta(minutes=1))

    assert webhook_delivery_attempt(delivery_id=delivery.pk) is None

    assert receiver.count() == 0


def test_backoff_doubles_and_is_capped(settings):
    settings.WEBHOOK_RETRY_BASE_SECONDS = 60
    settings.WEBHOOK_RETRY_MAX_SECONDS = 3600

    delays = [retry_delay_seconds(cycle_attempts=n, retry_after=None) for n in range(1, 9)]

    assert delays == [60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert retry_delay_seconds(cycle_attempts=1, retry_after="86400") == 3600
    assert retry_delay_seconds(cycle_attempts=1, retry_after="soon") == 60


@pytest.mark.parametrize("status", [401, 403, 404, 408, 410, 413, 422])
def test_other_client_errors_are_dead_at_once(receiver, private_targets, queued, status):
    receiver.respond((status,))
    delivery = delivery_for(WebhookSubscriptionFactory(url=receiver.url))

    assert webhook_delivery_attempt(delivery_id=delivery.pk) is None

    delivery.refresh_from_db()
    assert (delivery.status, delivery.last_status_code) == (WebhookDelivery.Status.DEAD, status)
    assert delivery.last_error == f"HTTP {status}; not retried"


def test_retry_after_beyond_the_cap_is_capped(receiver, private_targets, queued, settings):
    settings.WEBHOOK_RETRY_MAX_SECONDS = 30
    receiver.respond((503, {"Retry-After": "86400"}))
    delivery = delivery_for(WebhookSubscriptionFactory(url=receiver.url))

    assert webhook_delivery_attempt(delivery_id=delivery.pk) == 30

    delivery.refresh_from_db()
    assert timedelta(seconds=28) < delivery.next_attempt_at - timezone.now() <= timedelta(seconds=30)


def test_retry_after_as_an_http_date_is_honoured(receiver, private_targets, queued):
    from email.utils import format_datetime

    when = timezone.now() + timedelta(seconds=120)
    receiver.respond((429, {"Retry-After": format_datetime(when, usegmt=True)}))
    delivery = delivery_for(WebhookSubscriptionFactory(url=receiver.url))

    delay = webhook_delivery_attempt(delivery_id=delivery.pk)

    assert 115 < delay <= 120


def test_redirects_are_not_followed(receiver, private_targets, queued):
    receiver.respond((302, {"Location": "http://169.254.169.254/latest/meta-data/"}))
    delivery = delivery_for(WebhookSubscriptionFactory(url=receiver.url))

    assert webhook_delivery_attempt(delivery_id=delivery.pk) is None

    delivery.refresh_from_db()
    assert receiver.count() == 1
    assert (delivery.status, delivery.last_status_code) == (WebhookDelivery.Status.DEAD, 302)


def test_a_name_resolving_to_a_private_address_is_refused_at_send_time(receiver, queued, settings):
    # given a subscription made when its name pointed somewhere public (DNS rebinding)
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    subscription = webhook_subscription_create(url="https://hooks.example.com/crm")
    delivery = delivery_for(subscription)

    # when the name now resolves to the metadata address
    with mock.patch(
        "integrations.transport.socket.getaddrinfo",
        return_value=[(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", 443))],
    ):
        assert webhook_delivery_attempt(delivery_id=delivery.pk) is None

    # then nothing was sent and the delivery is dead with the reason
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.DEAD
    assert "link-local" in delivery.last_error and receiver.count() == 0


def test_a_paused_subscription_holds_its_deliveries_until_resumed(
    receiver, private_targets, queued, django_capture_on_commit_callbacks
):
    # given a pending delivery whose subscription is then paused
    from integrations.services import webhook_deliveries_requeue_due, webhook_subscription_update

    subscription = WebhookSubscriptionFactory(url=receiver.url)
    delivery = delivery_for(subscription)
    webhook_subscription_update(subscription=subscription, is_active=False)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - timedelta(hours=1))

    # when a sender or the sweeper comes by, nothing is sent and nothing new is recorded
    assert webhook_delivery_attempt(delivery_id=delivery.pk) is None
    queued.reset_mock()
    assert webhook_deliveries_requeue_due() == 0
    event_emit(event_type="customer.created", payload={"customer": {"id": 2}})
    assert receiver.count() == 0 and WebhookDelivery.objects.count() == 1
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.PENDING and delivery.attempt_count == 0

    # then resuming it queues the held delivery, which is sent
    with django_capture_on_commit_callbacks(execute=True):
        webhook_subscription_update(subscription=subscription, is_active=True)
    queued.assert_called_once_with(delivery_ids=[delivery.pk])
    webhook_delivery_attempt(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.DELIVERED and receiver.count() == 1
