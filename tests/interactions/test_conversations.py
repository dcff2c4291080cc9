"""Conversations over the API: list filters with a pinned query count, status and assignee changes."""

from datetime import datetime, timezone

import pytest
from django.urls import reverse

from tests.factories import ConversationFactory, CustomerFactory

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 4, 1, 9, 0, tzinfo=timezone.utc)


def conversation(**fields):
    return ConversationFactory(opened_at=T0, last_activity_at=T0, **fields)


def test_conversation_list_filters_and_pins_its_queries(api, staff_user, django_assert_num_queries):
    # given
    lisa = CustomerFactory()
    on_chat = conversation(customer=lisa, channels=["chat", "email"], assignee=staff_user)
    conversation(customer=lisa, channels=["phone"], status="resolved")
    conversation(channels=["chat"])
    url = reverse("conversation-list")
    api.get(url)

    # when: count, page with assignees joined (the token is cached)
    with django_assert_num_queries(2):
        mine = api.get(url, {"customer": lisa.pk, "status": "open", "channel": "email", "assignee": staff_user.pk})

    # then
    assert mine.status_code == 200
    assert [row["id"] for row in mine.json()["results"]] == [on_chat.pk]
    assert mine.json()["results"][0]["channels"] == ["chat", "email"]
    assert api.get(url, {"status": "closed"}).status_code == 400


def test_resolving_stamps_the_time_and_marks_the_customers_metrics_dirty(api, staff_user):
    from metrics.models import DirtyCustomer

    # given
    chat = conversation(channels=["chat"])
    url = reverse("conversation-detail", args=[chat.pk])

    # when
    resolved = api.patch(url, {"status": "resolved", "assignee_id": staff_user.pk}, format="json")
    reopened = api.patch(url, {"status": "open"}, format="json")

    # then
    assert resolved.status_code == 200 and resolved.json()["resolved_at"] is not None
    assert resolved.json()["assignee_id"] == staff_user.pk
    assert reopened.json()["resolved_at"] is None and reopened.json()["reopen_count"] == 1
    assert DirtyCustomer.objects.filter(customer_id=chat.customer_id).exists()


@pytest.mark.parametrize(("body", "field"), [
    ({"status": "closed"}, "status"),
    ({"assignee_id": 999999}, "assignee_id"),
    ({"subject": "x" * 301}, "subject"),
])
def test_bad_conversation_changes_are_400_and_change_nothing(api, body, field):
    chat = conversation(channels=["chat"], subject="Parcel late")

    response = api.patch(reverse("conversation-detail", args=[chat.pk]), body, format="json")

    assert response.status_code == 400 and field in response.json()["errors"]
    chat.refresh_from_db()
    assert (chat.status, chat.assignee_id, chat.subject) == ("open", None, "Parcel late")
