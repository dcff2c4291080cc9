"""Reads of interactions and conversations: the timeline above all."""

from django.db import connection
from django.db.models import Count, Q

from crm.bulk import rows_fetch, select_list
from customers.models import Customer

from interactions.models import Conversation, Interaction


def timeline_queryset(*, customer_id, channel=None, kind=None, direction=None, author_type=None, since=None,
                      until=None, before=None):
    """A customer's interactions, newest first, resumable after `before` = (occurred_at, id).

    Walks the (customer, occurred_at desc, id desc) index: the cursor bound
    is written so that the scan starts at the cursor, not at the newest row.
    """
    queryset = Interaction.objects.filter(customer_id=customer_id)
    for name, value in (("channel", channel), ("kind", kind), ("direction", direction), ("author_type", author_type)):
        if value:
            queryset = queryset.filter(**{f"{name}__in": value} if isinstance(value, (list, tuple)) else {name: value})
    if since:
        queryset = queryset.filter(occurred_at__gte=since)
    if until:
        queryset = queryset.filter(occurred_at__lt=until)
    if before:
        at, pk = before
        queryset = queryset.filter(Q(occurred_at__lt=at) | Q(occurred_at=at, pk__lt=pk), occurred_at__lte=at)
    return queryset.order_by("-occurred_at", "-id")


def timeline_page(*, customer_id, limit, channel=(), kind=(), direction=None, author_type=(), since=None, until=None,
                  before=None) -> tuple[int | None, list[Interaction]]:
    """(live customer id or None when unknown, up to `limit` interactions newest first).

    The API's hot read, in one statement when the customer is live: the
    query is written out rather than compiled by the ORM per request, and
    the live check rides along as EXISTS. An empty page (a tombstone, an
    unknown id, or simply no rows) falls back to resolving the id.
    """
    from customers.services import customer_ids_resolve

    live = customer_id
    rows = _timeline_rows(customer_id, limit, channel, kind, direction, author_type, since, until, before,
                          require_live=True)
    if rows:
        return live, rows
    live = customer_ids_resolve([customer_id]).get(customer_id)
    if live is None:
        return None, []
    if live != customer_id:
        rows = _timeline_rows(live, limit, channel, kind, direction, author_type, since, until, before)
    return live, rows


def _timeline_rows(customer_id, limit, channel, kind, direction, author_type, since, until, before, *,
                   require_live=False):
    ops = connection.ops
    meta = Interaction._meta
    table, quote = meta.db_table, ops.quote_name
    conditions, params = [f"{quote('customer_id')} = %s"], [customer_id]
    for column, values in (("channel", channel), ("kind", kind), ("author_type", author_type)):
        if values:
            conditions.append(f"{quote(column)} IN ({', '.join(['%s'] * len(values))})")
            params.extend(values)
    if direction:
        conditions.append(f"{quote('direction')} = %s")
        params.append(direction)
    if since:
        conditions.append(f"{quote('occurred_at')} >= %s")
        params.append(ops.adapt_datetimefield_value(since))
    if until:
        conditions.append(f"{quote('occurred_at')} < %s")
        params.append(ops.adapt_datetimefield_value(until))
    if before:
        # The redundant first bound is what lets the index scan start at the cursor.
        at, pk = ops.adapt_datetimefield_value(before[0]), before[1]
        conditions.append(f"{quote('occurred_at')} <= %s AND ({quote('occurred_at')} < %s OR "
                          f"({quote('occurred_at')} = %s AND {quote('id')} < %s))")
        params.extend([at, at, at, pk])
    if require_live:
        conditions.append(f"EXISTS (SELECT 1 FROM {quote(Customer._meta.db_table)} WHERE {quote('id')} = %s "
                          f"AND {quote('merged_into_id')} IS NULL)")
        params.append(customer_id)
    columns = ", ".join(quote(f.column) for f in meta.concrete_fields)
    sql = (f"SELECT {columns} FROM {quote(table)} WHERE {' AND '.join(conditions)} "
           f"ORDER BY {quote('occurred_at')} DESC, {quote('id')} DESC LIMIT %s")
    return list(Interaction.objects.raw(sql, [*params, limit]))


def channel_counts(*, customer_id) -> dict[str, int]:
    rows = (
        Interaction.objects.filter(customer_id=customer_id)
        .order_by()
        .values("channel")
        .annotate(n=Count("id"))
    )
    return {row["channel"]: row["n"] for row in sorted(rows, key=lambda r: r["channel"])}


def conversation_list(*, customer_id=None, status=None, assignee_id=None, channel=None):
    queryset = Conversation.objects.select_related("assignee")
    if customer_id:
        queryset = queryset.filter(customer_id=customer_id)
    if status:
        queryset = queryset.filter(status=status)
    if assignee_id:
        queryset = queryset.filter(assignee_id=assignee_id)
    if channel:
        queryset = queryset.filter(channels__contains=[channel]) if _json_contains_supported() else queryset.filter(
            channels__icontains=f'"{channel}"'
        )
    return queryset.order_by("-last_activity_at", "-id")


def interactions_by_keys(*, keys) -> dict[tuple[str, str], Interaction]:
    """{(source, external_id): the stored interaction} for the keys already stored (replays)."""
    keys = sorted(set(keys))
    if not keys:
        return {}
    if connection.vendor == "postgresql":
        # One probe of the (source, external_id) unique index per key: with `external_id IN (…)` the
        # planner may instead walk every row of a busy source and filter.
        sources, external_ids = zip(*keys)
        sql = (
            f"SELECT {select_list(Interaction, 'i')} FROM unnest(%b::varchar[], %b::varchar[]) "
            f"AS k(source, external_id) CROSS JOIN LATERAL (SELECT * FROM {Interaction._meta.db_table} i "
            "WHERE i.source = k.source AND i.external_id = k.external_id) i"
        )
        rows = rows_fetch(Interaction, sql, [list(sources), list(external_ids)])
    else:
        by_source = {}
        for source, external_id in keys:
            by_source.setdefault(source, set()).add(external_id)
        condition = Q()
        for source, external_ids in by_source.items():
            condition |= Q(source=source, external_id__in=external_ids)
        rows = Interaction.objects.filter(condition)
    return {(row.source, row.external_id): row for row in rows}


def conversations_open_latest(*, customer_ids) -> dict[int, Conversation]:
    """{customer id: their open or pending conversation with the latest activity}."""
    customer_ids = sorted(set(customer_ids))
    if not customer_ids:
        return {}
    statuses = [Conversation.Status.OPEN, Conversation.Status.PENDING]
    if connection.vendor == "postgresql":
        # One index probe per customer (LATERAL … LIMIT 1), whatever the planner's statistics say:
        # an IN list over a thousand customers can lead it to walk every open conversation instead.
        sql = (
            f"SELECT {select_list(Conversation, 'c')} FROM unnest(%b::bigint[]) AS k(id) CROSS JOIN LATERAL "
            f"(SELECT * FROM {Conversation._meta.db_table} c WHERE c.customer_id = k.id "
            "AND c.status = ANY(%b::varchar[]) ORDER BY c.last_activity_at DESC, c.id DESC LIMIT 1) c"
        )
        rows = rows_fetch(Conversation, sql, [customer_ids, [str(s) for s in statuses]])
        return {c.customer_id: c for c in rows}
    latest = {}
    for conversation in Conversation.objects.filter(customer_id__in=customer_ids, status__in=statuses).order_by(
        "customer_id", "-last_activity_at", "-id"
    ):
        latest.setdefault(conversation.customer_id, conversation)
    return latest


def _json_contains_supported():
    from django.db import connection

    return connection.features.supports_json_field_contains
