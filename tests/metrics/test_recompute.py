"""Recompute services against the database: rows written, idempotence, merges, dirty marks."""

from datetime import timedelta

import pytest
from django.utils import timezone

from customers.models import Customer, Merge
from customers.services import customer_merge, merge_undo
from integrations.models import WebhookDelivery
from metrics import services
from metrics.models import ConversationMetrics, CustomerSnapshot, DirtyCustomer, Journey, TextAnalysis
from tests.metrics.helpers import ingest

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)


def ago(days=0, hours=0):
    return NOW - timedelta(days=days, hours=hours)


def journey_rows(customer_id):
    return list(Journey.objects.filter(customer_id=customer_id).order_by("seq").values())


def test_ingestion_marks_dirty_in_the_same_transaction_and_recompute_clears_it():
    row = ingest("a@example.com", when=ago(2), sentiment=-0.7)
    assert DirtyCustomer.objects.filter(customer_id=row.customer_id).exists()

    services.dirty_customers_recompute()

    assert not DirtyCustomer.objects.exists()
    snapshot = CustomerSnapshot.objects.get(customer_id=row.customer_id)
    assert snapshot.unhappy_since == ago(2) and snapshot.journeys == 1 and snapshot.visits == 1


def test_recompute_twice_gives_identical_rows():
    first = ingest("b@example.com", when=ago(10), sentiment=-0.7, incident_at=ago(12))
    ingest("b@example.com", when=ago(9), channel="email", sentiment=0.8)
    ingest("b@example.com", when=ago(3), sentiment=-0.4)
    customer_id = first.customer_id

    services.customers_recompute(customer_ids=[customer_id], now=NOW)
    before = journey_rows(customer_id)
    conversations = list(ConversationMetrics.objects.filter(customer_id=customer_id).order_by("pk").values())
    services.customers_recompute(customer_ids=[customer_id], now=NOW)

    assert journey_rows(customer_id) == before  # same ids too: unchanged rows are not rewritten
    assert list(ConversationMetrics.objects.filter(customer_id=customer_id).order_by("pk").values()) == conversations
    assert [(j["started_at"], j["closed_at"]) for j in before] == [(ago(12), ago(9)), (ago(3), None)]
    assert before[0]["tth_seconds"] == 3 * 86400


def test_a_batch_larger_than_one_statement_takes_compares_with_every_stored_row(monkeypatch):
    from metrics import storage

    # given: customers recomputed once, their stored rows read back in batches of two ids (SQLite; one array
    # on PostgreSQL)
    monkeypatch.setattr(storage, "ORM_BATCH", 2)
    ids = []
    for n in range(5):
        ingest(f"batch{n}@example.com", when=ago(10), sentiment=-0.7)
        ids.append(ingest(f"batch{n}@example.com", when=ago(9), channel="email", sentiment=0.8).customer_id)
    services.customers_recompute(customer_ids=ids, now=NOW)
    before = list(Journey.objects.order_by("pk").values())

    # when: recomputed again, nothing changed
    services.customers_recompute(customer_ids=ids, now=NOW)

    # then: every customer's stored rows were found and left as they were (same ids, none doubled)
    assert list(Journey.objects.order_by("pk").values()) == before
    assert sorted(row["customer_id"] for row in before) == sorted(ids)


def test_journey_and_at_risk_events_are_emitted_once_each():
    import json

    from tests.integrations.factories import WebhookSubscriptionFactory

    WebhookSubscriptionFactory(event_types=["journey.opened", "journey.closed", "customer.at_risk"])
    row = ingest("c@example.com", when=ago(hours=3), sentiment=-0.7)

    def sent():
        return [(d.event_type, json.loads(d.body)["data"]) for d in WebhookDelivery.objects.order_by("id")]

    services.customers_recompute(customer_ids=[row.customer_id])
    services.customers_recompute(customer_ids=[row.customer_id])
    assert [t for t, _ in sent()] == ["journey.opened"]

    ingest("c@example.com", when=ago(hours=1), sentiment=0.7)
    services.customers_recompute(customer_ids=[row.customer_id])
    services.customers_recompute(customer_ids=[row.customer_id])
    events = sent()
    assert [t for t, _ in events] == ["journey.opened", "journey.closed"]
    assert events[1][1]["customer_id"] == row.customer_id and events[1][1]["tth_seconds"] == 2 * 3600

    # at risk: visits every 10 days, then silence for 21 days
    other = None
    for day in (51, 41, 31):
        other = ingest("r@example.com", when=ago(day)).customer_id
    services.customers_recompute(customer_ids=[other], now=NOW - timedelta(days=20))
    services.customers_recompute(customer_ids=[other], now=NOW - timedelta(days=9))
    services.customers_recompute(customer_ids=[other], now=NOW)
    assert [t for t, _ in sent()].count("customer.at_risk") == 1
    assert CustomerSnapshot.objects.get(customer_id=other).at_risk is True


