"""Meta: the GET handshake, X-Hub-Signature-256 over the raw body; Messenger, Instagram, WhatsApp Cloud, Page feed."""

import json
from datetime import UTC, datetime

import pytest
from django.urls import reverse

from interactions.channels import SignatureInvalid, SignatureMissing, meta
from interactions.models import InboundEvent, Interaction
from tests.interactions.fixtures.captured import project
from tests.interactions.fixtures.webhooks import (  # noqa: F401 - pytest fixtures
    META_VERIFY,
    channel_secrets,
    in_process_tasks,
    meta_post,
    meta_sign,
    post_webhook,
)

# The vector of ../shared/fixtures/README.md.
VECTOR_SECRET = "1222e786b144d0e85b9f365372d93676"
VECTOR_SIGNATURE = "sha256=54edfa1d7259e0eb13c677cc7d73d1b5c86cfa12433d19156e058ab9251bc441"
NOW = datetime(2025, 3, 3, 12, tzinfo=UTC)


def own(name):
    return project("meta", name).read_bytes()


def signed_body(shared_fixtures):
    return (shared_fixtures / "webhooks" / "whatsapp_cloud" / "signed_body.json").read_bytes()


def test_documented_vector_verifies(shared_fixtures):
    meta.verify(body=signed_body(shared_fixtures), app_secret=VECTOR_SECRET, header=VECTOR_SIGNATURE)


def test_one_byte_changed_or_missing_header_is_rejected(shared_fixtures):
    body = signed_body(shared_fixtures)
    with pytest.raises(SignatureInvalid):
        meta.verify(body=body.replace(b"PyWa", b"PyWb"), app_secret=VECTOR_SECRET, header=VECTOR_SIGNATURE)
    with pytest.raises(SignatureInvalid):
        meta.verify(body=body, app_secret=VECTOR_SECRET, header=VECTOR_SIGNATURE[:-1] + "0")
    with pytest.raises(SignatureInvalid):
        meta.verify(body=body, app_secret=VECTOR_SECRET, header="sha1=" + VECTOR_SIGNATURE[7:])
    with pytest.raises(SignatureMissing):
        meta.verify(body=body, app_secret=VECTOR_SECRET, header="")


@pytest.mark.django_db
def test_signed_vector_body_through_the_endpoint_is_one_whatsapp_message(post_webhook, settings, shared_fixtures):
    settings.META_APP_SECRET = VECTOR_SECRET
    body = signed_body(shared_fixtures)

    response = meta_post(post_webhook, body, signature=VECTOR_SIGNATURE)

    assert response.status_code == 200
    message = Interaction.objects.get()
    assert (message.source, message.channel, message.kind, message.direction) == ("meta", "whatsapp", "message", "inbound")
    assert message.external_id == "wamid.HBgMOTcyNTQ0NDAxMjQzFQIAEhggM0RFQTNCMEEwRTY3QzUwODYzMDc4NjQ4QzM4ODAxM0YA"
    assert message.body == "Hey there! I am using PyWa."
    assert message.occurred_at == datetime.fromtimestamp(1730231903, tz=UTC)
    assert list(message.customer.identities.values_list("kind", "value")) == [("whatsapp", "+972544401243")]
    assert message.customer.name == "PyWa Tests"


@pytest.mark.django_db
@pytest.mark.parametrize("case", ["one_byte", "missing"])
def test_endpoint_rejects_and_stores_nothing(post_webhook, settings, shared_fixtures, case):
    settings.META_APP_SECRET = VECTOR_SECRET
    body = signed_body(shared_fixtures)
    if case == "one_byte":
        response = meta_post(post_webhook, body[:-2] + b" }", signature=VECTOR_SIGNATURE)
    else:
        response = post_webhook(reverse("webhook-meta"), body, "application/json")

    assert response.status_code == (403 if case == "one_byte" else 401)
    assert not InboundEvent.objects.exists()
    assert not Interaction.objects.exists()


@pytest.mark.django_db
def test_get_handshake_answers_the_challenge_only_for_our_token(client, channel_secrets):
    url = reverse("webhook-meta")

    good = client.get(url, {"hub.mode": "subscribe", "hub.verify_token": META_VERIFY, "hub.challenge": "1158201444"})
    bad = client.get(url, {"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1158201444"})
    missing = client.get(url, {"hub.challenge": "1158201444"})

    assert (good.status_code, good.content) == (200, b"1158201444")
    assert bad.status_code == 403
    assert missing.status_code == 400
    assert not InboundEvent.objects.exists()


