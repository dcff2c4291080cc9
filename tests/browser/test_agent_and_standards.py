"""In a real browser: the agent's customer page, and a standard's life from publication to an accepted proposal."""

from datetime import timedelta

import pytest
from django.utils import timezone

from customers.models import Identity
from standards.models import Acknowledgement, Proposal, Standard
from tests.factories import ConversationFactory, CustomerFactory, IdentityFactory, InteractionFactory, SegmentFactory
from tests.standards.factories import CannedResponseFactory, StandardFactory, kpi_history, user_in_group

pytestmark = pytest.mark.browser
CHANNELS = ["chat", "email", "phone", "whatsapp", "instagram"]


@pytest.fixture
def people(transactional_db, django_user_model):
    return user_in_group(django_user_model, "lead", "CX leads"), user_in_group(django_user_model, "agent1", "Agents")


def test_agent_sees_every_channel_in_the_timeline_and_older_items_on_scroll(
    live_server, people, login, screenshot, settings
):
    # given: a customer with 60 interactions on five channels; Instagram only in the oldest ones
    settings.AGENT_PAGE_TIMELINE_SIZE = 20
    lead, agent = people
    customer = CustomerFactory(name="Lisa Müller")
    customer.segments.add(SegmentFactory(slug="vip", name="VIP"))
    IdentityFactory(customer=customer, kind=Identity.Kind.EMAIL, value="lisa@example.com")
    IdentityFactory(customer=customer, kind=Identity.Kind.INSTAGRAM, value="lisa.m")
    now = timezone.now()
    conversation = ConversationFactory(customer=customer, channels=["chat"], subject="Parcel late",
                                       opened_at=now - timedelta(minutes=5), first_inbound_at=now - timedelta(minutes=5))
    for i in range(60):
        channel = CHANNELS[min(i // 12, 4)]
        inbound = i % 3 != 1
        InteractionFactory(
            customer=customer, channel=channel, occurred_at=now - timedelta(hours=i, minutes=5),
            conversation=conversation if i < 3 else None,
            direction="inbound" if inbound else "outbound", author_type="customer" if inbound else "agent",
            author_name="" if inbound else "Sara", body=f"item {i} on {channel}",
            sentiment=-0.6 if i == 2 else None, intent="complaint" if i == 2 else "",
        )
    from metrics.services import customers_recompute

    customers_recompute(customer_ids=[customer.pk])
    standard = StandardFactory(title="Chat first reply in 10 minutes", target=600, channels=["chat"])
    from standards.services import standard_publish

    standard_publish(standard=standard, actor=lead, reason="v1", effective_from=now - timedelta(days=1))
    CannedResponseFactory(title="We are on it", standard=standard, body="Hello {customer_name}, {agent_name} here.")
    page = login("agent1", "agent1-password-1")
    # when
    page.goto(f"{live_server.url}/admin/customers/customer/{customer.pk}/agent/")
    # then: the first page holds the four newest channels, labelled, and not yet Instagram
    items = page.locator("#timeline .tl-item")
    assert items.count() == 20
    assert set(items.evaluate_all("els => els.map(e => e.dataset.channel)")) == {"chat", "email"}
    assert page.locator(".tl-author-label-agent").first.inner_text().startswith("Agent: Sara")
    assert page.locator("#standards .standing").first.get_attribute("data-status") == "pending"
    assert "Hello Lisa Müller, agent1 here." in page.locator("#suggestions").inner_text()
    assert page.locator("#unhappy-since").inner_text().startswith("Unhappy since")
    assert page.locator('#snapshot tr[data-key="visits"] td').inner_text() != "—"
    # when the agent scrolls, older items load until the beginning of the history
    for _ in range(10):
        page.locator("#timeline-scroll").hover()
        page.mouse.wheel(0, 4000)
        page.wait_for_timeout(150)
        if items.count() == 60:
            break
    page.wait_for_function("document.querySelectorAll('#timeline .tl-item').length === 60")
    channels = items.evaluate_all("els => els.map(e => e.dataset.channel)")
    assert set(channels) == set(CHANNELS)
    assert channels[-1] == "instagram" and len(set(items.evaluate_all("els => els.map(e => e.dataset.id)"))) == 60
    assert "beginning" in page.locator("#timeline-status").inner_text()
    page.locator("#timeline-scroll").evaluate("el => el.scrollTop = 0")
    screenshot(page, "customer-page", docs=True)

    # and right to left in Persian
    rtl = login("agent1", "agent1-password-1", locale="fa-IR")
    rtl.goto(f"{live_server.url}/admin/customers/customer/{customer.pk}/agent/")
    assert rtl.locator("html").get_attribute("dir") == "rtl"
    box_aside = rtl.locator("aside").bounding_box()
    box_timeline = rtl.locator("#timeline-module").bounding_box()
    assert box_aside["x"] > box_timeline["x"]  # the side column sits on the right
    screenshot(rtl, "customer-page-fa")


def test_lead_publishes_agent_acknowledges_and_proposes_lead_accepts(live_server, people, login, screenshot):
    # given: a draft written by the lead
    lead, agent = people
    standard = StandardFactory(title="Email reply within 4 business hours", target=4 * 3600, channels=["email"],
                               why="Email customers plan their day around our answer.")
    lead_page = login("lead", "lead-password-1")
    change_url = f"{live_server.url}/admin/standards/standard/{standard.pk}/change/"
    # when: the lead publishes it
    lead_page.goto(change_url)
    lead_page.click("text=Publish a version")
    lead_page.fill("#id_reason", "Launch of the email promise")
    lead_page.click("input[type=submit][value=Publish]")
    lead_page.wait_for_url(change_url)
    # then
    assert "Version 1 (active)" in lead_page.locator("#standard-panel").inner_text()
    assert "agent1" in lead_page.locator(".crm-unacknowledged").inner_text()

    # when: the agent acknowledges it and proposes a change
    agent_page = login("agent1", "agent1-password-1")
    agent_page.goto(change_url)
    assert agent_page.locator("text=Publish a version").count() == 0
    agent_page.click("#acknowledge")
    agent_page.wait_for_selector(".crm-acknowledged")
    agent_page.click("text=Propose a change")
    agent_page.select_option("#id_kind", "change")
    agent_page.fill("#id_reasoning", "Most emails arrive before noon; two hours is within reach.")
    agent_page.fill("#id_proposed_target", "7200")
    agent_page.click("input[name=_save]")
    agent_page.wait_for_url(f"{live_server.url}/admin/standards/proposal/")
    proposal = Proposal.objects.get()
    assert (proposal.author_id, proposal.status) == (agent.pk, "open")
    assert Acknowledgement.objects.filter(user=agent, version__standard=standard).exists()
    agent_page.goto(f"{live_server.url}/admin/standards/proposal/{proposal.pk}/change/")
    agent_page.fill("#proposal-discussion textarea", "The morning shift agrees.")
    agent_page.click("#proposal-discussion input[type=submit]")
    agent_page.wait_for_selector("text=The morning shift agrees.")
    screenshot(agent_page, "proposal-by-agent")

    # when: the lead accepts it
    lead_page.goto(f"{live_server.url}/admin/standards/proposal/{proposal.pk}/change/")
    assert "The morning shift agrees." in lead_page.locator("#proposal-discussion").inner_text()
    lead_page.fill("#proposal-decision textarea", "We staff the morning shift.")
    lead_page.click("#accept-proposal")
    lead_page.wait_for_selector("text=version 2")
    # then: the new version, linked and different where the proposal said
    lead_page.click("text=v2")
    lead_page.wait_for_selector("#version-diff")
    assert lead_page.locator("#version-history .version-row").count() == 2
    target_row = lead_page.locator('#version-diff tr[data-field="target"]')
    assert "7200.0" in target_row.locator("ins").inner_text() and "14400.0" in target_row.locator("del").inner_text()
    assert "We staff the morning shift." in lead_page.locator("#version-history").inner_text()
    screenshot(lead_page, "standard-versions")
    standard.refresh_from_db()
    assert standard.current_version.number == 2 and standard.status == Standard.Status.ACTIVE
    # and the agent's acknowledgement is due again
    lead_page.goto(change_url)
    assert "agent1" in lead_page.locator(".crm-unacknowledged").inner_text()


def test_lead_opens_the_dashboard_and_sees_its_charts_drawn(live_server, people, login, screenshot):
    # given
    lead, _ = people
    kpi_history()
    standard = StandardFactory(title="First reply within 15 minutes", target=900)
    from standards.services import compliance_watch, standard_publish

    standard_publish(standard=standard, actor=lead, reason="v1", effective_from=timezone.now() - timedelta(days=400))
    compliance_watch()
    page = login("lead", "lead-password-1")
    # when
    page.goto(f"{live_server.url}/admin/dashboard/?granularity=month&by=channel")
    # then: every chart is an SVG the browser laid out, with lines and points actually drawn
    charts = page.locator("svg.kpi-chart")
    assert charts.count() == 8
    for chart_id in ("nps", "csat_share", "ces_mean", "tth_p50_seconds"):
        chart = page.locator(f"#chart-{chart_id} svg")
        box = chart.bounding_box()
        assert box["width"] > 300 and box["height"] > 100
        lengths = chart.locator("polyline.kpi-line").evaluate_all(
            "els => els.map(e => e.getTotalLength())")
        assert len(lengths) >= 5 and all(length > 0 for length in lengths), (chart_id, lengths)
    bars = page.locator("#chart-compliance rect.kpi-bar").evaluate_all("els => els.map(e => e.getBBox().width)")
    assert len(bars) == 1 and bars[0] > 0
    screenshot(page, "dashboard", docs=True)
    # and by segment
    page.click(".kpi-filters a[href*=\"by=segment\"]")
    page.wait_for_url("**by=segment")
    series = set(page.locator("#chart-nps polyline.kpi-line").evaluate_all("els => els.map(e => e.dataset.series)"))
    assert {"all", "vip", "b2b"} <= series
