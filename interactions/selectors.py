"""Reads of interactions and conversations: the timeline above all."""

from django.db.models import Count, Q

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


def _json_contains_supported():
    from django.db import connection

    return connection.features.supports_json_field_contains
