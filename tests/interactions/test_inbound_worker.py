"""The inbound path with a real Celery worker, Redis and PostgreSQL: processed after commit, retried, survives a kill."""

import json

import psycopg
import pytest
import redis
from django.conf import settings
from django.urls import reverse

from crm.celery import app as celery_app
from interactions.models import InboundEvent, Interaction
from tests.conftest import database_url_for_subprocess, wait_until
from tests.interactions.fixtures.webhooks import channel_secrets, chat_headers, in_process_tasks  # noqa: F401 - pytest fixtures

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def post_chat(client, message_id, text="Hello from the widget"):
    body = json.dumps({"id": message_id, "visitor": {"id": "v_7", "email": "w@example.com"}, "message": text}).encode()
    response = client.post(reverse("webhook-chat"), body, content_type="application/json", **chat_headers(body))
    assert response.status_code == 200
    return InboundEvent.objects.get(pk=response.json()["event_id"])


def event_state(event):
    event.refresh_from_db()
    return event.status, event.attempts


def test_accepted_event_is_processed_by_the_worker_after_commit(celery_worker_process, client, channel_secrets):
    # given
    celery_worker_process()

    # when: the view stores the row and answers; the worker does the rest
    event = post_chat(client, "w-1")

    # then
    wait_until(lambda: event_state(event)[0] == "processed", timeout=30, message="the worker to process the event")
    assert event_state(event) == ("processed", 1)
    row = Interaction.objects.get()
    assert (row.source, row.external_id, row.body) == ("chat", "w-1", "Hello from the widget")


def test_transient_database_failure_is_retried_with_backoff_until_it_passes(celery_worker_process, client, channel_secrets):
    # given: a worker whose database gives up on locks after 200 ms, with a 1 s backoff
    celery_worker_process(extra_env={"PGOPTIONS": "-c lock_timeout=200", "INBOUND_RETRY_BACKOFF_SECONDS": "1"})
    blocker = psycopg.connect(database_url_for_subprocess())
    try:
        # and another session holding the interactions table (a migration, a long report)
        blocker.execute("LOCK TABLE interactions_interaction IN ACCESS EXCLUSIVE MODE")

        # when
        event = post_chat(client, "w-2")

        # then: it fails and is retried while the table is held, and stays pending
        wait_until(lambda: event_state(event)[1] >= 2, timeout=30, message="a retry of the event")
        assert event_state(event)[0] == "pending"
        # (read through the session holding the lock: any other would wait for it)
        assert blocker.execute("SELECT count(*) FROM interactions_interaction").fetchone() == (0,)
    finally:
        blocker.rollback()
        blocker.close()

    # and once the table is free, the next retry stores it, once
    wait_until(lambda: event_state(event)[0] == "processed", timeout=30, message="the retried event to be processed")
    event.refresh_from_db()
    assert event.error == ""
    assert event.result["created"] == 1
    assert Interaction.objects.filter(external_id="w-2").count() == 1


def test_worker_killed_mid_processing_leaves_the_event_pending_and_it_is_processed_once(
    celery_worker_process, client, channel_secrets
):
    broker = redis.Redis.from_url(settings.REDIS_URL)
    # given: a worker that holds each event for 30 s before processing it
    first = celery_worker_process(extra_env={"INBOUND_PROCESS_DELAY_SECONDS": "30"})
    event = post_chat(client, "w-3")
    wait_until(lambda: broker.llen("celery") == 0 and broker.hlen("unacked") == 1, timeout=15,
               message="the worker to take the task")

    # when: the worker dies mid-task
    first.kill()

    # then: nothing was half-done
    assert event_state(event) == ("pending", 0)
    assert not Interaction.objects.exists()

    # when: a worker starts again (on a clean broker: the queued copy is gone) and beat's sweep runs
    celery_worker_process(extra_env={"INBOUND_REQUEUE_AFTER_SECONDS": "0"})
    celery_app.send_task("interactions.inbound_events_requeue_pending")

    # then: processed exactly once
    wait_until(lambda: event_state(event)[0] == "processed", timeout=30, message="the event after the restart")
    assert event_state(event) == ("processed", 1)
    assert Interaction.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_of_one_request_store_one_event_and_one_interaction(in_process_tasks, channel_secrets):
    import threading

    from django.db import connection
    from django.test import Client

    payload = {"id": "race-1", "visitor": {"id": "v_race"}, "message": "Are you there?"}
    bodies = [json.dumps(payload).encode()] * 4 + [json.dumps(payload, indent=n).encode() for n in range(1, 5)]
    statuses = []
    barrier = threading.Barrier(len(bodies))

    def post(body):
        try:
            barrier.wait()
            response = Client().post(reverse("webhook-chat"), body, content_type="application/json", **chat_headers(body))
            statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=post, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert statuses == [200] * len(bodies)
    assert InboundEvent.objects.count() == 5  # one per distinct body
    assert set(InboundEvent.objects.values_list("status", flat=True)) == {"processed"}
    assert Interaction.objects.filter(external_id="race-1").count() == 1
