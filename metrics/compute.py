"""The metric definitions, as pure functions over one customer's history.

No database here: `customer_compute` takes the customer's interactions (as
plain tuples, in (occurred_at, id) order) and conversations and returns the
rows to store. The recompute services feed it from a streamed query, the tests
feed it by hand. Definitions: PRODUCT.md "Metric definitions"; each threshold
comes from `Thresholds` (settings METRICS_*).
"""

import bisect
import math
import statistics
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings

# Positions in an interaction row (see services.INTERACTION_COLUMNS).
(
    I_ID, I_CUSTOMER, I_CONVERSATION, I_CHANNEL, I_KIND, I_DIRECTION, I_AUTHOR, I_AT, I_SENTIMENT, I_INTENT,
    I_INCIDENT, I_SURVEY_KIND, I_SURVEY_SCORE, I_SURVEY_RESPONDENT, I_MOOD, I_DURATION, I_NEEDS_SCORING,
) = range(17)
ROW_WIDTH = 17

INBOUND = "inbound"
OUTBOUND = "outbound"
CUSTOMER = "customer"
CONVERSATIONAL_KINDS = frozenset({"message", "call", "comment"})
RESPONDERS = frozenset({"agent", "bot"})
MISERY, MAGIC = -1, 1
DAY = 86400.0


@dataclass(frozen=True)
class Thresholds:
    misery_sentiment: float = -0.3
    magic_sentiment: float = 0.3
    misery_intents: frozenset = frozenset({"complaint"})
    visit_gap: timedelta = timedelta(hours=24)
    came_back: timedelta = timedelta(days=90)
    churn: timedelta = timedelta(days=90)
    at_risk_factor: float = 2.0

    @classmethod
    def from_settings(cls):
        return cls(
            misery_sentiment=settings.METRICS_MISERY_SENTIMENT,
            magic_sentiment=settings.METRICS_MAGIC_SENTIMENT,
            misery_intents=frozenset(settings.METRICS_MISERY_INTENTS),
            visit_gap=timedelta(hours=settings.METRICS_VISIT_GAP_HOURS),
            came_back=timedelta(days=settings.METRICS_CAME_BACK_DAYS),
            churn=timedelta(days=settings.METRICS_CHURN_DAYS),
            at_risk_factor=settings.METRICS_AT_RISK_FACTOR,
        )


# (misery at or below, magic at or above) per survey kind; NPS is a KPI, not a signal.
SURVEY_SIGNALS = {"csat": (2, 4), "ces": (3, 5), "tws": (2, 4)}


def signal_of(row, t: Thresholds):
    """(MISERY | MAGIC | None, name of the signal)."""
    survey_kind = row[I_SURVEY_KIND]
    if survey_kind:
        if row[I_SURVEY_RESPONDENT] not in (None, "", CUSTOMER) or survey_kind not in SURVEY_SIGNALS:
            return None, ""
        score = row[I_SURVEY_SCORE]
        low, high = SURVEY_SIGNALS[survey_kind]
        if score is None:
            return None, ""
        if score <= low:
            return MISERY, survey_kind
        if score >= high:
            return MAGIC, survey_kind
        return None, ""
    mood = row[I_MOOD]
    if mood == "unhappy":
        return MISERY, "mark"
    if mood == "happy":
        return MAGIC, "mark"
    if row[I_DIRECTION] != INBOUND:
        return None, ""
    # A complaint is misery even when worded politely.
    if row[I_INTENT] in t.misery_intents:
        return MISERY, "intent"
    sentiment = row[I_SENTIMENT]
    if sentiment is not None:
        if sentiment <= t.misery_sentiment:
            return MISERY, "sentiment"
        if sentiment >= t.magic_sentiment:
            return MAGIC, "sentiment"
    return None, ""


