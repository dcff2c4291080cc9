from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from integrations.models import WebhookDelivery, WebhookSubscription
from standards import selectors, services
from standards.models import Acknowledgement, CannedResponseUse, Evaluation, Proposal, Standard
from tests.factories import ConversationFactory, CustomerFactory, InteractionFactory, SegmentFactory
from tests.standards.factories import (
    BusinessCalendarFactory,
    CannedResponseFactory,
    HolidayFactory,
    StandardFactory,
    user_in_group,
)

pytestmark = pytest.mark.django_db
BERLIN = ZoneInfo("Europe/Berlin")
UTC = ZoneInfo("UTC")


def at(day, hour, minute=0):
    return datetime(2025, 6, day, hour, minute, tzinfo=BERLIN)


@pytest.fixture
def lead(django_user_model):
    return user_in_group(django_user_model, "lead", "CX leads")


@pytest.fixture
def agent(django_user_model):
    return user_in_group(django_user_model, "agent1", "Agents")


@pytest.fixture
def office_hours():
    calendar = BusinessCalendarFactory()
    HolidayFactory(calendar=calendar, date=at(9, 0).date(), name="Whit Monday")
    return calendar


def test_groups_made_by_the_migration_hold_the_right_permissions(lead, agent):
    assert lead.has_perm("standards.publish_standard")
    assert lead.has_perm("standards.decide_proposal")
    assert lead.has_perm("standards.change_standard")
    assert agent.has_perm("standards.view_standard")
    assert agent.has_perm("standards.add_acknowledgement")
    assert agent.has_perm("standards.add_proposal")
    assert agent.has_perm("standards.add_proposalcomment")
    assert not agent.has_perm("standards.change_standard")
    assert not agent.has_perm("standards.publish_standard")
    assert not agent.has_perm("standards.decide_proposal")


def test_publish_makes_an_immutable_version_with_the_whole_content(lead, office_hours):
    # given
    segment = SegmentFactory(slug="vip")
    standard = StandardFactory(calendar=office_hours, channels=["chat", "email"])
    standard.segments.add(segment)
    # when
    version = services.standard_publish(standard=standard, actor=lead, reason="First publication")
    # then
    standard.refresh_from_db()
    assert standard.status == Standard.Status.ACTIVE
    assert standard.current_version == version
    assert version.number == 1
    assert version.author == lead
    assert version.reason == "First publication"
    assert version.content["channels"] == ["chat", "email"]
    assert version.content["segments"] == ["vip"]
    assert version.content["calendar"]["holidays"] == ["2025-06-09"]
    assert version.content["why"] == standard.why


def test_an_agent_cannot_publish(agent):
    with pytest.raises(PermissionDenied):
        services.standard_publish(standard=StandardFactory(), actor=agent, reason="x")


def test_publish_refuses_a_standard_with_bad_fields(lead):
    with pytest.raises(ValidationError) as error:
        services.standard_publish(standard=StandardFactory(target=0, channels=["pigeon"]), actor=lead, reason="x")
    assert set(error.value.message_dict) == {"target", "channels"}


def test_publish_needs_a_reason(lead):
    with pytest.raises(ValidationError):
        services.standard_publish(standard=StandardFactory(), actor=lead, reason="  ")


def test_unacknowledged_lists_staff_without_the_current_version(lead, agent, django_user_model):
    # given
    other = user_in_group(django_user_model, "agent2", "Agents")
    standard = StandardFactory()
    services.standard_publish(standard=standard, actor=lead, reason="v1")
    services.acknowledgement_create(standard=standard, user=agent)
    services.acknowledgement_create(standard=standard, user=agent)  # twice is once
    # then
    assert list(selectors.standard_unacknowledged_users(standard=standard)) == [other, lead]
    # when a new version is published everyone acknowledges again
    services.standard_publish(standard=standard, actor=lead, reason="v2")
    standard.refresh_from_db()
    assert set(selectors.standard_unacknowledged_users(standard=standard)) == {agent, other, lead}
    assert Acknowledgement.objects.count() == 1


