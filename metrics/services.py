"""Every write of the metrics app: dirty marks, recomputes, surveys, mood marks, roll-ups.

The recompute reads each customer's interactions in (occurred_at, id) order,
hands them to the pure functions in `metrics.compute`, and writes only what
changed. Concurrency: every recompute holds a transaction-scoped advisory lock
per customer (crm.locks), taken in ascending order, so two runs over the same
customers serialise instead of doubling journeys; the unique constraints on
Journey are the backstop.
"""

import contextlib
import gc
import itertools
import operator
from collections import defaultdict
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Case, Exists, FloatField, IntegerField, OuterRef, Q, Value, When
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce, NullIf
from django.utils import timezone

from crm import processes
from crm.locks import advisory_lock, key_hash
from integrations.services import events_emit
from interactions.models import Conversation, Interaction
from metrics import compute, storage
from metrics.analysers import analyser_get, intent_match
from metrics.models import (
    ActivitySpan,
    ConversationMetrics,
    CustomerSnapshot,
    DirtyCustomer,
    DirtyDay,
    IntentRule,
    Journey,
    MetricRollup,
    SurveyResponse,
    TextAnalysis,
)

# Kinds whose text the analyser reads (a purchase or a visit has no mood to score).
TEXT_KINDS = ("message", "comment", "call")
# Interaction kinds this app writes into the timeline.
SURVEY_KIND = Interaction.Kind.SURVEY
MARK_KIND = Interaction.Kind.EVENT
METRICS_SOURCE = "metrics"
# Stands for "not resolved" where NULLs are compared as values.
EPOCH = datetime(1970, 1, 1, tzinfo=dt_timezone.utc)


# --- dirty marks --------------------------------------------------------------------------


def customers_mark_dirty(*, customer_ids, urgent=False) -> None:
    """Queue customers for recompute: a row each, in the caller's transaction (a broker outage loses nothing).

    The beat task picks the rows up within a minute. `urgent` (a merge, an
    agent's mark, a survey answer) also queues a recompute right after commit;
    so does the embedded mode, which runs no beat.
    """
    ids = sorted({int(pk) for pk in customer_ids if pk})
    if not ids:
        return
    now = timezone.now()
    if connection.vendor == "postgresql":
        # One array, not a model instance and two placeholders per customer: ingestion marks a thousand at a time.
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {DirtyCustomer._meta.db_table} (customer_id, marked_at) "
                "SELECT unnest(%b::bigint[]), %b::timestamptz ON CONFLICT DO NOTHING",
                [ids, now],
            )
    else:
        DirtyCustomer.objects.bulk_create(
            [DirtyCustomer(customer_id=pk, marked_at=now) for pk in ids], ignore_conflicts=True
        )
    if urgent or settings.CELERY_TASK_ALWAYS_EAGER:
        from metrics.tasks import customers_recompute_task

        transaction.on_commit(lambda: customers_recompute_task.delay(ids))


def days_mark_dirty(*, days) -> None:
    """KPI roll-ups of these days must be rebuilt."""
    days = sorted({d for d in days if d is not None})
    if days:
        DirtyDay.objects.bulk_create([DirtyDay(day=d) for d in days], ignore_conflicts=True)


# --- reading a customer's history ------------------------------------------------------------


def interaction_rows_queryset(*, customer_ids, rules_exist):
    """The rows `metrics.compute` reads, as tuples in compute.I_* order, per customer in time order."""
    needs = Q(sentiment__isnull=True) | Q(intent="") if rules_exist else Q(sentiment__isnull=True)
    rows = (
        Interaction.objects.filter(**storage.orm_match("customer_id", customer_ids))
        .annotate(
            m_sentiment=Coalesce("sentiment", "metrics_analysis__sentiment"),
            m_intent=Coalesce(NullIf("intent", Value("")), "metrics_analysis__intent", Value("")),
            m_survey_kind=Case(When(kind=SURVEY_KIND, then=KeyTextTransform("kind", "data__survey")), default=None),
            m_survey_score=Case(
                When(kind=SURVEY_KIND, then=Cast(KeyTextTransform("score", "data__survey"), IntegerField())),
                default=None,
                output_field=IntegerField(),
            ),
            m_survey_respondent=Case(
                When(kind=SURVEY_KIND, then=KeyTextTransform("respondent", "data__survey")), default=None
            ),
            m_mood=Case(When(kind=MARK_KIND, then=KeyTextTransform("mood", "data")), default=None),
            m_duration=Case(
                When(kind="call", data__duration_seconds__gte=0,
                     then=Cast(KeyTextTransform("duration_seconds", "data"), FloatField())),
                default=None,
                output_field=FloatField(),
            ),
            m_needs=Case(
                When(
                    Q(direction="inbound", author_type="customer", kind__in=TEXT_KINDS,
                      metrics_analysis__isnull=True) & ~Q(body="") & needs,
                    then=Value(True),
                ),
                default=Value(False),
            ),
        )
        .order_by("customer_id", "occurred_at", "id")
        .values_list(
            "id", "customer_id", "conversation_id", "channel", "kind", "direction", "author_type", "occurred_at",
            "m_sentiment", "m_intent", "incident_at", "m_survey_kind", "m_survey_score", "m_survey_respondent",
            "m_mood", "m_duration", "m_needs",
        )
    )
    return rows


