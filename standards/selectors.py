"""Reads of the standards app; each owns its joins so no caller can make an N+1."""

import difflib
import re
from datetime import datetime, timedelta, timezone as dt_timezone

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Count, F, Prefetch, Q
from django.utils.html import escape

from standards.models import (
    Acknowledgement,
    CannedResponse,
    CannedResponseVariant,
    Evaluation,
    Proposal,
    Standard,
    StandardVersion,
)
from standards.services import CONTENT_FIELDS, version_applies

FIELD_LABELS = {
    "title": "Title",
    "description": "Description",
    "why": "Why it was chosen",
    "goal": "What goal it serves",
    "how": "The best way to meet it",
    "metric": "Metric",
    "target": "Target",
    "channels": "Channels",
    "segments": "Segments",
    "calendar": "Business hours",
}


def standard_list(*, status=None, search=None, metric=None):
    queryset = Standard.objects.select_related("calendar", "current_version").prefetch_related("segments")
    if status:
        queryset = queryset.filter(status=status)
    if metric:
        queryset = queryset.filter(metric=metric)
    if search:
        queryset = queryset.filter(Q(title__icontains=search) | Q(description__icontains=search))
    return queryset.order_by("title", "id")


def standard_versions(*, standard_id):
    return StandardVersion.objects.filter(standard_id=standard_id).select_related("author", "proposal").order_by("-number")


def _as_text(field, value):
    if value is None:
        return ""
    if field == "calendar":
        lines = [f"{value.get('name', '')} ({value.get('time_zone')})"]
        for day, intervals in sorted((value.get("schedule") or {}).items()):
            lines.append(f"  day {day}: " + ", ".join(f"{a}–{b}" for a, b in intervals))
        if value.get("holidays"):
            lines.append("  holidays: " + ", ".join(value["holidays"]))
        return "\n".join(lines)
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)


def version_diff(*, old: StandardVersion | None, new: StandardVersion) -> list[dict]:
    """Field by field: old text, new text, whether it changed and an HTML word diff."""
    rows = []
    old_content = old.content if old else {}
    for field in CONTENT_FIELDS:
        before = _as_text(field, old_content.get(field))
        after = _as_text(field, new.content.get(field))
        rows.append(
            {
                "field": field,
                "label": FIELD_LABELS[field],
                "old": before,
                "new": after,
                "changed": before != after,
                "html": _word_diff_html(before, after),
            }
        )
    return rows


def _word_diff_html(before, after):
    """<del>/<ins> marks over words; every piece of text is escaped."""
    a, b = re.split(r"(\s+)", before), re.split(r"(\s+)", after)
    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(escape("".join(a[i1:i2])))
            continue
        if i2 > i1:
            out.append(f"<del>{escape(''.join(a[i1:i2]))}</del>")
        if j2 > j1:
            out.append(f"<ins>{escape(''.join(b[j1:j2]))}</ins>")
    return "".join(out)


def customer_facing_users():
    """Active staff in the acknowledging groups (STANDARDS_ACK_GROUPS)."""
    User = get_user_model()
    return (
        User.objects.filter(is_active=True, groups__name__in=settings.STANDARDS_ACK_GROUPS)
        .distinct()
        .order_by("username")
    )


def standard_unacknowledged_users(*, standard: Standard):
    """Customer-facing staff who have not acknowledged the standard's current version."""
    if standard.current_version_id is None or standard.status != Standard.Status.ACTIVE:
        return customer_facing_users().none()
    acknowledged = Acknowledgement.objects.filter(version_id=standard.current_version_id).values("user_id")
    return customer_facing_users().exclude(pk__in=acknowledged)


def standards_acknowledgement_counts() -> tuple[dict[int, int], int]:
    """({standard_id: staff who acknowledged its current version}, staff expected), in two queries."""
    expected_ids = set(customer_facing_users().values_list("pk", flat=True))
    counts = {}
    rows = Acknowledgement.objects.filter(
        version__standard__status=Standard.Status.ACTIVE, version__standard__current_version=F("version")
    ).values_list("version__standard_id", "user_id")
    for standard_id, user_id in rows:
        if user_id in expected_ids:
            counts[standard_id] = counts.get(standard_id, 0) + 1
    return counts, len(expected_ids)


