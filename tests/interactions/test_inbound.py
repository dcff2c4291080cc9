"""The inbound event store: stored raw before the 2xx, processed through ingestion, replayable, purged."""

import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from interactions import inbound
from interactions.inbound import inbound_event_process, inbound_event_replay, inbound_events_purge
from interactions.models import InboundEvent, Interaction
from tests.interactions.fixtures.webhooks import (  # noqa: F401 - pytest fixtures
    channel_secrets,
    chat_headers,
    chat_post,
    in_process_tasks,
    post_webhook,
)

pytestmark = pytest.mark.django_db


def chat_message(**overrides):
    payload = {
        "id": "msg_1",
        "visitor": {"id": "v_42", "email": "Lisa@Example.com", "name": "Lisa"},
        "message": "Hello, my order has not arrived",
        "timestamp": "2025-03-01T10:15:00Z",
    }
    payload.update(overrides)
    return payload


def test_accepted_event_is_stored_raw_and_processed_into_one_interaction(post_webhook):
    # given
    payload = chat_message()

    # when
    response = chat_post(post_webhook, payload)

    # then
    assert response.status_code == 200
    event = InboundEvent.objects.get()
    assert response.json() == {"status": "accepted", "event_id": event.pk}
    assert bytes(event.body) == json.dumps(payload).encode()
    assert event.headers["webhook-id"] == "msg_test"
    assert (event.status, event.error, event.attempts) == ("processed", "", 1)
    assert event.result["created"] == 1
    row = Interaction.objects.get()
    assert event.result["interactions"] == [row.pk]
    assert (row.source, row.external_id, row.channel, row.direction, row.author_type) == (
        "chat", "msg_1", "chat", "inbound", "customer"
    )
    assert row.body == "Hello, my order has not arrived"
    assert sorted(row.customer.identities.values_list("kind", "value")) == [
        ("chat", "v_42"), ("email", "lisa@example.com")
    ]


def test_provider_retry_answers_200_and_creates_nothing_new(post_webhook):
    payload = chat_message()
    chat_post(post_webhook, payload)

    response = chat_post(post_webhook, payload)

    assert response.status_code == 200
    assert response.json()["status"] == "duplicate"
    assert InboundEvent.objects.count() == 1
    assert Interaction.objects.count() == 1


def test_same_message_in_a_different_body_is_one_interaction(post_webhook):
    chat_post(post_webhook, chat_message())

    chat_post(post_webhook, chat_message(message="Hello, my order has not arrived "))

    assert InboundEvent.objects.count() == 2
    assert Interaction.objects.count() == 1
    assert InboundEvent.objects.order_by("id").last().result["duplicate"] == 1


@pytest.mark.parametrize("headers", ["missing", "wrong"])
def test_bad_signature_stores_nothing(client, channel_secrets, headers):
    body = json.dumps(chat_message()).encode()
    signed = chat_headers(body)
    if headers == "missing":
        signed = {}
    else:
        signed["HTTP_WEBHOOK_SIGNATURE"] = signed["HTTP_WEBHOOK_SIGNATURE"][:-4] + "AAA="

    response = client.post(reverse("webhook-chat"), body, content_type="application/json", **signed)

    assert response.status_code == (401 if headers == "missing" else 403)
    assert response.json()["code"] == ("signature_missing" if headers == "missing" else "signature_invalid")
    assert not InboundEvent.objects.exists()
    assert not Interaction.objects.exists()


def test_unconfigured_provider_answers_503_and_stores_nothing(client, settings):
    settings.CHAT_WIDGET_SECRET = ""
    body = json.dumps(chat_message()).encode()

    response = client.post(reverse("webhook-chat"), body, content_type="application/json", **chat_headers(body))

    assert response.status_code == 503
    assert not InboundEvent.objects.exists()


def test_body_over_the_limit_is_413_and_stores_nothing(client, channel_secrets, settings):
    settings.MAX_BODY_BYTES = 1000
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = json.dumps(chat_message(message="x" * 2000)).encode()

    response = client.post(reverse("webhook-chat"), body, content_type="application/json", **chat_headers(body))

    assert response.status_code == 413
    assert not InboundEvent.objects.exists()


