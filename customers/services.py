"""Every write to customers: creation, identities, merges and their undo."""

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from crm.errors import Conflict
from crm.locks import advisory_lock
from customers.identities import IdentityInvalid, identity_normalize
from customers.models import Customer, Identity, Merge, MergeSuggestion, Segment
from integrations.services import event_emit

MAX_TOMBSTONE_CHAIN = 50


def identity_lock_key(kind, value):
    return f"identity:{kind}:{value}"


def customer_ids_resolve(ids) -> dict[int, int]:
    """{id: live id}, following tombstones to their survivors; unknown ids are absent."""
    pointers = {}
    frontier = set(ids)
    for _ in range(MAX_TOMBSTONE_CHAIN):
        frontier -= pointers.keys()
        if not frontier:
            break
        rows = dict(Customer.objects.filter(pk__in=frontier).values_list("pk", "merged_into_id"))
        pointers.update(rows)
        frontier = {target for target in rows.values() if target is not None}
    resolved = {}
    for pk in ids:
        if pk not in pointers:
            continue
        current = pk
        for _ in range(MAX_TOMBSTONE_CHAIN):
            if pointers.get(current) is None:
                break
            current = pointers[current]
        resolved[pk] = current
    return resolved


def segments_get_or_create(*, slugs) -> list[Segment]:
    """Segments by slug, creating the missing ones (their name is the slug as written)."""
    wanted = {}
    for raw in slugs:
        slug = slugify(raw, allow_unicode=True)
        if slug:
            wanted.setdefault(slug, raw)
    existing = {segment.slug: segment for segment in Segment.objects.filter(slug__in=wanted)}
    missing = [Segment(slug=slug, name=name) for slug, name in wanted.items() if slug not in existing]
    if missing:
        Segment.objects.bulk_create(missing, ignore_conflicts=True)
        existing = {segment.slug: segment for segment in Segment.objects.filter(slug__in=wanted)}
    return [existing[slug] for slug in wanted]


@transaction.atomic
def customer_update(*, customer: Customer, name=None, attributes=None, segments=None, switching_cost=None,
                    add_identities=(), fields_set=()) -> Customer:
    """Edit a customer; new identities already belonging to someone else are a conflict."""
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    if customer.merged_into_id:
        raise Conflict(f"Customer #{customer.pk} was merged into #{customer.merged_into_id}; edit that one.")
    changed = []
    if "name" in fields_set:
        customer.name = name or ""
        changed.append("name")
    if "attributes" in fields_set:
        customer.attributes = attributes or {}
        changed.append("attributes")
    if "switching_cost" in fields_set:
        customer.switching_cost = switching_cost
        changed.append("switching_cost")
    if changed:
        customer.save(update_fields=[*changed, "updated_at"])
    if "segments" in fields_set:
        customer.segments.set(segments_get_or_create(slugs=segments or []))
    if add_identities:
        pairs = []
        for kind, raw in add_identities:
            try:
                pairs.append((kind, identity_normalize(kind, raw)))
            except IdentityInvalid as exc:
                raise Conflict(exc.message) from exc
        advisory_lock(identity_lock_key(kind, value) for kind, value in pairs)
        taken = {
            (i.kind, i.value): i.customer_id
            for i in Identity.objects.filter(value__in=[v for _, v in pairs])
            if (i.kind, i.value) in set(pairs)
        }
        for pair, owner in taken.items():
            if owner != customer.pk:
                raise Conflict(
                    f"{pair[0]}:{pair[1]} belongs to customer #{owner}; merge the two customers instead."
                )
        Identity.objects.bulk_create(
            [Identity(customer=customer, kind=k, value=v) for k, v in pairs if (k, v) not in taken]
        )
    return customer


def _customers_lock_for_update(ids):
    return {c.pk: c for c in Customer.objects.select_for_update().filter(pk__in=sorted(ids)).order_by("pk")}


