"""Oracle tests of the metric definitions: every expected figure is worked out by hand in the test."""

from datetime import timedelta

from metrics import compute
from tests.metrics.rows import Rows, at

T = compute.Thresholds()
HOUR = 3600.0
DAY = 86400.0


def journeys_of(rows):
    return compute.journeys_compute(rows.sorted(), T)


def test_incident_before_first_contact_backdates_the_start():
    # given: trouble began on day 0 at 08:00; the customer emails on day 2 at 09:00, angry;
    # an agent answers; on day 3 at 12:00 they chat, delighted.
    rows = Rows()
    email = rows.add(at(2), channel="email", sentiment=-0.8, incident=at(0, hours=-1))
    rows.add(at(2, hours=1), channel="email", direction="outbound", author="agent")
    chat = rows.add(at(3, hours=3), channel="chat", sentiment=0.6)

    # when
    [journey] = journeys_of(rows)

    # then: start = the incident (day 0, 08:00), close = day 3, 12:00
    assert journey.started_at == at(0, hours=-1)
    assert journey.opened_at == at(2)
    assert journey.opening_interaction_id == email and journey.opening_signal == "sentiment"
    assert journey.first_contact_at == at(2)
    assert journey.closed_at == at(3, hours=3) and journey.closing_interaction_id == chat
    assert journey.tth_seconds == 3 * DAY + 4 * HOUR  # day 0 08:00 -> day 3 12:00
    assert journey.time_before_contact_seconds == 2 * DAY + 1 * HOUR  # 08:00 -> day 2 09:00
    assert journey.time_in_hands_seconds == 1 * DAY + 3 * HOUR  # day 2 09:00 -> day 3 12:00
    assert journey.channels == ["email", "chat"]
    assert journey.channel == "email"
    assert journey.customer_interactions == 2  # the agent's reply is not the customer's effort
    assert journey.channel_switches == 1


def test_misery_while_open_keeps_one_journey_and_a_later_incident_moves_its_start_back():
    # given: misery at day 1 (sentiment), again at day 2 (a complaint, polite, reporting an
    # incident on day 0 at 12:00), then a CSAT of 5 on day 4
    rows = Rows()
    rows.add(at(1), sentiment=-0.5)
    rows.add(at(2), sentiment=0.1, intent="complaint", incident=at(0, hours=3))
    rows.add(at(4), channel="email", survey=("csat", 5, "customer"))

    [journey] = journeys_of(rows)

    assert journey.misery_signals == 2
    assert journey.started_at == at(0, hours=3)
    assert journey.opened_at == at(1)
    assert journey.closing_signal == "csat"
    assert journey.tth_seconds == 4 * DAY - 3 * HOUR


def test_magic_without_misery_opens_nothing():
    rows = Rows()
    rows.add(at(0), sentiment=0.9)
    rows.add(at(1), survey=("csat", 5, "customer"))
    rows.add(at(2), mood="happy")

    assert journeys_of(rows) == []
    result = compute.customer_compute(1, rows.sorted(), [], at(3), T)
    assert result.snapshot["unhappy_since"] is None and result.snapshot["journeys"] == 0


def test_thresholds_are_inclusive_and_neutral_text_is_no_signal():
    rows = Rows()
    rows.add(at(0), sentiment=-0.29)  # not misery
    rows.add(at(1), sentiment=-0.3)  # misery (<= -0.3)
    rows.add(at(2), sentiment=0.29)  # not magic
    rows.add(at(3), direction="outbound", author="agent", sentiment=0.9)  # outbound: no signal
    rows.add(at(4), sentiment=0.3)  # magic (>= 0.3)

    [journey] = journeys_of(rows)
    assert (journey.opened_at, journey.closed_at) == (at(1), at(4))


def test_surveys_only_customer():
    # given: CSAT 2 (misery), CES 4 (neither), NPS 3 (no signal: NPS is a KPI), CES 6 (magic), TWS 1 (misery)
    rows = Rows()
    rows.add(at(0), survey=("csat", 2, "customer"))
    rows.add(at(1), survey=("ces", 4, "customer"))
    rows.add(at(2), survey=("nps", 3, "customer"))
    rows.add(at(3), survey=("ces", 6, "customer"))
    rows.add(at(5), survey=("tws", 1, "customer"))
    rows.add(at(6), direction="internal", author="agent", survey=("tws", 5, "agent"))  # a prediction: no signal

    result = compute.customer_compute(1, rows.sorted(), [], at(10), T)

    first, second = result.journeys
    assert (first.opening_signal, first.closing_signal, first.tth_seconds) == ("csat", "ces", 3 * DAY)
    assert (second.opening_signal, second.closed_at, second.started_at) == ("tws", None, at(5))
    snapshot = result.snapshot
    assert snapshot["unhappy_since"] == at(5)
    assert snapshot["journeys"] == 2
    assert snapshot["last_tth_seconds"] == 3 * DAY and snapshot["median_tth_seconds"] == 3 * DAY
    assert snapshot["latest_nps"] == 3
    assert snapshot["csat_mean"] == 2 and snapshot["ces_mean"] == 5 and snapshot["tws_mean"] == 1  # agent's 5 not mixed in
    assert snapshot["visits"] == 0  # answering our survey is not a visit


def test_marks_open_and_close_with_an_incident_time():
    rows = Rows()
    rows.add(at(1), mood="unhappy", incident=at(-1))
    rows.add(at(1, hours=2), mood="happy")

    [journey] = journeys_of(rows)
    assert journey.started_at == at(-1) and journey.tth_seconds == 2 * DAY + 2 * HOUR
    assert journey.opening_signal == journey.closing_signal == "mark"
    assert journey.first_contact_at is None and journey.time_before_contact_seconds is None