@pytest.mark.django_db
def test_messenger_entries_each_become_an_interaction_and_a_retry_adds_none(post_webhook):
    # when: one POST with two entries (two messages, one reaction), then Meta retries it
    first = meta_post(post_webhook, own("messenger.json"))
    retry = meta_post(post_webhook, own("messenger.json"))

    # then
    assert first.status_code == retry.status_code == 200
    rows = list(Interaction.objects.order_by("occurred_at"))
    assert [(r.external_id, r.kind, r.channel) for r in rows] == [
        ("m_AAA111", "message", "facebook"),
        ("m_AAA112", "message", "facebook"),
        ("reaction:m_OUT1:2000000000000001:react:1741000005000", "reaction", "facebook"),
    ]
    assert rows[0].body == "Hi, my parcel is late"
    assert rows[0].occurred_at == datetime.fromtimestamp(1741000000, tz=UTC)  # milliseconds on Messenger
    assert rows[1].data["attachments"] == [{"type": "image", "url": "https://scontent.example/img.jpg"}]
    assert rows[2].body == "❤️"
    assert len({r.customer_id for r in rows}) == 1
    assert InboundEvent.objects.count() == 1


@pytest.mark.django_db
def test_messenger_receipts_update_the_outbound_message_not_new_rows(post_webhook):
    # given: our reply, as Meta echoes it
    meta_post(post_webhook, own("messenger_echo.json"))
    sent = Interaction.objects.get()
    assert (sent.direction, sent.author_type, sent.external_id) == ("outbound", "agent", "m_OUT1")

    # when: delivery and read receipts arrive
    response = meta_post(post_webhook, own("messenger_receipts.json"))

    # then
    assert response.status_code == 200
    sent = Interaction.objects.get()
    assert sent.data["status"] == "read"
    assert set(sent.data["status_history"]) == {"delivered", "read"}
    event = InboundEvent.objects.order_by("id").last()
    assert (event.status, event.result["created"], event.result["updated"]) == ("processed", 0, 2)


@pytest.mark.django_db
def test_page_feed_reaction_is_a_reaction_on_the_facebook_identity(post_webhook):
    meta_post(post_webhook, own("page_feed.json"))

    reaction = Interaction.objects.get(kind="reaction")
    assert (reaction.channel, reaction.direction, reaction.author_type, reaction.body) == (
        "facebook", "inbound", "customer", "like"
    )
    assert reaction.data["post_id"] == "110000000000001_900000000000001"
    assert reaction.identity.kind == "facebook" and reaction.identity.value == "2000000000000001"
    assert reaction.customer.name == "Lisa Example"
    assert reaction.conversation_id is None  # a like opens no conversation
    comment = Interaction.objects.get(kind="comment")
    assert (comment.external_id, comment.body, comment.customer.name) == (
        "900000000000001_500000000000001", "Love the new collection!", "Omar"
    )
    assert comment.customer_id != reaction.customer_id


@pytest.mark.django_db
def test_instagram_message(post_webhook):
    meta_post(post_webhook, own("instagram.json"))

    message = Interaction.objects.get()
    assert (message.channel, message.body) == ("instagram", "Do you ship to Tehran?")
    assert message.identity.kind == "instagram"


@pytest.mark.django_db
def test_whatsapp_cloud_many_entries_reactions_and_statuses(post_webhook):
    # given: our outbound message wamid.OUT1, recorded through the echo path of the ingest service
    from interactions.ingest import IdentityIn, IngestItem
    from interactions.services import interactions_ingest

    interactions_ingest(items=[IngestItem(
        source="meta", external_id="wamid.OUT1", channel="whatsapp", kind="message", direction="outbound",
        author_type="agent", occurred_at=datetime.fromtimestamp(1741000010, tz=UTC),
        identities=[IdentityIn("whatsapp", "+4915112345678")], body="Sie ist unterwegs.",
    )])

    # when
    meta_post(post_webhook, own("whatsapp_cloud.json"))
    meta_post(post_webhook, own("whatsapp_cloud.json"))  # a retry

    # then: three new interactions, the outbound one read, nothing doubled
    assert Interaction.objects.count() == 4
    lisa = Interaction.objects.get(external_id="wamid.IN1")
    fyodor = Interaction.objects.get(external_id="wamid.IN2")
    reaction = Interaction.objects.get(external_id="wamid.IN3")
    sent = Interaction.objects.get(external_id="wamid.OUT1")
    assert (lisa.body, lisa.customer.name) == ("Wo bleibt meine Bestellung?", "Lisa")
    assert (fyodor.body, fyodor.customer.name) == ("Посылка пришла разбитой", "Фёдор")
    assert fyodor.data["media"] == {"type": "image", "id": "1234567", "mime_type": "image/jpeg", "sha256": "abc="}
    assert (reaction.kind, reaction.body, reaction.customer_id) == ("reaction", "\U0001f44d", sent.customer_id)
    assert reaction.conversation_id == sent.conversation_id  # it answers our message
    assert sent.data["status"] == "read"
    assert sent.data["status_history"] == {
        "delivered": datetime.fromtimestamp(1741000030, tz=UTC).isoformat(),
        "read": datetime.fromtimestamp(1741000090, tz=UTC).isoformat(),
    }


