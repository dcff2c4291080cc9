"""Reads of the metrics: snapshots, the customer-list filters and the organisation KPIs."""

from collections import defaultdict
from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone

from django.db.models import Exists, OuterRef
from django.utils import timezone

from metrics import kpis
from metrics.models import ActivitySpan, CustomerSnapshot, Journey, MetricRollup

GRANULARITIES = ("day", "week", "month")
BREAKDOWNS = ("channel", "segment")
MAX_PERIODS = 400

SNAPSHOT_OUT = (
    "journeys", "unhappy_since", "last_tth_seconds", "median_tth_seconds", "visits", "return_visits",
    "first_visit_at", "last_visit_at", "days_since_last_visit", "usual_gap_days", "churned", "at_risk",
    "latest_nps", "csat_mean", "ces_mean", "tws_mean", "computed_at",
)


def customer_snapshots_get(*, customer_ids) -> dict:
    """{customer_id: snapshot dict} for the customers that have one (one query).

    The dict holds SNAPSHOT_OUT plus `unhappy_now` (an open journey) and
    `open_journey_interaction_id`; customers never computed are absent.
    """
    found = {}
    now = timezone.now()
    for snapshot in CustomerSnapshot.objects.filter(customer_id__in=list(customer_ids)):
        values = {name: getattr(snapshot, name) for name in SNAPSHOT_OUT if name != "days_since_last_visit"}
        # Read-time, not stored: it moves every day while nothing else does.
        values["days_since_last_visit"] = (
            int((now - snapshot.last_visit_at).total_seconds() // 86400) if snapshot.last_visit_at else None
        )
        values["unhappy_now"] = snapshot.unhappy_since is not None
        values["open_journey_interaction_id"] = snapshot.open_journey_interaction_id
        found[snapshot.customer_id] = values
    return found


def customers_filter(*, queryset, unhappy_now=None, at_risk=None):
    """Narrow a customer queryset: unhappy right now (an open journey) and/or at risk; None leaves it alone.

    A filter, not a join: the queryset keeps its ordering and adds no query.
    """
    if unhappy_now is not None:
        unhappy = Exists(CustomerSnapshot.objects.filter(customer_id=OuterRef("pk"), unhappy_since__isnull=False))
        queryset = queryset.filter(unhappy) if unhappy_now else queryset.exclude(unhappy)
    if at_risk is not None:
        risky = Exists(CustomerSnapshot.objects.filter(customer_id=OuterRef("pk"), at_risk=True))
        queryset = queryset.filter(risky) if at_risk else queryset.exclude(risky)
    return queryset


JOURNEYS_SHOWN = 50


def customer_journeys(*, customer_id, limit=None):
    """A customer's journeys, newest first."""
    queryset = Journey.objects.filter(customer_id=customer_id).order_by("-seq")
    return queryset[:limit] if limit else queryset


def conversation_customer_get(*, conversation_id):
    """The live customer a conversation belongs to, or None."""
    from customers.services import customer_ids_resolve
    from interactions.models import Conversation

    owner = Conversation.objects.filter(pk=conversation_id).values_list("customer_id", flat=True).first()
    return customer_ids_resolve([owner]).get(owner) if owner else None


def period_start(day: date, granularity: str) -> date:
    if granularity == "day":
        return day
    if granularity == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def period_next(start: date, granularity: str) -> date:
    if granularity == "day":
        return start + timedelta(days=1)
    if granularity == "week":
        return start + timedelta(days=7)
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1)


def periods(start: date, end: date, granularity: str) -> list[date]:
    """Starts of the periods covering start..end (inclusive)."""
    out = []
    current = period_start(start, granularity)
    while current <= end:
        out.append(current)
        current = period_next(current, granularity)
    return out


def _empty():
    return {"n": 0, "total": 0.0, "total2": 0.0, "hits": 0, "hits2": 0, "values": []}