def _rules():
    return [(rule.intent, rule.keyword_list) for rule in IntentRule.objects.filter(is_active=True)]


def _analyse(rows, rules):
    """Score the inbound texts that arrived without sentiment (or intent); store and apply the results.

    Returns the rows with the analysis folded in. Runs once per interaction:
    the TextAnalysis row makes the next recompute read the stored answer.
    """
    wanted = [row[compute.I_ID] for row in rows if row[compute.I_NEEDS_SCORING]]
    if not wanted:
        return rows
    texts = storage.bodies(wanted)
    analyser = analyser_get()
    analyser_name = settings.SENTIMENT_ANALYZER
    results = {}
    analyses = []
    for row in rows:
        if not row[compute.I_NEEDS_SCORING]:
            continue
        text = texts.get(row[compute.I_ID], "")
        sentiment, language = row[compute.I_SENTIMENT], ""
        if sentiment is None:
            analysis = analyser.analyse(text)
            sentiment, language = analysis.sentiment, analysis.language or ""
        intent = row[compute.I_INTENT] or intent_match(text, rules)
        results[row[compute.I_ID]] = (sentiment, intent)
        analyses.append(
            TextAnalysis(
                interaction_id=row[compute.I_ID],
                sentiment=sentiment if row[compute.I_SENTIMENT] is None else None,
                language=language[:16],
                intent=intent if not row[compute.I_INTENT] else "",
                analyser=analyser_name,
            )
        )
    TextAnalysis.objects.bulk_create(analyses, ignore_conflicts=True)
    out = []
    for row in rows:
        found = results.get(row[compute.I_ID])
        if found is None:
            out.append(row)
        else:
            row = list(row)
            row[compute.I_SENTIMENT], row[compute.I_INTENT] = found
            row[compute.I_NEEDS_SCORING] = False
            out.append(tuple(row))
    return out


def _histories(customer_ids, rules, scope=None):
    """{customer_id: (rows, conversations)} for these customers: two queries (plus the analyser's).

    `scope` (an IdRange covering them) reads by range; rows of customers outside `customer_ids` are skipped.
    """
    return _histories_from(customer_ids, storage.interaction_rows(scope or customer_ids, bool(rules)),
                           storage.conversation_rows(scope or customer_ids), rules)


# --- writing the results -----------------------------------------------------------------

JOURNEY_FIELDS = (
    "seq", "started_at", "opened_at", "opening_interaction_id", "opening_signal", "first_contact_at", "closed_at",
    "closing_interaction_id", "closing_signal", "channel", "channels", "customer_interactions", "channel_switches",
    "call_chat_minutes", "misery_signals", "tth_seconds", "time_before_contact_seconds", "time_in_hands_seconds",
)
J = {name: index for index, name in enumerate(JOURNEY_FIELDS)}
CONVERSATION_FIELDS = (
    "customer_id", "channel", "opened_at", "first_inbound_at", "first_response_at", "first_response_seconds",
    "resolved_at", "resolution_seconds", "reopen_count", "handler", "handoff_seconds", "came_back", "days_to_return",
)
C = {name: index for index, name in enumerate(CONVERSATION_FIELDS)}
SPAN_FIELDS = ("first_at", "last_at", "churn_at")
# Everything but computed_at: a snapshot whose values did not change only gets its time stamped.
SNAPSHOT_FIELDS = tuple(
    f.attname for f in CustomerSnapshot._meta.concrete_fields if f.attname not in ("customer_id", "computed_at")
)


# Tuples in field order, built in C (a few hundred thousand rows per full recompute).
journey_values = operator.attrgetter(*JOURNEY_FIELDS)
conversation_values = operator.attrgetter(*CONVERSATION_FIELDS[1:])
snapshot_values = operator.itemgetter(*SNAPSHOT_FIELDS)  # CONVERSATION_FIELDS[0] is customer_id, added apart


def _day(value):
    """The UTC day a timestamp falls on (roll-ups are per UTC day)."""
    return value.astimezone(dt_timezone.utc).date() if value is not None else None


def _journey_days(row):
    return (_day(row[J["closed_at"]]), _day(row[J["first_contact_at"]]))


def _conversation_days(row):
    return (_day(row[C["opened_at"]]), _day(row[C["resolved_at"]]), _day(row[C["first_response_at"]]))


def _grouped(rows):
    """[(customer_id, *fields)] -> {customer_id: [fields tuple] sorted by the first two fields}."""
    return {
        customer_id: [row[1:] for row in group]
        for customer_id, group in itertools.groupby(sorted(rows, key=_by_customer_then_two), key=_customer_key)
    }