def test_unparseable_payload_is_stored_failed_then_replayed_after_a_fix(post_webhook, monkeypatch, django_capture_on_commit_callbacks):
    # given: a payload the adapter cannot handle (here: the adapter has a bug)
    def broken(*, body, received_at):
        raise KeyError("visitor")

    monkeypatch.setattr(inbound.chat, "parse", broken)
    response = chat_post(post_webhook, chat_message())

    # then: 200 to the provider, failed with the reason, nothing ingested
    assert response.status_code == 200
    event = InboundEvent.objects.get()
    assert event.status == "failed"
    assert "KeyError" in event.error
    assert not Interaction.objects.exists()

    # when: the adapter is fixed and the event replayed
    monkeypatch.undo()
    with django_capture_on_commit_callbacks(execute=True):
        inbound_event_replay(event_id=event.pk)

    # then
    event.refresh_from_db()
    assert (event.status, event.error) == ("processed", "")
    assert Interaction.objects.count() == 1


def test_invalid_json_fails_with_reason_and_answers_200(post_webhook):
    body = b'{"id": "msg_1", "visitor": '
    response = post_webhook(reverse("webhook-chat"), body, "application/json", **chat_headers(body))

    assert response.status_code == 200
    event = InboundEvent.objects.get()
    assert event.status == "failed"
    assert event.error.startswith("The body is not JSON")


def test_replaying_a_processed_event_does_not_double(post_webhook, django_capture_on_commit_callbacks):
    chat_post(post_webhook, chat_message())
    event = InboundEvent.objects.get()

    with django_capture_on_commit_callbacks(execute=True):
        inbound_event_replay(event_id=event.pk)

    event.refresh_from_db()
    assert event.status == "processed"
    assert event.result["duplicate"] == 1
    assert event.attempts == 2
    assert Interaction.objects.count() == 1


def test_processing_an_event_twice_is_a_no_op(post_webhook):
    chat_post(post_webhook, chat_message())
    event = InboundEvent.objects.get()

    inbound_event_process(event_id=event.pk)

    event.refresh_from_db()
    assert event.attempts == 1
    assert Interaction.objects.count() == 1


def test_transient_failure_retries_then_succeeds(post_webhook, monkeypatch):
    # given: ingestion fails twice with a database error, then works
    real = inbound.interactions_ingest
    calls = []

    def flaky(*, items):
        calls.append(1)
        if len(calls) <= 2:
            from django.db import OperationalError

            raise OperationalError("could not serialize access")
        return real(items=items)

    monkeypatch.setattr(inbound, "interactions_ingest", flaky)

    # when
    response = chat_post(post_webhook, chat_message())

    # then
    assert response.status_code == 200
    event = InboundEvent.objects.get()
    assert (event.status, event.attempts) == ("processed", 3)
    assert Interaction.objects.count() == 1


def test_retries_that_run_out_leave_the_event_failed_and_replayable(post_webhook, monkeypatch, settings):
    settings.INBOUND_PROCESS_MAX_RETRIES = 2

    def down(*, items):
        from django.db import OperationalError

        raise OperationalError("the database is down")

    monkeypatch.setattr(inbound, "interactions_ingest", down)

    chat_post(post_webhook, chat_message())

    event = InboundEvent.objects.get()
    assert event.status == "failed"
    assert event.attempts == 3
    assert event.error.startswith("Gave up after 3 attempts: OperationalError: the database is down")


def test_purge_drops_old_processed_bodies_and_keeps_failed_ones(post_webhook, settings):
    settings.INBOUND_RETENTION_DAYS = 30
    chat_post(post_webhook, chat_message())
    body = b"not json"
    post_webhook(reverse("webhook-chat"), body, "application/json", **chat_headers(body))
    processed, failed = InboundEvent.objects.order_by("id")
    InboundEvent.objects.update(received_at=timezone.now() - timedelta(days=31))

    assert inbound_events_purge() == 1

    processed.refresh_from_db()
    failed.refresh_from_db()
    assert processed.body is None and processed.purged_at is not None and processed.headers == {}
    assert bytes(failed.body) == body
    with pytest.raises(ValueError, match="purged"):
        inbound_event_replay(event_id=processed.pk)


