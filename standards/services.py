"""Every write of the standards app: publishing, acknowledging, proposals,
compliance evaluations and canned response uses."""

import logging
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.utils import timezone

from interactions.models import Channel
from standards.business_time import Calendar, CalendarInvalid, business_deadline, business_seconds
from standards.models import (
    TIME_METRICS,
    Acknowledgement,
    CannedResponse,
    CannedResponseUse,
    Evaluation,
    Metric,
    Proposal,
    ProposalComment,
    Standard,
    StandardVersion,
)

logger = logging.getLogger(__name__)

# Fields a version snapshots; the diff between versions walks them in this order.
CONTENT_FIELDS = ("title", "description", "why", "goal", "how", "metric", "target", "channels", "segments", "calendar")


def _require(actor, perm):
    if actor is not None and not actor.has_perm(perm):
        raise PermissionDenied(f"You lack the permission {perm}.")


def standard_content(*, standard: Standard) -> dict:
    """The snapshot a version stores: everything compliance and staff need, calendar included."""
    calendar = None
    if standard.calendar_id:
        cal = standard.calendar
        calendar = {
            "name": cal.name,
            "time_zone": cal.time_zone,
            "schedule": cal.schedule,
            "holidays": [day.date.isoformat() for day in cal.holidays.all()],
        }
    return {
        "title": standard.title,
        "description": standard.description,
        "why": standard.why,
        "goal": standard.goal,
        "how": standard.how,
        "metric": standard.metric,
        "target": float(standard.target),
        "channels": sorted(standard.channels or []),
        "segments": sorted(segment.slug for segment in standard.segments.all()),
        "calendar": calendar,
    }


def standard_validate(*, standard: Standard) -> None:
    """Raise ValidationError unless the standard can be published as it stands."""
    errors = {}
    if standard.target is None or standard.target <= 0:
        errors["target"] = "The target must be above zero."
    elif standard.metric == Metric.CSAT_FLOOR and standard.target > 5:
        errors["target"] = "A CSAT floor is a score from 1 to 5."
    elif standard.metric == Metric.CES_FLOOR and standard.target > 7:
        errors["target"] = "A CES floor is a score from 1 to 7."
    unknown = sorted(set(standard.channels or []) - set(Channel.values))
    if unknown:
        errors["channels"] = f"Unknown channels: {', '.join(unknown)}. Known: {', '.join(Channel.values)}."
    if standard.calendar_id:
        try:
            Calendar.from_dict(standard_content(standard=standard)["calendar"])
        except CalendarInvalid as exc:
            errors["calendar"] = str(exc)
    if standard.effective_to and standard.effective_from and standard.effective_to <= standard.effective_from:
        errors["effective_to"] = "It must end after it starts."
    if errors:
        raise ValidationError(errors)


def _version_create(*, standard, status, actor, reason, effective_from=None) -> StandardVersion:
    if not (reason or "").strip():
        raise ValidationError({"reason": "Say why this version is published."})
    now = timezone.now()
    effective_from = effective_from or standard.effective_from or now
    previous = standard.versions.order_by("-number").first()
    if previous and effective_from < previous.effective_from:
        # Otherwise history would be rewritten: conversations already judged by
        # the previous version would now fall under this one.
        effective_from = max(now, previous.effective_from)
    number = (standard.versions.aggregate(n=Max("number"))["n"] or 0) + 1
    version = StandardVersion.objects.create(
        standard=standard,
        number=number,
        status=status,
        content=standard_content(standard=standard),
        effective_from=effective_from,
        effective_to=standard.effective_to,
        reason=reason.strip(),
        author=actor,
        published_at=now,
    )
    standard.status = status
    standard.current_version = version
    standard.save(update_fields=["status", "current_version", "updated_at"])
    return version