def test_proposal_accepted_produces_a_linked_version(lead, agent):
    # given
    standard = StandardFactory(target=3600)
    services.standard_publish(standard=standard, actor=lead, reason="v1")
    proposal = services.proposal_create(
        standard=standard, author=agent, kind="change", reasoning="Chat customers wait less", proposed_target=1800
    )
    services.proposal_comment_create(proposal=proposal, author=lead, body="Can we staff it?")
    # when
    proposal = services.proposal_accept(proposal=proposal, actor=lead, reason="Staffed")
    # then
    standard.refresh_from_db()
    assert proposal.status == Proposal.Status.ACCEPTED
    assert proposal.produced_version == standard.current_version
    assert proposal.produced_version.number == 2
    assert proposal.produced_version.content["target"] == 1800
    assert "Staffed" in proposal.produced_version.reason
    assert proposal.comments.count() == 1
    diff = {row["field"]: row for row in selectors.version_diff(old=standard.versions.get(number=1), new=standard.current_version)}
    assert diff["target"]["changed"] and not diff["title"]["changed"]
    assert "<ins>1800.0</ins>" in diff["target"]["html"]


def test_retirement_proposal_retires(lead, agent):
    standard = StandardFactory()
    services.standard_publish(standard=standard, actor=lead, reason="v1")
    proposal = services.proposal_create(standard=standard, author=agent, kind="retirement", reasoning="Obsolete")
    services.proposal_accept(proposal=proposal, actor=lead, reason="Agreed")
    standard.refresh_from_db()
    assert standard.status == Standard.Status.RETIRED
    assert standard.current_version.status == "retired"


def test_only_a_lead_decides_and_only_once(lead, agent):
    standard = StandardFactory()
    services.standard_publish(standard=standard, actor=lead, reason="v1")
    proposal = services.proposal_create(standard=standard, author=agent, kind="revision", reasoning="Clearer")
    with pytest.raises(PermissionDenied):
        services.proposal_reject(proposal=proposal, actor=agent, reason="no")
    services.proposal_reject(proposal=proposal, actor=lead, reason="Already clear")
    with pytest.raises(ValidationError):
        services.proposal_accept(proposal=proposal, actor=lead, reason="changed my mind")
    proposal.refresh_from_db()
    assert (proposal.status, proposal.decision_reason, proposal.produced_version) == ("rejected", "Already clear", None)


# --- compliance ----------------------------------------------------------------------


def _conversation(*, inbound_at, response_at=None, channel="chat", resolved_at=None, customer=None):
    customer = customer or CustomerFactory()
    conversation = ConversationFactory(
        customer=customer, channels=[channel], opened_at=inbound_at, first_inbound_at=inbound_at,
        first_response_at=response_at, resolved_at=resolved_at, status="resolved" if resolved_at else "open",
    )
    InteractionFactory(customer=customer, conversation=conversation, channel=channel, occurred_at=inbound_at)
    if response_at:
        InteractionFactory(customer=customer, conversation=conversation, channel=channel, occurred_at=response_at,
                           direction="outbound", author_type="agent")
    return conversation


def _published(lead, **fields):
    standard = StandardFactory(effective_from=at(1, 0), **fields)
    services.standard_publish(standard=standard, actor=lead, reason="v1")
    return standard


def test_compliance_in_business_hours_across_a_weekend_and_a_holiday(lead, office_hours):
    # given: first reply within 90 business minutes, Mon-Fri 09-17 Berlin, Whit Monday off
    standard = _published(lead, calendar=office_hours, target=90 * 60)
    # Friday 16:00 → Tuesday 10:00 is two business hours (Sat, Sun, holiday Monday do not count)
    late = _conversation(inbound_at=at(6, 16), response_at=at(10, 10))
    # Friday 16:30 → Tuesday 09:30 is one business hour
    on_time = _conversation(inbound_at=at(6, 16, 30), response_at=at(10, 9, 30))
    # when
    services.conversations_compliance_evaluate(conversation_ids=[late.pk, on_time.pk], now=at(11, 12))
    # then
    breached = Evaluation.objects.get(subject_id=late.pk)
    assert breached.standard == standard
    assert breached.status == Evaluation.Status.BREACHED
    assert breached.elapsed_seconds == 2 * 3600
    assert breached.late_seconds == 30 * 60
    assert breached.due_at == at(10, 9, 30)
    assert breached.breached_at == at(10, 9, 30)
    met = Evaluation.objects.get(subject_id=on_time.pk)
    assert (met.status, met.elapsed_seconds, met.late_seconds) == ("met", 3600, None)


def test_around_the_clock_the_same_reply_is_days_late(lead):
    _published(lead, target=90 * 60)
    conversation = _conversation(inbound_at=at(6, 16), response_at=at(10, 10))
    (evaluation,) = services.conversations_compliance_evaluate(conversation_ids=[conversation.pk], now=at(11, 12))
    assert evaluation.status == "breached"
    assert evaluation.late_seconds == (at(10, 10) - at(6, 16)).total_seconds() - 90 * 60