def test_old_history_sends_no_journey_events():
    from tests.integrations.factories import WebhookSubscriptionFactory

    WebhookSubscriptionFactory(event_types=["journey.opened", "journey.closed"])
    row = ingest("old@example.com", when=ago(30), sentiment=-0.7)
    services.customers_recompute(customer_ids=[row.customer_id])
    assert not WebhookDelivery.objects.exists()


def test_analyser_scores_english_and_leaves_persian_unscored():
    english = ingest("d@example.com", when=ago(5), body="This is terrible, I am furious and disappointed.")
    persian = ingest("d@example.com", when=ago(4), body="سفارش من هنوز نرسیده و خیلی ناراحتم")

    services.customers_recompute(customer_ids=[english.customer_id], now=NOW)

    analyses = {a.interaction_id: a for a in TextAnalysis.objects.all()}
    assert analyses[english.pk].sentiment < -0.3 and analyses[english.pk].language == "en"
    assert analyses[persian.pk].sentiment is None and analyses[persian.pk].language == "fa"
    [journey] = Journey.objects.filter(customer_id=english.customer_id)
    assert journey.opening_interaction_id == english.pk and journey.opening_signal == "sentiment"


def test_intent_rules_from_the_admin_open_journeys():
    from metrics.models import IntentRule

    IntentRule.objects.create(intent="complaint", keywords="refund\nشکایت", priority=1)
    row = ingest("e@example.com", when=ago(3), body="I want my REFUND", sentiment=0.0)
    services.customers_recompute(customer_ids=[row.customer_id], now=NOW)

    assert TextAnalysis.objects.get(interaction_id=row.pk).intent == "complaint"
    assert Journey.objects.get(customer_id=row.customer_id).opening_signal == "intent"


def test_merge_and_undo_recompute_both_customers():
    # given: two customers, one miserable since day 5, the other delighted on day 2
    a = ingest("lisa@example.com", when=ago(5), sentiment=-0.8).customer_id
    b = ingest("lisa.other@example.com", when=ago(2), channel="email", sentiment=0.9).customer_id
    services.customers_recompute(customer_ids=[a, b], now=NOW)
    assert CustomerSnapshot.objects.get(customer_id=a).unhappy_since == ago(5)
    assert CustomerSnapshot.objects.get(customer_id=b).journeys == 0

    # when: b is merged into a; the merge's hook marks both dirty (and queues them after commit)
    merge = customer_merge(survivor=Customer.objects.get(pk=a), merged=Customer.objects.get(pk=b),
                           reason=Merge.Reason.MANUAL)
    assert set(DirtyCustomer.objects.values_list("customer_id", flat=True)) == {a, b}
    services.dirty_customers_recompute()

    # then: a's journey closes with b's delight; b (a tombstone) has no metrics left
    journey = Journey.objects.get(customer_id=a)
    assert (journey.started_at, journey.closed_at, journey.tth_seconds) == (ago(5), ago(2), 3 * 86400)
    assert CustomerSnapshot.objects.get(customer_id=a).unhappy_since is None
    assert not CustomerSnapshot.objects.filter(customer_id=b).exists()
    assert not DirtyCustomer.objects.exists()

    # when: the merge is undone
    merge_undo(merge=merge)
    assert set(DirtyCustomer.objects.values_list("customer_id", flat=True)) == {a, b}
    services.dirty_customers_recompute()

    # then: each has their own again
    assert CustomerSnapshot.objects.get(customer_id=a).unhappy_since == ago(5)
    assert Journey.objects.get(customer_id=a).closed_at is None
    assert CustomerSnapshot.objects.get(customer_id=b).visits == 1
    assert not Journey.objects.filter(customer_id=b).exists()
    assert not DirtyCustomer.objects.exists()