@transaction.atomic
def standard_publish(*, standard: Standard, actor, reason: str, effective_from=None) -> StandardVersion:
    """Publish the standard as it stands now: a new immutable active version."""
    _require(actor, "standards.publish_standard")
    version = _publish(standard=standard, actor=actor, reason=reason, effective_from=effective_from)
    standard.status, standard.current_version = version.status, version
    return version


def _publish(*, standard, actor, reason, effective_from=None):
    # One publisher at a time per standard, so version numbers never collide.
    standard = Standard.objects.select_for_update().get(pk=standard.pk)
    standard_validate(standard=standard)
    return _version_create(
        standard=standard, status=Standard.Status.ACTIVE, actor=actor, reason=reason, effective_from=effective_from
    )


@transaction.atomic
def standard_retire(*, standard: Standard, actor, reason: str) -> StandardVersion:
    """Retire the standard: a version with status retired, in force from now on."""
    _require(actor, "standards.publish_standard")
    version = _retire(standard=standard, actor=actor, reason=reason)
    standard.status, standard.current_version = version.status, version
    return version


def _retire(*, standard, actor, reason):
    standard = Standard.objects.select_for_update().get(pk=standard.pk)
    if standard.status == Standard.Status.RETIRED:
        raise ValidationError("The standard is already retired.")
    standard.effective_from = None
    return _version_create(
        standard=standard, status=Standard.Status.RETIRED, actor=actor, reason=reason, effective_from=timezone.now()
    )


def acknowledgement_create(*, standard: Standard, user) -> Acknowledgement:
    """The user acknowledges the standard's current version; acknowledging twice is a no-op."""
    standard = Standard.objects.get(pk=standard.pk)
    if standard.status != Standard.Status.ACTIVE or standard.current_version_id is None:
        raise ValidationError("Only an active standard can be acknowledged.")
    try:
        with transaction.atomic():
            return Acknowledgement.objects.create(version_id=standard.current_version_id, user=user)
    except IntegrityError:
        return Acknowledgement.objects.get(version_id=standard.current_version_id, user=user)


@transaction.atomic
def proposal_create(*, standard: Standard, author, kind: str, reasoning: str, **proposed) -> Proposal:
    """Any staff member proposes a revision, a change or a retirement, with their reasoning."""
    if not (reasoning or "").strip():
        raise ValidationError({"reasoning": "Give your reasoning."})
    if kind not in Proposal.Kind.values:
        raise ValidationError({"kind": f"One of: {', '.join(Proposal.Kind.values)}."})
    allowed = {"proposed_description", "proposed_why", "proposed_goal", "proposed_how", "proposed_target", "proposed_channels"}
    unknown = set(proposed) - allowed
    if unknown:
        raise ValidationError(f"Unknown proposal fields: {', '.join(sorted(unknown))}.")
    proposal = Proposal(standard=standard, author=author, kind=kind, reasoning=reasoning.strip(), **proposed)
    proposal.full_clean(exclude=["standard"])
    proposal.save()
    return proposal


def proposal_comment_create(*, proposal: Proposal, author, body: str) -> ProposalComment:
    if not (body or "").strip():
        raise ValidationError({"body": "A comment needs some text."})
    return ProposalComment.objects.create(proposal=proposal, author=author, body=body.strip())


def _proposal_lock(proposal):
    proposal = Proposal.objects.select_for_update().select_related("standard").get(pk=proposal.pk)
    if proposal.status != Proposal.Status.OPEN:
        raise ValidationError(f"The proposal is already {proposal.status}.")
    return proposal


