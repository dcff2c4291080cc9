"""Every write to interactions and conversations; ingestion is the one door in.

REST, bulk REST, provider webhooks and the demo loader all call
`interactions_ingest`. It is set-based: a batch of a thousand items costs a
fixed number of queries, not a thousand round trips.
"""

from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, OperationalError, transaction
from django.utils import timezone

from crm.bulk import instance_factory, rows_insert, rows_update
from crm.locks import advisory_lock, customers_lock_shared
from customers.identities import IdentityInvalid, identity_normalize
from customers.models import Customer, Identity, Merge
from customers.selectors import identities_find
from customers.services import (
    customer_ids_resolve,
    customer_merge,
    identity_lock_key,
    merge_suggestion_record,
)
from integrations.services import event_emit, events_emit
from interactions.ingest import IdentityIn, IngestItem
from interactions.models import Conversation, Interaction
from interactions.selectors import conversations_open_latest, interactions_by_keys
from standards.services import canned_response_uses_record

# Kinds that make up a conversation; a note joins an open one but never opens one.
CONVERSATIONAL_KINDS = {Interaction.Kind.MESSAGE, Interaction.Kind.CALL, Interaction.Kind.COMMENT}
JOINING_KINDS = CONVERSATIONAL_KINDS | {Interaction.Kind.NOTE}
RESPONDERS = {Interaction.AuthorType.AGENT, Interaction.AuthorType.BOT}
ATTEMPTS = 5

_new_interaction = instance_factory(Interaction)
_new_conversation = instance_factory(Conversation)
_new_customer = instance_factory(Customer)
_new_identity = instance_factory(Identity)


@dataclass
class IngestResult:
    status: str  # created | duplicate | rejected
    interaction: Interaction | None = None
    errors: dict = field(default_factory=dict)


def interaction_ingest(*, item: IngestItem) -> IngestResult:
    """Store one interaction (see `interactions_ingest`)."""
    return interactions_ingest(items=[item])[0]


def interactions_ingest(*, items: list[IngestItem]) -> list[IngestResult]:
    """Store interactions, resolving their customers and conversations; one result per item.

    Idempotent on (source, external_id): a replay returns the stored row as a
    duplicate. Concurrent callers over the same keys are serialised by advisory
    locks; a conflict that still slips through (a unique violation, a deadlock
    with a merge) rolls the batch back and it is tried again, now seeing the
    other writer's rows.
    """
    if not items:
        return []
    items, invalid = _identities_normalize(items)
    for attempt in range(ATTEMPTS):
        try:
            with transaction.atomic():
                return _ingest(items, invalid)
        except (IntegrityError, OperationalError):
            if attempt == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _identities_normalize(items):
    """Items with every identity normalised (idempotent on normalised ones), and {index: errors} of the rest.

    Callers other than the REST parser (provider modules, the demo loader)
    may hand over identities as they came; matching needs them normalised.
    """
    cache = {}
    invalid = {}
    normalised_items = []
    for index, item in enumerate(items):
        identities = []
        for position, identity in enumerate(item.identities):
            key = (identity.kind, identity.value)
            if key not in cache:
                try:
                    cache[key] = IdentityIn(identity.kind, identity_normalize(identity.kind, identity.value))
                except IdentityInvalid as exc:
                    cache[key] = exc
            normalised = cache[key]
            if isinstance(normalised, IdentityInvalid):
                invalid.setdefault(index, {})[f"identities[{position}]"] = [
                    {"code": normalised.code, "message": normalised.message}
                ]
            elif normalised not in identities:
                identities.append(normalised)
        normalised_items.append(item if identities == item.identities else replace(item, identities=identities))
    return normalised_items, invalid


