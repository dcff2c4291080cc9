"""Property tests of the journey state machine (hypothesis): any history, any order of signals."""

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metrics import compute
from tests.metrics.rows import Rows, at

T = compute.Thresholds()

# One event: (minutes after the previous one, what it is, incident hours before it or None)
EVENTS = st.sampled_from([
    "misery", "magic", "neutral", "complaint", "outbound_angry", "csat_low", "csat_high", "ces_mid", "nps_low",
    "mark_unhappy", "mark_happy", "agent_prediction_low",
])
HISTORY = st.lists(
    st.tuples(st.integers(min_value=0, max_value=3000), EVENTS, st.one_of(st.none(), st.integers(0, 200))),
    max_size=40,
)


def build(history, customer=1):
    rows = Rows(customer)
    when = at(0)
    for gap, event, incident_hours in history:
        when = when + timedelta(minutes=gap)
        incident = when - timedelta(hours=incident_hours) if incident_hours is not None else None
        kwargs = {"incident": incident}
        if event == "misery":
            kwargs["sentiment"] = -0.7
        elif event == "magic":
            kwargs["sentiment"] = 0.7
        elif event == "neutral":
            kwargs["sentiment"] = 0.0
        elif event == "complaint":
            kwargs["intent"] = "complaint"
        elif event == "outbound_angry":
            kwargs.update(direction="outbound", author="agent", sentiment=-0.9)
        elif event.startswith("csat") or event in ("ces_mid", "nps_low"):
            kind, score = {"csat_low": ("csat", 1), "csat_high": ("csat", 5), "ces_mid": ("ces", 4),
                           "nps_low": ("nps", 0)}[event]
            kwargs["survey"] = (kind, score, "customer")
        elif event == "agent_prediction_low":
            kwargs.update(direction="internal", author="agent", survey=("tws", 1, "agent"))
        else:
            kwargs["mood"] = "unhappy" if event == "mark_unhappy" else "happy"
        rows.add(when, **kwargs)
    return rows.sorted()


MISERY_EVENTS = {"misery", "complaint", "csat_low", "mark_unhappy"}
MAGIC_EVENTS = {"magic", "csat_high", "mark_happy"}


@settings(max_examples=200, deadline=None)
@given(HISTORY)
def test_journeys_never_overlap_close_after_start_and_follow_the_signals(history):
    rows = build(history)
    journeys = compute.journeys_compute(rows, T)

    for journey in journeys:
        assert journey.started_at <= journey.opened_at
        if journey.closed_at is not None:
            assert journey.closed_at >= journey.opened_at >= journey.started_at
            assert journey.tth_seconds == (journey.closed_at - journey.started_at).total_seconds() >= 0
    for earlier, later in zip(journeys, journeys[1:]):
        assert earlier.closed_at is not None  # only the last may be open
        assert earlier.closed_at <= later.started_at  # no overlap
    assert [j.seq for j in journeys] == list(range(1, len(journeys) + 1))

    # The openings and closings are exactly the state machine's transitions.
    expected, open_ = [], False
    for row, (_gap, event, _incident) in zip(rows, history):
        if event in MISERY_EVENTS and not open_:
            expected.append(("open", row[compute.I_ID]))
            open_ = True
        elif event in MAGIC_EVENTS and open_:
            expected.append(("close", row[compute.I_ID]))
            open_ = False
    actual = []
    for journey in journeys:
        actual.append(("open", journey.opening_interaction_id))
        if journey.closed_at is not None:
            actual.append(("close", journey.closing_interaction_id))
    assert actual == expected


@pytest.mark.django_db
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(HISTORY)
def test_recomputing_any_history_twice_gives_the_same_rows(history):
    from interactions.models import Interaction
    from metrics import services
    from metrics.models import ActivitySpan, CustomerSnapshot, Journey
    from tests.factories import CustomerFactory

    customer = CustomerFactory()
    stored = []
    for row in build(history, customer=customer.pk):
        data = {}
        if row[compute.I_SURVEY_KIND]:
            data["survey"] = {"kind": row[compute.I_SURVEY_KIND], "score": row[compute.I_SURVEY_SCORE],
                              "respondent": row[compute.I_SURVEY_RESPONDENT]}
        if row[compute.I_MOOD]:
            data["mood"] = row[compute.I_MOOD]
        stored.append(Interaction(
            customer=customer, channel=row[compute.I_CHANNEL], kind=row[compute.I_KIND],
            direction=row[compute.I_DIRECTION], author_type=row[compute.I_AUTHOR], occurred_at=row[compute.I_AT],
            sentiment=row[compute.I_SENTIMENT], intent=row[compute.I_INTENT], incident_at=row[compute.I_INCIDENT],
            source="prop", external_id=f"{customer.pk}-{row[compute.I_ID]}", data=data,
        ))
    Interaction.objects.bulk_create(stored)
    now = at(200)

    def state():
        return (
            list(Journey.objects.filter(customer=customer).order_by("seq").values()),
            list(ActivitySpan.objects.filter(customer=customer).order_by("first_at").values()),
            CustomerSnapshot.objects.filter(customer=customer).values().first(),
        )

    services.customers_recompute(customer_ids=[customer.pk], now=now)
    first = state()
    services.customers_recompute(customer_ids=[customer.pk], now=now)
    assert state() == first

    # and from scratch: the same content (the ids are new)
    Journey.objects.filter(customer=customer).delete()
    services.customers_recompute(customer_ids=[customer.pk], now=now)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "id"} for r in rows]  # noqa: E731
    assert strip(state()[0]) == strip(first[0])
    assert len(first[0]) == len(compute.journeys_compute(build(history), T))
