"""Idempotency-Key on every POST of the REST API: replay, mismatch, in flight, per caller, TTL."""

import hashlib
import threading
from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from crm.idempotency import key_claim
from integrations.models import IdempotencyKey
from integrations.tasks import idempotency_keys_purge
from interactions.models import Interaction

pytestmark = pytest.mark.django_db


def item(**overrides):
    """No external_id: without the key, every POST of it stores a new interaction."""
    return {
        "source": "shop",
        "channel": "email",
        "kind": "message",
        "direction": "inbound",
        "author_type": "customer",
        "occurred_at": "2026-03-01T10:00:00Z",
        "identities": [{"kind": "email", "value": "lisa@example.com"}],
        "body": "Where is my parcel?",
        **overrides,
    }


def post(client, url, body, key):
    return client.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_without_a_key_each_post_stores_again(api):
    api.post(reverse("interaction-create"), item(), format="json")
    api.post(reverse("interaction-create"), item(), format="json")

    assert Interaction.objects.count() == 2


def test_same_key_same_body_replays_the_first_response(api):
    # given
    first = post(api, reverse("interaction-create"), item(), "order-17")
    assert first.status_code == 201, first.content

    # when
    again = post(api, reverse("interaction-create"), item(), "order-17")

    # then
    assert again.status_code == 201
    assert again.content == first.content
    assert again["Content-Type"] == first["Content-Type"] == "application/json"
    assert again["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert Interaction.objects.count() == 1


def test_same_key_different_body_is_422_and_stores_nothing(api):
    post(api, reverse("interaction-create"), item(), "order-17")

    response = post(api, reverse("interaction-create"), item(body="Something else"), "order-17")

    assert response.status_code == 422
    assert response.json() == {
        "code": "idempotency_key_reused",
        "detail": "This Idempotency-Key was used with a different request body.",
    }
    assert Interaction.objects.count() == 1


def test_a_key_in_flight_answers_409(api, make_token):
    # given the first request with the key is still running (its row holds the key)
    from integrations.selectors import api_token_get_active

    raw = make_token("interactions:write", name="caller")
    owner = f"token:{api_token_get_active(raw=raw).pk}"
    body = b'{"a":1}'
    path = reverse("interaction-create")
    fingerprint = hashlib.sha256(f"{owner}\nPOST\n{path}\nk-1".encode()).hexdigest()
    row, existing = key_claim(
        fingerprint=fingerprint, owner=owner, key="k-1", method="POST", path=path,
        request_hash=hashlib.sha256(b"\n" + body).hexdigest(),
    )
    assert row is not None and existing is None
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")

    # when
    response = client.post(path, body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k-1")

    # then
    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_key_in_flight"
    assert not Interaction.objects.exists()


def test_a_stale_in_flight_key_is_taken_over(api, settings):
    # given a request that died holding the key longer ago than the in-flight limit
    settings.IDEMPOTENCY_IN_FLIGHT_SECONDS = 60
    post(api, reverse("interaction-create"), item(), "k-stale")
    IdempotencyKey.objects.update(
        status=IdempotencyKey.Status.IN_FLIGHT, response_body=None, created_at=timezone.now() - timedelta(minutes=2)
    )
    Interaction.objects.all().delete()

    # when
    response = post(api, reverse("interaction-create"), item(), "k-stale")

    # then it runs again
    assert response.status_code == 201 and "Idempotent-Replayed" not in response
    assert Interaction.objects.count() == 1
    assert IdempotencyKey.objects.get().status == IdempotencyKey.Status.COMPLETED


def test_keys_are_scoped_per_token(make_token):
    first, second = APIClient(), APIClient()
    first.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token('interactions:write', name='a')}")
    second.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token('interactions:write', name='b')}")

    one = post(first, reverse("interaction-create"), item(), "shared-key")
    two = post(second, reverse("interaction-create"), item(), "shared-key")

    assert one.status_code == two.status_code == 201
    assert "Idempotent-Replayed" not in two
    assert one.json()["id"] != two.json()["id"]
    assert Interaction.objects.count() == 2
    # and a different body under the other token's key is not a mismatch here
    assert post(second, reverse("interaction-create"), item(), "shared-key")["Idempotent-Replayed"] == "true"


