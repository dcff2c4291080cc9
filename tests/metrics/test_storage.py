"""The recompute's bulk writes store exactly the values given (binary COPY on PostgreSQL, the ORM elsewhere)."""

from datetime import datetime, timedelta, timezone

import pytest

from customers.models import Customer
from metrics import services, storage
from metrics.models import ConversationMetrics, CustomerSnapshot, Journey

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 9, 0, 0, 123456, tzinfo=timezone.utc)


def test_insert_and_upsert_round_trip_every_value():
    # given: rows with microseconds, awkward floats, nulls, a JSON list and non-Latin text
    customer = Customer.objects.create(name="لیلا")
    journey = (1, T0 - timedelta(days=2), T0, 10, "sentiment", T0 + timedelta(seconds=1), None, None, "", "واتساپ",
               ["chat", "واتساپ"], 3, 2, 0.1 + 0.2, 1, None, 86400.000001, None)
    snapshot = dict(zip(services.SNAPSHOT_FIELDS, [None] * len(services.SNAPSHOT_FIELDS)))
    snapshot.update(journeys=1, visits=2, return_visits=1, churned=False, at_risk=True, latest_nps=9,
                    csat_mean=1 / 3, unhappy_since=T0)
    snapshot_row = (customer.pk, *(snapshot[name] for name in services.SNAPSHOT_FIELDS), T0)

    # when
    storage.insert(Journey, ("customer_id", *services.JOURNEY_FIELDS), [(customer.pk, *journey)])
    storage.upsert(CustomerSnapshot, "customer_id", (*services.SNAPSHOT_FIELDS, "computed_at"), [snapshot_row])
    storage.upsert(CustomerSnapshot, "customer_id", (*services.SNAPSHOT_FIELDS, "computed_at"),
                   [(*snapshot_row[:-1], T0 + timedelta(hours=1))])
    clocks = (customer.pk, "chat", T0, None, None, None, None, None, 0, "none", None, None, 2.5)
    storage.upsert(ConversationMetrics, "conversation_id", services.CONVERSATION_FIELDS, [(77, *clocks)])

    # then
    assert list(Journey.objects.values_list(*services.JOURNEY_FIELDS)) == [journey]
    assert list(CustomerSnapshot.objects.values_list("customer_id", *services.SNAPSHOT_FIELDS, "computed_at")) == [
        (*snapshot_row[:-1], T0 + timedelta(hours=1))]
    assert list(ConversationMetrics.objects.values_list("conversation_id", *services.CONVERSATION_FIELDS)) == [
        (77, *clocks)]