_by_customer_then_two = operator.itemgetter(0, 1, 2)
_customer_key = operator.itemgetter(0)


def _write(results, now, events, scope=None):
    """Store the computed rows of a batch, touching only what changed; returns the days whose roll-ups are stale."""
    ids = [result.customer_id for result in results]
    live = set(ids)
    scope = scope or ids
    days = set()

    # Journeys: a customer's list is replaced whole when any journey differs (seq numbers shift).
    old_journeys = _grouped(storage.rows_of(Journey, JOURNEY_FIELDS, "customer_id", scope))
    max_age = timedelta(hours=settings.METRICS_EVENT_MAX_AGE_HOURS)
    replace, inserts = [], []
    for result in results:
        new = [journey_values(j) for j in result.journeys]
        old = old_journeys.get(result.customer_id, [])
        if new == old:
            continue
        replace.append(result.customer_id)
        for row in old:
            days.update(_journey_days(row))
        before = {row[J["opening_interaction_id"]]: row for row in old}
        for row in new:
            days.update(_journey_days(row))
            inserts.append((result.customer_id, *row))
            previous = before.get(row[J["opening_interaction_id"]])
            payload = {"customer_id": result.customer_id, **_journey_payload(row)}
            if previous is None and row[J["opened_at"]] >= now - max_age:
                events.append(("journey.opened", payload))
            closed_at = row[J["closed_at"]]
            if closed_at is not None and (previous is None or previous[J["closed_at"]] is None) \
                    and closed_at >= now - max_age:
                events.append(("journey.closed", payload))
    if replace:
        storage.delete_where(Journey, "customer_id", replace)
        storage.insert(Journey, ("customer_id", *JOURNEY_FIELDS), inserts)

    # Conversation clocks: keyed by conversation; a conversation that moved to another customer is theirs now.
    old_conversations = {
        row[1]: tuple(row[2:])
        for row in storage.rows_of(ConversationMetrics, ("conversation_id", *CONVERSATION_FIELDS), "customer_id", scope)
        if row[0] in live
    }
    upserts, fresh, keep = [], [], set()
    for result in results:
        for clocks in result.conversations:
            row = (result.customer_id, *conversation_values(clocks))
            keep.add(clocks.conversation_id)
            old = old_conversations.get(clocks.conversation_id)
            if old == row:
                continue
            days.update(_conversation_days(row))
            if old is None:
                fresh.append((clocks.conversation_id, *row))
                continue
            days.update(_conversation_days(old))
            upserts.append((clocks.conversation_id, *row))
    gone = [pk for pk in old_conversations if pk not in keep]
    if gone:
        for pk in gone:
            days.update(_conversation_days(old_conversations[pk]))
        storage.delete_where(ConversationMetrics, "conversation_id", gone)
    storage.upsert(ConversationMetrics, "conversation_id", CONVERSATION_FIELDS, upserts)
    storage.insert_new(ConversationMetrics, "conversation_id", CONVERSATION_FIELDS, fresh)

    # Activity spans (churn): replaced per customer when they differ.
    old_spans = _grouped(storage.rows_of(ActivitySpan, SPAN_FIELDS, "customer_id", scope))
    replace, inserts = [], []
    for result in results:
        new = [tuple(span) for span in result.spans]
        if new != old_spans.get(result.customer_id, []):
            replace.append(result.customer_id)
            inserts += [(result.customer_id, *span) for span in new]
    if replace:
        storage.delete_where(ActivitySpan, "customer_id", replace)
        storage.insert(ActivitySpan, ("customer_id", *SPAN_FIELDS), inserts)

    # Snapshots: rewritten when a value changed; the others only get computed_at moved on.
    old_snapshots = {row[0]: tuple(row[1:]) for row in storage.rows_of(CustomerSnapshot, SNAPSHOT_FIELDS, "customer_id", scope)}
    at_risk = SNAPSHOT_FIELDS.index("at_risk")
    changed, fresh, unchanged = [], [], []
    for result in results:
        row = snapshot_values(result.snapshot)
        old = old_snapshots.get(result.customer_id)
        if old == row:
            unchanged.append(result.customer_id)
            continue
        (changed if old is not None else fresh).append((result.customer_id, *row, now))
        if row[at_risk] and not (old is not None and old[at_risk]):
            events.append(("customer.at_risk", _snapshot_payload(result.customer_id, result.snapshot)))
    storage.upsert(CustomerSnapshot, "customer_id", (*SNAPSHOT_FIELDS, "computed_at"), changed)
    storage.insert_new(CustomerSnapshot, "customer_id", (*SNAPSHOT_FIELDS, "computed_at"), fresh)
    storage.update_where(CustomerSnapshot, "customer_id", unchanged, computed_at=now)
    return days


def _journey_payload(row):
    return {name: row[J[name]] for name in (
        "seq", "started_at", "opened_at", "opening_signal", "first_contact_at", "closed_at", "closing_signal",
        "channel", "tth_seconds")}