def test_keys_are_scoped_per_session_user(client, staff_user, django_user_model):
    other = django_user_model.objects.create_user(username="other", password="pw-other-123", is_staff=True)
    client.force_login(staff_user)
    first = client.post(reverse("interaction-create"), item(), content_type="application/json", HTTP_IDEMPOTENCY_KEY="k")
    client.force_login(other)
    second = client.post(reverse("interaction-create"), item(), content_type="application/json", HTTP_IDEMPOTENCY_KEY="k")

    assert first.status_code == second.status_code == 201
    assert "Idempotent-Replayed" not in second
    assert sorted(IdempotencyKey.objects.values_list("owner", flat=True)) == [f"user:{staff_user.pk}", f"user:{other.pk}"]


def test_bulk_replays_and_the_same_key_on_another_endpoint_is_separate(api):
    bulk = {"items": [item(), item(body="second")]}

    first = post(api, reverse("interaction-bulk"), bulk, "batch-1")
    again = post(api, reverse("interaction-bulk"), bulk, "batch-1")
    single = post(api, reverse("interaction-create"), item(), "batch-1")
    mismatch = post(api, reverse("interaction-bulk"), {"items": [item()]}, "batch-1")

    assert first.status_code == again.status_code
    assert again.content == first.content and again["Idempotent-Replayed"] == "true"
    assert single.status_code == 201 and "Idempotent-Replayed" not in single
    assert mismatch.status_code == 422
    assert Interaction.objects.count() == 3


def test_same_key_with_another_query_string_is_422(api):
    post(api, reverse("interaction-create"), item(), "q-1")

    response = api.post(reverse("interaction-create") + "?dry_run=1", item(), format="json", HTTP_IDEMPOTENCY_KEY="q-1")

    assert response.status_code == 422 and response.json()["code"] == "idempotency_key_reused"


def test_client_errors_are_replayed_too(api):
    first = post(api, reverse("interaction-create"), {"channel": "pigeon"}, "bad-1")
    again = post(api, reverse("interaction-create"), {"channel": "pigeon"}, "bad-1")

    assert first.status_code == again.status_code == 400
    assert again.content == first.content and again["Idempotent-Replayed"] == "true"


def test_auth_failures_and_server_errors_leave_the_key_free(api, make_token):
    # 403: the token lacks the scope, so nothing was done and nothing is stored
    reader = APIClient()
    reader.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token('customers:read', name='reader')}")
    assert post(reader, reverse("interaction-create"), item(), "k").status_code == 403
    # 500: the view failed; a retry with the key must run again
    with mock.patch("interactions.api.views.interactions_ingest", side_effect=RuntimeError("boom")):
        api.raise_request_exception = False
        assert post(api, reverse("interaction-create"), item(), "k").status_code == 500
    assert not IdempotencyKey.objects.exists()

    assert post(api, reverse("interaction-create"), item(), "k").status_code == 201
    assert IdempotencyKey.objects.get().status == IdempotencyKey.Status.COMPLETED


def test_unauthenticated_requests_get_401_and_store_nothing():
    response = APIClient().post(reverse("interaction-create"), item(), format="json", HTTP_IDEMPOTENCY_KEY="k")

    assert response.status_code == 401
    assert not IdempotencyKey.objects.exists()


@pytest.mark.parametrize("key", ["", "   ", "x" * 256, "caf\u00e9", "tab\tkey"])
def test_malformed_keys_are_400(api, key):
    response = post(api, reverse("interaction-create"), item(), key)

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_idempotency_key" and "Idempotency-Key" in body["errors"]
    assert not Interaction.objects.exists()


def test_a_key_of_255_characters_is_accepted(api):
    assert post(api, reverse("interaction-create"), item(), "k" * 255).status_code == 201