@transaction.atomic
def customer_merge(*, survivor: Customer, merged: Customer, reason=Merge.Reason.MANUAL, actor=None,
                   evidence=None) -> Merge:
    """Move everything of `merged` to `survivor` and leave `merged` as a tombstone.

    Both customer rows are locked FOR UPDATE in ascending id order, so two
    merges over overlapping customers queue behind each other instead of
    deadlocking, and ingestion (which share-locks the customers it writes to)
    cannot add a row to `merged` while it is being emptied.
    """
    from interactions.services import interactions_reassign

    if survivor.pk == merged.pk:
        raise Conflict("A customer cannot be merged into itself.")
    locked = _customers_lock_for_update([survivor.pk, merged.pk])
    survivor, merged = locked[survivor.pk], locked[merged.pk]
    for customer in (survivor, merged):
        if customer.merged_into_id:
            raise Conflict(f"Customer #{customer.pk} was already merged into #{customer.merged_into_id}.")

    identity_ids = list(Identity.objects.filter(customer=merged).values_list("pk", flat=True))
    Identity.objects.filter(pk__in=identity_ids).update(customer=survivor)
    moved = interactions_reassign(from_customer_id=merged.pk, to_customer_id=survivor.pk)
    moved["identities"] = identity_ids

    # Fill in what the survivor lacks, remembering exactly what was filled so undo can take it back.
    filled = {"name": None, "attributes": {}, "segments": [], "switching_cost": None}
    if not survivor.name and merged.name:
        survivor.name = filled["name"] = merged.name
    for key, value in merged.attributes.items():
        if key not in survivor.attributes:
            survivor.attributes[key] = value
            filled["attributes"][key] = value
    if survivor.switching_cost is None and merged.switching_cost is not None:
        survivor.switching_cost = merged.switching_cost
        filled["switching_cost"] = str(merged.switching_cost)
    survivor.save(update_fields=["name", "attributes", "switching_cost", "updated_at"])
    new_segments = set(merged.segments.values_list("pk", flat=True)) - set(survivor.segments.values_list("pk", flat=True))
    if new_segments:
        survivor.segments.add(*new_segments)
        filled["segments"] = sorted(new_segments)

    now = timezone.now()
    merged.merged_into = survivor
    merged.merged_at = now
    merged.save(update_fields=["merged_into", "merged_at", "updated_at"])
    merge = Merge.objects.create(
        survivor=survivor,
        merged=merged,
        reason=reason,
        evidence=evidence or {},
        moved=moved,
        survivor_before=filled,
        created_at=now,
        created_by=actor if getattr(actor, "pk", None) else None,
    )
    _after_merge_change(merge, event_type="customer.merged")
    return merge


@transaction.atomic
def merge_undo(*, merge: Merge, actor=None) -> Merge:
    """Give back to the merged customer exactly what the merge moved.

    Interactions that reached the survivor after the merge through one of the
    identities going back go back too.
    """
    from interactions.services import interactions_restore

    locked = _customers_lock_for_update([merge.survivor_id, merge.merged_id])
    merge = Merge.objects.select_for_update().get(pk=merge.pk)
    survivor, merged = locked[merge.survivor_id], locked[merge.merged_id]
    if merge.undone_at:
        raise Conflict(f"Merge #{merge.pk} was already undone.")
    if survivor.merged_into_id:
        later = Merge.objects.filter(merged=survivor, undone_at__isnull=True).first()
        raise Conflict(
            f"Customer #{survivor.pk} has since been merged into #{survivor.merged_into_id}; "
            f"undo merge #{later.pk if later else '?'} first."
        )

    identity_ids = list(
        Identity.objects.filter(pk__in=merge.moved.get("identities", []), customer=survivor).values_list("pk", flat=True)
    )
    Identity.objects.filter(pk__in=identity_ids).update(customer=merged)
    restored = interactions_restore(
        from_customer_id=survivor.pk,
        to_customer_id=merged.pk,
        interaction_ids=merge.moved.get("interactions", []),
        conversation_ids=merge.moved.get("conversations", []),
        identity_ids=identity_ids,
        since=merge.created_at,
    )

    filled = merge.survivor_before or {}
    update = []
    if filled.get("name") and survivor.name == filled["name"]:
        survivor.name = ""
        update.append("name")
    for key, value in (filled.get("attributes") or {}).items():
        if survivor.attributes.get(key) == value:
            del survivor.attributes[key]
            update.append("attributes")
    if filled.get("switching_cost") is not None and str(survivor.switching_cost) == filled["switching_cost"]:
        survivor.switching_cost = None
        update.append("switching_cost")
    if update:
        survivor.save(update_fields=[*set(update), "updated_at"])
    if filled.get("segments"):
        survivor.segments.remove(*filled["segments"])

    merged.merged_into = None
    merged.merged_at = None
    merged.save(update_fields=["merged_into", "merged_at", "updated_at"])
    merge.undone_at = timezone.now()
    merge.undone_by = actor if getattr(actor, "pk", None) else None
    merge.evidence = {**merge.evidence, "undo": restored}
    merge.save(update_fields=["undone_at", "undone_by", "evidence"])
    _after_merge_change(merge, event_type="customer.unmerged")
    return merge