def test_resolving_a_conversation_through_the_api_path_is_noticed_by_the_minute_task():
    from interactions.models import Conversation
    from interactions.services import conversation_update

    row = ingest("res@example.com", when=ago(2), sentiment=-0.5)
    services.dirty_customers_recompute()
    assert ConversationMetrics.objects.get(conversation_id=row.conversation_id).resolved_at is None

    # when: an agent resolves it (no ingestion involved), then the minute task runs
    conversation = conversation_update(conversation=Conversation.objects.get(pk=row.conversation_id),
                                       fields={"status": "resolved"})
    assert services.dirty_customers_recompute() == 1

    clocks = ConversationMetrics.objects.get(conversation_id=row.conversation_id)
    assert clocks.resolved_at == conversation.resolved_at
    assert clocks.resolution_seconds == (conversation.resolved_at - conversation.opened_at).total_seconds()
    assert clocks.came_back is None  # its 90 days have not passed
    assert services.dirty_customers_recompute() == 0  # nothing left to notice


def test_the_minute_task_notices_exactly_the_conversations_changed_outside_ingestion(django_assert_num_queries):
    from interactions.models import Conversation
    from interactions.services import conversation_update

    # given: a few customers' conversations, their clocks computed
    rows = [ingest(f"many{n}@example.com", when=ago(2), sentiment=-0.5) for n in range(5)]
    services.dirty_customers_recompute()

    # when: two of them are resolved outside ingestion
    for row in rows[1:3]:
        conversation_update(conversation=Conversation.objects.get(pk=row.conversation_id), fields={"status": "resolved"})

    # then: exactly their customers are noticed, compared in the database (one query, then the marks)
    with django_assert_num_queries(2):
        assert services.conversations_changed_mark() == 2
    assert set(DirtyCustomer.objects.values_list("customer_id", flat=True)) == {rows[1].customer_id,
                                                                                rows[2].customer_id}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_recomputes_of_the_same_customers_never_double_journeys():
    import threading

    from django.db import connection

    ids = []
    for n in range(5):
        ingest(f"cc{n}@example.com", when=ago(9), sentiment=-0.9)
        ingest(f"cc{n}@example.com", when=ago(8), sentiment=0.9)
        ids.append(ingest(f"cc{n}@example.com", when=ago(3), sentiment=-0.9, incident_at=ago(4)).customer_id)
    errors = []
    barrier = threading.Barrier(4)

    def run():
        try:
            barrier.wait()
            for _ in range(3):
                services.customers_recompute(customer_ids=list(reversed(ids)) if _ % 2 else ids, now=NOW)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert errors == []
    for customer_id in ids:
        journeys = list(Journey.objects.filter(customer_id=customer_id).order_by("seq").values_list(
            "seq", "started_at", "closed_at"))
        assert journeys == [(1, ago(9), ago(8)), (2, ago(4), None)]
        assert CustomerSnapshot.objects.get(customer_id=customer_id).unhappy_since == ago(4)


def test_recomputing_one_customer_leaves_other_customers_clocks_alone():
    from tests.factories import ConversationFactory, CustomerFactory

    # given: ids chosen so that customer a's id is also the id of b's conversation
    a, b = CustomerFactory(pk=7100), CustomerFactory(pk=7200)
    ConversationFactory(pk=7300, customer=a, opened_at=ago(3))
    ConversationFactory(pk=7100, customer=b, opened_at=ago(2))
    services.customers_recompute(customer_ids=[a.pk, b.pk], now=NOW)

    # when
    services.customers_recompute(customer_ids=[a.pk], now=NOW)
    services.customers_recompute(customer_ids=[a.pk], now=NOW)

    # then
    assert sorted(ConversationMetrics.objects.values_list("conversation_id", "customer_id")) == [
        (7100, b.pk), (7300, a.pk)]


def test_a_conversation_moved_to_another_customer_takes_its_stored_clocks_along():
    from interactions.models import Conversation
    from tests.factories import ConversationFactory, CustomerFactory

    # given: clocks stored for a's conversation, which then moves to b (as a merge moves it)
    a, b = CustomerFactory(), CustomerFactory()
    conversation = ConversationFactory(customer=a, opened_at=ago(3))
    services.customers_recompute(customer_ids=[a.pk, b.pk], now=NOW)
    Conversation.objects.filter(pk=conversation.pk).update(customer=b)

    # when: only b is recomputed (its new row collides with the stored one, which it takes over)
    services.customers_recompute(customer_ids=[b.pk], now=NOW)

    # then
    clocks = ConversationMetrics.objects.get(conversation_id=conversation.pk)
    assert (clocks.customer_id, clocks.opened_at) == (b.pk, conversation.opened_at)
    services.customers_recompute(customer_ids=[a.pk], now=NOW)
    assert list(ConversationMetrics.objects.values_list("conversation_id", "customer_id")) == [
        (conversation.pk, b.pk)]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("processes", [1, 2, 5])