def test_every_api_post_route_honours_the_key(api):
    """The middleware covers POSTs across apps, e.g. the webhooks API as well as interactions."""
    body = {"url": "https://hooks.example.com/crm"}

    first = post(api, reverse("webhook-subscription-list"), body, "sub-1")
    again = post(api, reverse("webhook-subscription-list"), body, "sub-1")

    assert first.status_code == 201 and again.content == first.content
    from integrations.models import WebhookSubscription

    assert WebhookSubscription.objects.count() == 1


def test_get_requests_and_non_api_posts_ignore_the_key(api, client, staff_user):
    assert api.get(reverse("webhook-event-type-list"), HTTP_IDEMPOTENCY_KEY="").status_code == 200
    client.force_login(staff_user)
    # the admin is not the REST API: an (even malformed) key changes nothing there
    response = client.post(reverse("admin:logout"), HTTP_IDEMPOTENCY_KEY="")
    assert response.status_code == 200
    assert not IdempotencyKey.objects.exists()


def test_keys_expire_after_the_ttl_and_the_beat_task_purges_them(api, settings):
    # given
    settings.IDEMPOTENCY_KEY_TTL_HOURS = 1
    post(api, reverse("interaction-create"), item(), "old")
    post(api, reverse("interaction-create"), item(body="b"), "fresh")
    stored = IdempotencyKey.objects.get(key="old")
    assert timedelta(minutes=59) < stored.expires_at - stored.created_at <= timedelta(hours=1)
    IdempotencyKey.objects.filter(key="old").update(expires_at=timezone.now() - timedelta(seconds=1))

    # when an expired key is used again, it runs again
    again = post(api, reverse("interaction-create"), item(), "old")
    assert again.status_code == 201 and "Idempotent-Replayed" not in again
    IdempotencyKey.objects.filter(key="old").update(expires_at=timezone.now() - timedelta(seconds=1))

    # then the beat task deletes the expired row only
    assert idempotency_keys_purge() == 1
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["fresh"]
    assert settings.CELERY_BEAT_SCHEDULE["integrations.idempotency_keys_purge"]["task"] == idempotency_keys_purge.name


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_key_run_once(make_token):
    """Two requests with one key at once: one runs, the other gets 409 while it is in flight."""
    # given a view that holds the first request until released
    raw = make_token("interactions:write")
    entered, release = threading.Event(), threading.Event()
    from interactions.api import views

    real_ingest = views.interactions_ingest

    def slow_ingest(**kwargs):
        entered.set()
        release.wait(10)
        return real_ingest(**kwargs)

    results = {}

    def first_request():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        try:
            results["first"] = post(client, reverse("interaction-create"), item(), "race")
        finally:
            connection.close()

    with mock.patch.object(views, "interactions_ingest", slow_ingest):
        thread = threading.Thread(target=first_request)
        thread.start()
        try:
            assert entered.wait(10)
            # when the same key arrives while the first is running
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
            second = post(client, reverse("interaction-create"), item(), "race")
        finally:
            release.set()
            thread.join(20)

    # then
    assert second.status_code == 409 and second.json()["code"] == "idempotency_key_in_flight"
    assert results["first"].status_code == 201
    third = post(client, reverse("interaction-create"), item(), "race")
    assert third.status_code == 201 and third.content == results["first"].content
    assert Interaction.objects.count() == 1


@override_settings(IDEMPOTENCY_KEY_TTL_HOURS=24)
def test_replay_answers_without_running_the_view(api):
    post(api, reverse("interaction-create"), item(), "k-view")

    with mock.patch("interactions.api.views.interactions_ingest", side_effect=AssertionError("ran")):
        again = post(api, reverse("interaction-create"), item(), "k-view")

    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"


def test_a_body_over_the_limit_is_413_and_stores_nothing(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 200

    response = post(api, reverse("interaction-create"), item(body="x" * 500), "big")

    assert response.status_code == 413 and response.json()["code"] == "body_too_large"
    assert not IdempotencyKey.objects.exists() and not Interaction.objects.exists()
