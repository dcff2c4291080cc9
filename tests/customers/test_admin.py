"""The customers admin: identity search, the timeline on the customer's page, merge and undo as actions."""

from datetime import datetime, timedelta, timezone

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse

from customers.models import Customer, Merge, MergeSuggestion
from interactions.ingest import IdentityIn, IngestItem
from interactions.services import interactions_ingest
from tests.factories import CustomerFactory, IdentityFactory, SegmentFactory

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)


def ingest(external_id, identities, *, at=T0, channel="chat", kind="message", body=None, name=""):
    return interactions_ingest(items=[IngestItem(
        source="test", external_id=external_id, channel=channel, kind=kind, direction="inbound",
        author_type="customer", occurred_at=at, identities=[IdentityIn(k, v) for k, v in identities],
        customer_name=name, body=body or external_id,
    )])


def changelist(admin_client, **params):
    return admin_client.get(reverse("admin:customers_customer_changelist"), params)


def test_changelist_search_normalises_identities_like_ingestion(admin_client, settings):
    # given
    settings.DEFAULT_PHONE_REGION = "IR"
    ingest("a", [("phone", "0912 345 6789")], name="Sara")
    ingest("b", [("email", "omar@example.com")], name="Omar")

    # when: Persian digits, a local number, and a differently-cased email
    persian = changelist(admin_client, q="۰۹۱۲۳۴۵۶۷۸۹")
    email = changelist(admin_client, q="  OMAR@Example.COM ")

    # then
    assert persian.status_code == 200
    assert [c.name for c in persian.context["cl"].result_list] == ["Sara"]
    assert [c.name for c in email.context["cl"].result_list] == ["Omar"]


def test_changelist_filters_live_customers_and_segments(admin_client):
    vip = SegmentFactory(slug="vip")
    survivor, merged, plain = CustomerFactory(name="S"), CustomerFactory(name="M"), CustomerFactory(name="P")
    survivor.segments.add(vip)
    Customer.objects.filter(pk=merged.pk).update(merged_into=survivor)

    live = changelist(admin_client, state="live")
    tombstones = changelist(admin_client, state="merged")
    in_vip = changelist(admin_client, segments__id__exact=vip.pk)

    assert {c.name for c in live.context["cl"].result_list} == {"S", "P"}
    assert [c.name for c in tombstones.context["cl"].result_list] == ["M"]
    assert [c.name for c in in_vip.context["cl"].result_list] == ["S"]


def test_customer_page_shows_identities_and_the_timeline_of_every_channel(admin_client):
    # given: one customer on four channels
    ingest("c1", [("email", "lisa@example.com"), ("phone", "+4915112345678")], name="Lisa", body="chat: شماره سفارش")
    ingest("e1", [("email", "lisa@example.com")], at=T0 + timedelta(hours=1), channel="email", body="an email")
    ingest("p1", [("phone", "+4915112345678")], at=T0 + timedelta(hours=2), channel="phone", kind="call", body="call")
    ingest("r1", [("phone", "+4915112345678")], at=T0 + timedelta(hours=3), channel="facebook", kind="reaction",
           body="like")
    lisa = Customer.objects.get()

    # when
    response = admin_client.get(reverse("admin:customers_customer_change", args=[lisa.pk]))

    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert "lisa@example.com" in html and "+4915112345678" in html
    timeline = html[html.index('class="crm-timeline"'):]
    positions = [timeline.index(text) for text in ("like", "call", "an email", "chat: شماره سفارش")]
    assert positions == sorted(positions), "newest first"
    assert "chat: 1, email: 1, facebook: 1, phone: 1" in html
    all_of_them = html[html.index("All interactions of this customer") - 200:].split('href="')[1].split('"')[0]
    listed = admin_client.get(all_of_them.replace("&amp;", "&"))
    assert listed.status_code == 200 and listed.context["cl"].result_count == 4


def test_editing_a_customer_goes_through_the_service(admin_client):
    customer = CustomerFactory(name="Old")
    IdentityFactory(customer=customer, value="old@example.com")
    url = reverse("admin:customers_customer_change", args=[customer.pk])
    vip = SegmentFactory(slug="vip")

    response = admin_client.post(url, {
        "name": "New name", "attributes": '{"tier": "gold"}', "switching_cost": "120.50", "segments": [vip.pk],
        "identities-TOTAL_FORMS": "1", "identities-INITIAL_FORMS": "1", "identities-MIN_NUM_FORMS": "0",
        "identities-MAX_NUM_FORMS": "1000", "identities-0-id": customer.identities.get().pk,
        "identities-0-customer": customer.pk,
    })

    assert response.status_code == 302, response.content.decode()[:2000]
    customer.refresh_from_db()
    assert (customer.name, customer.attributes, str(customer.switching_cost)) == ("New name", {"tier": "gold"}, "120.50")
    assert list(customer.segments.values_list("slug", flat=True)) == ["vip"]
    assert list(customer.identities.values_list("value", flat=True)) == ["old@example.com"]


