import json

import pytest
from django.urls import reverse

from customers.models import Customer, Identity, Merge
from interactions.models import Conversation, Interaction

pytestmark = pytest.mark.django_db


def payload(**overrides):
    body = {
        "source": "shop",
        "external_id": "msg-1",
        "channel": "email",
        "kind": "message",
        "direction": "inbound",
        "author_type": "customer",
        "occurred_at": "2026-03-01T10:00:00Z",
        "identities": [{"kind": "email", "value": "Lisa@Example.COM"}],
        "customer": {"name": "Lisa", "attributes": {"plan": "gold"}},
        "subject": "Where is my parcel?",
        "body": "It was due yesterday.",
    }
    body.update(overrides)
    return body


def test_post_interaction_creates_customer_identity_and_conversation(api):
    # when
    response = api.post(reverse("interaction-create"), payload(), format="json")

    # then
    assert response.status_code == 201, response.json()
    data = response.json()
    customer = Customer.objects.get()
    assert customer.name == "Lisa" and customer.attributes == {"plan": "gold"}
    assert list(customer.identities.values_list("kind", "value")) == [("email", "lisa@example.com")]
    conversation = Conversation.objects.get()
    assert data == {
        "id": Interaction.objects.get().pk,
        "customer_id": customer.pk,
        "conversation_id": conversation.pk,
        "channel": "email",
        "kind": "message",
        "direction": "inbound",
        "author_type": "customer",
        "author_name": "",
        "agent_id": None,
        "occurred_at": "2026-03-01T10:00:00Z",
        "subject": "Where is my parcel?",
        "body": "It was due yesterday.",
        "sentiment": None,
        "intent": "",
        "incident_at": None,
        "source": "shop",
        "external_id": "msg-1",
        "data": {},
        "created_at": data["created_at"],
    }
    assert conversation.channels == ["email"]
    assert conversation.first_inbound_at.isoformat() == "2026-03-01T10:00:00+00:00"


def test_replayed_interaction_answers_200_and_is_not_stored_twice(api):
    first = api.post(reverse("interaction-create"), payload(), format="json")
    second = api.post(reverse("interaction-create"), payload(body="changed"), format="json")

    assert first.status_code == 201
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["body"] == "It was due yesterday."
    assert Interaction.objects.count() == 1


@pytest.mark.parametrize(
    ("override", "field", "code"),
    [
        ({"channel": "pigeon"}, "channel", "invalid_choice"),
        ({"kind": "dance"}, "kind", "invalid_choice"),
        ({"direction": "sideways"}, "direction", "invalid_choice"),
        ({"author_type": "alien"}, "author_type", "invalid_choice"),
        ({"occurred_at": "2026-03-01T10:00:00"}, "occurred_at", "naive_datetime"),
        ({"occurred_at": "yesterday"}, "occurred_at", "invalid_datetime"),
        ({"identities": [{"kind": "email", "value": "not-an-email"}]}, "identities[0]", "invalid_email"),
        ({"identities": [{"kind": "phone", "value": "12"}]}, "identities[0]", "invalid_phone"),
        ({"identities": []}, "identities", "required"),
        ({"sentiment": 3}, "sentiment", "out_of_range"),
        ({"source": 5}, "source", "invalid_type"),
        ({"colour": "red"}, "colour", "unknown_field"),
    ],
)
def test_bad_input_is_a_400_with_a_reason_per_field_and_stores_nothing(api, override, field, code):
    response = api.post(reverse("interaction-create"), payload(**override), format="json")

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert body["errors"][field][0]["code"] == code
    assert Interaction.objects.count() == 0 and Customer.objects.count() == 0


