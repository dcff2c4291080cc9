from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from customers.models import Identity
from standards import services
from tests.factories import ConversationFactory, CustomerFactory, IdentityFactory, InteractionFactory, SegmentFactory
from tests.standards.factories import CannedResponseFactory, CannedResponseVariantFactory, StandardFactory, user_in_group

pytestmark = pytest.mark.django_db
CHANNELS = ["chat", "email", "phone", "whatsapp", "facebook"]


@pytest.fixture
def agent(django_user_model):
    return user_in_group(django_user_model, "agent1", "Agents")


@pytest.fixture
def lisa(django_user_model, settings):
    settings.AGENT_PAGE_TIMELINE_SIZE = 10
    lead = user_in_group(django_user_model, "lead", "CX leads")
    customer = CustomerFactory(name="Lisa Müller")
    customer.segments.add(SegmentFactory(slug="vip", name="VIP"))
    IdentityFactory(customer=customer, kind=Identity.Kind.EMAIL, value="lisa@example.com")
    IdentityFactory(customer=customer, kind=Identity.Kind.PHONE, value="+4915112345678")
    now = timezone.now()
    for i in range(25):  # newest first: chat, email, phone, whatsapp, facebook (facebook only on old pages)
        channel = CHANNELS[min(i // 5, 4)]
        InteractionFactory(customer=customer, channel=channel, occurred_at=now - timedelta(hours=i),
                           body=f"message {i} on {channel}")
    conversation = ConversationFactory(customer=customer, channels=["chat"], opened_at=now - timedelta(minutes=30),
                                       first_inbound_at=now - timedelta(minutes=30), subject="Parcel late")
    standard = StandardFactory(title="Chat reply in 10 minutes", target=600, channels=["chat"])
    services.standard_publish(standard=standard, actor=lead, reason="v1", effective_from=now - timedelta(days=1))
    greeting = CannedResponseFactory(title="Sorry for the wait", standard=standard,
                                     body="Dear {customer_name}, {agent_name} here about {conversation_reference}.")
    CannedResponseVariantFactory(response=greeting, channel="chat", body="Hi {customer_name}! {agent_name} is on {conversation_reference}.")
    return customer, conversation


def test_agent_page_shows_the_customer_whole(client, agent, lisa):
    # given
    customer, conversation = lisa
    client.force_login(agent)
    # when
    response = client.get(reverse("admin:customers_customer_agent", args=[customer.pk]))
    # then
    assert response.status_code == 200
    page = response.content.decode()
    assert "lisa@example.com" in page and "+4915112345678" in page and "VIP" in page
    assert f"#{conversation.pk}" in page and "Parcel late" in page
    standing = response.context["standing"]
    assert [(s["title"], s["status"]) for s in standing] == [("Chat reply in 10 minutes", "breached")]
    assert standing[0]["late_seconds"] >= 20 * 60
    assert f"Hi Lisa Müller! agent1 is on #{conversation.pk} (Parcel late)." in page
    # the first page of the timeline: 10 newest items, facebook not yet
    assert page.count('class="tl-item') == 10
    assert 'data-channel="chat"' in page and 'data-channel="facebook"' not in page


def test_older_timeline_items_load_page_by_page(client, agent, lisa):
    customer, _ = lisa
    client.force_login(agent)
    first = client.get(reverse("admin:customers_customer_agent", args=[customer.pk]))
    cursor, seen = first.context["next_cursor"], 10
    url = reverse("admin:customers_customer_agent_timeline", args=[customer.pk])
    channels = set()
    while cursor:
        page = client.get(url, {"cursor": cursor}).json()
        seen += page["count"]
        channels |= {c for c in CHANNELS if f'data-channel="{c}"' in page["html"]}
        cursor = page["next"]
    assert seen == 25
    assert "facebook" in channels
    assert client.get(url, {"cursor": "garbage"}).status_code == 400


def test_a_merged_customer_page_redirects_to_the_survivor(client, agent, lisa):
    from customers.services import customer_merge

    customer, _ = lisa
    other = CustomerFactory()
    customer_merge(survivor=customer, merged=other)
    client.force_login(agent)
    response = client.get(reverse("admin:customers_customer_agent", args=[other.pk]))
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:customers_customer_agent", args=[customer.pk])
    assert client.get(reverse("admin:customers_customer_agent", args=[999999])).status_code == 404


def test_agent_page_needs_staff_with_the_view_permission(client, django_user_model, lisa):
    customer, _ = lisa
    url = reverse("admin:customers_customer_agent", args=[customer.pk])
    assert client.get(url).status_code == 302  # to the login page
    nobody = django_user_model.objects.create_user(username="nobody", password="x", is_staff=True)
    client.force_login(nobody)
    assert client.get(url).status_code == 403


@pytest.mark.parametrize("language", ["fa", "ar"])
def test_agent_page_is_right_to_left_in_persian_and_arabic(client, agent, lisa, language):
    customer, _ = lisa
    client.force_login(agent)
    page = client.get(reverse("admin:customers_customer_agent", args=[customer.pk]),
                      HTTP_ACCEPT_LANGUAGE=language).content.decode()
    assert f'lang="{language}" dir="rtl"' in page


def test_without_an_open_conversation_the_page_lists_the_standards_that_cover_the_customer(client, agent, lisa):
    customer, conversation = lisa
    conversation.status = "resolved"
    conversation.resolved_at = timezone.now()
    conversation.save()
    client.force_login(agent)
    response = client.get(reverse("admin:customers_customer_agent", args=[customer.pk]))
    assert [(s["title"], s["status"], s["target_text"]) for s in response.context["standing"]] == [
        ("Chat reply in 10 minutes", "not_started", "10m 0s")]
    # no conversation, no channel: the default wording rather than the chat variant
    assert "Dear Lisa Müller, agent1 here about" in response.content.decode()