def test_a_tombstone_is_read_only_and_customers_cannot_be_deleted(admin_client):
    survivor = CustomerFactory(name="S")
    merged = CustomerFactory(name="M", merged_into=survivor)

    page = admin_client.get(reverse("admin:customers_customer_change", args=[merged.pk]))
    delete = admin_client.get(reverse("admin:customers_customer_delete", args=[survivor.pk]))

    assert page.status_code == 200
    assert 'name="name"' not in page.content.decode()
    assert delete.status_code == 403


def test_merge_action_keeps_the_oldest_and_undo_action_gives_everything_back(admin_client):
    # given
    ingest("a", [("email", "lisa@example.com")], name="Lisa")
    ingest("b", [("phone", "+4915112345678")], at=T0 + timedelta(days=1), channel="phone", kind="call")
    older, newer = Customer.objects.order_by("created_at", "pk")

    # when: merged from the changelist
    response = admin_client.post(reverse("admin:customers_customer_changelist"), {
        "action": "merge_selected", ACTION_CHECKBOX_NAME: [older.pk, newer.pk],
    }, follow=True)

    # then
    assert response.status_code == 200
    newer.refresh_from_db()
    assert newer.merged_into_id == older.pk
    assert set(older.identities.values_list("value", flat=True)) == {"lisa@example.com", "+4915112345678"}
    merge = Merge.objects.get()

    # when: undone from the merges changelist
    response = admin_client.post(reverse("admin:customers_merge_changelist"), {
        "action": "undo_selected", ACTION_CHECKBOX_NAME: [merge.pk],
    }, follow=True)

    # then
    assert response.status_code == 200
    newer.refresh_from_db()
    merge.refresh_from_db()
    assert newer.merged_into_id is None and merge.undone_at is not None
    assert list(newer.identities.values_list("value", flat=True)) == ["+4915112345678"]
    assert list(newer.interactions.values_list("external_id", flat=True)) == ["b"]

    # when: undone again — refused with a message, nothing changes
    response = admin_client.post(reverse("admin:customers_merge_changelist"), {
        "action": "undo_selected", ACTION_CHECKBOX_NAME: [merge.pk],
    }, follow=True)
    assert any("already" in str(m) for m in response.context["messages"])


def test_merge_action_needs_two_live_customers(admin_client):
    one = CustomerFactory()

    response = admin_client.post(reverse("admin:customers_customer_changelist"), {
        "action": "merge_selected", ACTION_CHECKBOX_NAME: [one.pk],
    }, follow=True)

    assert "at least two" in " ".join(str(m) for m in response.context["messages"])
    assert not Merge.objects.exists()


def test_suggestions_are_accepted_and_dismissed_from_the_admin(admin_client, settings):
    # given: auto-merge off, an interaction carrying both identities leaves a suggestion
    settings.AUTO_MERGE = False
    ingest("a", [("email", "lisa@example.com")])
    ingest("b", [("phone", "+4915112345678")], at=T0 + timedelta(hours=1))
    ingest("c", [("email", "lisa@example.com"), ("phone", "+4915112345678")], at=T0 + timedelta(hours=2))
    ingest("d", [("email", "x@example.com")], at=T0 + timedelta(hours=3))
    ingest("e", [("phone", "+4915199999999")], at=T0 + timedelta(hours=4))
    ingest("f", [("email", "x@example.com"), ("phone", "+4915199999999")], at=T0 + timedelta(hours=5))
    first, second = MergeSuggestion.objects.order_by("pk")
    url = reverse("admin:customers_mergesuggestion_changelist")

    # when
    admin_client.post(url, {"action": "accept_selected", ACTION_CHECKBOX_NAME: [first.pk]})
    admin_client.post(url, {"action": "dismiss_selected", ACTION_CHECKBOX_NAME: [second.pk]})

    # then
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == "accepted" and first.merge is not None
    assert second.status == "dismissed" and second.merge is None
    assert Merge.objects.count() == 1
    assert admin_client.get(url).status_code == 200
    assert admin_client.get(reverse("admin:customers_merge_changelist")).status_code == 200


def test_the_customer_page_links_to_the_agents_page(admin_client):
    customer = CustomerFactory(name="Lisa")

    page = admin_client.get(reverse("admin:customers_customer_change", args=[customer.pk])).content.decode()
    agent_url = reverse("admin:customers_customer_agent", args=[customer.pk])

    assert f'href="{agent_url}"' in page
    assert admin_client.get(agent_url).status_code == 200