def _snapshot_payload(customer_id, snapshot):
    return {
        "customer_id": customer_id, "last_visit_at": snapshot["last_visit_at"],
        "days_since_last_visit": snapshot["days_since_last_visit"], "usual_gap_days": snapshot["usual_gap_days"],
    }


# --- recomputes ----------------------------------------------------------------------------


def _advisory_locks_shared(keys):
    """Hold these keys shared until the transaction ends, taken in ascending order (PostgreSQL only)."""
    if connection.vendor == "postgresql" and keys:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(pg_advisory_xact_lock_shared(k)) FROM (SELECT unnest(%s::bigint[]) AS k ORDER BY 1) o",
                [sorted({key_hash(key) for key in keys})],
            )


@transaction.atomic
def customers_recompute(*, customer_ids, now=None, whole_batch=False) -> int:
    """Recompute these customers from their whole history; returns how many were recomputed.

    Idempotent: running it twice, or twice at once, leaves the same rows (the
    second run waits on the per-customer advisory locks, then finds nothing
    changed). Clears their dirty marks; a mark written meanwhile by an
    ingestion that we could not yet see survives for the next run.

    Locks: a recompute of a few customers holds its customers' chunk locks
    shared plus one lock per customer; the full recompute (`whole_batch`,
    one chunk of METRICS_FULL_BATCH_SIZE ids) holds its chunk lock
    exclusively instead, so a chunk of thousands of customers needs one lock,
    not thousands (the lock table is finite), never interleaves with a
    per-customer run, and chunks run in parallel on several workers.
    """
    ids = sorted({int(pk) for pk in customer_ids})
    if not ids:
        return 0
    now = now or timezone.now()
    if whole_batch:
        advisory_lock(sorted({f"metrics:chunk:{chunk_of(pk)}" for pk in ids}))
    else:
        _advisory_locks_shared(sorted({f"metrics:chunk:{chunk_of(pk)}" for pk in ids}))
        advisory_lock([f"metrics:customer:{pk}" for pk in ids])
    storage.delete_where(DirtyCustomer, "customer_id", ids)
    live = storage.existing_live_customers(ids)
    gone = [pk for pk in ids if pk not in live]
    days = set()
    if gone:
        # Merged away (or deleted): their rows belong to the survivor's recompute now.
        for values in Journey.objects.filter(customer_id__in=gone).values_list("closed_at", "first_contact_at"):
            days.update(_day(value) for value in values)
        for values in ConversationMetrics.objects.filter(customer_id__in=gone).values_list(
                "opened_at", "resolved_at", "first_response_at"):
            days.update(_day(value) for value in values)
        Journey.objects.filter(customer_id__in=gone).delete()
        ActivitySpan.objects.filter(customer_id__in=gone).delete()
        ConversationMetrics.objects.filter(customer_id__in=gone).delete()
        CustomerSnapshot.objects.filter(customer_id__in=gone).delete()
    live_ids = [pk for pk in ids if pk in live]
    if live_ids:
        scope = storage.IdRange(live_ids[0], live_ids[-1]) if whole_batch else None
        days |= _compute_and_write(_histories(live_ids, _rules(), scope), now, scope)
    days_mark_dirty(days=days)
    return len(ids)


