"""Reads of customers; each owns its joins so no caller can make an N+1."""

from django.db import connection
from django.db.models import Prefetch, Q

from customers.identities import identity_guess
from customers.models import Customer, Identity, Merge, MergeSuggestion
from customers.services import customer_ids_resolve


def identities_find(*, pairs) -> dict[tuple[str, str], dict]:
    """{(kind, value): {"pk", "kind", "value", "customer_id"}} for the (normalised) pairs that exist.

    On PostgreSQL the pairs are joined as arrays, one index probe each: an IN
    list of a bulk batch's two thousand values tempts the planner into a
    sequential scan of the whole table.
    """
    pairs = set(pairs)
    if not pairs:
        return {}
    if connection.vendor == "postgresql":
        kinds, values = zip(*pairs)
        sql = (
            "SELECT i.id, i.kind, i.value, i.customer_id FROM unnest(%b::varchar[], %b::varchar[]) AS k(kind, value) "
            f"JOIN {Identity._meta.db_table} i ON i.value = k.value AND i.kind = k.kind"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [list(kinds), list(values)])
            rows = cursor.fetchall()
        return {(kind, value): {"pk": pk, "kind": kind, "value": value, "customer_id": customer_id}
                for pk, kind, value, customer_id in rows}
    found = {}
    for row in Identity.objects.filter(value__in={value for _, value in pairs}).values("pk", "kind", "value", "customer_id"):
        if (row["kind"], row["value"]) in pairs:
            found[(row["kind"], row["value"])] = row
    return found


def customer_get_resolved(*, customer_id) -> tuple[Customer | None, int | None]:
    """(live customer, the tombstone id asked for or None); (None, None) when unknown."""
    live = customer_ids_resolve([customer_id]).get(customer_id)
    if live is None:
        return None, None
    customer = customer_detail_queryset().get(pk=live)
    return customer, (customer_id if live != customer_id else None)


def customer_detail_queryset():
    return Customer.objects.prefetch_related(
        Prefetch("identities", queryset=Identity.objects.order_by("kind", "value")), "segments"
    )


def customer_list(*, search=None, segment=None):
    """Live customers, newest first; `search` matches the name or any identity, normalised."""
    queryset = customer_detail_queryset().filter(merged_into__isnull=True)
    if segment:
        queryset = queryset.filter(segments__slug=segment)
    if search:
        condition = Q(name__icontains=search)
        for kind, value in identity_guess(search):
            if kind is None:
                condition |= Q(identities__value=value)
            else:
                condition |= Q(identities__kind=kind, identities__value=value)
        matching = Customer.objects.filter(condition).values("pk")
        queryset = queryset.filter(pk__in=matching)
    return queryset.order_by("-created_at", "-id")


def merge_list():
    return Merge.objects.select_related("survivor", "merged").order_by("-created_at", "-id")


def merge_suggestion_list(*, status=None):
    queryset = MergeSuggestion.objects.select_related("customer_a", "customer_b").order_by("-created_at", "-id")
    return queryset.filter(status=status) if status else queryset
