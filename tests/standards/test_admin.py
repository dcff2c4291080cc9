import pytest
from django.urls import reverse

from standards import services
from standards.models import Acknowledgement, BusinessCalendar, CannedResponse, Proposal, Standard
from tests.standards.factories import (
    BusinessCalendarFactory,
    CannedResponseVariantFactory,
    StandardFactory,
    user_in_group,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def lead(django_user_model):
    return user_in_group(django_user_model, "lead", "CX leads")


@pytest.fixture
def agent(django_user_model):
    return user_in_group(django_user_model, "agent1", "Agents")


def _as(client, user):
    client.force_login(user)
    return client


def test_lead_adds_and_publishes_a_standard_through_the_admin(client, lead):
    # given
    _as(client, lead)
    calendar = BusinessCalendarFactory()
    # when: add
    response = client.post(reverse("admin:standards_standard_add"), {
        "title": "Chat first reply in 2 minutes", "description": "", "why": "Chat customers leave fast.",
        "goal": "No one waits alone.", "how": "Greet with a canned response.", "metric": "first_response_time",
        "target": "120", "channels": ["chat"], "calendar": calendar.pk, "effective_from_0": "", "effective_from_1": "",
        "effective_to_0": "", "effective_to_1": "",
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    standard = Standard.objects.get()
    assert (standard.status, standard.channels, standard.created_by) == ("draft", ["chat"], lead)
    # when: publish without a reason, then with one
    url = reverse("admin:standards_standard_publish", args=[standard.pk])
    assert client.post(url, {"reason": ""}).status_code == 200
    response = client.post(url, {"reason": "Launch of chat support"})
    # then
    assert response.status_code == 302
    standard.refresh_from_db()
    assert standard.status == "active" and standard.current_version.reason == "Launch of chat support"
    assert standard.current_version.content["calendar"]["name"] == calendar.name
    page = client.get(reverse("admin:standards_standard_change", args=[standard.pk])).content.decode()
    assert "Version 1 (active)" in page and "Chat customers leave fast." in page


def test_agent_reads_acknowledges_and_proposes_but_cannot_edit_or_publish(client, lead, agent):
    # given
    standard = StandardFactory(title="Reply within the hour", target=3600)
    services.standard_publish(standard=standard, actor=lead, reason="v1")
    _as(client, agent)
    change_url = reverse("admin:standards_standard_change", args=[standard.pk])
    # then: reads it, read-only
    page = client.get(change_url).content.decode()
    assert "Reply within the hour" in page and 'name="_save"' not in page and "Publish a version" not in page
    assert "agent1" in page  # listed among those who have not acknowledged
    assert client.post(change_url, {"title": "changed"}).status_code == 403
    assert client.get(reverse("admin:standards_standard_publish", args=[standard.pk])).status_code == 403
    assert client.get(reverse("admin:standards_standard_add")).status_code == 403
    # when: acknowledges
    assert client.post(reverse("admin:standards_standard_acknowledge", args=[standard.pk])).status_code == 302
    assert Acknowledgement.objects.filter(user=agent, version=standard.current_version).exists()
    assert "You have acknowledged this version." in client.get(change_url).content.decode()
    # when: proposes, pre-filled from the standard's page
    add_url = reverse("admin:standards_proposal_add")
    assert f'value="{standard.pk}" selected' in client.get(add_url, {"standard": standard.pk}).content.decode()
    response = client.post(add_url, {"standard": standard.pk, "kind": "change", "reasoning": "Mornings are quiet",
                                     "proposed_target": "1800"})
    assert response.status_code == 302
    proposal = Proposal.objects.get()
    assert (proposal.author, proposal.proposed_target, proposal.status) == (agent, 1800, "open")
    # and comments, but cannot decide
    client.post(reverse("admin:standards_proposal_comment", args=[proposal.pk]), {"body": "See the queue stats"})
    assert proposal.comments.get().author == agent
    assert client.post(reverse("admin:standards_proposal_decide", args=[proposal.pk]),
                       {"decision": "accept", "reason": "me"}).status_code == 403


def test_lead_accepts_a_proposal_and_sees_the_new_version_and_its_diff(client, lead, agent):
    # given
    standard = StandardFactory(target=3600)
    services.standard_publish(standard=standard, actor=lead, reason="v1")
    proposal = services.proposal_create(standard=standard, author=agent, kind="change", reasoning="Faster",
                                        proposed_target=1800, proposed_how="Answer with the greeting first.")
    _as(client, lead)
    page = client.get(reverse("admin:standards_proposal_change", args=[proposal.pk])).content.decode()
    assert 'id="accept-proposal"' in page
    # when
    response = client.post(reverse("admin:standards_proposal_decide", args=[proposal.pk]),
                           {"decision": "accept", "reason": "We have the staff"})
    # then
    assert response.status_code == 302
    proposal.refresh_from_db()
    assert proposal.status == "accepted" and proposal.produced_version.number == 2
    versions = client.get(reverse("admin:standards_standard_versions", args=[standard.pk])).content.decode()
    assert "Version 1 → version 2" in versions
    assert "<ins>1800.0</ins>" in versions and "<ins>Answer" in versions
    assert "We have the staff" in versions
    # deciding twice is refused with a message, not an error page
    again = client.post(reverse("admin:standards_proposal_decide", args=[proposal.pk]),
                        {"decision": "reject", "reason": "oops"}, follow=True)
    assert "already accepted" in again.content.decode()


def test_changelists_render_for_leads_and_agents(client, lead, agent, django_user_model):
    standard = StandardFactory()
    services.standard_publish(standard=standard, actor=lead, reason="v1")
    services.acknowledgement_create(standard=standard, user=agent)
    CannedResponseVariantFactory()
    for user in (lead, agent):
        _as(client, user)
        for name in ("standard", "standardversion", "acknowledgement", "proposal", "evaluation", "cannedresponse",
                     "businesscalendar"):
            response = client.get(reverse(f"admin:standards_{name}_changelist"))
            assert response.status_code == 200, (user, name)
    _as(client, lead)
    page = client.get(reverse("admin:standards_standard_changelist")).content.decode()
    assert "1 / 2" in page  # one of the two customer-facing staff acknowledged


def test_calendar_with_a_bad_schedule_is_refused(client, lead):
    _as(client, lead)
    response = client.post(reverse("admin:standards_businesscalendar_add"), {
        "name": "Broken", "time_zone": "Mars/Olympus", "schedule": '{"1": [["09:00", "17:00"]]}',
        "holidays-TOTAL_FORMS": "0", "holidays-INITIAL_FORMS": "0",
    })
    assert response.status_code == 200 and "Unknown time zone" in response.content.decode()
    assert not BusinessCalendar.objects.exists()


def test_lead_writes_canned_responses_with_channel_variants(client, lead):
    _as(client, lead)
    response = client.post(reverse("admin:standards_cannedresponse_add"), {
        "title": "Greeting", "body": "Hello {customer_name}", "keywords": "hi", "is_active": "on", "standard": "",
        "variants-TOTAL_FORMS": "1", "variants-INITIAL_FORMS": "0", "variants-0-channel": "sms",
        "variants-0-body": "Hi {customer_name}",
    })
    assert response.status_code == 302, response.content.decode()[:3000]
    assert list(CannedResponse.objects.get().variants.values_list("channel", "body")) == [("sms", "Hi {customer_name}")]


def test_standard_changelist_counts_acknowledgements_in_fixed_queries(client, lead, agent, django_assert_max_num_queries):
    # given
    for _ in range(5):
        standard = StandardFactory()
        services.standard_publish(standard=standard, actor=lead, reason="v1")
        services.acknowledgement_create(standard=standard, user=agent)
    _as(client, lead)
    client.get(reverse("admin:standards_standard_changelist"))
    # when / then: more standards do not mean more queries
    with django_assert_max_num_queries(12) as captured:
        page = client.get(reverse("admin:standards_standard_changelist")).content.decode()
    assert page.count("1 / 2") == 5
    before = len(captured)
    for _ in range(5):
        services.standard_publish(standard=StandardFactory(), actor=lead, reason="v1")
    with django_assert_max_num_queries(before):
        client.get(reverse("admin:standards_standard_changelist"))