@contextlib.contextmanager
def _cycle_collector_paused():
    """Pause Python's cycle collector: the recompute allocates millions of acyclic tuples, which
    trigger collections that walk every live row (a third of the compute's time); reference
    counting still frees them, and the collector runs again as soon as the block ends."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _compute_and_write(histories, now, scope):
    """Run the definitions over each history, store what changed, emit the events; returns stale days."""
    thresholds = compute.Thresholds.from_settings()
    with _cycle_collector_paused():
        results = [
            compute.customer_compute(pk, rows, conversations, now, thresholds)
            for pk, (rows, conversations) in histories.items()
        ]
        events = []
        days = _write(results, now, events, scope)
    if events:
        events_emit(events=events)
    return days


def _histories_from(ids, rows, conversations, rules):
    """Group rows in customer order into {customer_id: (rows, conversations)} for the live `ids`."""
    by_customer = {pk: ([], []) for pk in ids}
    for customer_id, group in itertools.groupby(rows, key=_customer_of):
        found = by_customer.get(customer_id)
        if found is not None:
            found[0].extend(group)
    for conversation_id, customer_id, opened_at, resolved_at, reopen_count, channel in conversations:
        found = by_customer.get(customer_id)
        if found is not None:
            found[1].append((conversation_id, opened_at, resolved_at, reopen_count, [channel] if channel else []))
    needs = {row[compute.I_CUSTOMER] for row in rows if row[compute.I_NEEDS_SCORING]} \
        if any(map(_needs_scoring, rows)) else ()
    for pk in by_customer.keys() & needs:
        history, found = by_customer[pk]
        by_customer[pk] = (_analyse(history, rules), found)
    return by_customer


_customer_of = operator.itemgetter(compute.I_CUSTOMER)
_needs_scoring = operator.itemgetter(compute.I_NEEDS_SCORING)


def _all_recompute_streaming(now, progress):
    """PostgreSQL: every chunk from ordered passes over interactions and conversations (see storage.stream_chunks).

    The chunks are split into METRICS_FULL_PROCESSES contiguous ranges, each
    streamed, computed and written by a process of its own (crm.processes):
    the computing is Python, which uses one core per process.

    Dirty marks are left alone: each pass reads one snapshot taken at its start,
    so a customer marked since is recomputed again by the minute task.
    """
    size = settings.METRICS_FULL_BATCH_SIZE
    rules = _rules()
    chunks = chunks_count()
    count = max(1, min(settings.METRICS_FULL_PROCESSES, chunks))
    parts = _parts_split(storage.chunk_weights(size, chunks), count) if count > 1 else [range(chunks)]

    def work(part, report):
        with _cycle_collector_paused():  # the reader thread's rows too
            return _stream_and_write(size, rules, now, report, part)

    if count == 1:
        return work(parts[0], progress)
    return sum(processes.parts_run(work, parts, progress))


def _parts_split(weights, count):
    """`count` contiguous, non-empty ranges of chunk numbers with about equal total weight each."""
    count = min(count, len(weights))
    total = sum(weights)
    cuts, running = [0], 0.0
    for chunk, weight in enumerate(weights):
        running += weight
        left = len(weights) - chunk - 1  # chunks still to hand out after this one
        parts_left = count - len(cuts)
        if parts_left and (running >= total * len(cuts) / count or left == parts_left) and left >= parts_left:
            cuts.append(chunk + 1)
    cuts.append(len(weights))
    return [range(start, stop) for start, stop in zip(cuts, cuts[1:]) if stop > start]


def _stream_and_write(size, rules, now, progress, chunks):
    from customers.models import Customer

    done = 0
    for chunk, rows, conversations in storage.stream_chunks(size, bool(rules), chunks):
        with transaction.atomic():
            advisory_lock([f"metrics:chunk:{chunk}"])
            ids = list(Customer.objects.filter(pk__gte=chunk * size, pk__lt=(chunk + 1) * size,
                                               merged_into__isnull=True).order_by("pk").values_list("pk", flat=True))
            if ids:
                scope = storage.IdRange(chunk * size, (chunk + 1) * size - 1)
                days_mark_dirty(days=_compute_and_write(_histories_from(ids, rows, conversations, rules), now, scope))
        done += len(ids)
        if progress:
            progress(len(ids))
    return done


def dirty_customers_recompute(*, batch_size=None, max_batches=None, progress=None) -> int:
    """Recompute dirty customers in batches (oldest marks first) until none are left; returns how many.

    Each batch is its own transaction. On PostgreSQL the batch is claimed with
    SKIP LOCKED, so several workers share the queue without waiting on each other.
    """
    batch_size = batch_size or settings.METRICS_BATCH_SIZE
    conversations_changed_mark()
    done = 0
    batches = 0
    while max_batches is None or batches < max_batches:
        with transaction.atomic():
            claim = DirtyCustomer.objects.order_by("marked_at", "customer_id")
            if connection.vendor == "postgresql":
                claim = claim.select_for_update(skip_locked=True)
            ids = list(claim.values_list("customer_id", flat=True)[:batch_size])
            if not ids:
                break
            count = customers_recompute(customer_ids=ids)
        done += count
        batches += 1
        if progress:
            progress(count)
    rollups_rebuild_dirty()
    return done


def conversations_changed_mark(*, window=None) -> int:
    """Mark dirty the customers of conversations resolved or reopened since their clocks were computed.

    Ingestion marks its customers itself; a status change through the
    conversations API does not pass through ingestion, so the minute task
    looks at conversations changed within the window (a few beat intervals)
    and compares them with the stored clocks. Anything older is caught by
    the nightly full recompute.
    """
    window = window or timedelta(seconds=max(600, 3 * settings.METRICS_DIRTY_INTERVAL_SECONDS))
    # Compared in the database, one statement: a bulk import can touch a hundred thousand conversations in the
    # window, which read back and compared in Python took seconds of every minute task.
    never = Value(EPOCH)
    clocks_current = ConversationMetrics.objects.annotate(resolved=Coalesce("resolved_at", never)).filter(
        conversation_id=OuterRef("pk"), customer_id=OuterRef("customer_id"), reopen_count=OuterRef("reopen_count"),
        resolved=Coalesce(OuterRef("resolved_at"), never))
    stale = set(Conversation.objects.filter(updated_at__gte=timezone.now() - window)
                .exclude(Exists(clocks_current)).order_by().values_list("customer_id", flat=True).distinct())
    customers_mark_dirty(customer_ids=stale)
    return len(stale)


def chunk_of(customer_id):
    """The full recompute's chunk of a customer: ids [k·size, (k+1)·size) make chunk k."""
    return customer_id // settings.METRICS_FULL_BATCH_SIZE


