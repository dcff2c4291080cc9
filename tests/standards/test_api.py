from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse

from standards import services
from standards.models import CannedResponseUse
from tests.factories import ConversationFactory, CustomerFactory, InteractionFactory
from tests.standards.factories import (
    CannedResponseFactory,
    CannedResponseVariantFactory,
    StandardFactory,
    user_in_group,
)

pytestmark = pytest.mark.django_db
UTC = ZoneInfo("UTC")


@pytest.fixture
def lead(django_user_model):
    return user_in_group(django_user_model, "lead", "CX leads")


def _warm(api):
    """The token's first use loads it (and writes its last-used time); later requests find it cached."""
    api.get(reverse("standard-list"))


def _published(lead, **fields):
    standard = StandardFactory(effective_from=datetime(2025, 6, 1, tzinfo=UTC), **fields)
    services.standard_publish(standard=standard, actor=lead, reason="v1")
    return standard


def test_standard_list_pins_its_queries_and_filters(api, lead, django_assert_num_queries):
    # given
    chat = _published(lead, title="Chat first reply", channels=["chat"])
    StandardFactory(title="Draft idea")
    _published(lead, title="Resolve within a day", metric="resolution_time", target=86400)
    _warm(api)
    # when
    with django_assert_num_queries(3):  # count, page, segments
        response = api.get(reverse("standard-list"), {"status": "active"})
    # then
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    first = body["results"][0]
    assert first["id"] == chat.pk
    assert (first["title"], first["status"], first["channels"], first["current_version"]) == (
        "Chat first reply", "active", ["chat"], 1)
    assert first["why"] == chat.why and first["metric"] == "first_response_time"
    assert [r["title"] for r in api.get(reverse("standard-list"), {"q": "resolve"}).json()["results"]] == [
        "Resolve within a day"]


def test_standard_list_refuses_bad_filters(api):
    response = api.get(reverse("standard-list"), {"status": "sleeping"})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid" and "status" in response.json()["errors"]


def test_standard_detail_holds_versions_and_the_proposal_that_made_them(api, lead, django_user_model):
    # given
    agent = user_in_group(django_user_model, "agent1", "Agents")
    standard = _published(lead, target=3600)
    proposal = services.proposal_create(standard=standard, author=agent, kind="change", reasoning="Faster",
                                        proposed_target=1800)
    services.proposal_accept(proposal=proposal, actor=lead, reason="Staffed")
    response_tied = CannedResponseFactory(standard=standard)
    # when
    body = api.get(reverse("standard-detail", args=[standard.pk])).json()
    # then
    assert [v["number"] for v in body["versions"]] == [2, 1]
    assert body["versions"][0]["proposal_id"] == proposal.pk and body["versions"][1]["proposal_id"] is None
    assert body["versions"][0]["content"]["target"] == 1800 and body["versions"][1]["author"] == "lead"
    assert body["canned_responses"] == [response_tied.pk]
    diff = api.get(reverse("standard-version-diff", args=[standard.pk, 2])).json()
    assert (diff["from_version"], diff["to_version"]) == (1, 2)
    changed = {row["field"]: row for row in diff["fields"] if row["changed"]}
    assert set(changed) == {"target"} and changed["target"]["old"] == "3600.0"
    assert api.get(reverse("standard-version-diff", args=[standard.pk, 9])).status_code == 404
    assert api.get(reverse("standard-detail", args=[999999])).status_code == 404


def test_compliance_api_per_channel_and_period(api, lead):
    # given: one chat answered in 5 minutes, one email in 20, against a 10-minute promise
    standard = _published(lead, target=600)
    for minutes, channel in [(5, "chat"), (20, "email")]:
        customer = CustomerFactory()
        start = datetime(2025, 6, 10, 10, tzinfo=UTC)
        conversation = ConversationFactory(customer=customer, channels=[channel], opened_at=start, first_inbound_at=start,
                                           first_response_at=start.replace(minute=minutes))
        InteractionFactory(customer=customer, conversation=conversation, channel=channel, occurred_at=start)
    services.compliance_watch(now=datetime(2025, 6, 12, tzinfo=UTC))
    # when
    response = api.get(reverse("standard-compliance"),
                       {"from": "2025-06-01T00:00:00Z", "to": "2025-07-01T00:00:00Z", "by": "channel"})
    # then
    assert response.status_code == 200
    body = response.json()
    totals = body["totals"][str(standard.pk)]
    assert (totals["judged"], totals["met"], totals["breached"], totals["compliance"]) == (2, 1, 1, 0.5)
    groups = body["periods"][0]["standards"][str(standard.pk)]["groups"]
    assert groups["chat"]["compliance"] == 1.0 and groups["email"]["late_mean_seconds"] == 600.0
    # and evaluations list the breach, with its query count pinned
    listed = api.get(reverse("standard-evaluation-list"), {"status": "breached"}).json()
    assert [(e["channel"], e["late_seconds"], e["standard_title"]) for e in listed["results"]] == [
        ("email", 600.0, standard.title)]


