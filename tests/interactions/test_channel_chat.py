"""The chat widget webhook: our documented JSON, signed like our outbound webhooks (Standard Webhooks)."""

import json
import time

import pytest
from django.urls import reverse

from integrations.signing import webhook_sign
from interactions.channels import SignatureInvalid, SignatureMissing, chat
from interactions.models import InboundEvent, Interaction
from tests.interactions.fixtures.webhooks import (  # noqa: F401 - pytest fixtures
    CHAT_SECRET,
    channel_secrets,
    chat_headers,
    chat_post,
    in_process_tasks,
    post_webhook,
)

# The example of the module's documentation, as a widget sends it.
DOCUMENTED = {
    "id": "msg_01HQ3",
    "visitor": {"id": "v_8f2", "email": "lisa@example.com", "phone": "+4915112345678", "name": "Lisa"},
    "message": "Hello, my order has not arrived",
    "timestamp": "2025-03-01T10:15:00Z",
    "author": "visitor",
    "conversation_id": "c_42",
}


def test_signature_is_the_one_our_outbound_webhooks_use():
    body = json.dumps(DOCUMENTED).encode()
    header = webhook_sign(secret=CHAT_SECRET, msg_id="msg_x", timestamp=1741000000, body=body)

    chat.verify(body=body, secret=CHAT_SECRET, msg_id="msg_x", timestamp="1741000000", header=header, now=1741000000)


def test_rotation_header_with_several_signatures_is_accepted():
    body = b"{}"
    good = webhook_sign(secret=CHAT_SECRET, msg_id="m", timestamp=100, body=body)
    chat.verify(body=body, secret=CHAT_SECRET, msg_id="m", timestamp="100", header=f"v1,AAAA {good}", now=100)


@pytest.mark.parametrize(
    "change",
    ["body", "id", "timestamp_signed", "signature"],
)
def test_one_byte_changed_is_rejected(change):
    body = json.dumps(DOCUMENTED).encode()
    header = webhook_sign(secret=CHAT_SECRET, msg_id="msg_x", timestamp=1741000000, body=body)
    kwargs = dict(body=body, secret=CHAT_SECRET, msg_id="msg_x", timestamp="1741000000", header=header, now=1741000000)
    if change == "body":
        kwargs["body"] = body.replace(b"Lisa", b"Lisb")
    elif change == "id":
        kwargs["msg_id"] = "msg_y"
    elif change == "timestamp_signed":
        kwargs["timestamp"] = "1741000001"
    else:
        kwargs["header"] = header[:-2] + ("A=" if header[-2] != "A" else "B=")
    with pytest.raises(SignatureInvalid):
        chat.verify(**kwargs)


def test_stale_timestamp_is_rejected_and_missing_headers_are_missing():
    body = b"{}"
    old = webhook_sign(secret=CHAT_SECRET, msg_id="m", timestamp=100, body=body)
    with pytest.raises(SignatureInvalid, match="away from now"):
        chat.verify(body=body, secret=CHAT_SECRET, msg_id="m", timestamp="100", header=old, now=100 + 301)
    with pytest.raises(SignatureMissing):
        chat.verify(body=body, secret=CHAT_SECRET, msg_id="", timestamp="100", header=old, now=100)


@pytest.mark.django_db
def test_documented_message_becomes_a_chat_interaction_with_every_identity(post_webhook):
    response = chat_post(post_webhook, DOCUMENTED)

    assert response.status_code == 200
    row = Interaction.objects.get()
    assert (row.source, row.external_id, row.channel, row.kind, row.direction, row.author_type) == (
        "chat", "msg_01HQ3", "chat", "message", "inbound", "customer"
    )
    assert row.body == "Hello, my order has not arrived"
    assert row.occurred_at.isoformat() == "2025-03-01T10:15:00+00:00"
    assert row.data == {"visitor_id": "v_8f2", "widget_conversation_id": "c_42"}
    assert row.customer.name == "Lisa"
    assert sorted(row.customer.identities.values_list("kind", "value")) == [
        ("chat", "v_8f2"), ("email", "lisa@example.com"), ("phone", "+4915112345678")
    ]


@pytest.mark.django_db
def test_agent_reply_from_the_widget_is_outbound_on_the_visitors_timeline(post_webhook):
    chat_post(post_webhook, DOCUMENTED)
    chat_post(post_webhook, {"id": "msg_02", "visitor": {"id": "v_8f2"}, "message": "It ships today", "author": "agent",
                             "timestamp": 1740824200})

    question, answer = Interaction.objects.order_by("occurred_at")
    assert (answer.direction, answer.author_type) == ("outbound", "agent")
    assert answer.customer_id == question.customer_id
    assert answer.conversation_id == question.conversation_id
    assert answer.conversation.first_response_at == answer.occurred_at


@pytest.mark.django_db
@pytest.mark.parametrize(
    "payload, reason",
    [
        ({"visitor": {"id": "v"}, "message": "hi"}, "id (the message id) is required."),
        ({"id": "m", "message": "hi"}, "visitor.id is required."),
        ({"id": "m", "visitor": {"id": "v"}, "message": 5}, "message must be a string."),
        ({"id": "m", "visitor": {"id": "v"}, "message": "hi", "author": "robot"}, "author must be one of visitor, agent, bot."),
        ({"id": "m", "visitor": {"id": "v"}, "message": "hi", "timestamp": "yesterday"}, "timestamp: 'yesterday' is not an ISO 8601 timestamp."),
    ],
)
def test_invalid_payloads_are_stored_failed_with_the_reason(post_webhook, payload, reason):
    response = chat_post(post_webhook, payload)

    assert response.status_code == 200
    event = InboundEvent.objects.get()
    assert (event.status, event.error) == ("failed", reason)
    assert not Interaction.objects.exists()


@pytest.mark.django_db
def test_stale_request_is_refused_by_the_endpoint(client, channel_secrets):
    body = json.dumps(DOCUMENTED).encode()
    headers = chat_headers(body, timestamp=int(time.time()) - 3600)

    response = client.post(reverse("webhook-chat"), body, content_type="application/json", **headers)

    assert response.status_code == 403
    assert not InboundEvent.objects.exists()