def chunks_count():
    from customers.models import Customer

    last = Customer.objects.order_by("-pk").values_list("pk", flat=True).first()
    return 0 if last is None else chunk_of(last) + 1


def chunk_recompute(*, chunk, now=None) -> int:
    """Recompute the live customers of one chunk in one transaction; returns how many."""
    from customers.models import Customer

    size = settings.METRICS_FULL_BATCH_SIZE
    ids = list(Customer.objects.filter(pk__gte=chunk * size, pk__lt=(chunk + 1) * size, merged_into__isnull=True)
               .order_by("pk").values_list("pk", flat=True))
    return customers_recompute(customer_ids=ids, now=now, whole_batch=True) if ids else 0


def all_recompute(*, progress=None, now=None, chunks=None, rollups=True) -> int:
    """Recompute every live customer chunk by chunk, then rebuild every roll-up; returns the count.

    Memory stays flat: a chunk's interactions are read, computed and written, in
    its own transaction, before the next. `chunks` limits the run to some chunks
    (several processes or workers can share the chunks: each chunk holds its own
    lock). `progress(n)` is called after each chunk with how many it did.
    """
    now = now or timezone.now()
    done = 0
    # The streaming pass reads on a connection of its own: it cannot see the caller's uncommitted rows,
    # so inside a transaction (tests, a caller's atomic block) the chunks are read on this connection.
    if chunks is None and storage.is_postgres() and not connection.in_atomic_block:
        done = _all_recompute_streaming(now, progress)
    else:
        for chunk in (range(chunks_count()) if chunks is None else chunks):
            count = chunk_recompute(chunk=chunk, now=now)
            done += count
            if progress:
                progress(count)
    # Rows of customers that are no longer live (merged since the last full run).
    stale = set(CustomerSnapshot.objects.filter(customer__merged_into__isnull=False).values_list("customer_id", flat=True))
    if stale:
        customers_recompute(customer_ids=stale, now=now)
    if rollups:
        rollups_rebuild(days=None)
    return done


# --- surveys and marks ---------------------------------------------------------------------


def survey_response_create(*, customer_id, kind, score, channel="survey", answered_at=None, question="",
                           question_version="", comment="", conversation_id=None, respondent="customer",
                           agent_id=None, source=METRICS_SOURCE, external_id="") -> tuple[SurveyResponse, bool]:
    """Store one survey answer and show it on the timeline; returns (response, created).

    The timeline entry is a `survey` interaction ingested through the one
    ingestion door (it carries kind, score and respondent in its data, which
    is what the recompute reads). It is not attached to the conversation:
    answering a survey must not reopen a resolved conversation. Idempotent on
    (source, external_id).
    """
    import uuid

    from interactions.ingest import IngestItem
    from interactions.services import interactions_ingest

    external_id = external_id or f"survey-{uuid.uuid4()}"
    existing = SurveyResponse.objects.filter(source=source, external_id=external_id).first()
    if existing is not None:
        return existing, False
    answered_at = answered_at or timezone.now()
    by_agent = respondent == SurveyResponse.Respondent.AGENT
    with transaction.atomic():
        result = interactions_ingest(items=[IngestItem(
            source=source,
            external_id=f"survey:{external_id}",
            channel=channel,
            kind=SURVEY_KIND,
            direction=Interaction.Direction.INTERNAL if by_agent else Interaction.Direction.INBOUND,
            author_type=Interaction.AuthorType.AGENT if by_agent else Interaction.AuthorType.CUSTOMER,
            agent_id=agent_id,
            occurred_at=answered_at,
            customer_id=customer_id,
            subject=question[:500],
            body=comment,
            data={"survey": {"kind": kind, "score": score, "respondent": respondent,
                             "question_version": question_version, "conversation_id": conversation_id}},
        )])[0]
        if result.status == "rejected":
            raise ValueError(result.errors)
        interaction = result.interaction
        try:
            with transaction.atomic():
                response = SurveyResponse.objects.create(
                    kind=kind, score=score, question=question, question_version=question_version, comment=comment,
                    channel=channel, customer_id=interaction.customer_id, conversation_id=conversation_id,
                    interaction=interaction, respondent=respondent, agent_id=agent_id, answered_at=answered_at,
                    source=source, external_id=external_id,
                )
        except IntegrityError:
            # A concurrent replay stored it first (the unique (source, external_id) decided).
            return SurveyResponse.objects.get(source=source, external_id=external_id), False
        days = {_day(answered_at)}
        if conversation_id and kind == SurveyResponse.Kind.TWS:
            # A prediction arriving after the customer's answer changes that day's calibration.
            days |= {_day(at) for at in SurveyResponse.objects.filter(
                conversation_id=conversation_id, kind=kind).values_list("answered_at", flat=True)}
        days_mark_dirty(days=days)
        customers_mark_dirty(customer_ids=[interaction.customer_id], urgent=True)
    return response, True