@dataclass
class JourneyRow:
    seq: int
    started_at: datetime
    opened_at: datetime
    opening_interaction_id: int
    opening_signal: str
    opening_channel: str
    closed_at: datetime | None = None
    closing_interaction_id: int | None = None
    closing_signal: str = ""
    misery_signals: int = 1
    first_contact_at: datetime | None = None
    channel: str = ""
    channels: list = field(default_factory=list)
    customer_interactions: int = 0
    channel_switches: int = 0
    call_chat_minutes: float = 0.0
    tth_seconds: float | None = None
    time_before_contact_seconds: float | None = None
    time_in_hands_seconds: float | None = None


def journeys_compute(rows, t: Thresholds) -> list[JourneyRow]:
    """The journey state machine over rows in time order.

    Opens at the first misery signal while none is open; further misery keeps it
    open; closes at the first magic signal after it opened. Its start is the
    earliest of the opening signal and any incident time reported while it is
    open (including by the opening and closing rows), but never before the
    previous journey closed: journeys do not overlap.
    """
    journeys = []
    current = None
    floor = None  # the previous journey's close
    misery_intents, misery_sentiment, magic_sentiment = t.misery_intents, t.misery_sentiment, t.magic_sentiment
    for row in rows:
        incident = row[I_INCIDENT]
        if current is not None and incident is not None and incident < current.started_at:
            current.started_at = incident if floor is None or incident > floor else floor
        if row[I_SURVEY_KIND] or row[I_MOOD] is not None:
            kind, name = signal_of(row, t)
        # The rest is signal_of's tail for plain interactions, inlined: it runs for most rows.
        elif row[I_DIRECTION] != INBOUND:
            continue
        elif row[I_INTENT] in misery_intents:
            kind, name = MISERY, "intent"
        else:
            sentiment = row[I_SENTIMENT]
            if sentiment is None:
                continue
            if sentiment <= misery_sentiment:
                kind, name = MISERY, "sentiment"
            elif sentiment >= magic_sentiment:
                kind, name = MAGIC, "sentiment"
            else:
                continue
        if kind == MISERY:
            if current is None:
                start = row[I_AT]
                if incident is not None and incident < start:
                    start = incident
                if floor is not None and start < floor:
                    start = floor
                current = JourneyRow(
                    seq=len(journeys) + 1,
                    started_at=start,
                    opened_at=row[I_AT],
                    opening_interaction_id=row[I_ID],
                    opening_signal=name,
                    opening_channel=row[I_CHANNEL],
                )
                journeys.append(current)
            else:
                current.misery_signals += 1
        elif kind == MAGIC and current is not None:
            current.closed_at = row[I_AT]
            current.closing_interaction_id = row[I_ID]
            current.closing_signal = name
            floor = current.closed_at
            current = None
    if journeys:
        _journeys_effort(journeys, rows)
    return journeys


def _journeys_effort(journeys, rows):
    """First contact, channels, interactions, switches and call/chat minutes inside each journey's window."""
    index = 0
    count = len(rows)
    for journey in journeys:
        start, end = journey.started_at, journey.closed_at
        while index < count and rows[index][I_AT] < start:
            index += 1
        position = index
        last_channel = None
        chat_first, chat_last = {}, {}  # per chat conversation, in order of first appearance
        minutes = 0.0
        first_contact_at = None
        first_channel = ""
        channels = []
        interactions = switches = 0
        while position < count:
            row = rows[position]
            at = row[I_AT]
            if end is not None and at > end:
                break
            position += 1
            kind = row[I_KIND]
            channel = row[I_CHANNEL]
            if kind == "call" and row[I_DURATION]:
                minutes += row[I_DURATION] / 60.0
            if channel == "chat" and kind in CONVERSATIONAL_KINDS:
                key = row[I_CONVERSATION] or -row[I_ID]
                if key not in chat_first:
                    chat_first[key] = at
                chat_last[key] = at
            if row[I_DIRECTION] != INBOUND or row[I_AUTHOR] != CUSTOMER:
                continue
            if first_contact_at is None:
                first_contact_at = at
                first_channel = channel
            interactions += 1
            if channel not in channels:
                channels.append(channel)
            if last_channel is not None and channel != last_channel:
                switches += 1
            last_channel = channel
        journey.first_contact_at = first_contact_at
        journey.channel = first_channel
        journey.channels = channels
        journey.customer_interactions = interactions
        journey.channel_switches = switches
        for key, first in chat_first.items():
            minutes += (chat_last[key] - first).total_seconds() / 60.0
        journey.call_chat_minutes = round(minutes, 3)
        if not journey.channel:
            journey.channel = journey.opening_channel
        if journey.closed_at is not None:
            journey.tth_seconds = (journey.closed_at - journey.started_at).total_seconds()
            if journey.first_contact_at is not None:
                journey.time_in_hands_seconds = (journey.closed_at - journey.first_contact_at).total_seconds()
        if journey.first_contact_at is not None:
            journey.time_before_contact_seconds = (journey.first_contact_at - journey.started_at).total_seconds()