def _ingest(items, invalid):
    results: list[IngestResult | None] = [
        IngestResult("rejected", errors=invalid[index]) if index in invalid else None for index in range(len(items))
    ]
    advisory_lock(
        [f"interaction:{item.source}:{item.external_id}" for item in items]
        + [identity_lock_key(i.kind, i.value) for item in items for i in item.identities]
    )

    # 1. Replays and duplicates within the batch.
    stored = interactions_by_keys(keys=[(item.source, item.external_id) for item in items])
    first_index = {}
    fresh = []
    for index, item in enumerate(items):
        if index in invalid:
            continue
        key = (item.source, item.external_id)
        if key in stored:
            results[index] = IngestResult("duplicate", stored[key])
        elif key in first_index:
            continue  # answered once the first copy is stored
        else:
            first_index[key] = index
            fresh.append(index)

    # 2. Customers: find, create or merge them.
    customer_of, identity_id_of, created_customers, rejected = _resolve_customers(items, fresh)
    for index, errors in rejected.items():
        results[index] = IngestResult("rejected", errors=errors)
    fresh = [index for index in fresh if index not in rejected]

    # 3. Conversations, then the interactions themselves.
    conversation_of, conversation_errors, opened = _assign_conversations(items, fresh, customer_of)
    for index, errors in conversation_errors.items():
        results[index] = IngestResult("rejected", errors=errors)
    fresh = [index for index in fresh if index not in conversation_errors]

    rows = []
    for index in fresh:
        item = items[index]
        first_identity = item.identities[0] if item.identities else None
        rows.append(
            _new_interaction(
                customer_id=customer_of[index],
                conversation_id=conversation_of.get(index),
                identity_id=identity_id_of.get((first_identity.kind, first_identity.value)) if first_identity else None,
                channel=item.channel,
                kind=item.kind,
                direction=item.direction,
                author_type=item.author_type,
                author_name=item.author_name,
                agent_id=item.agent_id,
                occurred_at=item.occurred_at,
                subject=item.subject,
                body=item.body,
                sentiment=item.sentiment,
                intent=item.intent,
                incident_at=item.incident_at,
                source=item.source,
                external_id=item.external_id,
                data=item.data,
            )
        )
    rows_insert(Interaction, rows)
    for index, row in zip(fresh, rows):
        results[index] = IngestResult("created", row)
    for index, item in enumerate(items):
        if results[index] is None:
            first = results[first_index[(item.source, item.external_id)]]
            results[index] = IngestResult("duplicate" if first.status == "created" else first.status,
                                          first.interaction, first.errors)

    _after_ingest(rows, created_customers, opened)
    return results


def _after_ingest(rows, created_customers, opened_conversations):
    """What follows a stored batch, in its transaction: events for integrations."""
    if not rows:
        return
    events = [("customer.created", {"customer_id": pk}) for pk in created_customers]
    events += [("conversation.opened", conversation_payload(c)) for c in opened_conversations]
    events += [("interaction.created", interaction_payload(row)) for row in rows]
    events_emit(events=events)
    # Metrics: dirty rows in this transaction, so a broker outage loses no recompute.
    from metrics.services import customers_mark_dirty

    customers_mark_dirty(customer_ids={row.customer_id for row in rows})
    canned_response_uses_record(interactions=rows)  # outbound rows naming data.canned_response_id


def interaction_payload(row):
    return {
        "id": row.pk, "customer_id": row.customer_id, "conversation_id": row.conversation_id,
        "channel": row.channel, "kind": row.kind, "direction": row.direction, "author_type": row.author_type,
        "occurred_at": row.occurred_at, "subject": row.subject, "body": row.body, "sentiment": row.sentiment,
        "intent": row.intent, "source": row.source, "external_id": row.external_id,
    }


def conversation_payload(conversation):
    return {
        "id": conversation.pk, "customer_id": conversation.customer_id, "status": conversation.status,
        "channels": conversation.channels, "opened_at": conversation.opened_at,
        "resolved_at": conversation.resolved_at, "reopen_count": conversation.reopen_count,
    }


class _Groups:
    """Union-find over batch items and the identities they carry."""

    def __init__(self):
        self.parent = {}

    def find(self, node):
        self.parent.setdefault(node, node)
        root = node
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[node] != root:
            self.parent[node], node = root, self.parent[node]
        return root

    def union(self, a, b):
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra


