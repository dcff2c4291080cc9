from datetime import datetime, timedelta, timezone

import pytest
from django.urls import reverse

from customers.models import Customer, Identity, Merge
from customers.services import customer_merge, merge_undo
from interactions.ingest import IdentityIn, IngestItem
from interactions.models import Conversation, Interaction
from interactions.services import interactions_ingest
from tests.factories import SegmentFactory

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 2, 1, 9, 0, tzinfo=timezone.utc)


def item(external_id, identities, *, at=T0, channel="chat", kind="message", direction="inbound", author="customer", name=""):
    return IngestItem(
        source="test", external_id=external_id, channel=channel, kind=kind, direction=direction, author_type=author,
        occurred_at=at, identities=[IdentityIn(k, v) for k, v in identities], customer_name=name, body=external_id,
    )


def snapshot():
    """Every row a merge touches, as plain tuples."""
    return {
        "customers": sorted(Customer.objects.values_list("pk", "name", "attributes", "merged_into_id", "switching_cost")),
        "segments": sorted(Customer.segments.through.objects.values_list("customer_id", "segment_id")),
        "identities": sorted(Identity.objects.values_list("pk", "customer_id", "kind", "value")),
        "interactions": sorted(Interaction.objects.values_list("pk", "customer_id", "conversation_id", "identity_id")),
        "conversations": sorted(Conversation.objects.values_list(
            "pk", "customer_id", "status", "channels", "last_activity_at", "first_response_at")),
    }


@pytest.fixture
def lisa_twice():
    """Lisa as two customers: one by email (with a conversation), one by phone (with a reaction)."""
    interactions_ingest(items=[
        item("e1", [("email", "lisa@example.com")], name="Lisa"),
        item("e2", [("email", "lisa@example.com")], at=T0 + timedelta(minutes=5), direction="outbound", author="agent"),
    ])
    interactions_ingest(items=[
        item("p1", [("phone", "+4915112345678")], at=T0 + timedelta(days=10), channel="phone", kind="call"),
        item("r1", [("facebook", "998877"), ("phone", "+4915112345678")], at=T0 + timedelta(days=11),
             channel="facebook", kind="reaction"),
    ])
    email_lisa = Customer.objects.get(identities__value="lisa@example.com")
    phone_lisa = Customer.objects.get(identities__value="+4915112345678")
    phone_lisa.attributes = {"tier": "gold"}
    phone_lisa.save()
    phone_lisa.segments.add(SegmentFactory(slug="vip"))
    return email_lisa, phone_lisa


def test_merge_moves_identities_interactions_and_conversations_to_survivor(lisa_twice):
    email_lisa, phone_lisa = lisa_twice

    merge = customer_merge(survivor=email_lisa, merged=phone_lisa)

    phone_lisa.refresh_from_db()
    email_lisa.refresh_from_db()
    assert phone_lisa.merged_into_id == email_lisa.pk
    assert set(Identity.objects.values_list("customer_id", flat=True)) == {email_lisa.pk}
    assert set(Interaction.objects.values_list("customer_id", flat=True)) == {email_lisa.pk}
    assert set(Conversation.objects.values_list("customer_id", flat=True)) == {email_lisa.pk}
    assert email_lisa.attributes == {"tier": "gold"}
    assert list(email_lisa.segments.values_list("slug", flat=True)) == ["vip"]
    assert len(merge.moved["interactions"]) == 2 and len(merge.moved["identities"]) == 2


def test_merge_then_undo_restores_every_row_exactly(lisa_twice):
    email_lisa, phone_lisa = lisa_twice
    before = snapshot()

    merge = customer_merge(survivor=email_lisa, merged=phone_lisa)
    assert snapshot() != before
    merge_undo(merge=merge)

    assert snapshot() == before
    assert Merge.objects.get().undone_at is not None