@transaction.atomic
def proposal_accept(*, proposal: Proposal, actor, reason: str) -> Proposal:
    """A CX lead accepts: the change is applied and published as a new version the proposal links to."""
    _require(actor, "standards.decide_proposal")
    if not (reason or "").strip():
        raise ValidationError({"reason": "Say why the proposal is accepted."})
    proposal = _proposal_lock(proposal)
    standard = Standard.objects.select_for_update().get(pk=proposal.standard_id)
    version_reason = f"Proposal #{proposal.pk} ({proposal.get_kind_display()}) accepted: {reason.strip()}"
    if proposal.kind == Proposal.Kind.RETIREMENT:
        version = _retire(standard=standard, actor=actor, reason=version_reason)
    else:
        for field in ("description", "why", "goal", "how"):
            value = getattr(proposal, f"proposed_{field}")
            if value:
                setattr(standard, field, value)
        if proposal.proposed_target is not None:
            standard.target = proposal.proposed_target
        if proposal.proposed_channels is not None:
            standard.channels = proposal.proposed_channels
        # The accepted version is in force from now, not from the first version's start.
        standard.effective_from = None
        standard.save()
        version = _publish(standard=standard, actor=actor, reason=version_reason)
    proposal.status = Proposal.Status.ACCEPTED
    proposal.decided_by = actor
    proposal.decided_at = timezone.now()
    proposal.decision_reason = reason.strip()
    proposal.produced_version = version
    proposal.save(update_fields=["status", "decided_by", "decided_at", "decision_reason", "produced_version"])
    return proposal


@transaction.atomic
def proposal_reject(*, proposal: Proposal, actor, reason: str) -> Proposal:
    """A CX lead rejects, saying why."""
    _require(actor, "standards.decide_proposal")
    if not (reason or "").strip():
        raise ValidationError({"reason": "Say why the proposal is rejected."})
    proposal = _proposal_lock(proposal)
    proposal.status = Proposal.Status.REJECTED
    proposal.decided_by = actor
    proposal.decided_at = timezone.now()
    proposal.decision_reason = reason.strip()
    proposal.save(update_fields=["status", "decided_by", "decided_at", "decision_reason"])
    return proposal


# --- Compliance -------------------------------------------------------------------

ANSWERING_AUTHORS = ("agent", "bot")
MESSAGE_KINDS = ("message", "call", "comment")


def versions_in_force():
    """{standard_id: [versions ordered by effective_from, number]} of every standard ever published."""
    by_standard = {}
    for version in StandardVersion.objects.order_by("standard_id", "effective_from", "number"):
        by_standard.setdefault(version.standard_id, []).append(version)
    return by_standard


def version_at(versions, at):
    """The version of one standard in force at `at`, if it is an active one."""
    current = None
    for version in versions:
        if version.effective_from <= at:
            current = version
        else:
            break
    if current is None or current.status != Standard.Status.ACTIVE:
        return None
    if current.effective_to and at >= current.effective_to:
        return None
    return current


def version_applies(version, *, channel, segment_slugs) -> bool:
    """Whether a version covers this channel (None: any channel) and these segments."""
    content = version.content
    if channel is not None and content.get("channels") and channel not in content["channels"]:
        return False
    if content.get("segments") and not set(content["segments"]) & set(segment_slugs):
        return False
    return True


def _message_gaps(messages):
    """[(waiting_since, answered_at | None)] for each wait after the first answer.

    A wait starts at the first customer message after an answer and ends at the
    next answer; the wait for the first answer is the first response time.
    """
    gaps = []
    answered_once = False
    waiting_since = None
    for direction, author_type, at in messages:
        if direction == "inbound" and author_type == "customer":
            if waiting_since is None:
                waiting_since = at
        elif direction == "outbound" and author_type in ANSWERING_AUTHORS:
            if waiting_since is not None and answered_once:
                gaps.append((waiting_since, at))
            answered_once = True
            waiting_since = None
    if waiting_since is not None and answered_once:
        gaps.append((waiting_since, None))
    return gaps


def _clock(metric, conversation, messages):
    """(started_at, ended_at | None, still_running) for a time metric on a conversation; None if no clock."""
    resolved_at = conversation.resolved_at if conversation.status == "resolved" else None
    if metric == Metric.FIRST_RESPONSE_TIME:
        if conversation.first_inbound_at is None:
            return None
        end = conversation.first_response_at or resolved_at
        return conversation.first_inbound_at, end, end is None
    if metric == Metric.RESOLUTION_TIME:
        return conversation.opened_at, resolved_at, resolved_at is None
    if metric == Metric.NEXT_RESPONSE_TIME:
        gaps = _message_gaps(messages)
        if not gaps:
            return None
        return gaps
    return None