def visits_compute(rows, t: Thresholds):
    """(visit start times, activity spans [(first, last, churn_at)], last inbound time).

    A visit is a burst of customer-initiated inbound interactions; a gap longer
    than the visit gap starts a new one. An activity span ends where a gap
    reaches the churn window; it churns at its last visit + that window.
    """
    starts = []
    spans = []
    last = None
    visit_gap, churn = t.visit_gap, t.churn
    for row in rows:
        # A survey answer is us asking, not the customer coming: it is no visit (else every
        # post-resolution CSAT would count as "came back").
        if row[I_DIRECTION] != INBOUND or row[I_KIND] == "survey":
            continue
        at = row[I_AT]
        if last is None:
            starts.append(at)
            spans.append((at, at, None))
        else:
            gap = at - last
            if gap > visit_gap:
                starts.append(at)
            if gap > churn:
                spans[-1] = (spans[-1][0], last, last + churn)
                spans.append((at, at, None))
        last = at
    if spans:
        spans[-1] = (spans[-1][0], last, last + t.churn)
    return starts, spans, last


@dataclass
class ConversationRow:
    conversation_id: int
    channel: str
    opened_at: datetime
    first_inbound_at: datetime | None = None
    first_response_at: datetime | None = None
    first_response_seconds: float | None = None
    resolved_at: datetime | None = None
    resolution_seconds: float | None = None
    reopen_count: int = 0
    handler: str = "none"
    handoff_seconds: float | None = None
    came_back: bool | None = None
    days_to_return: float | None = None


def conversations_compute(rows, conversations, visit_starts, now, t: Thresholds) -> list[ConversationRow]:
    """Clocks of each conversation. `conversations`: [(id, opened_at, resolved_at, reopen_count, channels)]."""
    if not conversations:
        return []
    by_conversation = {}
    for row in rows:
        conversation = row[I_CONVERSATION]
        if conversation is not None and row[I_KIND] in CONVERSATIONAL_KINDS:
            own = by_conversation.get(conversation)
            if own is None:
                by_conversation[conversation] = [row]
            else:
                own.append(row)
    out = []
    for conversation_id, opened_at, resolved_at, reopen_count, channels in conversations:
        own = by_conversation.get(conversation_id, ())
        result = ConversationRow(
            conversation_id=conversation_id,
            channel=(channels[0] if channels else (own[0][I_CHANNEL] if own else "")),
            opened_at=opened_at,
            resolved_at=resolved_at,
            reopen_count=reopen_count,
        )
        first_bot = first_agent = first_inbound = first_response = None
        for row in own:
            direction = row[I_DIRECTION]
            author = row[I_AUTHOR]
            if direction == INBOUND and author == CUSTOMER:
                if first_inbound is None:
                    first_inbound = row[I_AT]
            elif direction == OUTBOUND and author in RESPONDERS:
                if author == "bot":
                    first_bot = first_bot or row[I_AT]
                else:
                    first_agent = first_agent or row[I_AT]
                if first_inbound is not None and first_response is None:
                    first_response = row[I_AT]
                # Nothing later changes any of the four.
                if first_response is not None and first_bot is not None and first_agent is not None:
                    break
        result.first_inbound_at = first_inbound
        result.first_response_at = first_response
        if result.first_response_at is not None:
            result.first_response_seconds = (result.first_response_at - result.first_inbound_at).total_seconds()
        if first_agent is not None:
            if first_bot is not None and first_bot <= first_agent:
                result.handler = "bot_human"
                result.handoff_seconds = (first_agent - first_bot).total_seconds()
            else:
                result.handler = "human"
        elif first_bot is not None:
            result.handler = "bot"
        if resolved_at is not None:
            result.resolution_seconds = (resolved_at - opened_at).total_seconds()
            deadline = resolved_at + t.came_back
            position = bisect.bisect_right(visit_starts, resolved_at)
            returned = visit_starts[position] if position < len(visit_starts) else None
            if returned is not None and returned <= deadline:
                result.days_to_return = round((returned - resolved_at).total_seconds() / DAY, 4)
            if deadline <= now:
                result.came_back = result.days_to_return is not None
        out.append(result)
    return out