def _kpis_of(parts, churn):
    """The KPI dict of one group: {name: {"value": …, "n": …}} (values rounded per settings)."""
    r = kpis.kpi_round

    def get(metric):
        return parts.get(metric) or _empty()

    nps, csat, ces, tws = get("nps"), get("csat"), get("ces"), get("tws")
    calibration, tth, before = get("calibration"), get("tth"), get("before_contact")
    came_back, first_response, bot_only, resolution = get("came_back"), get("first_response"), get("bot_only"), get("resolution")
    tth_values, before_values = sorted(tth["values"]), sorted(before["values"])
    frt_values, resolution_values = sorted(first_response["values"]), sorted(resolution["values"])
    out = {
        "nps": {"value": r(kpis.nps(nps["hits"], nps["hits2"], nps["n"])), "n": nps["n"]},
        "csat_share": {"value": r(kpis.share(csat["hits"], csat["n"])), "n": csat["n"]},
        "csat_mean": {"value": r(kpis.mean(csat["total"], csat["n"])), "n": csat["n"]},
        "ces_mean": {"value": r(kpis.mean(ces["total"], ces["n"])), "n": ces["n"]},
        "ces_share": {"value": r(kpis.share(ces["hits"], ces["n"])), "n": ces["n"]},
        "tws_mean": {"value": r(kpis.mean(tws["total"], tws["n"])), "n": tws["n"]},
        "calibration_mean": {"value": r(kpis.mean(calibration["total"], calibration["n"])), "n": calibration["n"]},
        "calibration_abs_mean": {"value": r(kpis.mean(calibration["total2"], calibration["n"])), "n": calibration["n"]},
        "tth_p50_seconds": {"value": r(kpis.percentile(tth_values, 50)), "n": len(tth_values)},
        "tth_p90_seconds": {"value": r(kpis.percentile(tth_values, 90)), "n": len(tth_values)},
        "before_contact_p50_seconds": {"value": r(kpis.percentile(before_values, 50)), "n": len(before_values)},
        "came_back_rate": {"value": r(kpis.share(came_back["hits"], came_back["n"])), "n": came_back["n"]},
        "first_response_p50_seconds": {"value": r(kpis.percentile(frt_values, 50)), "n": len(frt_values)},
        "first_response_p90_seconds": {"value": r(kpis.percentile(frt_values, 90)), "n": len(frt_values)},
        "resolution_p50_seconds": {"value": r(kpis.percentile(resolution_values, 50)), "n": len(resolution_values)},
        "bot_only_share": {"value": r(kpis.share(bot_only["hits"], bot_only["n"])), "n": bot_only["n"]},
    }
    if churn is not None:
        churned, active = churn
        out["churn_rate"] = {"value": r(kpis.share(churned, active)), "n": active}
    else:
        out["churn_rate"] = {"value": None, "n": 0}
    return out


def _churn(starts, granularity, segments=None, now=None):
    """{(period start, key): (churned in it, active at its start)} from the activity spans.

    Active at the start S: a span that began before S and had not churned by S.
    Churned in the period: such a span whose churn time falls inside it (and has passed).
    `segments`: None for all customers (key ""), else by segment slug.
    """
    now = now or timezone.now()
    bounds = [_midnight(s) for s in starts] + [_midnight(period_next(starts[-1], granularity))]
    spans = ActivitySpan.objects.filter(first_at__lt=bounds[-2], churn_at__gt=bounds[0])
    out = defaultdict(lambda: [0, 0])
    if segments is None:
        rows = ((first, churn, "") for first, churn in spans.values_list("first_at", "churn_at"))
    else:
        rows = spans.filter(customer__segments__isnull=False).values_list(
            "first_at", "churn_at", "customer__segments__slug")
    for first, churn_at, key in rows:
        for index, start in enumerate(starts):
            s, e = bounds[index], bounds[index + 1]
            if first < s < churn_at:
                out[(start, key)][1] += 1
                if churn_at < e and churn_at <= now:
                    out[(start, key)][0] += 1
    return {key: tuple(value) for key, value in out.items()}


def _midnight(day):
    return datetime.combine(day, time.min, tzinfo=dt_timezone.utc)