def test_journeys_never_start_before_the_previous_one_closed():
    rows = Rows()
    rows.add(at(0), sentiment=-0.9)
    rows.add(at(1), sentiment=0.9)
    rows.add(at(2), sentiment=-0.9, incident=at(-5))  # the incident predates the first close

    first, second = journeys_of(rows)
    assert second.started_at == first.closed_at == at(1)


def test_effort_counts_call_and_chat_minutes():
    rows = Rows()
    rows.add(at(0), channel="chat", conversation=7, sentiment=-0.6)
    rows.add(at(0, minutes=4), channel="chat", conversation=7, direction="outbound", author="agent")
    rows.add(at(0, minutes=10), channel="chat", conversation=7)
    rows.add(at(1), channel="phone", kind="call", duration=300)
    rows.add(at(2), channel="chat", conversation=7, sentiment=0.5)

    [journey] = journeys_of(rows)
    # chat 7 spans day 0 09:00 .. day 2 09:00 = 2880 min, plus the 5-minute call
    assert journey.call_chat_minutes == 2885
    assert journey.customer_interactions == 4
    assert journey.channels == ["chat", "phone"] and journey.channel_switches == 2


def test_visits_and_return_visits():
    rows = Rows()
    rows.add(at(0))
    rows.add(at(0, hours=2))
    rows.add(at(0, hours=2 + 24))  # exactly 24 h later: same visit (a gap must be longer)
    rows.add(at(0, hours=2 + 24 + 25))  # 25 h later: a new visit
    rows.add(at(0, hours=60), direction="outbound", author="agent")  # not customer-initiated

    starts, spans, last = compute.visits_compute(rows.sorted(), T)
    assert starts == [at(0), at(0, hours=51)]
    assert last == at(0, hours=51)
    assert spans == [(at(0), at(0, hours=51), at(0, hours=51) + timedelta(days=90))]


def test_churn_after_90_days_and_a_new_span_after():
    rows = Rows()
    rows.add(at(0))
    rows.add(at(100))  # a 100-day gap: the first span churned at day 90

    starts, spans, _ = compute.visits_compute(rows.sorted(), T)
    assert spans == [(at(0), at(0), at(90)), (at(100), at(100), at(190))]
    assert compute.customer_compute(1, rows.sorted(), [], at(189), T).snapshot["churned"] is False
    assert compute.customer_compute(1, rows.sorted(), [], at(190), T).snapshot["churned"] is True


def test_at_risk_when_the_gap_exceeds_twice_the_usual():
    rows = Rows()
    for day in (0, 10, 20, 30):
        rows.add(at(day))
    # usual gap 10 days; 21 days after the last visit is more than 2 x 10
    assert compute.customer_compute(1, rows.sorted(), [], at(50), T).snapshot["at_risk"] is False  # 20 days: not over
    snapshot = compute.customer_compute(1, rows.sorted(), [], at(51), T).snapshot
    assert snapshot["at_risk"] is True and snapshot["usual_gap_days"] == 10 and snapshot["days_since_last_visit"] == 21
    assert snapshot["visits"] == 4 and snapshot["return_visits"] == 3


def test_came_back_counts_only_elapsed_windows():
    # given: conversation 1 resolved on day 1, the customer returned on day 31;
    # conversation 2 resolved on day 40; conversation 3 resolved on day 100; the next visit is on day 101.
    rows = Rows()
    rows.add(at(0), conversation=1)
    rows.add(at(31), conversation=2)
    rows.add(at(39), conversation=3)
    rows.add(at(101))
    conversations = [(1, at(0), at(1), 0, ["chat"]), (2, at(31), at(40), 0, ["email"]),
                     (3, at(39), at(100), 1, ["chat"]), (4, at(101), None, 0, ["chat"])]
    starts, _, _ = compute.visits_compute(rows.sorted(), T)

    # when: now is day 135 -- conversation 1's window (to day 91) passed; 2's ends day 130 (passed);
    # 3's runs to day 190 (not yet)
    out = {c.conversation_id: c for c in compute.conversations_compute(rows.sorted(), conversations, starts, at(135), T)}

    assert (out[1].came_back, out[1].days_to_return) == (True, 30)
    # conversation 2 "came back" on day 101? 61 days after day 40: within 90 -> True
    assert (out[2].came_back, out[2].days_to_return) == (True, 61)
    assert out[3].came_back is None and out[3].days_to_return == 1  # returned, but its window is open: excluded
    assert out[4].came_back is None and out[4].resolution_seconds is None
    assert out[2].resolution_seconds == 9 * DAY


def test_conversation_clocks_bot_then_human():
    rows = Rows()
    rows.add(at(0), conversation=5, author="customer")
    rows.add(at(0, minutes=1), conversation=5, direction="outbound", author="bot")
    rows.add(at(0, minutes=9), conversation=5, direction="outbound", author="agent")
    rows.add(at(0, minutes=20), conversation=6, direction="outbound", author="agent")  # outreach first
    rows.add(at(0, minutes=30), conversation=6)
    rows.add(at(0, minutes=32), conversation=6, direction="outbound", author="bot")
    conversations = [(5, at(0), at(0, hours=2), 0, ["chat"]), (6, at(0, minutes=20), None, 0, ["sms"])]

    out = {c.conversation_id: c for c in compute.conversations_compute(rows.sorted(), conversations, [], at(1), T)}

    assert out[5].first_response_seconds == 60 and out[5].handler == "bot_human" and out[5].handoff_seconds == 480
    assert out[5].resolution_seconds == 2 * HOUR
    # conversation 6: the agent spoke before the customer's first message; the bot answered 2 min after it
    assert out[6].first_response_seconds == 120 and out[6].handler == "human" and out[6].handoff_seconds is None