def test_standards_apply_by_channel_segment_and_time(lead):
    # given
    vip = SegmentFactory(slug="vip")
    chat_only = _published(lead, channels=["chat"])
    vip_only = _published(lead)
    vip_only.segments.add(vip)
    services.standard_publish(standard=vip_only, actor=lead, reason="segments")
    vip_customer = CustomerFactory()
    vip_customer.segments.add(vip)
    email_vip = _conversation(inbound_at=at(10, 10), response_at=at(10, 10, 5), channel="email", customer=vip_customer)
    chat_plain = _conversation(inbound_at=at(10, 10), response_at=at(10, 10, 5))
    before_any = _conversation(inbound_at=datetime(2025, 5, 1, 10, tzinfo=BERLIN), response_at=at(1, 1))
    # when
    services.conversations_compliance_evaluate(
        conversation_ids=[email_vip.pk, chat_plain.pk, before_any.pk], now=at(11, 12)
    )
    # then
    pairs = set(Evaluation.objects.values_list("standard_id", "subject_id"))
    assert pairs == {(vip_only.pk, email_vip.pk), (chat_only.pk, chat_plain.pk)}


def test_running_clock_warns_then_breaches_once_each(lead, settings):
    # given
    settings.STANDARDS_WARNING_FRACTION = 0.8
    subscription = WebhookSubscription.objects.create(
        url="https://example.com/hook", secret="s" * 32, event_types=["standard.breach_warning", "standard.breached"]
    )
    _published(lead, target=600)
    conversation = _conversation(inbound_at=at(10, 10))
    # when / then: 5 minutes in, nothing
    services.compliance_watch(now=at(10, 10, 5))
    assert Evaluation.objects.get().status == "pending"
    # 9 minutes in: a warning
    services.compliance_watch(now=at(10, 10, 9))
    services.compliance_watch(now=at(10, 10, 9, ) + timedelta(seconds=30))
    evaluation = Evaluation.objects.get()
    assert evaluation.status == "warned" and evaluation.warned_at == at(10, 10, 9)
    # 12 minutes in: breached, two minutes late so far
    services.compliance_watch(now=at(10, 10, 12))
    services.compliance_watch(now=at(10, 10, 13))
    evaluation.refresh_from_db()
    assert evaluation.status == "breached"
    assert evaluation.breached_at == at(10, 10, 10)
    assert evaluation.late_seconds == 180
    types = list(WebhookDelivery.objects.filter(subscription=subscription).order_by("id").values_list("event_type", flat=True))
    assert types == ["standard.breach_warning", "standard.breached"]
    # the reply finally comes: the breach stays, with its final lateness
    conversation.first_response_at = at(10, 10, 20)
    conversation.save()
    services.compliance_watch(now=at(10, 11))
    evaluation.refresh_from_db()
    assert (evaluation.status, evaluation.late_seconds, evaluation.completed_at) == ("breached", 600, at(10, 10, 20))


def test_next_response_time_judges_the_worst_wait(lead):
    _published(lead, metric="next_response_time", target=300)
    customer = CustomerFactory()
    conversation = ConversationFactory(customer=customer, channels=["chat"], opened_at=at(10, 10), first_inbound_at=at(10, 10))
    for minute, direction in [(0, "inbound"), (1, "outbound"), (2, "inbound"), (4, "outbound"), (5, "inbound"), (15, "outbound")]:
        InteractionFactory(customer=customer, conversation=conversation, occurred_at=at(10, 10, minute), direction=direction,
                           author_type="customer" if direction == "inbound" else "agent")
    (evaluation,) = services.conversations_compliance_evaluate(conversation_ids=[conversation.pk], now=at(10, 11))
    assert (evaluation.status, evaluation.elapsed_seconds, evaluation.late_seconds) == ("breached", 600, 300)
    assert evaluation.started_at == at(10, 10, 5)


