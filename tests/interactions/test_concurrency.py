"""Concurrent writers on PostgreSQL: nothing doubled, nothing lost, no deadlock."""

import threading
from datetime import datetime, timedelta, timezone

import pytest
from django.db import connection
from django.urls import reverse
from rest_framework.test import APIClient

from crm.errors import Conflict
from customers.models import Customer
from customers.services import customer_merge
from interactions.ingest import IdentityIn, IngestItem
from interactions.models import Interaction
from interactions.services import interactions_ingest

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
T0 = datetime(2026, 2, 1, tzinfo=timezone.utc)


def run_together(functions):
    """Start every function at the same moment in its own thread; return results or exceptions."""
    barrier = threading.Barrier(len(functions))
    results = [None] * len(functions)

    def run(index, function):
        try:
            barrier.wait()
            results[index] = function()
        except Exception as exc:  # noqa: BLE001 - reported to the test
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, f)) for i, f in enumerate(functions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads), "a writer hung: deadlock?"
    return results


def test_eight_threads_posting_the_same_interaction_store_one_row(make_token):
    token = make_token("interactions:write")
    payload = {
        "source": "shop", "external_id": "order-1", "channel": "store", "kind": "purchase", "direction": "inbound",
        "author_type": "customer", "occurred_at": "2026-02-01T10:00:00Z",
        "identities": [{"kind": "email", "value": "lisa@example.com"}, {"kind": "phone", "value": "+4915112345678"}],
    }

    def post():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return client.post(reverse("interaction-create"), payload, format="json").status_code

    statuses = run_together([post] * 8)

    assert sorted(statuses) == [200] * 7 + [201]
    assert Interaction.objects.count() == 1
    assert Customer.objects.count() == 1


def item(external_id, identities, minutes=0):
    return IngestItem(
        source="t", external_id=external_id, channel="chat", kind="message", direction="inbound",
        author_type="customer", occurred_at=T0 + timedelta(minutes=minutes),
        identities=[IdentityIn(k, v) for k, v in identities],
    )


@pytest.mark.parametrize("round_", range(5))
def test_racing_merges_over_overlapping_customers_neither_deadlock_nor_lose_a_row(round_):
    # given: three customers, A, B and C, each with interactions
    for name in "abc":
        interactions_ingest(items=[item(f"{name}{n}", [("chat", f"visitor-{name}")], n) for n in range(20)])
    a, b, c = (Customer.objects.get(identities__value=f"visitor-{name}") for name in "abc")

    def merge(survivor, merged):
        def run():
            try:
                return customer_merge(survivor=Customer.objects.get(pk=survivor.pk), merged=Customer.objects.get(pk=merged.pk))
            except Conflict as exc:
                return exc
        return run

    def ingest_for_b():
        return interactions_ingest(items=[item(f"b-late-{n}", [("chat", "visitor-b")], 100 + n) for n in range(10)])

    # when: B into A, C into B, A into C and new interactions for B, all at once
    results = run_together([merge(a, b), merge(b, c), merge(c, a), ingest_for_b])

    # then: no unexpected error, every interaction is on a live customer, and all of them are still there
    assert not [r for r in results if isinstance(r, Exception) and not isinstance(r, Conflict)], results
    assert Interaction.objects.count() == 70
    live = set(Customer.objects.filter(merged_into__isnull=True).values_list("pk", flat=True))
    assert set(Interaction.objects.values_list("customer_id", flat=True)) <= live
    assert set(Customer.objects.filter(identities__isnull=False).values_list("pk", flat=True)) <= live