def test_undo_sends_back_what_arrived_since_through_an_identity_going_back(lisa_twice):
    email_lisa, phone_lisa = lisa_twice
    merge = customer_merge(survivor=email_lisa, merged=phone_lisa)
    interactions_ingest(items=[
        item("p2", [("phone", "+4915112345678")], at=T0 + timedelta(days=20), channel="sms"),
        item("e3", [("email", "lisa@example.com")], at=T0 + timedelta(days=21), channel="email"),
    ])

    merge_undo(merge=merge)

    assert Interaction.objects.get(external_id="p2").customer_id == phone_lisa.pk
    assert Interaction.objects.get(external_id="e3").customer_id == email_lisa.pk
    p2 = Interaction.objects.get(external_id="p2")
    assert p2.conversation is None or p2.conversation.customer_id == phone_lisa.pk


def test_undo_is_refused_twice_and_while_the_survivor_is_itself_merged(api, lisa_twice):
    email_lisa, phone_lisa = lisa_twice
    merge = customer_merge(survivor=email_lisa, merged=phone_lisa)
    third = Customer.objects.create(name="Third")
    later = customer_merge(survivor=third, merged=email_lisa)

    refused = api.post(reverse("merge-undo", args=[merge.pk]))
    assert refused.status_code == 409
    assert f"undo merge #{later.pk} first" in refused.json()["detail"]

    assert api.post(reverse("merge-undo", args=[later.pk])).status_code == 200
    assert api.post(reverse("merge-undo", args=[later.pk])).status_code == 409
    assert api.post(reverse("merge-undo", args=[merge.pk])).status_code == 200


def test_merge_api_and_tombstone_timeline(api, lisa_twice):
    email_lisa, phone_lisa = lisa_twice

    response = api.post(reverse("customer-merge", args=[email_lisa.pk]), {"other": phone_lisa.pk}, format="json")

    assert response.status_code == 201
    assert response.json()["moved"] == {"identities": 2, "interactions": 2, "conversations": 1}
    timeline = api.get(reverse("customer-timeline", args=[phone_lisa.pk])).json()
    assert timeline["customer_id"] == email_lisa.pk
    assert timeline["redirected_from"] == phone_lisa.pk
    assert [row["external_id"] for row in timeline["results"]] == ["r1", "p1", "e2", "e1"]
    detail = api.get(reverse("customer-detail", args=[phone_lisa.pk])).json()
    assert detail["id"] == email_lisa.pk and detail["redirected_from"] == phone_lisa.pk
    assert detail["channel_counts"] == {"chat": 2, "facebook": 1, "phone": 1}


def test_merging_a_customer_into_itself_or_twice_is_a_conflict(api, lisa_twice):
    email_lisa, phone_lisa = lisa_twice

    assert api.post(reverse("customer-merge", args=[email_lisa.pk]), {"other": email_lisa.pk}, format="json").status_code == 409
    api.post(reverse("customer-merge", args=[email_lisa.pk]), {"other": phone_lisa.pk}, format="json")
    again = api.post(reverse("customer-merge", args=[email_lisa.pk]), {"other": phone_lisa.pk}, format="json")
    assert again.status_code == 409
    missing = api.post(reverse("customer-merge", args=[email_lisa.pk]), {"other": 999999}, format="json")
    assert missing.status_code == 404


def test_accepting_a_suggestion_merges_into_the_older(api, settings):
    settings.AUTO_MERGE = False
    interactions_ingest(items=[item("1", [("email", "a@example.com")])])
    interactions_ingest(items=[item("2", [("chat", "v-1")])])
    interactions_ingest(items=[item("3", [("chat", "v-1"), ("email", "a@example.com")])])
    older, newer = Customer.objects.order_by("pk")
    suggestion = api.get(reverse("merge-suggestion-list"), {"status": "pending"}).json()["results"][0]

    response = api.post(reverse("merge-suggestion-accept", args=[suggestion["id"]]))

    assert response.status_code == 201
    assert response.json()["survivor_id"] == older.pk and response.json()["merged_id"] == newer.pk
    assert api.post(reverse("merge-suggestion-dismiss", args=[suggestion["id"]])).status_code == 409
