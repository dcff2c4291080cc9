"""The agent's customer page: one customer whole, on one admin page.

Identities, segments, whether they are unhappy now and since when, their
metrics snapshot, open conversations, the standards that apply to the current
conversation and how it stands against them, suggested canned responses, and
the unified timeline of every channel, newest first, loading older items as
the agent scrolls (a small JSON endpoint that walks the timeline index with a
keyset cursor).

The customer admin mounts these views: `CustomerAdmin.get_urls()` returns
`agent_page_urls() + super().get_urls()`, which names them
`admin:customers_customer_agent` and `admin:customers_customer_agent_timeline`
(both take the customer's pk).
"""

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect, JsonResponse
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from crm.api import KeysetPagination
from customers.selectors import customer_get_resolved
from interactions.selectors import conversation_list, timeline_queryset

AUTHOR_LABELS = {"customer": _("Customer"), "agent": _("Agent"), "bot": _("Bot"), "system": _("System")}
OPEN_STATUSES = ("open", "pending")


def agent_page_urls():
    """URL patterns for CustomerAdmin.get_urls(): admin:customers_customer_agent(_timeline), taking the pk."""
    wrap = admin.site.admin_view
    return [
        path("<int:pk>/agent/", wrap(agent_page_view), name="customers_customer_agent"),
        path("<int:pk>/agent/timeline/", wrap(agent_timeline_view), name="customers_customer_agent_timeline"),
    ]


def _require_view(request):
    if not request.user.has_perm("customers.view_customer"):
        raise PermissionDenied


def _customer_or_redirect(request, pk, url_name):
    customer, tombstone_id = customer_get_resolved(customer_id=pk)
    if customer is None:
        raise Http404(f"No customer #{pk}.")
    if tombstone_id is not None:
        # A merged customer's page is its survivor's page.
        return None, HttpResponseRedirect(reverse(url_name, args=[customer.pk]))
    return customer, None


def _timeline_page(customer_id, before=None):
    size = settings.AGENT_PAGE_TIMELINE_SIZE
    rows = list(timeline_queryset(customer_id=customer_id, before=before).select_related("agent")[: size + 1])
    next_cursor = KeysetPagination.encode(rows[size - 1].occurred_at, rows[size - 1].pk) if len(rows) > size else None
    items = [
        {
            "row": row,
            "author_label": AUTHOR_LABELS.get(row.author_type, row.author_type),
            "author_name": row.author_name or (row.agent.get_full_name() or row.agent.get_username() if row.agent else ""),
        }
        for row in rows[:size]
    ]
    return items, next_cursor


def _snapshot(customer_id):
    """The metrics app's per-customer snapshot, or None while it has not computed one."""
    try:
        from metrics.selectors import customer_snapshots_get
    except ImportError:
        return None
    return customer_snapshots_get(customer_ids=[customer_id]).get(customer_id)


SNAPSHOT_FIELDS = (
    ("journeys", _("journeys")), ("last_tth_seconds", _("last time to happiness")),
    ("median_tth_seconds", _("median time to happiness")), ("visits", _("visits")),
    ("return_visits", _("return visits")), ("last_visit_at", _("last visit")),
    ("days_since_last_visit", _("days since last visit")), ("usual_gap_days", _("usual days between visits")),
    ("latest_nps", _("latest NPS answer")), ("csat_mean", _("CSAT mean")), ("ces_mean", _("CES mean")),
    ("tws_mean", _("time well spent mean")), ("at_risk", _("at risk of not coming back")), ("churned", _("churned")),
)


def _duration(seconds):
    if seconds is None:
        return None
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {seconds % 60}s"


def _snapshot_rows(snapshot):
    rows = []
    for key, label in SNAPSHOT_FIELDS:
        if key not in snapshot:
            continue
        value = snapshot[key]
        if key.endswith("_seconds"):
            value = _duration(value)
        elif isinstance(value, bool):
            value = _("yes") if value else _("no")
        rows.append({"key": key, "label": label, "value": "—" if value is None else value})
    return rows