def user_acknowledged(*, user, standard_ids) -> set[int]:
    """Which of these standards the user has acknowledged in their current version."""
    return set(
        Acknowledgement.objects.filter(
            user=user, version__standard_id__in=standard_ids, version__standard__current_version=F("version")
        ).values_list("version__standard_id", flat=True)
    )


def proposal_list(*, standard_id=None, status=None):
    queryset = Proposal.objects.select_related("standard", "author", "decided_by", "produced_version").annotate(
        comment_count=Count("comments")
    )
    if standard_id:
        queryset = queryset.filter(standard_id=standard_id)
    if status:
        queryset = queryset.filter(status=status)
    return queryset.order_by("-created_at", "-id")


def standards_applicable(*, channel, segment_slugs):
    """Active standards whose current version covers this channel and these segments."""
    standards = Standard.objects.filter(status=Standard.Status.ACTIVE, current_version__isnull=False).select_related(
        "current_version"
    )
    return [s for s in standards.order_by("title", "id") if version_applies(s.current_version, channel=channel, segment_slugs=segment_slugs)]


def conversation_evaluations(*, conversation_ids):
    return (
        Evaluation.objects.filter(subject=Evaluation.Subject.CONVERSATION, subject_id__in=conversation_ids)
        .select_related("standard", "version")
        .order_by("subject_id", "standard__title")
    )


def evaluation_list(*, status=None, standard_id=None, channel=None, conversation_id=None, customer_id=None,
                    since=None, until=None):
    queryset = Evaluation.objects.select_related("standard", "version")
    if status:
        queryset = queryset.filter(status__in=status if isinstance(status, (list, tuple)) else [status])
    if standard_id:
        queryset = queryset.filter(standard_id=standard_id)
    if channel:
        queryset = queryset.filter(channel=channel)
    if conversation_id:
        queryset = queryset.filter(conversation_id=conversation_id)
    if customer_id:
        queryset = queryset.filter(customer_id=customer_id)
    if since:
        queryset = queryset.filter(started_at__gte=since)
    if until:
        queryset = queryset.filter(started_at__lt=until)
    return queryset.order_by("-started_at", "-id")


# --- Compliance over periods ----------------------------------------------------------

GRANULARITIES = ("day", "week", "month")
GROUPINGS = (None, "channel")


def period_start(at, granularity):
    at = at.astimezone(dt_timezone.utc)
    day = datetime(at.year, at.month, at.day, tzinfo=dt_timezone.utc)
    if granularity == "day":
        return day
    if granularity == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def period_next(start, granularity):
    if granularity == "day":
        return start + timedelta(days=1)
    if granularity == "week":
        return start + timedelta(days=7)
    year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
    return start.replace(year=year, month=month, day=1)


def periods(start, end, granularity):
    current = period_start(start, granularity)
    while current < end:
        following = period_next(current, granularity)
        yield max(current, start), min(following, end)
        current = following


def _tally(bucket, status, late):
    bucket["judged"] += 1
    if status == Evaluation.Status.MET:
        bucket["met"] += 1
    else:
        bucket["breached"] += 1
        if late is not None:
            bucket["late_total"] += late


def _finish(bucket):
    judged = bucket["judged"]
    return {
        "judged": judged,
        "met": bucket["met"],
        "breached": bucket["breached"],
        "compliance": round(bucket["met"] / judged, 4) if judged else None,
        "late_mean_seconds": round(bucket["late_total"] / bucket["breached"], 1) if bucket["breached"] else None,
    }


def _bucket():
    return {"judged": 0, "met": 0, "breached": 0, "late_total": 0.0}


