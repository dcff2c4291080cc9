"""rows_insert / rows_update store exactly what bulk_create / bulk_update would."""

from datetime import datetime, timezone

import pytest

from crm.bulk import instance_factory, rows_fetch, rows_insert, rows_update, select_list
from customers.models import Customer
from interactions.models import Conversation, Interaction

pytestmark = pytest.mark.django_db
AT = datetime(2026, 5, 1, 12, 30, tzinfo=timezone.utc)


def test_rows_insert_sets_primary_keys_in_order_and_stores_every_field():
    # given
    customers = [Customer(name=f"مشتری {n}", attributes={"n": n, "tags": ["a", None]}) for n in range(3)]

    # when
    rows_insert(Customer, customers)
    interactions = [
        Interaction(customer=c, channel="whatsapp", kind="message", direction="inbound", author_type="customer",
                    occurred_at=AT, body=f"سلام {c.name}", sentiment=-0.5 if i else None, source="t",
                    external_id=str(i), data={"nested": {"i": i}})
        for i, c in enumerate(customers)
    ]
    rows_insert(Interaction, interactions)

    # then
    assert [c.pk for c in customers] == sorted(c.pk for c in customers)
    stored = {c.pk: c for c in Customer.objects.all()}
    for customer in customers:
        assert customer._state.adding is False
        assert (stored[customer.pk].name, stored[customer.pk].attributes) == (customer.name, customer.attributes)
        assert stored[customer.pk].updated_at is not None
    rows = list(Interaction.objects.order_by("pk").values("pk", "customer_id", "body", "sentiment", "data",
                                                          "occurred_at", "conversation_id"))
    assert rows == [
        {"pk": i.pk, "customer_id": i.customer_id, "body": i.body, "sentiment": i.sentiment, "data": i.data,
         "occurred_at": AT, "conversation_id": None}
        for i in interactions
    ]


def test_rows_update_writes_only_the_named_fields():
    customer = Customer.objects.create(name="Lisa")
    conversations = rows_insert(Conversation, [
        Conversation(customer=customer, opened_at=AT, last_activity_at=AT, channels=["chat"]) for _ in range(2)
    ])
    first, second = conversations
    first.channels, first.status, first.subject = ["chat", "email"], "resolved", "not saved"
    second.channels, second.reopen_count = ["phone"], 3

    assert rows_update(Conversation, conversations, ["channels", "status", "reopen_count"]) == 2

    stored = {c.pk: c for c in Conversation.objects.all()}
    assert (stored[first.pk].channels, stored[first.pk].status, stored[first.pk].subject) == (["chat", "email"], "resolved", "")
    assert (stored[second.pk].channels, stored[second.pk].reopen_count) == (["phone"], 3)


def test_instance_factory_builds_what_the_keyword_constructor_builds():
    build = instance_factory(Conversation)

    fast = build(customer_id=7, opened_at=AT, last_activity_at=AT, subject="Parcel")
    slow = Conversation(customer_id=7, opened_at=AT, last_activity_at=AT, subject="Parcel")

    fields = [f.attname for f in Conversation._meta.concrete_fields if f.attname not in ("created_at", "updated_at")]
    assert [getattr(fast, name) for name in fields] == [getattr(slow, name) for name in fields]
    assert fast.created_at is not None
    assert fast._state.adding is True
    # A callable default is called for each instance, never shared between them.
    other = build(customer_id=7, opened_at=AT, last_activity_at=AT)
    fast.channels.append("chat")
    assert other.channels == []


def test_rows_fetch_gives_what_the_orm_gives():
    customer = Customer.objects.create(name="Lisa")
    rows_insert(Conversation, [
        Conversation(customer=customer, opened_at=AT, last_activity_at=AT, channels=["chat", "email"],
                     subject="سلام") for _ in range(2)
    ])

    fetched = rows_fetch(
        Conversation, f"SELECT {select_list(Conversation, 'c')} FROM interactions_conversation c ORDER BY c.id", []
    )

    fields = [f.attname for f in Conversation._meta.concrete_fields]
    expected = [[getattr(c, name) for name in fields] for c in Conversation.objects.order_by("id")]
    assert [[getattr(c, name) for name in fields] for c in fetched] == expected
    assert fetched[0].channels == ["chat", "email"]
    assert fetched[0]._state.adding is False


def test_rows_insert_sends_a_shared_value_once_and_keeps_values_that_only_look_alike():
    # given: customers identical in every column (one statement without arrays), then interactions
    # whose columns mix shared values with ones Python calls equal but the database stores apart
    customers = rows_insert(Customer, [Customer(name="Same", attributes={}) for _ in range(3)])
    assert len({c.pk for c in customers}) == 3
    interactions = [
        Interaction(customer=customers[i], channel="chat", kind="message", direction="inbound",
                    author_type="customer", occurred_at=AT, source="same", external_id=f"e{i}",
                    sentiment=sentiment, data=data)
        for i, (sentiment, data) in enumerate([(0.0, {"n": 1}), (-0.0, {"n": True}), (None, {})])
    ]

    # when
    rows_insert(Interaction, interactions)

    # then
    stored = list(Interaction.objects.order_by("pk").values_list("customer_id", "source", "occurred_at", "data"))
    assert stored == [(customers[i].pk, "same", AT, data) for i, data in enumerate([{"n": 1}, {"n": True}, {}])]
    assert [type(v) for _, _, _, v in stored][:2] == [dict, dict]
    assert Interaction.objects.get(external_id="e1").data["n"] is True
    assert Customer.objects.filter(name="Same", attributes={}).count() == 3