def _resolve_customers(items, indexes):
    """Decide each item's customer: (customer_of, identity_id_of, created ids, rejected)."""
    rejected = {}
    pairs = {(i.kind, i.value) for index in indexes for i in items[index].identities}
    identity_rows = identities_find(pairs=pairs)

    asked = {items[index].customer_id for index in indexes if items[index].customer_id}
    live = customer_ids_resolve(asked) if asked else {}
    for index in indexes:
        wanted = items[index].customer_id
        if wanted and wanted not in live:
            rejected[index] = {"customer_id": [{"code": "not_found", "message": f"No customer #{wanted}."}]}

    # Items sharing an identity belong to one person; so do the customers their identities point at.
    groups = _Groups()
    for index in indexes:
        if index in rejected:
            continue
        node = ("item", index)
        groups.find(node)
        for identity in items[index].identities:
            groups.union(node, ("identity", identity.kind, identity.value))
        if items[index].customer_id:
            groups.union(node, ("customer", live[items[index].customer_id]))
    for pair, row in identity_rows.items():
        groups.union(("identity", *pair), ("customer", row["customer_id"]))

    members = defaultdict(list)
    for node in list(groups.parent):
        members[groups.find(node)].append(node)

    # Share-lock every existing customer involved; a merge committed meanwhile shows as a tombstone.
    existing_ids = {node[1] for nodes in members.values() for node in nodes if node[0] == "customer"}
    survivors = _customers_lock_live(existing_ids)

    customer_of = {}
    created = []
    new_customer_groups = []
    for root, nodes in members.items():
        item_indexes = sorted(node[1] for node in nodes if node[0] == "item")
        if not item_indexes:
            continue
        customer_ids = {survivors[node[1]] for node in nodes if node[0] == "customer" and node[1] in survivors}
        if not customer_ids:
            new_customer_groups.append((item_indexes, nodes))
            continue
        target = _one_customer(items, item_indexes, nodes, customer_ids, identity_rows, survivors)
        for index in item_indexes:
            customer_of[index] = target

    if new_customer_groups:
        now = timezone.now()
        fresh_customers = []
        for item_indexes, _nodes in new_customer_groups:
            name = next((items[i].customer_name for i in item_indexes if items[i].customer_name), "")
            attributes = {}
            for i in item_indexes:
                attributes.update(items[i].customer_attributes)
            fresh_customers.append(_new_customer(name=name, attributes=attributes, created_at=now))
        rows_insert(Customer, fresh_customers)
        for (item_indexes, _nodes), customer in zip(new_customer_groups, fresh_customers):
            created.append(customer.pk)
            for index in item_indexes:
                customer_of[index] = customer.pk

    _customers_fill_in(items, customer_of, exclude=set(created))

    # Identities the batch brought that nobody had yet.
    new_identities = {}
    for index, customer_id in customer_of.items():
        for identity in items[index].identities:
            key = (identity.kind, identity.value)
            if key not in identity_rows and key not in new_identities:
                new_identities[key] = _new_identity(customer_id=customer_id, kind=identity.kind, value=identity.value)
    rows_insert(Identity, list(new_identities.values()))
    identity_id_of = {key: row["pk"] for key, row in identity_rows.items()}
    identity_id_of.update({key: row.pk for key, row in new_identities.items()})
    return customer_of, identity_id_of, created, rejected


def _customers_lock_live(ids):
    """{id: live id}, with every live customer share-locked.

    A survivor found by following a tombstone may itself be merged before we
    lock it, so lock, look, and follow again until every locked row is live.
    """
    survivors = {pk: pk for pk in ids}
    for _ in range(ATTEMPTS * 10):
        targets = set(survivors.values())
        pointers = customers_lock_shared(targets)
        if all(pointers.get(pk) is None for pk in targets):
            return survivors
        resolved = customer_ids_resolve(targets)
        survivors = {pk: resolved[target] for pk, target in survivors.items()}
    raise OperationalError("customers kept being merged while ingesting; retrying the batch")