def _shared_updates(shared_fixtures, name):
    data = json.loads((shared_fixtures / "webhooks" / "whatsapp_cloud" / name).read_text())
    return list(data.items())


@pytest.mark.parametrize("name", [
    "message.json", "message_status.json", "edited_message.json", "deleted_message.json", "callback_button.json",
    "callback_selection.json", "system.json", "outgoing_message.json", "call_connect.json", "account_update.json",
    "template_status_update.json", "flow_completion.json", "user_marketing_preferences.json",
])
def test_every_shared_whatsapp_update_parses_or_says_why_not(shared_fixtures, name):
    for kind, payload in _shared_updates(shared_fixtures, name):
        parsed = meta.parse(body=json.dumps(payload).encode(), received_at=NOW)
        assert parsed.items or parsed.updates or parsed.skipped, kind
        assert all(reason for reason in parsed.skipped), kind


def test_shared_whatsapp_message_kinds_keep_their_content(shared_fixtures):
    updates = dict(_shared_updates(shared_fixtures, "message.json"))

    def item(kind):
        return meta.parse(body=json.dumps(updates[kind]).encode(), received_at=NOW).items[0]

    assert item("text").body == "Body Text"
    assert item("reply").reply_to == ["wamid.xyzxyz=="]
    assert item("image").data["media"]["id"] == "65463453"
    assert item("contacts").body == "Chandler Bing, Monica, Rachel Green"
    assert item("order").data["order"]["catalog_id"] == "354160437058781"
    assert item("text").occurred_at == datetime.fromtimestamp(1697043223, tz=UTC)  # seconds, as a string
    # WhatsApp verified the sender; a number outside phonenumbers' known ranges is still that person.
    assert [(i.kind, i.value) for i in item("text").identities] == [("whatsapp", "+972987654321")]


@pytest.mark.django_db
def test_shared_whatsapp_statuses_update_our_message(post_webhook, shared_fixtures):
    from interactions.ingest import IdentityIn, IngestItem
    from interactions.services import interactions_ingest

    interactions_ingest(items=[IngestItem(
        source="meta", external_id="wamid.xyzxyz", channel="whatsapp", kind="message", direction="outbound",
        author_type="agent", occurred_at=datetime.fromtimestamp(1689380000, tz=UTC),
        identities=[IdentityIn("whatsapp", "+972544401243")], body="Hello",
    )])
    updates = dict(_shared_updates(shared_fixtures, "message_status.json"))

    for kind in ("sent", "delivered", "read", "failed"):
        meta_post(post_webhook, json.dumps(updates[kind]).encode())

    sent = Interaction.objects.get()
    assert sent.data["status"] == "read"  # a later "failed" for the same message does not outrank read
    assert set(sent.data["status_history"]) == {"sent", "delivered", "read", "failed"}
    assert InboundEvent.objects.filter(status="processed").count() == 4


@pytest.mark.django_db
def test_shared_whatsapp_edit_and_delete_flag_the_original(post_webhook, shared_fixtures):
    edited = next(iter(_shared_updates(shared_fixtures, "edited_message.json")))[1]
    original = meta.parse(body=json.dumps(edited).encode(), received_at=NOW).updates[0].external_id
    from interactions.ingest import IdentityIn, IngestItem
    from interactions.services import interactions_ingest

    interactions_ingest(items=[IngestItem(
        source="meta", external_id=original, channel="whatsapp", kind="message", direction="inbound",
        author_type="customer", occurred_at=NOW, identities=[IdentityIn("whatsapp", "+972544401243")], body="v1",
    )])

    meta_post(post_webhook, json.dumps(edited).encode())

    row = Interaction.objects.get()
    assert "edited" in row.data["flags"]
    assert row.body == "v1"  # the text we received stays; the edit is kept beside it
    assert "edited_body" in row.data


@pytest.mark.django_db
def test_unsupported_object_is_failed_with_the_reason(post_webhook):
    response = meta_post(post_webhook, {"object": "permissions", "entry": [{"id": "1", "changes": []}]})

    assert response.status_code == 200
    event = InboundEvent.objects.get()
    assert (event.status, event.error) == ("failed", "object 'permissions' is not supported")