def _judge(*, start, end, now, target, calendar, warn_fraction):
    """(status, elapsed, late, due_at) of one clock."""
    running = end is None
    elapsed = business_seconds(start, end or now, calendar)
    due_at = business_deadline(start, target, calendar)
    if elapsed > target:
        return Evaluation.Status.BREACHED, elapsed, elapsed - target, due_at
    if running:
        warn = elapsed >= warn_fraction * target
        return (Evaluation.Status.WARNED if warn else Evaluation.Status.PENDING), elapsed, None, due_at
    return Evaluation.Status.MET, elapsed, None, due_at


def _conversation_judgements(*, conversation, version, messages, now, warn_fraction):
    content = version.content
    metric = content["metric"]
    target = float(content["target"])
    calendar = Calendar.from_dict(content.get("calendar"))
    if metric in (Metric.FIRST_RESPONSE_TIME, Metric.RESOLUTION_TIME):
        clock = _clock(metric, conversation, messages)
        if clock is None:
            return None
        start, end, _ = clock
        status, elapsed, late, due_at = _judge(
            start=start, end=end, now=now, target=target, calendar=calendar, warn_fraction=warn_fraction
        )
        return {"started_at": start, "completed_at": end, "status": status, "elapsed_seconds": elapsed,
                "late_seconds": late, "due_at": due_at, "target": target}
    if metric == Metric.NEXT_RESPONSE_TIME:
        gaps = _message_gaps(messages)
        if not gaps:
            return None
        judged = [
            ((start, end), _judge(start=start, end=end, now=now, target=target, calendar=calendar, warn_fraction=warn_fraction))
            for start, end in gaps
        ]
        # The conversation stands as its worst wait: a breach if any wait was
        # too long, else the wait still running, else the longest one.
        breached = [j for j in judged if j[1][0] == Evaluation.Status.BREACHED]
        running = [j for j in judged if j[0][1] is None]
        if breached:
            worst = max(breached, key=lambda j: j[1][1])
        elif running:
            worst = running[-1]
        else:
            worst = max(judged, key=lambda j: j[1][1])
        (start, end), (status, elapsed, late, due_at) = worst
        if status == Evaluation.Status.MET and conversation.status != "resolved":
            # Another wait may still come: the conversation is judged when it is resolved.
            status = Evaluation.Status.PENDING
        return {"started_at": start, "completed_at": end if conversation.status == "resolved" else None,
                "status": status, "elapsed_seconds": elapsed, "late_seconds": late, "due_at": due_at,
                "target": target}
    return None


def _survey_scores(conversation_ids):
    """{(conversation_id, "csat"|"ces"): (latest customer score, answered_at)}.

    Survey answers belong to the metrics app; this prefers its selector and,
    until it has one, reads its table (read-only, one query).
    """
    try:
        from metrics.selectors import conversation_survey_scores
    except ImportError:
        from metrics.models import SurveyResponse

        scores = {}
        rows = (
            SurveyResponse.objects.filter(conversation_id__in=list(conversation_ids), kind__in=["csat", "ces"],
                                          respondent="customer")
            .order_by("answered_at", "id")
            .values_list("conversation_id", "kind", "score", "answered_at")
        )
        for conversation_id, kind, score, answered_at in rows:
            scores[(conversation_id, kind)] = (score, answered_at)
        return scores
    return conversation_survey_scores(conversation_ids=conversation_ids)


def _surveyed_conversation_ids(since):
    """Conversations a CSAT or CES answer arrived for since `since` (a floor is judged when it comes)."""
    from metrics.models import SurveyResponse

    return SurveyResponse.objects.filter(
        answered_at__gte=since, kind__in=["csat", "ces"], conversation_id__isnull=False
    ).values("conversation_id")