def customer_mood_mark(*, customer_id, mood, occurred_at=None, incident_at=None, note="", agent_id=None,
                       confirmed_by="agent", source=METRICS_SOURCE, external_id=""):
    """An explicit happy or unhappy mark on a customer, shown on the timeline; returns the interaction.

    An unhappy mark may say when the trouble began (`incident_at`), which
    backdates the journey it opens or belongs to.
    """
    import uuid

    from interactions.ingest import IngestItem
    from interactions.services import interactions_ingest

    with transaction.atomic():
        result = interactions_ingest(items=[IngestItem(
            source=source,
            external_id=external_id or f"mark-{uuid.uuid4()}",
            channel="internal",
            kind=MARK_KIND,
            direction=Interaction.Direction.INTERNAL,
            author_type=Interaction.AuthorType.CUSTOMER if confirmed_by == "customer" else Interaction.AuthorType.AGENT,
            agent_id=agent_id,
            occurred_at=occurred_at or timezone.now(),
            customer_id=customer_id,
            body=note,
            incident_at=incident_at,
            data={"mood": mood, "confirmed_by": confirmed_by},
        )])[0]
        if result.status == "rejected":
            raise ValueError(result.errors)
        customers_mark_dirty(customer_ids=[result.interaction.customer_id], urgent=True)
    return result.interaction


# --- roll-ups ------------------------------------------------------------------------------

ADDITIVE = ("n", "total", "total2", "hits", "hits2")


class _Parts:
    """Roll-up parts being gathered: `rows` = {(day, dimension, key, metric): [n, total, total2, hits, hits2, values]}.

    Rows are first summed per (day, channel, the customer's segments, metric), a
    few thousand keys, then spread over the all / channel / segment groups once.
    """

    def __init__(self, segments_of):
        self.stage = {}
        self.segments_of = segments_of

    def add(self, day, channel, customer_id, metric, *, total=0.0, total2=0.0, hits=0, hits2=0, value=None):
        key = (day, channel or "", self.segments_of.get(customer_id, ()), metric)
        part = self.stage.get(key)
        if part is None:
            part = self.stage[key] = [0, 0.0, 0.0, 0, 0, None]
        part[0] += 1
        part[1] += total
        part[2] += total2
        part[3] += hits
        part[4] += hits2
        if value is not None:
            if part[5] is None:
                part[5] = []
            part[5].append(value)

    @property
    def rows(self):
        rows = {}
        for (day, channel, segments, metric), part in self.stage.items():
            groups = [("all", ""), ("channel", channel)] + [("segment", slug) for slug in segments]
            for dimension, key in groups:
                target = rows.get((day, dimension, key, metric))
                if target is None:
                    target = rows[(day, dimension, key, metric)] = [0, 0.0, 0.0, 0, 0, None]
                for index in range(5):
                    target[index] += part[index]
                if part[5] is not None:
                    target[5] = (target[5] or []) + part[5]
        return {key: dict(zip((*ADDITIVE, "values"), part)) for key, part in rows.items()}


def _segments_of(customer_ids):
    """{customer_id: (segment slugs, sorted)} for these customers (all of them when given None)."""
    from customers.models import Customer

    through = Customer.segments.through
    queryset = through.objects.all() if customer_ids is None else through.objects.filter(customer_id__in=list(customer_ids))
    found = defaultdict(list)
    for customer_id, slug in storage.values_list(queryset.order_by(), "customer_id", "segment__slug"):
        found[customer_id].append(slug)
    return {pk: tuple(sorted(slugs)) for pk, slugs in found.items()}


def _ranges(days):
    """Contiguous runs of days as [(first, last)]."""
    runs = []
    for day in sorted(days):
        if runs and day == runs[-1][1] + timedelta(days=1):
            runs[-1][1] = day
        else:
            runs.append([day, day])
    return [(a, b) for a, b in runs]


def _in_days(field, days):
    condition = Q()
    for first, last in _ranges(days):
        condition |= Q(**{f"{field}__gte": _midnight(first), f"{field}__lt": _midnight(last + timedelta(days=1))})
    return condition


def _midnight(day):
    from datetime import datetime, time

    return datetime.combine(day, time.min, tzinfo=dt_timezone.utc)