def agent_page_view(request, pk):
    from standards import selectors as standards_selectors
    from standards.models import TIME_METRICS
    from standards.services import conversation_standing

    _require_view(request)
    customer, redirect = _customer_or_redirect(request, pk, "admin:customers_customer_agent")
    if redirect:
        return redirect
    now = timezone.now()
    open_conversations = list(
        conversation_list(customer_id=customer.pk).filter(status__in=OPEN_STATUSES).prefetch_related("customer__segments")
    )
    current = None
    wanted = request.GET.get("conversation")
    if wanted and wanted.isdigit():
        current = next((c for c in open_conversations if c.pk == int(wanted)), None)
    if current is None and open_conversations:
        current = open_conversations[0]
    standing, suggestions = [], []
    segment_slugs = [segment.slug for segment in customer.segments.all()]
    channel = (current.channels or [""])[-1] if current else None
    if current is not None:
        standing = conversation_standing(conversation=current, now=now)
        for entry in standing:
            entry["elapsed"] = _duration(entry["elapsed_seconds"])
            entry["late"] = _duration(entry["late_seconds"])
            entry["remaining"] = _duration(entry["remaining_seconds"])
            entry["target_text"] = _duration(entry["target"]) if entry["metric"] in TIME_METRICS else entry["target"]
        standard_ids = [entry["standard_id"] for entry in standing]
    else:
        # No conversation open: the standards that cover this customer on any channel, unjudged.
        applicable = standards_selectors.standards_applicable(channel=None, segment_slugs=segment_slugs)
        standing = [
            {"standard_id": s.pk, "title": s.current_version.content["title"], "status": "not_started",
             "metric": s.current_version.content["metric"], "target": float(s.current_version.content["target"])}
            for s in applicable
        ]
        for entry in standing:
            entry["target_text"] = _duration(entry["target"]) if entry["metric"] in TIME_METRICS else entry["target"]
        standard_ids = [entry["standard_id"] for entry in standing]
    agent_name = request.user.get_full_name() or request.user.get_username()
    for response in standards_selectors.canned_responses_suggest(standard_ids=standard_ids, channel=channel):
        suggestions.append({
            "response": response,
            "text": standards_selectors.canned_response_render(
                response=response, channel=channel, customer_name=customer.name, agent_name=agent_name,
                conversation_reference=standards_selectors.conversation_reference(current),
            ),
        })
    snapshot = _snapshot(customer.pk)
    items, next_cursor = _timeline_page(customer.pk)
    context = {
        **admin.site.each_context(request),
        "title": customer.name or f"#{customer.pk}",
        "customer": customer,
        "identities": list(customer.identities.all()),
        "segments": list(customer.segments.all()),
        "snapshot": snapshot,
        "snapshot_rows": _snapshot_rows(snapshot) if snapshot else [],
        "unhappy_since": snapshot.get("unhappy_since") if snapshot else None,
        "open_conversations": open_conversations,
        "current": current,
        "standing": standing,
        "suggestions": suggestions,
        "items": items,
        "next_cursor": next_cursor,
        "timeline_url": reverse("admin:customers_customer_agent_timeline", args=[customer.pk]),
        "change_url": _customer_change_url(customer.pk),
        "opts": customer._meta,
    }
    return TemplateResponse(request, "crm/agent_page.html", context)


def _customer_change_url(pk):
    try:
        return reverse("admin:customers_customer_change", args=[pk])
    except Exception:  # noqa: BLE001 - the customer admin may not be mounted
        return None


def agent_timeline_view(request, pk):
    """Older timeline items for the page: {"html": rendered items, "next": cursor or null}."""
    _require_view(request)
    customer, redirect = _customer_or_redirect(request, pk, "admin:customers_customer_agent_timeline")
    if redirect:
        return redirect
    cursor = request.GET.get("cursor")
    try:
        before = KeysetPagination.decode(cursor) if cursor else None
    except Exception:  # noqa: BLE001 - a ValidationError from the decoder: a bad cursor is the client's error
        return JsonResponse({"code": "invalid", "detail": "The cursor is not one this page issued."}, status=400)
    items, next_cursor = _timeline_page(customer.pk, before=before)
    html = render_to_string("crm/timeline_items.html", {"items": items}, request=request)
    return JsonResponse({"html": html, "next": next_cursor, "count": len(items)})
