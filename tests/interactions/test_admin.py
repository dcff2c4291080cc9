"""The admin of interactions, conversations and inbound events: pages and filters load, actions go through services."""

import json
from datetime import UTC, datetime

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from integrations.models import WebhookDelivery
from interactions import inbound
from interactions.ingest import IdentityIn, IngestItem
from interactions.models import Conversation, InboundEvent, Interaction
from interactions.services import interactions_ingest
from tests.integrations.factories import WebhookSubscriptionFactory
from tests.interactions.fixtures.webhooks import (  # noqa: F401 - pytest fixtures
    channel_secrets,
    chat_post,
    in_process_tasks,
    post_webhook,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, django_user_model):
    user = django_user_model.objects.create_superuser(username="root", password=None, email="r@example.com")
    client.force_login(user)
    client.user = user
    return client


def ingest(**overrides):
    values = dict(
        source="shop", external_id="e1", channel="email", kind="message", direction="inbound",
        author_type="customer", occurred_at=datetime(2025, 3, 3, 9, tzinfo=UTC),
        identities=[IdentityIn("email", "lisa@example.com")], subject="Where is my order?", body="Still waiting",
    )
    values.update(overrides)
    return interactions_ingest(items=[IngestItem(**values)])[0].interaction


def texts(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.mark.parametrize(
    "query",
    ["", "?channel__exact=email", "?direction__exact=inbound", "?author_type__exact=customer", "?kind__exact=message",
     "?occurred_at__year=2025&occurred_at__month=3", "?q=order"],
)
def test_interaction_changelist_filters_load(admin_client, query):
    ingest()
    ingest(external_id="e2", channel="phone", kind="call", subject="", body="")

    response = admin_client.get(reverse("admin:interactions_interaction_changelist") + query)

    assert response.status_code == 200
    shown = response.context["cl"].result_list
    assert len(shown) == (1 if query in ("?channel__exact=email", "?kind__exact=message", "?q=order") else 2)


def test_interaction_changelist_from_the_customer_link(admin_client):
    row = ingest()
    ingest(external_id="e2", identities=[IdentityIn("email", "omar@example.com")])

    response = admin_client.get(
        reverse("admin:interactions_interaction_changelist") + f"?customer__id__exact={row.customer_id}"
    )

    assert response.status_code == 200
    assert [r.pk for r in response.context["cl"].result_list] == [row.pk]


def test_interaction_page_is_read_only(admin_client):
    row = ingest()

    page = admin_client.get(reverse("admin:interactions_interaction_change", args=[row.pk]))
    add = admin_client.get(reverse("admin:interactions_interaction_add"))

    assert page.status_code == 200
    assert "Still waiting" in page.content.decode()
    assert 'name="_save"' not in page.content.decode()
    assert add.status_code == 403


@pytest.mark.parametrize("query", ["", "?status__exact=open", "?channel=email", "?channel=phone", "?q=order"])
def test_conversation_changelist_filters_load(admin_client, query):
    ingest()

    response = admin_client.get(reverse("admin:interactions_conversation_changelist") + query)

    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == (0 if query == "?channel=phone" else 1)


def test_resolving_a_conversation_goes_through_the_service(admin_client):
    # given: a subscriber to conversation.resolved (deliveries are rows, sent later)
    WebhookSubscriptionFactory(event_types=["conversation.resolved"])
    conversation = ingest().conversation
    url = reverse("admin:interactions_conversation_change", args=[conversation.pk])
    assert admin_client.get(url).status_code == 200

    # when
    response = admin_client.post(url, {
        "subject": conversation.subject, "status": "resolved", "assignee": admin_client.user.pk,
        "interactions-TOTAL_FORMS": "1", "interactions-INITIAL_FORMS": "1", "interactions-MIN_NUM_FORMS": "0",
        "interactions-MAX_NUM_FORMS": "0", "interactions-0-id": Interaction.objects.get().pk,
        "interactions-0-conversation": conversation.pk,
    })

    # then: the resolve time stamped and the event emitted, as the service does
    assert response.status_code == 302, response.content.decode()[:2000]
    conversation.refresh_from_db()
    assert conversation.status == "resolved" and conversation.resolved_at is not None
    assert conversation.assignee == admin_client.user
    assert WebhookDelivery.objects.filter(event_type="conversation.resolved").count() == 1


@pytest.mark.parametrize("query", ["", "?status__exact=failed", "?provider__exact=chat", "?q=KeyError"])
def test_inbound_event_changelist_filters_load(admin_client, post_webhook, query):
    chat_post(post_webhook, {"id": "m1", "visitor": {"id": "v1"}, "message": "hi"})

    response = admin_client.get(reverse("admin:interactions_inboundevent_changelist") + query)

    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == (0 if query in ("?status__exact=failed", "?q=KeyError") else 1)


def test_inbound_event_page_shows_the_body_decoded(admin_client, post_webhook):
    chat_post(post_webhook, {"id": "m1", "visitor": {"id": "v1"}, "message": "سلام"})
    event = InboundEvent.objects.get()

    page = admin_client.get(reverse("admin:interactions_inboundevent_change", args=[event.pk])).content.decode()

    assert json.dumps("سلام")[1:-1] in page  # the body as sent (json.dumps escapes non-ASCII)
    assert "webhook-id" in page
    assert "&quot;created&quot;: 1" in page


def test_replay_action_processes_failed_events_again(admin_client, post_webhook, monkeypatch, django_capture_on_commit_callbacks):
    # given: an event that failed on an adapter bug
    def broken(**kwargs):
        raise KeyError("visitor")

    monkeypatch.setattr(inbound.chat, "parse", broken)
    chat_post(post_webhook, {"id": "m1", "visitor": {"id": "v1"}, "message": "hi"})
    event = InboundEvent.objects.get()
    assert event.status == "failed"
    monkeypatch.undo()

    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:interactions_inboundevent_changelist"),
            {"action": "replay_selected", "_selected_action": [event.pk]},
            follow=True,
        )

    # then
    assert "Queued 1 event(s) for replay." in texts(response)
    event.refresh_from_db()
    assert event.status == "processed"
    assert Interaction.objects.count() == 1


def test_replay_action_reports_purged_events(admin_client, post_webhook):
    chat_post(post_webhook, {"id": "m1", "visitor": {"id": "v1"}, "message": "hi"})
    event = InboundEvent.objects.get()
    InboundEvent.objects.update(body=None)

    response = admin_client.post(
        reverse("admin:interactions_inboundevent_changelist"),
        {"action": "replay_selected", "_selected_action": [event.pk]},
        follow=True,
    )

    assert any("cannot be replayed" in text for text in texts(response))
    assert Conversation.objects.count() == 1


def test_replay_button_on_the_event_page(admin_client, post_webhook, django_capture_on_commit_callbacks):
    chat_post(post_webhook, {"id": "m1", "visitor": {"id": "v1"}, "message": "hi"})
    event = InboundEvent.objects.get()
    url = reverse("admin:interactions_inboundevent_replay", args=[event.pk])
    assert url in admin_client.get(reverse("admin:interactions_inboundevent_change", args=[event.pk])).content.decode()

    assert admin_client.get(url).status_code == 405
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, follow=True)

    assert "Queued 1 event(s) for replay." in texts(response)
    event.refresh_from_db()
    assert (event.status, event.attempts, event.result["duplicate"]) == ("processed", 2, 1)