def test_evaluation_list_pins_its_queries(api, lead, django_assert_num_queries):
    _published(lead, target=600)
    customers = CustomerFactory.create_batch(3)
    start = datetime(2025, 6, 10, 10, tzinfo=UTC)
    for customer in customers:
        ConversationFactory(customer=customer, channels=["chat"], opened_at=start, first_inbound_at=start)
    services.compliance_watch(now=datetime(2025, 6, 12, tzinfo=UTC))
    _warm(api)
    with django_assert_num_queries(2):  # count, page with its joins
        body = api.get(reverse("standard-evaluation-list")).json()
    assert body["count"] == 3 and {e["status"] for e in body["results"]} == {"breached"}


@pytest.mark.parametrize(
    "params",
    [{"from": "2025-06-01T00:00:00Z"}, {"from": "2025-06-02T00:00:00Z", "to": "2025-06-01T00:00:00Z"},
     {"from": "2025-06-01T00:00:00", "to": "2025-06-02T00:00:00Z"}, {"from": "x", "to": "y"},
     {"from": "2025-06-01T00:00:00Z", "to": "2025-06-02T00:00:00Z", "granularity": "hour"}],
)
def test_compliance_api_refuses_bad_periods(api, params):
    response = api.get(reverse("standard-compliance"), params)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


def test_canned_responses_search_by_words_and_variants(api, django_assert_num_queries):
    # given
    greeting = CannedResponseFactory(title="Greeting", keywords="hello welcome")
    CannedResponseVariantFactory(response=greeting, channel="sms", body="Hi {customer_name}")
    refund = CannedResponseFactory(title="Refund on its way", body="Your refund for {conversation_reference} is sent.")
    CannedResponseVariantFactory(response=refund, channel="email", body="Dear {customer_name}, the money is wired.")
    CannedResponseFactory(title="Old", is_active=False, keywords="refund")
    _warm(api)
    # when
    with django_assert_num_queries(3):  # count, page, variants
        body = api.get(reverse("canned-response-list"), {"q": "refund"}).json()
    # then
    assert [r["title"] for r in body["results"]] == ["Refund on its way"]
    assert body["results"][0]["variants"] == [{"channel": "email", "body": "Dear {customer_name}, the money is wired."}]
    assert [r["id"] for r in api.get(reverse("canned-response-list"), {"q": "wired"}).json()["results"]] == [refund.pk]
    assert [r["id"] for r in api.get(reverse("canned-response-list"), {"q": "welcome"}).json()["results"]] == [greeting.pk]


def test_canned_response_render_fills_placeholders_per_channel(api):
    # given
    response = CannedResponseFactory(body="Hello {customer_name}, {agent_name} here about {conversation_reference}.")
    CannedResponseVariantFactory(response=response, channel="sms", body="Hi {customer_name} - {agent_name} {unknown}")
    customer = CustomerFactory(name="لیلا")
    conversation = ConversationFactory(customer=customer, subject="Late parcel")
    url = reverse("canned-response-render", args=[response.pk])
    # when
    email = api.get(url, {"channel": "email", "customer": customer.pk, "conversation": conversation.pk,
                          "agent_name": "Sara"}).json()
    sms = api.get(url, {"channel": "sms", "customer": customer.pk, "agent_name": "Sara"}).json()
    # then
    assert email["text"] == f"Hello لیلا, Sara here about #{conversation.pk} (Late parcel)."
    assert sms["text"] == "Hi لیلا - Sara {unknown}"
    assert api.get(url, {"customer": 999999}).status_code == 404
    assert api.get(url, {"channel": "pigeon"}).status_code == 400


def test_an_ingested_outbound_message_naming_a_canned_response_records_its_use(api):
    # given
    response = CannedResponseFactory()
    item = {
        "source": "helpdesk", "external_id": "m-1", "channel": "email", "kind": "message", "direction": "outbound",
        "author_type": "agent", "occurred_at": "2025-06-10T10:00:00Z", "identities": [{"kind": "email", "value": "lisa@example.com"}],
        "body": "Hello Lisa", "data": {"canned_response_id": response.pk},
    }
    # when: sent, and replayed
    first = api.post(reverse("interaction-create"), item, format="json")
    api.post(reverse("interaction-create"), item, format="json")
    api.post(reverse("interaction-create"), {**item, "external_id": "m-2", "data": {"canned_response_id": 999999}},
             format="json")
    # then
    assert first.status_code == 201
    (use,) = CannedResponseUse.objects.all()
    assert (use.response_id, use.interaction_id, use.channel) == (response.pk, first.json()["id"], "email")