def journeys_for_watch(*, since) -> list[dict]:
    """Open journeys and those closed since `since`, as `journeys_compliance_evaluate` takes them.

    Journeys belong to the metrics app; this prefers its selector and, until
    it has one, reads its table (read-only, two queries).
    """
    try:
        from metrics.selectors import journeys_for_compliance
    except ImportError:
        from customers.models import Customer
        from metrics.models import Journey

        rows = list(
            Journey.objects.filter(Q(closed_at__isnull=True) | Q(closed_at__gte=since)).values_list(
                "pk", "customer_id", "started_at", "closed_at", "channel"
            )
        )
        segments = {}
        for customer_id, slug in Customer.segments.through.objects.filter(
            customer_id__in={row[1] for row in rows}
        ).values_list("customer_id", "segment__slug"):
            segments.setdefault(customer_id, []).append(slug)
        return [
            {"id": pk, "customer_id": customer_id, "started_at": started_at, "closed_at": closed_at,
             "channel": channel, "segments": segments.get(customer_id, [])}
            for pk, customer_id, started_at, closed_at, channel in rows
        ]
    return journeys_for_compliance(since=since)


@transaction.atomic
def conversations_compliance_evaluate(*, conversation_ids, now=None) -> list[Evaluation]:
    """Judge conversations against every standard version in force when they started.

    Set-based: a handful of queries whatever the number of conversations.
    Emits `standard.breach_warning` when a running clock passes the warning
    fraction of its target and `standard.breached` when a breach is recorded,
    each once per evaluation.
    """
    from interactions.models import Conversation, Interaction

    now = now or timezone.now()
    warn_fraction = settings.STANDARDS_WARNING_FRACTION
    versions = versions_in_force()
    if not versions or not conversation_ids:
        return []
    conversations = list(
        Conversation.objects.filter(pk__in=conversation_ids).select_related("customer").prefetch_related("customer__segments")
    )
    metrics_used = {v.content["metric"] for vs in versions.values() for v in vs}
    messages = {}
    if Metric.NEXT_RESPONSE_TIME in metrics_used:
        rows = (
            Interaction.objects.filter(conversation_id__in=conversation_ids, kind__in=MESSAGE_KINDS)
            .order_by("conversation_id", "occurred_at", "id")
            .values_list("conversation_id", "direction", "author_type", "occurred_at")
        )
        for conversation_id, direction, author_type, at in rows:
            messages.setdefault(conversation_id, []).append((direction, author_type, at))
    scores = {}
    if metrics_used & {Metric.CSAT_FLOOR, Metric.CES_FLOOR}:
        scores = _survey_scores(conversation_ids)
    existing = {
        (e.standard_id, e.subject_id): e
        for e in Evaluation.objects.select_for_update().filter(
            subject=Evaluation.Subject.CONVERSATION, subject_id__in=conversation_ids
        )
    }
    to_create, to_update, events = [], [], []
    for conversation in conversations:
        at = conversation.first_inbound_at or conversation.opened_at
        channel = (conversation.channels or [""])[0]
        slugs = [segment.slug for segment in conversation.customer.segments.all()]
        for standard_id, standard_versions in versions.items():
            version = version_at(standard_versions, at)
            if version is None or not version_applies(version, channel=channel, segment_slugs=slugs):
                continue
            metric = version.content["metric"]
            if metric in (Metric.CSAT_FLOOR, Metric.CES_FLOOR):
                judged = _floor_judgement(conversation, version, scores)
            elif metric in TIME_METRICS:
                judged = _conversation_judgements(
                    conversation=conversation, version=version, messages=messages.get(conversation.pk, []),
                    now=now, warn_fraction=warn_fraction,
                )
            else:
                judged = None
            if judged is None:
                continue
            evaluation = existing.get((standard_id, conversation.pk))
            is_new = evaluation is None
            if is_new:
                evaluation = Evaluation(
                    standard_id=standard_id, subject=Evaluation.Subject.CONVERSATION, subject_id=conversation.pk,
                    conversation=conversation, customer_id=conversation.customer_id,
                )
            before = (evaluation.status, evaluation.warned_at, evaluation.breached_at)
            _apply(evaluation, judged, version=version, channel=channel, now=now)
            events.extend(_transition_events(evaluation, before, version))
            if is_new:
                to_create.append(evaluation)
            else:
                to_update.append(evaluation)
    Evaluation.objects.bulk_create(to_create, batch_size=500)
    if to_update:
        Evaluation.objects.bulk_update(to_update, EVALUATION_FIELDS, batch_size=500)
    if events:
        _events_emit(events)
    return to_create + to_update