def compliance_summary(*, start, end, granularity="month", by=None, standard_id=None) -> dict:
    """Compliance per standard (and per channel) per period, from one query.

    Counts judged evaluations — met, or breached (a running clock already past
    its deadline counts as breached) — by when their clock started.
    """
    queryset = Evaluation.objects.filter(
        started_at__gte=start, started_at__lt=end, status__in=[Evaluation.Status.MET, Evaluation.Status.BREACHED]
    )
    if standard_id:
        queryset = queryset.filter(standard_id=standard_id)
    rows = list(queryset.values_list("standard_id", "standard__title", "channel", "started_at", "status", "late_seconds"))
    bounds = list(periods(start, end, granularity))
    titles = {}
    per_period = [dict() for _ in bounds]
    totals = {}
    for standard_id_, title, channel, started_at, status, late in rows:
        titles[standard_id_] = title
        index = _period_index(bounds, started_at)
        if index is None:
            continue
        standard_bucket = per_period[index].setdefault(standard_id_, {"all": _bucket(), "groups": {}})
        _tally(standard_bucket["all"], status, late)
        if by == "channel":
            _tally(standard_bucket["groups"].setdefault(channel or "unknown", _bucket()), status, late)
        _tally(totals.setdefault(standard_id_, _bucket()), status, late)
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "granularity": granularity,
        "by": by,
        "standards": [{"id": sid, "title": titles[sid]} for sid in sorted(titles, key=lambda s: titles[s])],
        "periods": [
            {
                "start": a.isoformat(),
                "end": b.isoformat(),
                "standards": {
                    str(sid): {
                        **_finish(bucket["all"]),
                        **({"groups": {g: _finish(v) for g, v in sorted(bucket["groups"].items())}} if by else {}),
                    }
                    for sid, bucket in per_period[i].items()
                },
            }
            for i, (a, b) in enumerate(bounds)
        ],
        "totals": {str(sid): _finish(bucket) for sid, bucket in totals.items()},
    }


def _period_index(bounds, at):
    for i, (a, b) in enumerate(bounds):
        if a <= at < b:
            return i
    return None


# --- Canned responses ---------------------------------------------------------------

PLACEHOLDER = re.compile(r"\{\s*(customer_name|agent_name|conversation_reference)\s*\}")


def canned_response_search(*, q=None, channel=None, standard_id=None, include_inactive=False):
    """Canned responses matching words of `q` in title, keywords, body or any variant."""
    queryset = CannedResponse.objects.select_related("standard").prefetch_related(
        Prefetch("variants", queryset=CannedResponseVariant.objects.order_by("channel"))
    )
    if not include_inactive:
        queryset = queryset.filter(is_active=True)
    if standard_id:
        queryset = queryset.filter(standard_id=standard_id)
    if channel:
        queryset = queryset.filter(Q(variants__channel=channel) | Q(body__gt="")).distinct()
    for word in (q or "").split()[:10]:
        matching = CannedResponseVariant.objects.filter(body__icontains=word).values("response_id")
        queryset = queryset.filter(
            Q(title__icontains=word) | Q(keywords__icontains=word) | Q(body__icontains=word) | Q(pk__in=matching)
        )
    return queryset.order_by("title", "id")


def canned_response_text(*, response: CannedResponse, channel=None) -> str:
    """The wording for a channel: its variant if one exists, else the default body."""
    if channel:
        for variant in response.variants.all():
            if variant.channel == channel:
                return variant.body
    return response.body


def canned_response_render(*, response, channel=None, customer_name="", agent_name="", conversation_reference=""):
    """The text with its placeholders filled; unknown {words} stay as written."""
    values = {
        "customer_name": customer_name,
        "agent_name": agent_name,
        "conversation_reference": conversation_reference,
    }
    text = canned_response_text(response=response, channel=channel)
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def canned_responses_suggest(*, standard_ids, channel=None, limit=5):
    """Responses tied to these standards first, then the most used ones."""
    return list(
        canned_response_search(channel=channel)
        .annotate(use_count=Count("uses", distinct=True))
        .order_by("-use_count", "title")
        .filter(Q(standard_id__in=standard_ids) | Q(standard__isnull=True))[:limit]
    )


def standard_detail_queryset():
    return Standard.objects.select_related("calendar", "current_version").prefetch_related(
        "segments",
        "canned_responses",
        Prefetch("versions", queryset=StandardVersion.objects.select_related("author", "proposal").order_by("-number")),
    )


def canned_response_get(*, pk):
    return canned_response_search(include_inactive=True).filter(pk=pk).first()


def conversation_reference(conversation) -> str:
    """How an agent names a conversation to a customer: its number, and its subject if any."""
    if conversation is None:
        return ""
    return f"#{conversation.pk}" + (f" ({conversation.subject})" if conversation.subject else "")