def _rollup_parts(days):
    """Gather the parts of every KPI for these days (None: all days)."""

    def within(field):
        return Q() if days is None else _in_days(field, days)

    def keep(day):
        return days is None or day in days

    surveys = storage.values_list(
        SurveyResponse.objects.filter(within("answered_at")).order_by(),
        "kind", "score", "respondent", "channel", "customer_id", "conversation_id", "answered_at", "id")
    journeys = storage.values_list(
        Journey.objects.filter(within("closed_at") | within("first_contact_at")).order_by(),
        "customer_id", "channel", "closed_at", "tth_seconds", "first_contact_at", "time_before_contact_seconds")
    conversations = storage.values_list(
        ConversationMetrics.objects.filter(
            within("opened_at") | within("resolved_at") | within("first_response_at")).order_by(),
        "customer_id", "channel", "opened_at", "resolved_at", "resolution_seconds", "came_back",
        "first_response_at", "first_response_seconds", "handler")
    customer_ids = None if days is None else {s[4] for s in surveys} | {j[0] for j in journeys} | {c[0] for c in conversations}
    parts = _Parts(_segments_of(customer_ids))

    for kind, score, respondent, channel, customer_id, _conversation, answered_at, _id in surveys:
        if respondent != SurveyResponse.Respondent.CUSTOMER:
            continue
        day = _day(answered_at)
        if kind == "nps":
            parts.add(day, channel, customer_id, "nps", hits=int(score >= 9), hits2=int(score <= 6))
        elif kind == "csat":
            parts.add(day, channel, customer_id, "csat", total=score, hits=int(score >= 4))
        elif kind == "ces":
            parts.add(day, channel, customer_id, "ces", total=score, hits=int(score >= 5))
        elif kind == "tws":
            parts.add(day, channel, customer_id, "tws", total=score)

    # Calibration: per conversation, its latest agent prediction against its latest customer answer,
    # counted on the day of that answer.
    conversation_ids = {s[5] for s in surveys if s[0] == "tws" and s[5] is not None}
    latest = {}
    if conversation_ids:
        for score, respondent, channel, customer_id, conversation_id, answered_at in SurveyResponse.objects.filter(
                kind="tws", conversation_id__in=conversation_ids).order_by("answered_at", "id").values_list(
                "score", "respondent", "channel", "customer_id", "conversation_id", "answered_at"):
            latest.setdefault(conversation_id, {})[respondent] = (score, channel, customer_id, answered_at)
    for pair in latest.values():
        if "agent" in pair and "customer" in pair:
            answer, channel, customer_id, answered_at = pair["customer"]
            day = _day(answered_at)
            if keep(day):
                difference = pair["agent"][0] - answer
                parts.add(day, channel, customer_id, "calibration", total=difference, total2=abs(difference))

    for customer_id, channel, closed_at, tth, first_contact_at, before_contact in journeys:
        if tth is not None and keep(_day(closed_at)):
            parts.add(_day(closed_at), channel, customer_id, "tth", value=tth)
        if before_contact is not None and keep(_day(first_contact_at)):
            parts.add(_day(first_contact_at), channel, customer_id, "before_contact", value=before_contact)

    for (customer_id, channel, opened_at, resolved_at, resolution, came_back, first_response_at, first_response,
         handler) in conversations:
        if keep(_day(opened_at)) and handler != ConversationMetrics.Handler.NONE:
            parts.add(_day(opened_at), channel, customer_id, "bot_only", hits=int(handler == "bot"))
        if resolved_at is not None and keep(_day(resolved_at)):
            parts.add(_day(resolved_at), channel, customer_id, "resolution", value=resolution)
            if came_back is not None:
                parts.add(_day(resolved_at), channel, customer_id, "came_back", hits=int(came_back))
        if first_response is not None and keep(_day(first_response_at)):
            parts.add(_day(first_response_at), channel, customer_id, "first_response", value=first_response)
    return parts.rows


# Tests flip this to hold the set-based PostgreSQL roll-ups to the Python ones.
_ROLLUPS_IN_PYTHON = False


def rollups_rebuild(*, days=None) -> int:
    """Rebuild the daily KPI roll-ups of these days (None: all of them); returns the rows written."""
    # Other connections may share the aggregation only when everything the caller wrote is committed.
    parallel = not connection.in_atomic_block
    with transaction.atomic():
        return _rollups_rebuild(days, parallel)


def _rollups_rebuild(days, parallel):
    advisory_lock(["metrics:rollups"])
    if days is not None:
        days = set(days)
        if not days:
            return 0
    # Claim the dirty marks before reading: a mark written after this either is visible to the
    # reads below or (its insert waiting on our delete) survives for the next rebuild.
    if days is None:
        DirtyDay.objects.all().delete()
    else:
        DirtyDay.objects.filter(day__in=days).delete()
    if days is None:
        MetricRollup.objects.all()._raw_delete(MetricRollup.objects.db)
    else:
        MetricRollup.objects.filter(day__in=days).delete()
    if storage.is_postgres() and not _ROLLUPS_IN_PYTHON:
        return storage.rollups_insert(days, parallel=parallel)
    rows = _rollup_parts(days)
    storage.insert(
        MetricRollup,
        ("day", "dimension", "key", "metric", "values", *ADDITIVE),
        [
            (day, dimension, key, metric, sorted(part["values"]) if part["values"] is not None else None,
             *(part[name] for name in ADDITIVE))
            for (day, dimension, key, metric), part in rows.items()
        ],
    )
    return len(rows)


def rollups_rebuild_dirty() -> int:
    """Rebuild the roll-ups of the days marked dirty."""
    days = list(DirtyDay.objects.values_list("day", flat=True))
    return rollups_rebuild(days=days) if days else 0