def _one_customer(items, item_indexes, nodes, customer_ids, identity_rows, survivors):
    """The customer a group of items belongs to, merging when its identities span several."""
    if len(customer_ids) == 1:
        return next(iter(customer_ids))
    customers = sorted(Customer.objects.filter(pk__in=customer_ids), key=lambda c: (c.created_at, c.pk))
    evidence = {
        "identities": sorted(f"{node[1]}:{node[2]}" for node in nodes if node[0] == "identity"),
        "items": [f"{items[i].source}:{items[i].external_id}" for i in item_indexes],
    }
    if settings.AUTO_MERGE:
        survivor = customers[0]
        for other in customers[1:]:
            customer_merge(survivor=survivor, merged=other, reason=Merge.Reason.AUTO, evidence=evidence)
        return survivor.pk
    # Keep the items on the customer that matches most of their identities (the oldest on a tie).
    matches = defaultdict(int)
    for node in nodes:
        if node[0] == "identity" and (node[1], node[2]) in identity_rows:
            matches[survivors.get(identity_rows[(node[1], node[2])]["customer_id"])] += 1
    best = max(customers, key=lambda c: (matches[c.pk], -c.created_at.timestamp(), -c.pk))
    merge_suggestion_record(customer_ids=[c.pk for c in customers], evidence=evidence)
    return best.pk


def _customers_fill_in(items, customer_of, *, exclude):
    """Give existing customers the name they lack and the attributes the items carry."""
    wanted = defaultdict(lambda: {"name": "", "attributes": {}})
    for index, customer_id in customer_of.items():
        if customer_id in exclude:
            continue
        item = items[index]
        if item.customer_name and not wanted[customer_id]["name"]:
            wanted[customer_id]["name"] = item.customer_name
        wanted[customer_id]["attributes"].update(item.customer_attributes)
    wanted = {pk: w for pk, w in wanted.items() if w["name"] or w["attributes"]}
    if not wanted:
        return
    changed = []
    for customer in Customer.objects.filter(pk__in=wanted):
        update = wanted[customer.pk]
        attributes = {**customer.attributes, **update["attributes"]}
        name = customer.name or update["name"]
        if attributes != customer.attributes or name != customer.name:
            customer.attributes, customer.name = attributes, name
            changed.append(customer)
    rows_update(Customer, changed, ["name", "attributes", "updated_at"])


def _assign_conversations(items, indexes, customer_of):
    """Each item's conversation: the one it names or answers, else the customer's open one, else a new one."""
    errors = {}
    window = timedelta(hours=settings.CONVERSATION_CONTINUE_HOURS)
    customer_ids = {customer_of[index] for index in indexes}

    named_ids = {items[i].conversation_id for i in indexes if items[i].conversation_id}
    named = {c.pk: c for c in Conversation.objects.filter(pk__in=named_ids)} if named_ids else {}
    replied = _conversations_replied_to(items, indexes)
    open_by_customer = conversations_open_latest(customer_ids=customer_ids)
    # Conversations referenced by replies may belong to a customer merged since: compare survivors.
    owner_ids = {c.customer_id for c in [*named.values(), *replied.values()]}
    owners = customer_ids_resolve(owner_ids) if owner_ids else {}

    touched = {}
    before = {}
    opened = []
    assigned = {}
    for index in sorted(indexes, key=lambda i: (items[i].occurred_at, i)):
        item = items[index]
        customer_id = customer_of[index]
        conversation = None
        if item.conversation_id:
            conversation = named.get(item.conversation_id)
            if conversation is None or owners.get(conversation.customer_id) != customer_id:
                errors[index] = {"conversation_id": [{
                    "code": "not_found",
                    "message": f"No conversation #{item.conversation_id} of this customer.",
                }]}
                continue
        elif item.reply_to and index in replied and owners.get(replied[index].customer_id) == customer_id:
            conversation = replied[index]
        elif item.kind in JOINING_KINDS:
            candidate = open_by_customer.get(customer_id)
            if candidate is not None and item.occurred_at - candidate.last_activity_at <= window:
                conversation = candidate
            elif item.kind in CONVERSATIONAL_KINDS:
                conversation = _new_conversation(
                    customer_id=customer_id,
                    status=Conversation.Status.OPEN,
                    subject=(item.subject or item.body)[:300].split("\n")[0],
                    opened_at=item.occurred_at,
                    last_activity_at=item.occurred_at,
                    channels=[],
                )
                opened.append(conversation)
                open_by_customer[customer_id] = conversation
        if conversation is None:
            continue
        if id(conversation) not in before:
            before[id(conversation)] = _clocks(conversation)
        if conversation.customer_id != customer_id:
            conversation.customer_id = customer_id
        _conversation_apply(conversation, item)
        touched[id(conversation)] = conversation
        assigned[index] = conversation

    if opened:
        rows_insert(Conversation, opened)
    opened_ids = {id(c) for c in opened}
    after = {key: _clocks(c) for key, c in touched.items() if key not in opened_ids}
    updated = [touched[key] for key, clocks in after.items() if clocks != before[key]]
    if updated:
        # Only the columns some row changed: most joins move last_activity_at alone.
        changed = [name for position, name in enumerate(CONVERSATION_CLOCKS)
                   if any(after[id(c)][position] != before[id(c)][position] for c in updated)]
        rows_update(Conversation, updated, [*changed, "updated_at"])
    return {index: conversation.pk for index, conversation in assigned.items()}, errors, opened