def _after_merge_change(merge, *, event_type):
    """Tell integrations (metrics recompute joins here)."""
    event_emit(
        event_type=event_type,
        payload={"merge_id": merge.pk, "survivor_id": merge.survivor_id, "merged_id": merge.merged_id,
                 "reason": merge.reason},
    )
    from metrics.services import customers_mark_dirty

    customers_mark_dirty(customer_ids=[merge.survivor_id, merge.merged_id], urgent=True)


def merge_suggestion_record(*, customer_ids, evidence) -> list[MergeSuggestion]:
    """Record that these customers look like one person (AUTO_MERGE off); one pending row per pair."""
    ids = sorted(set(customer_ids))
    pairs = [(a, b) for i, a in enumerate(ids) for b in ids[i + 1:]]
    existing = set(
        MergeSuggestion.objects.filter(
            status=MergeSuggestion.Status.PENDING, customer_a__in=ids, customer_b__in=ids
        ).values_list("customer_a_id", "customer_b_id")
    )
    rows = [
        MergeSuggestion(customer_a_id=a, customer_b_id=b, evidence=evidence)
        for a, b in pairs
        if (a, b) not in existing
    ]
    MergeSuggestion.objects.bulk_create(rows, ignore_conflicts=True)
    return rows


@transaction.atomic
def merge_suggestion_accept(*, suggestion: MergeSuggestion, actor=None) -> Merge:
    """Merge the suggested pair; the older customer survives."""
    suggestion = MergeSuggestion.objects.select_for_update().get(pk=suggestion.pk)
    if suggestion.status != MergeSuggestion.Status.PENDING:
        raise Conflict(f"Suggestion #{suggestion.pk} is already {suggestion.status}.")
    live = customer_ids_resolve([suggestion.customer_a_id, suggestion.customer_b_id])
    a, b = live.get(suggestion.customer_a_id), live.get(suggestion.customer_b_id)
    if a is None or b is None or a == b:
        raise Conflict("The two customers are already one.")
    customers = sorted(Customer.objects.filter(pk__in=[a, b]), key=lambda c: (c.created_at, c.pk))
    merge = customer_merge(
        survivor=customers[0], merged=customers[1], reason=Merge.Reason.SUGGESTION, actor=actor,
        evidence={**suggestion.evidence, "suggestion_id": suggestion.pk},
    )
    suggestion.status = MergeSuggestion.Status.ACCEPTED
    suggestion.decided_at = timezone.now()
    suggestion.decided_by = actor if getattr(actor, "pk", None) else None
    suggestion.merge = merge
    suggestion.save(update_fields=["status", "decided_at", "decided_by", "merge"])
    return merge


@transaction.atomic
def merge_suggestion_dismiss(*, suggestion: MergeSuggestion, actor=None) -> MergeSuggestion:
    """Decide that the pair are different people."""
    suggestion = MergeSuggestion.objects.select_for_update().get(pk=suggestion.pk)
    if suggestion.status != MergeSuggestion.Status.PENDING:
        raise Conflict(f"Suggestion #{suggestion.pk} is already {suggestion.status}.")
    suggestion.status = MergeSuggestion.Status.DISMISSED
    suggestion.decided_at = timezone.now()
    suggestion.decided_by = actor if getattr(actor, "pk", None) else None
    suggestion.save(update_fields=["status", "decided_at", "decided_by"])
    return suggestion


def auto_merge_enabled():
    return settings.AUTO_MERGE