EVALUATION_FIELDS = [
    "version", "channel", "started_at", "due_at", "completed_at", "elapsed_seconds", "value", "target",
    "status", "late_seconds", "warned_at", "breached_at", "evaluated_at",
]


def _floor_judgement(conversation, version, scores):
    kind = "csat" if version.content["metric"] == Metric.CSAT_FLOOR else "ces"
    found = scores.get((conversation.pk, kind))
    if found is None:
        return None
    score, answered_at = found
    target = float(version.content["target"])
    met = score >= target
    return {"started_at": conversation.first_inbound_at or conversation.opened_at, "completed_at": answered_at,
            "status": Evaluation.Status.MET if met else Evaluation.Status.BREACHED, "elapsed_seconds": None,
            "value": float(score), "late_seconds": None, "due_at": None, "target": target}


def _apply(evaluation, judged, *, version, channel, now):
    evaluation.version = version
    evaluation.channel = channel
    evaluation.started_at = judged["started_at"]
    evaluation.completed_at = judged["completed_at"]
    evaluation.due_at = judged["due_at"]
    evaluation.elapsed_seconds = judged["elapsed_seconds"]
    evaluation.value = judged.get("value")
    evaluation.target = judged["target"]
    evaluation.late_seconds = judged["late_seconds"]
    evaluation.evaluated_at = now
    status = judged["status"]
    if status == Evaluation.Status.WARNED and evaluation.warned_at is None:
        evaluation.warned_at = now
    if status == Evaluation.Status.BREACHED:
        if evaluation.breached_at is None:
            # When the breach happened, if the clock says so; never in the future.
            evaluation.breached_at = min(now, evaluation.due_at) if evaluation.due_at else now
    else:
        evaluation.breached_at = None
    evaluation.status = status


def _transition_events(evaluation, before, version):
    status_before, warned_before, breached_before = before
    payload = {
        "standard_id": evaluation.standard_id,
        "standard_title": version.content.get("title"),
        "version": version.number,
        "metric": version.content.get("metric"),
        "target": evaluation.target,
        "subject": evaluation.subject,
        "subject_id": evaluation.subject_id,
        "conversation_id": evaluation.conversation_id,
        "customer_id": evaluation.customer_id,
        "channel": evaluation.channel,
        "started_at": evaluation.started_at.isoformat() if evaluation.started_at else None,
        "due_at": evaluation.due_at.isoformat() if evaluation.due_at else None,
        "elapsed_seconds": evaluation.elapsed_seconds,
    }
    events = []
    if evaluation.warned_at and warned_before is None and evaluation.status == Evaluation.Status.WARNED:
        events.append(("standard.breach_warning", payload))
    if evaluation.status == Evaluation.Status.BREACHED and breached_before is None:
        events.append(("standard.breached", {**payload, "late_seconds": evaluation.late_seconds}))
    return events


def _events_emit(events):
    from integrations.services import events_emit

    events_emit(events=events)