def test_the_streaming_full_pass_writes_what_the_per_customer_recompute_writes(settings, processes):
    # given: a few customers across several chunks (chunk size 3), the chunks shared by `processes`
    settings.METRICS_FULL_BATCH_SIZE = 3
    settings.METRICS_FULL_PROCESSES = processes
    ids = []
    for n in range(8):
        ingest(f"s{n}@example.com", when=ago(20 - n), sentiment=-0.6, incident_at=ago(21 - n))
        ingest(f"s{n}@example.com", when=ago(10 - n), channel="email", sentiment=0.7 if n % 2 else 0.0)
        ids.append(ingest(f"s{n}@example.com", when=ago(5), kind="call", data={"duration_seconds": 60 * n}).customer_id)
    services.customers_recompute(customer_ids=ids, now=NOW)
    expected = {
        "journeys": list(Journey.objects.order_by("customer_id", "seq").values_list(*services.JOURNEY_FIELDS)),
        "clocks": list(ConversationMetrics.objects.order_by("conversation_id").values_list(*services.CONVERSATION_FIELDS)),
        "snapshots": list(CustomerSnapshot.objects.order_by("customer_id").values_list(*services.SNAPSHOT_FIELDS)),
    }
    Journey.objects.all().delete()
    ConversationMetrics.objects.all().delete()
    CustomerSnapshot.objects.all().delete()

    # when: the nightly pass (outside any transaction: it streams on a connection of its own)
    assert services.all_recompute(now=NOW) == 8

    # then
    assert list(Journey.objects.order_by("customer_id", "seq").values_list(*services.JOURNEY_FIELDS)) == expected["journeys"]
    assert list(ConversationMetrics.objects.order_by("conversation_id").values_list(
        *services.CONVERSATION_FIELDS)) == expected["clocks"]
    assert list(CustomerSnapshot.objects.order_by("customer_id").values_list(
        *services.SNAPSHOT_FIELDS)) == expected["snapshots"]
    assert Journey.objects.filter(closed_at__isnull=True).count() == 4  # the even ones never got happy


@pytest.mark.parametrize("weights, count, expected", [
    ([1.0] * 6, 2, [range(0, 3), range(3, 6)]),
    ([0.5, 0.1, 0.1, 0.1, 0.1, 0.1], 2, [range(0, 1), range(1, 6)]),  # the oldest ids hold the most history
    ([0.0, 0.0, 0.0, 1.0], 2, [range(0, 3), range(3, 4)]),
    ([1.0, 0.0, 0.0, 0.0], 3, [range(0, 1), range(1, 2), range(2, 4)]),  # each part gets at least one chunk
    ([1.0, 1.0], 5, [range(0, 1), range(1, 2)]),  # never more parts than chunks
    ([1.0] * 3, 1, [range(0, 3)]),
])
def test_the_full_recompute_shares_the_chunks_by_weight_in_contiguous_ranges(weights, count, expected):
    assert services._parts_split(weights, count) == expected


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_chunk_weights_follow_the_interactions_per_customer_id_from_the_statistics():
    from django.db import connection

    from metrics import storage

    # given: chunks of 2 customer ids; the first customers with far more history than the later ones
    ids = [ingest(f"w{n}@example.com", when=ago(60)).customer_id for n in range(6)]
    for n, customer_id in enumerate(ids[:2]):
        for day in range(40):
            ingest(customer_id=customer_id, when=ago(59 - day, hours=n))
    first = ids[0] // 2
    chunks = ids[-1] // 2 + 1

    # when: the weights from statistics just gathered
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE interactions_interaction")
    weights = storage.chunk_weights(2, chunks)

    # then: shares of the whole, the heavy first customers' chunk far above the others
    assert sum(weights) == pytest.approx(1.0)
    heavy = sum(weights[first:first + 2])
    assert heavy > 0.85
    assert all(weight < 0.1 for weight in weights[first + 2:])


@pytest.mark.postgres
def test_snapshots_leave_room_in_their_pages_for_the_nightly_stamp():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = 'metrics_customersnapshot'")
        assert cursor.fetchone()[0] == ["fillfactor=50"]