def test_compliance_summary_per_standard_channel_and_period(lead, django_assert_num_queries):
    # given
    standard = _published(lead, target=600)
    for day, minutes, channel in [(10, 5, "chat"), (10, 20, "email"), (11, 1, "chat"), (20, 30, "chat")]:
        _conversation(inbound_at=at(day, 10), response_at=at(day, 10, minutes), channel=channel)
    services.compliance_watch(now=at(25, 0))
    # when
    with django_assert_num_queries(1):
        summary = selectors.compliance_summary(start=datetime(2025, 6, 9, tzinfo=UTC), end=datetime(2025, 6, 23, tzinfo=UTC), granularity="week", by="channel")
    # then
    sid = str(standard.pk)
    assert summary["totals"][sid] == {"judged": 4, "met": 2, "breached": 2, "compliance": 0.5, "late_mean_seconds": 900.0}
    first_week = summary["periods"][0]["standards"][sid]
    assert (first_week["judged"], first_week["met"]) == (3, 2)
    assert first_week["groups"]["email"] == {"judged": 1, "met": 0, "breached": 1, "compliance": 0.0, "late_mean_seconds": 600.0}
    assert summary["periods"][1]["standards"][sid]["breached"] == 1
    assert [p["start"][:10] for p in summary["periods"]] == ["2025-06-09", "2025-06-16"]


def test_canned_response_uses_recorded_set_based(django_assert_num_queries):
    # given
    response = CannedResponseFactory()
    customer = CustomerFactory()
    used = [
        InteractionFactory(customer=customer, direction="outbound", author_type="agent", data={"canned_response_id": response.pk}),
        InteractionFactory(customer=customer, direction="outbound", author_type="agent", data={"canned_response_id": str(response.pk)}),
    ]
    ignored = [
        InteractionFactory(customer=customer, direction="inbound", data={"canned_response_id": response.pk}),
        InteractionFactory(customer=customer, direction="outbound", author_type="agent", data={"canned_response_id": 999999}),
        InteractionFactory(customer=customer, direction="outbound", author_type="agent", data={"canned_response_id": "x"}),
    ]
    # when
    with django_assert_num_queries(2):
        services.canned_response_uses_record(interactions=used + ignored)
    services.canned_response_uses_record(interactions=used)  # a replay counts nothing twice
    # then
    assert sorted(CannedResponseUse.objects.values_list("interaction_id", flat=True)) == sorted(i.pk for i in used)


def test_time_to_happiness_journeys_judged_in_business_hours_across_a_weekend_and_a_holiday(lead, office_hours):
    # given: happy again within 4 business hours, Mon-Fri 09-17 Berlin, Whit Monday off
    from metrics.services import customers_recompute

    standard = _published(lead, calendar=office_hours, metric="time_to_happiness", target=4 * 3600)
    journeys = {}
    for name, misery_at, magic_at in [
        ("on time", at(6, 16), at(10, 11)),   # Fri 16-17 + Tue 09-11 = 3 business hours
        ("late", at(6, 15), at(10, 12)),      # Fri 15-17 + Tue 09-12 = 5 business hours
        ("still unhappy", at(6, 16, 30), None),
    ]:
        customer = CustomerFactory(name=name)
        InteractionFactory(customer=customer, channel="email", occurred_at=misery_at, sentiment=-0.8)
        if magic_at:
            InteractionFactory(customer=customer, channel="email", occurred_at=magic_at, sentiment=0.9)
        journeys[name] = customer
    customers_recompute(customer_ids=[c.pk for c in journeys.values()], now=at(10, 18))
    # when
    services.compliance_watch(now=at(10, 18))
    # then
    judged = {e.customer.name: e for e in Evaluation.objects.filter(subject="journey", standard=standard)}
    assert (judged["on time"].status, judged["on time"].elapsed_seconds) == ("met", 3 * 3600)
    assert (judged["late"].status, judged["late"].late_seconds) == ("breached", 3600)
    assert judged["late"].breached_at == at(10, 11)
    # Fri 16:30-17 + Tue 09-18 (clipped at 17) = 8.5 business hours, still running
    assert (judged["still unhappy"].status, judged["still unhappy"].late_seconds) == ("breached", 4.5 * 3600)
    assert judged["still unhappy"].completed_at is None


def test_csat_floor_judged_when_the_answer_arrives(lead):
    from metrics.services import survey_response_create

    standard = _published(lead, metric="csat_floor", target=4)
    unhappy = _conversation(inbound_at=at(10, 10), response_at=at(10, 10, 5))
    happy = _conversation(inbound_at=at(10, 10), response_at=at(10, 10, 5))
    survey_response_create(customer_id=unhappy.customer_id, kind="csat", score=2, answered_at=at(10, 11),
                           conversation_id=unhappy.pk)
    survey_response_create(customer_id=happy.customer_id, kind="csat", score=5, answered_at=at(10, 11),
                           conversation_id=happy.pk)
    services.compliance_watch(now=at(10, 12))
    judged = {e.subject_id: (e.status, e.value) for e in Evaluation.objects.filter(standard=standard)}
    assert judged == {unhappy.pk: ("breached", 2.0), happy.pk: ("met", 5.0)}