def journeys_compliance_evaluate(*, journeys, now=None) -> list[Evaluation]:
    """Judge journeys against time-to-happiness standards in force when each started.

    `journeys` are dicts {id, customer_id, started_at, closed_at | None,
    channel, segments: [slugs]} so the metrics app's model stays its own.
    """
    now = now or timezone.now()
    warn_fraction = settings.STANDARDS_WARNING_FRACTION
    versions = {
        sid: vs for sid, vs in versions_in_force().items()
        if any(v.content["metric"] == Metric.TIME_TO_HAPPINESS for v in vs)
    }
    if not versions or not journeys:
        return []
    with transaction.atomic():
        ids = [j["id"] for j in journeys]
        existing = {
            (e.standard_id, e.subject_id): e
            for e in Evaluation.objects.select_for_update().filter(subject=Evaluation.Subject.JOURNEY, subject_id__in=ids)
        }
        to_create, to_update, events = [], [], []
        for journey in journeys:
            for standard_id, standard_versions in versions.items():
                version = version_at(standard_versions, journey["started_at"])
                if version is None or version.content["metric"] != Metric.TIME_TO_HAPPINESS:
                    continue
                if not version_applies(version, channel=journey.get("channel") or "", segment_slugs=journey.get("segments", [])):
                    continue
                target = float(version.content["target"])
                status, elapsed, late, due_at = _judge(
                    start=journey["started_at"], end=journey.get("closed_at"), now=now, target=target,
                    calendar=Calendar.from_dict(version.content.get("calendar")), warn_fraction=warn_fraction,
                )
                judged = {"started_at": journey["started_at"], "completed_at": journey.get("closed_at"),
                          "status": status, "elapsed_seconds": elapsed, "late_seconds": late, "due_at": due_at,
                          "target": target}
                evaluation = existing.get((standard_id, journey["id"]))
                is_new = evaluation is None
                if is_new:
                    evaluation = Evaluation(standard_id=standard_id, subject=Evaluation.Subject.JOURNEY,
                                            subject_id=journey["id"], customer_id=journey["customer_id"])
                before = (evaluation.status, evaluation.warned_at, evaluation.breached_at)
                _apply(evaluation, judged, version=version, channel=journey.get("channel") or "", now=now)
                events.extend(_transition_events(evaluation, before, version))
                (to_create if is_new else to_update).append(evaluation)
        Evaluation.objects.bulk_create(to_create, batch_size=500)
        if to_update:
            Evaluation.objects.bulk_update(to_update, EVALUATION_FIELDS, batch_size=500)
        if events:
            _events_emit(events)
        return to_create + to_update


def compliance_watch(*, now=None) -> int:
    """What the beat task does: re-judge every conversation and journey whose clock may be running.

    Open and pending conversations, those with an unfinished evaluation, those
    active within the look-back window (so a response or resolution that just
    happened closes its clock) or with a CSAT/CES answer in it; and, once a
    time-to-happiness standard was ever published, open journeys and those
    closed within the window. Returns how many conversations and journeys were judged.
    """
    from interactions.models import Conversation

    now = now or timezone.now()
    if not StandardVersion.objects.filter(status=Standard.Status.ACTIVE).exists():
        return 0
    since = now - timedelta(hours=settings.STANDARDS_WATCH_LOOKBACK_HOURS)
    unfinished = Evaluation.objects.filter(
        subject=Evaluation.Subject.CONVERSATION,
        status__in=[Evaluation.Status.PENDING, Evaluation.Status.WARNED, Evaluation.Status.BREACHED],
        completed_at__isnull=True,
    ).values("subject_id")
    ids = list(
        Conversation.objects.filter(
            Q(status__in=["open", "pending"]) | Q(last_activity_at__gte=since) | Q(pk__in=unfinished)
            | Q(pk__in=_surveyed_conversation_ids(since))
        ).values_list("pk", flat=True)
    )
    batch = settings.STANDARDS_WATCH_BATCH
    for offset in range(0, len(ids), batch):
        conversations_compliance_evaluate(conversation_ids=ids[offset:offset + batch], now=now)
    journeys = []
    if StandardVersion.objects.filter(content__metric=Metric.TIME_TO_HAPPINESS).exists():
        journeys = journeys_for_watch(since=since)
        for offset in range(0, len(journeys), batch):
            journeys_compliance_evaluate(journeys=journeys[offset:offset + batch], now=now)
    return len(ids) + len(journeys)