def test_replay_command_replays_failed_events(post_webhook, monkeypatch, django_capture_on_commit_callbacks, capsys):
    monkeypatch.setattr(inbound.chat, "parse", lambda **kw: (_ for _ in ()).throw(RuntimeError("bug")))
    chat_post(post_webhook, chat_message())
    assert InboundEvent.objects.get().status == "failed"
    monkeypatch.undo()

    with django_capture_on_commit_callbacks(execute=True):
        call_command("inbound_events_replay", "--failed")

    assert InboundEvent.objects.get().status == "processed"
    assert Interaction.objects.count() == 1
    assert "1 event(s) queued for replay" in capsys.readouterr().out


def test_nul_and_lone_surrogates_are_stored_as_storable_text(post_webhook):
    # JSON may carry "\u0000" and a lone "\ud83d"; PostgreSQL refuses both in text and jsonb.
    chat_post(post_webhook, chat_message(message="broken \u0000 emoji \ud83d end", visitor={"id": "v_1", "name": "A\u0000B"}))

    event = InboundEvent.objects.get()
    assert event.status == "processed"
    row = Interaction.objects.get()
    assert row.body == "broken  emoji \ufffd end"
    assert row.customer.name == "AB"


def test_beat_runs_the_purge_and_the_pending_sweep(settings, in_process_tasks, channel_secrets):
    from interactions.inbound import inbound_event_store
    from interactions.tasks import inbound_events_purge_task, inbound_events_requeue_pending_task

    # given: the beat schedule names both tasks
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"interactions.inbound_events_purge", "interactions.inbound_events_requeue_pending"} <= scheduled
    # and an event whose task was lost (stored, never queued: no on-commit callbacks run here)
    event, created = inbound_event_store(provider="chat", body=json.dumps(chat_message()).encode())
    assert created and event.status == "pending"
    InboundEvent.objects.filter(pk=event.pk).update(received_at=timezone.now() - timedelta(hours=1))
    settings.INBOUND_REQUEUE_AFTER_SECONDS = 600

    # when
    assert inbound_events_requeue_pending_task.delay().get() == 1

    # then
    event.refresh_from_db()
    assert event.status == "processed"
    assert inbound_events_purge_task.delay().get() == 0  # younger than the retention
    settings.INBOUND_RETENTION_DAYS = 0
    assert inbound_events_purge_task.delay().get() == 1


def test_database_down_answers_503_so_the_provider_retries(client, channel_secrets, monkeypatch):
    from django.db import OperationalError

    def down(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(InboundEvent.objects, "get_or_create", down)
    body = json.dumps(chat_message()).encode()

    response = client.post(reverse("webhook-chat"), body, content_type="application/json", **chat_headers(body))

    assert response.status_code == 503
    assert response.json()["code"] == "temporarily_unavailable"


def test_replay_command_by_id_and_its_errors(post_webhook, django_capture_on_commit_callbacks, capsys):
    from django.core.management.base import CommandError

    chat_post(post_webhook, chat_message())
    event = InboundEvent.objects.get()

    with django_capture_on_commit_callbacks(execute=True):
        call_command("inbound_events_replay", str(event.pk))
    assert "1 event(s) queued for replay" in capsys.readouterr().out
    event.refresh_from_db()
    assert (event.status, event.attempts, Interaction.objects.count()) == ("processed", 2, 1)

    with pytest.raises(CommandError, match="No inbound events with ids 999"):
        call_command("inbound_events_replay", "999")
    with pytest.raises(CommandError, match="Give event ids, or --failed"):
        call_command("inbound_events_replay")
    with pytest.raises(CommandError, match="--since must be"):
        call_command("inbound_events_replay", "--failed", "--since", "yesterday")

    InboundEvent.objects.update(body=None)
    call_command("inbound_events_replay", str(event.pk))
    captured = capsys.readouterr()
    assert "0 event(s) queued for replay" in captured.out
    assert f"Event {event.pk} cannot be replayed" in captured.err