# What ingesting can change on a stored conversation (with updated_at).
CONVERSATION_CLOCKS = ("customer_id", "status", "channels", "last_activity_at", "first_inbound_at",
                       "first_response_at", "resolved_at", "reopen_count")


def _clocks(conversation):
    return tuple(getattr(conversation, name) for name in CONVERSATION_CLOCKS)


def _conversation_apply(conversation, item):
    """Fold one interaction into its conversation's clocks and status."""
    now = timezone.now()
    if item.channel not in conversation.channels:
        conversation.channels = [*conversation.channels, item.channel]
    if item.occurred_at > conversation.last_activity_at:
        conversation.last_activity_at = item.occurred_at
    from_customer = item.direction == Interaction.Direction.INBOUND and item.author_type == Interaction.AuthorType.CUSTOMER
    if from_customer:
        if conversation.first_inbound_at is None or item.occurred_at < conversation.first_inbound_at:
            conversation.first_inbound_at = item.occurred_at
            if conversation.first_response_at and conversation.first_response_at < item.occurred_at:
                conversation.first_response_at = None
        if conversation.status == Conversation.Status.RESOLVED:
            conversation.status = Conversation.Status.OPEN
            conversation.resolved_at = None
            conversation.reopen_count += 1
        elif conversation.status == Conversation.Status.PENDING:
            conversation.status = Conversation.Status.OPEN
    elif (
        item.direction == Interaction.Direction.OUTBOUND
        and item.author_type in RESPONDERS
        and item.kind in CONVERSATIONAL_KINDS
        and conversation.first_inbound_at is not None
        and item.occurred_at >= conversation.first_inbound_at
        and (conversation.first_response_at is None or item.occurred_at < conversation.first_response_at)
    ):
        conversation.first_response_at = item.occurred_at
    conversation.updated_at = now


def _conversations_replied_to(items, indexes):
    wanted = defaultdict(set)
    for index in indexes:
        for ref in items[index].reply_to:
            wanted[items[index].source].add(ref)
    if not wanted:
        return {}
    found = {}
    for source, refs in wanted.items():
        rows = (
            Interaction.objects.filter(source=source, external_id__in=refs, conversation__isnull=False)
            .select_related("conversation")
            .order_by("-occurred_at")
        )
        for row in rows:
            found.setdefault((source, row.external_id), row.conversation)
    replied = {}
    for index in indexes:
        item = items[index]
        for ref in reversed(item.reply_to):  # the closest reference comes last (References, In-Reply-To)
            if (item.source, ref) in found:
                replied[index] = found[(item.source, ref)]
                break
    return replied