# --- Canned responses ---------------------------------------------------------------


def canned_response_uses_record(*, interactions) -> None:
    """Record a use for every outbound interaction naming `data.canned_response_id`.

    Set-based: one query keeps the ids that exist, one insert records the uses;
    a replayed interaction is not counted twice (unique per interaction).
    """
    candidates = []
    for interaction in interactions:
        if interaction.direction != "outbound" or interaction.pk is None:
            continue
        raw = (interaction.data or {}).get("canned_response_id")
        try:
            response_id = int(raw)
        except (TypeError, ValueError):
            continue
        candidates.append((response_id, interaction))
    if not candidates:
        return
    known = set(
        CannedResponse.objects.filter(pk__in={rid for rid, _ in candidates}).values_list("pk", flat=True)
    )
    uses = [
        CannedResponseUse(
            response_id=rid,
            interaction_id=interaction.pk,
            channel=interaction.channel,
            agent_id=interaction.agent_id,
            used_at=interaction.occurred_at,
        )
        for rid, interaction in candidates
        if rid in known
    ]
    if uses:
        CannedResponseUse.objects.bulk_create(uses, ignore_conflicts=True)


def conversation_standing(*, conversation, now=None) -> list[dict]:
    """How a conversation stands right now against each standard that applies to it, without writing.

    The agent's page shows this: the same judgement the beat task records,
    computed for one conversation on the spot, so it is current even between
    two runs of the watcher. Read-only: no evaluation row, no event.
    """
    from interactions.models import Interaction

    now = now or timezone.now()
    at = conversation.first_inbound_at or conversation.opened_at
    channel = (conversation.channels or [""])[0]
    slugs = [segment.slug for segment in conversation.customer.segments.all()]
    applicable = []
    for standard_versions in versions_in_force().values():
        version = version_at(standard_versions, at)
        if version is not None and version_applies(version, channel=channel, segment_slugs=slugs):
            applicable.append(version)
    metrics_used = {v.content["metric"] for v in applicable}
    messages = []
    if Metric.NEXT_RESPONSE_TIME in metrics_used:
        messages = list(
            Interaction.objects.filter(conversation_id=conversation.pk, kind__in=MESSAGE_KINDS)
            .order_by("occurred_at", "id")
            .values_list("direction", "author_type", "occurred_at")
        )
    scores = _survey_scores([conversation.pk]) if metrics_used & {Metric.CSAT_FLOOR, Metric.CES_FLOOR} else {}
    standing = []
    for version in sorted(applicable, key=lambda v: v.content["title"]):
        metric = version.content["metric"]
        if metric in (Metric.CSAT_FLOOR, Metric.CES_FLOOR):
            judged = _floor_judgement(conversation, version, scores)
        else:
            judged = _conversation_judgements(
                conversation=conversation, version=version, messages=messages, now=now,
                warn_fraction=settings.STANDARDS_WARNING_FRACTION,
            )
        remaining = None
        if judged and judged["status"] in (Evaluation.Status.PENDING, Evaluation.Status.WARNED) and judged["elapsed_seconds"] is not None:
            remaining = max(0.0, judged["target"] - judged["elapsed_seconds"])
        standing.append({"version": version, "standard_id": version.standard_id, "title": version.content["title"],
                         "metric": metric, "target": float(version.content["target"]),
                         "status": judged["status"] if judged else "not_started",
                         "elapsed_seconds": judged["elapsed_seconds"] if judged else None,
                         "late_seconds": judged["late_seconds"] if judged else None,
                         "due_at": judged["due_at"] if judged else None, "remaining_seconds": remaining,
                         "value": judged.get("value") if judged else None})
    return standing