def kpis_compute(*, start: date, end: date, granularity: str, by: str | None = None) -> dict:
    """Organisation KPIs per period from the daily roll-ups (start and end are inclusive UTC days).

    Returns::

        {
          "from": date, "to": date, "granularity": "day" | "week" | "month", "by": None | "channel" | "segment",
          "periods": [
            {
              "start": date,                     # first day of the period (weeks start on Monday)
              "kpis": {name: {"value": float | None, "n": int}, ...},   # all channels and segments together
              "groups": {key: {name: {"value", "n"}}},  # only with `by`: per channel or per segment
              "consistency": {name: {"range", "cv", "channels"}},  # spread of each KPI across channels
            }, ...
          ],
          "totals": {"kpis": {...}, "groups": {...}, "consistency": {...}},  # the whole range at once
        }

    KPI names: nps, csat_share, csat_mean, ces_mean, ces_share, tws_mean, calibration_mean,
    calibration_abs_mean, tth_p50_seconds, tth_p90_seconds, before_contact_p50_seconds, came_back_rate,
    first_response_p50_seconds, first_response_p90_seconds, resolution_p50_seconds, bot_only_share,
    churn_rate. `n` is how many answers, journeys, conversations or (churn) active customers stand behind
    the value; a value is None when n is 0. The consistency index is always across channels, whatever
    `by` is. Churn has no channel, so it is None per channel. Values are rounded per KPI_DECIMALS /
    KPI_ROUNDING. Periods are clipped to start..end for the roll-ups they sum.
    """
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {', '.join(GRANULARITIES)}")
    if by not in (None, *BREAKDOWNS):
        raise ValueError(f"by must be one of {', '.join(BREAKDOWNS)}")
    if end < start:
        raise ValueError("to is before from")
    starts = periods(start, end, granularity)
    if len(starts) > MAX_PERIODS:
        raise ValueError(f"at most {MAX_PERIODS} periods; use a coarser granularity or a shorter range")

    dimensions = {"all", "channel"} | ({by} if by else set())
    # parts[(period start | None for totals, dimension, key)][metric] = summed part
    parts = defaultdict(lambda: defaultdict(_empty))
    for day, dimension, key, metric, n, total, total2, hits, hits2, values in MetricRollup.objects.filter(
            day__gte=start, day__lte=end, dimension__in=dimensions).values_list(
            "day", "dimension", "key", "metric", "n", "total", "total2", "hits", "hits2", "values").order_by():
        for period in (period_start(day, granularity), None):
            part = parts[(period, dimension, key)][metric]
            part["n"] += n
            part["total"] += total
            part["total2"] += total2
            part["hits"] += hits
            part["hits2"] += hits2
            if values:
                part["values"].extend(values)

    churn_all = _churn(starts, granularity)
    churn_segments = _churn(starts, granularity, segments=True) if by == "segment" else {}
    # Totals: churn over the whole range as one period.
    total_churn = None  # churn is a per-period rate; the whole range has no single start

    def group_keys(period, dimension):
        return sorted({key for (p, d, key) in parts if p == period and d == dimension})

    def block(period):
        out = {"kpis": _kpis_of(parts.get((period, "all", ""), {}),
                                churn_all.get((period, ""), (0, 0)) if period is not None else total_churn)}
        channel_kpis = {key: _kpis_of(parts[(period, "channel", key)], None) for key in group_keys(period, "channel")}
        names = out["kpis"].keys()
        out["consistency"] = {
            name: _consistency_rounded([k[name]["value"] for k in channel_kpis.values()]) for name in names
        }
        if by == "channel":
            out["groups"] = channel_kpis
        elif by == "segment":
            out["groups"] = {
                key: _kpis_of(parts[(period, "segment", key)],
                              churn_segments.get((period, key), (0, 0)) if period is not None else None)
                for key in sorted(set(group_keys(period, "segment")) | {k for (p, k) in churn_segments if p == period})
            }
        return out

    return {
        "from": start, "to": end, "granularity": granularity, "by": by,
        "periods": [{"start": period, **block(period)} for period in starts],
        "totals": block(None),
    }


def _consistency_rounded(values):
    spread = kpis.consistency(values)
    return {"range": kpis.kpi_round(spread["range"]), "cv": kpis.kpi_round(spread["cv"], decimals=4),
            "channels": spread["channels"]}