def interactions_reassign(*, from_customer_id, to_customer_id) -> dict:
    """Move a customer's interactions and conversations to another; returns the moved ids.

    Called by `customers.services.customer_merge` while it holds both customer rows locked.
    """
    interaction_ids = list(Interaction.objects.filter(customer_id=from_customer_id).values_list("pk", flat=True))
    conversation_ids = list(Conversation.objects.filter(customer_id=from_customer_id).values_list("pk", flat=True))
    Interaction.objects.filter(pk__in=interaction_ids).update(customer_id=to_customer_id)
    Conversation.objects.filter(pk__in=conversation_ids).update(customer_id=to_customer_id)
    return {"interactions": interaction_ids, "conversations": conversation_ids}


def interactions_restore(*, from_customer_id, to_customer_id, interaction_ids, conversation_ids, identity_ids,
                         since) -> dict:
    """Undo `interactions_reassign`: the moved rows go back, with what arrived since through identities going back.

    A conversation goes back if it was moved, or if it was opened after the
    merge and holds only interactions that go back. An interaction that goes
    back from a conversation that stays (or stays from one that goes) leaves
    that conversation rather than straddle two customers.
    """
    back = set(
        Interaction.objects.filter(customer_id=from_customer_id, pk__in=interaction_ids).values_list("pk", flat=True)
    )
    if identity_ids:
        back |= set(
            Interaction.objects.filter(
                customer_id=from_customer_id, identity_id__in=identity_ids, created_at__gte=since
            ).values_list("pk", flat=True)
        )
    conversations_back = set(
        Conversation.objects.filter(customer_id=from_customer_id, pk__in=conversation_ids).values_list("pk", flat=True)
    )
    later = defaultdict(set)
    for pk, conversation_id in Interaction.objects.filter(
        customer_id=from_customer_id, conversation__created_at__gte=since
    ).values_list("pk", "conversation_id"):
        later[conversation_id].add(pk)
    conversations_back |= {cid for cid, members in later.items() if members <= back}

    detached = list(
        Interaction.objects.filter(customer_id=from_customer_id, pk__in=back)
        .exclude(conversation_id__in=conversations_back)
        .exclude(conversation__isnull=True)
        .values_list("pk", flat=True)
    ) + list(
        Interaction.objects.filter(customer_id=from_customer_id, conversation_id__in=conversations_back)
        .exclude(pk__in=back)
        .values_list("pk", flat=True)
    )
    Interaction.objects.filter(pk__in=detached).update(conversation=None)
    Interaction.objects.filter(pk__in=back).update(customer_id=to_customer_id)
    Conversation.objects.filter(pk__in=conversations_back).update(customer_id=to_customer_id)
    return {"interactions": sorted(back), "conversations": sorted(conversations_back), "detached": sorted(detached)}


@transaction.atomic
def conversation_update(*, conversation: Conversation, fields: dict, actor=None) -> Conversation:
    """Change status, assignee or subject; resolving stamps the time, reopening counts."""
    conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
    previous = conversation.status
    changed = []
    if "status" in fields and fields["status"] != previous:
        status = fields["status"]
        if status == Conversation.Status.RESOLVED:
            conversation.resolved_at = timezone.now()
        elif previous == Conversation.Status.RESOLVED:
            conversation.resolved_at = None
            conversation.reopen_count += 1
        conversation.status = status
        changed += ["status", "resolved_at", "reopen_count"]
    if "assignee" in fields:
        conversation.assignee = fields["assignee"]
        changed.append("assignee")
    if "subject" in fields:
        conversation.subject = fields["subject"]
        changed.append("subject")
    if changed:
        conversation.save(update_fields=[*changed, "updated_at"])
        _after_conversation_change(conversation, previous)
    return conversation


def _after_conversation_change(conversation, previous_status):
    if conversation.status == Conversation.Status.RESOLVED and previous_status != Conversation.Status.RESOLVED:
        event_emit(event_type="conversation.resolved", payload=conversation_payload(conversation))
    if conversation.status != previous_status:
        # Resolution times, came-back windows and bot/human clocks depend on the status.
        from metrics.services import customers_mark_dirty

        customers_mark_dirty(customer_ids=[conversation.customer_id])