def test_malformed_json_is_a_400(api):
    response = api.generic("POST", reverse("interaction-create"), "{not json", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"


# JSON text escapes PostgreSQL cannot store: NUL, and a high surrogate with no low one after it.
UNSTORABLE = [
    ("body", '"a\\u0000b"'),
    ("body", '"broken \\ud83d emoji"'),
    ("data", '{"note": "x\\u0000"}'),
    ("customer", '{"name": "A\\u0000B"}'),
    ("identities", '[{"kind": "email", "value": "lisa\\u0000@example.com"}]'),
]


def _with_raw(field, raw, **overrides):
    """The payload as JSON text, `field` replaced by the raw JSON `raw` (a test client cannot encode a lone surrogate)."""
    text = json.dumps(payload(**overrides, **{field: "__raw__"}))
    return text.replace('"__raw__"', raw)


@pytest.mark.parametrize(("field", "raw"), UNSTORABLE)
def test_text_the_database_cannot_store_is_a_400_naming_the_field(api, field, raw):
    response = api.generic("POST", reverse("interaction-create"), _with_raw(field, raw), content_type="application/json")

    assert response.status_code == 400
    assert response.json()["errors"][field][0]["code"] == "unstorable_text"
    assert Interaction.objects.count() == 0 and Customer.objects.count() == 0


@pytest.mark.parametrize(("field", "raw"), UNSTORABLE)
def test_bulk_rejects_only_the_item_holding_unstorable_text(api, field, raw):
    body = '{"items": [%s, %s]}' % (_with_raw(field, raw, external_id="bad"), json.dumps(payload(external_id="good")))

    response = api.generic("POST", reverse("interaction-bulk"), body, content_type="application/json")

    assert response.status_code == 200
    bad, good = response.json()["results"]
    assert bad["status"] == "rejected" and bad["errors"][field][0]["code"] == "unstorable_text"
    assert good["status"] == "created"
    assert list(Interaction.objects.values_list("external_id", flat=True)) == ["good"]


def test_other_endpoints_refuse_unstorable_text_with_a_400(api):
    customer = Customer.objects.create(name="Lisa")

    response = api.generic("PATCH", reverse("customer-detail", args=[customer.pk]), '{"name": "L\\u0000isa"}',
                           content_type="application/json")

    assert response.status_code == 400
    assert response.json()["errors"]["name"][0]["code"] == "unstorable_text"
    customer.refresh_from_db()
    assert customer.name == "Lisa"


def test_body_over_the_limit_is_a_413(api, settings):
    settings.MAX_BODY_BYTES = 1000

    response = api.post(reverse("interaction-create"), payload(body="x" * 2000), format="json")

    assert response.status_code == 413
    assert response.json()["code"] == "body_too_large"
    assert Interaction.objects.count() == 0


def test_bulk_stores_valid_items_and_reports_each(api):
    items = [
        payload(external_id="a"),
        payload(external_id="b", channel="nope"),
        payload(external_id="a"),
        payload(external_id="c", identities=[{"kind": "phone", "value": "+49 151 12345678"}]),
    ]

    response = api.post(reverse("interaction-bulk"), {"items": items}, format="json")

    assert response.status_code == 200
    body = response.json()
    a, c = Interaction.objects.get(external_id="a"), Interaction.objects.get(external_id="c")
    assert body == {
        "created": 2,
        "duplicates": 1,
        "rejected": 1,
        "results": [
            {"index": 0, "status": "created", "id": a.pk, "customer_id": a.customer_id},
            {"index": 1, "status": "rejected", "errors": {"channel": [
                {"code": "invalid_choice", "message": body["results"][1]["errors"]["channel"][0]["message"]}]}},
            {"index": 2, "status": "duplicate", "id": a.pk, "customer_id": a.customer_id},
            {"index": 3, "status": "created", "id": c.pk, "customer_id": c.customer_id},
        ],
    }
    assert Identity.objects.get(kind="phone").value == "+4915112345678"


def test_bulk_over_the_cap_is_rejected_whole(api, settings):
    settings.BULK_MAX_ITEMS = 3

    response = api.post(reverse("interaction-bulk"), {"items": [payload(external_id=str(i)) for i in range(4)]}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "too_many_items"
    assert Interaction.objects.count() == 0


def test_interaction_with_identities_of_two_customers_merges_them_oldest_survives(api):
    api.post(reverse("interaction-create"), payload(external_id="1"), format="json")
    api.post(reverse("interaction-create"), payload(
        external_id="2", channel="whatsapp", identities=[{"kind": "whatsapp", "value": "+4915112345678"}], customer=None,
    ), format="json")
    older, newer = Customer.objects.order_by("pk")

    # when: one message carries both identities
    response = api.post(reverse("interaction-create"), payload(
        external_id="3", identities=[{"kind": "whatsapp", "value": "+49 151 12345678"},
                                     {"kind": "email", "value": "lisa@example.com"}],
    ), format="json")

    # then
    assert response.status_code == 201
    newer.refresh_from_db()
    assert newer.merged_into_id == older.pk
    assert set(Interaction.objects.values_list("customer_id", flat=True)) == {older.pk}
    assert older.identities.count() == 2
    merge = Merge.objects.get()
    assert merge.reason == "auto" and merge.survivor_id == older.pk and merge.merged_id == newer.pk


def test_with_auto_merge_off_the_item_stays_on_best_match_and_a_suggestion_is_recorded(api, settings):
    settings.AUTO_MERGE = False
    api.post(reverse("interaction-create"), payload(external_id="1"), format="json")
    api.post(reverse("interaction-create"), payload(
        external_id="2", identities=[{"kind": "chat", "value": "visitor-9"}], customer=None), format="json")
    older, newer = Customer.objects.order_by("pk")

    response = api.post(reverse("interaction-create"), payload(
        external_id="3", identities=[{"kind": "chat", "value": "visitor-9"}, {"kind": "email", "value": "lisa@example.com"}],
    ), format="json")

    assert response.status_code == 201
    assert response.json()["customer_id"] == older.pk
    assert Merge.objects.count() == 0
    suggestions = api.get(reverse("merge-suggestion-list")).json()["results"]
    assert [(s["customer_a_id"], s["customer_b_id"], s["status"]) for s in suggestions] == [(older.pk, newer.pk, "pending")]


def test_inbound_on_another_channel_within_the_window_continues_the_conversation(api):
    api.post(reverse("interaction-create"), payload(external_id="1", channel="chat"), format="json")
    api.post(reverse("interaction-create"), payload(external_id="2", occurred_at="2026-03-03T09:00:00Z"), format="json")
    api.post(reverse("interaction-create"), payload(external_id="3", occurred_at="2026-03-07T09:00:00Z"), format="json")

    first, second = Conversation.objects.order_by("pk")
    assert first.channels == ["chat", "email"]
    assert list(first.interactions.values_list("external_id", flat=True).order_by("occurred_at")) == ["1", "2"]
    assert list(second.interactions.values_list("external_id", flat=True)) == ["3"]


def test_agent_reply_sets_first_response(api):
    api.post(reverse("interaction-create"), payload(external_id="1"), format="json")
    api.post(reverse("interaction-create"), payload(
        external_id="2", direction="outbound", author_type="agent", occurred_at="2026-03-01T10:05:00Z"), format="json")

    conversation = api.get(reverse("conversation-list")).json()["results"][0]
    assert conversation["first_response_seconds"] == 300.0