def snapshot_compute(journeys, visit_starts, last_seen, surveys, now, t: Thresholds) -> dict:
    """The one-row summary. `surveys`: [(kind, score)] of the customer's own answers in time order."""
    closed = [j.tth_seconds for j in journeys if j.tth_seconds is not None]
    open_journey = journeys[-1] if journeys and journeys[-1].closed_at is None else None
    gaps = [(b - a).total_seconds() / DAY for a, b in zip(visit_starts, visit_starts[1:])]
    usual_gap = statistics.median(gaps) if gaps else None
    last_visit = visit_starts[-1] if visit_starts else None
    days_since = (now - last_visit).total_seconds() / DAY if last_visit else None
    churned = last_seen is not None and now - last_seen >= t.churn
    at_risk = bool(
        not churned and usual_gap is not None and days_since is not None and days_since > t.at_risk_factor * usual_gap
    )
    scores = {"nps": [], "csat": [], "ces": [], "tws": []}
    for kind, score in surveys:
        if kind in scores and score is not None:
            scores[kind].append(score)
    return {
        "journeys": len(journeys),
        "open_journey_interaction_id": open_journey.opening_interaction_id if open_journey else None,
        "unhappy_since": open_journey.started_at if open_journey else None,
        "last_tth_seconds": closed[-1] if closed else None,
        "median_tth_seconds": statistics.median(closed) if closed else None,
        "visits": len(visit_starts),
        "return_visits": max(len(visit_starts) - 1, 0),
        "first_visit_at": visit_starts[0] if visit_starts else None,
        "last_visit_at": last_visit,
        "last_seen_at": last_seen,
        "usual_gap_days": round(usual_gap, 4) if usual_gap is not None else None,
        "days_since_last_visit": math.floor(days_since) if days_since is not None else None,
        "churned": churned,
        "at_risk": at_risk,
        "latest_nps": scores["nps"][-1] if scores["nps"] else None,
        "csat_mean": _mean(scores["csat"]),
        "ces_mean": _mean(scores["ces"]),
        "tws_mean": _mean(scores["tws"]),
        "computed_at": now,
    }


def _mean(values):
    return round(sum(values) / len(values), 4) if values else None


@dataclass
class CustomerResult:
    customer_id: int
    journeys: list
    conversations: list
    spans: list
    snapshot: dict


def customer_compute(customer_id, rows, conversations, now, t: Thresholds) -> CustomerResult:
    """Everything for one customer. Rows after `now` are ignored (clock skew, scheduled imports)."""
    if rows and rows[-1][I_AT] > now:
        rows = [row for row in rows if row[I_AT] <= now]
    journeys = journeys_compute(rows, t)
    starts, spans, last_seen = visits_compute(rows, t)
    surveys = [
        (row[I_SURVEY_KIND], row[I_SURVEY_SCORE])
        for row in rows
        if row[I_SURVEY_KIND] and row[I_SURVEY_RESPONDENT] in (None, "", CUSTOMER)
    ]
    return CustomerResult(
        customer_id=customer_id,
        journeys=journeys,
        conversations=conversations_compute(rows, conversations, starts, now, t),
        spans=spans,
        snapshot=snapshot_compute(journeys, starts, last_seen, surveys, now, t),
    )
