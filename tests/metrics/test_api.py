"""The metrics API through the full stack: surveys, marks, a customer's metrics, KPIs, list filters."""

from datetime import datetime, timedelta, timezone

import pytest
from django.db import connection
from django.urls import reverse

from metrics import services
from metrics.models import CustomerSnapshot, SurveyResponse
from tests.factories import ConversationFactory, CustomerFactory, SegmentFactory
from tests.metrics.helpers import ingest

pytestmark = pytest.mark.django_db

DAY1 = datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc)  # Monday


def post_survey(api, **body):
    return api.post(reverse("survey-create"), body, format="json")


def test_survey_answer_is_stored_shown_on_the_timeline_and_replays_are_200(api):
    customer = CustomerFactory()
    body = {"customer_id": customer.pk, "kind": "csat", "score": 2, "channel": "email",
            "question": "¿Cómo lo hicimos? / چطور بودیم؟", "question_version": "v3", "comment": "‏خیلی کند بود",
            "answered_at": "2026-03-02T10:00:00Z", "source": "typeform", "external_id": "r-1"}

    response = post_survey(api, **body)

    assert response.status_code == 201, response.json()
    answer = response.json()
    stored = SurveyResponse.objects.get()
    assert answer == {
        "id": stored.pk, "kind": "csat", "score": 2, "customer_id": customer.pk, "conversation_id": None,
        "interaction_id": stored.interaction_id, "channel": "email", "question": body["question"],
        "question_version": "v3", "comment": "‏خیلی کند بود", "respondent": "customer", "agent_id": None,
        "answered_at": "2026-03-02T10:00:00Z", "source": "typeform", "external_id": "r-1",
        "created_at": answer["created_at"],
    }
    timeline = api.get(reverse("customer-timeline", args=[customer.pk])).json()["results"]
    [entry] = timeline
    assert (entry["kind"], entry["channel"], entry["direction"], entry["body"]) == ("survey", "email", "inbound", "‏خیلی کند بود")
    assert entry["data"]["survey"]["kind"] == "csat" and entry["data"]["survey"]["score"] == 2

    replay = post_survey(api, **body)
    assert replay.status_code == 200 and replay.json()["id"] == stored.pk
    assert SurveyResponse.objects.count() == 1


@pytest.mark.parametrize("kind, bad, good", [("nps", 11, 0), ("nps", -1, 10), ("csat", 0, 5), ("csat", 6, 1),
                                             ("ces", 0, 7), ("ces", 8, 1), ("tws", 0, 5), ("tws", 6, 1)])
def test_out_of_range_scores_are_400_and_change_nothing(api, kind, bad, good):
    customer = CustomerFactory()

    response = post_survey(api, customer_id=customer.pk, kind=kind, score=bad)

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert response.json()["errors"]["score"][0]["code"] == "out_of_range"
    assert not SurveyResponse.objects.exists()
    assert post_survey(api, customer_id=customer.pk, kind=kind, score=good).status_code == 201


def test_bad_survey_input_is_400_never_500(api):
    customer = CustomerFactory()
    for body in ({"customer_id": customer.pk, "kind": "joy", "score": 3},
                 {"customer_id": customer.pk, "kind": "csat", "score": "many"},
                 {"kind": "csat", "score": 3},
                 {"customer_id": 999999, "kind": "csat", "score": 3},
                 {"customer_id": customer.pk, "kind": "csat", "score": 3, "conversation_id": 999999},
                 {"customer_id": customer.pk, "kind": "csat", "score": 3, "answered_at": "2026-03-02T10:00:00"},
                 {"customer_id": customer.pk, "kind": "csat", "score": 3, "respondent": "agent"},
                 {"customer_id": customer.pk, "kind": "tws", "score": 3, "respondent": "agent", "agent_id": 424242,
                  "conversation_id": ConversationFactory(customer=customer).pk}):
        response = post_survey(api, **body)
        assert response.status_code == 400, (body, response.content)
    assert not SurveyResponse.objects.exists()


def test_agent_prediction_needs_the_conversation_and_takes_its_customer(api, staff_user):
    conversation = ConversationFactory()
    response = post_survey(api, conversation_id=conversation.pk, kind="tws", score=4, respondent="agent",
                           agent_id=staff_user.pk)
    assert response.status_code == 201, response.json()
    assert response.json()["customer_id"] == conversation.customer_id
    assert response.json()["respondent"] == "agent"


def test_surveys_need_the_write_scope(scoped_api):
    customer = CustomerFactory()
    response = scoped_api("metrics:read").post(reverse("survey-create"),
                                               {"customer_id": customer.pk, "kind": "nps", "score": 9}, format="json")
    assert response.status_code == 403


def test_unhappy_mark_with_incident_time_then_metrics_endpoint(api):
    customer = CustomerFactory()
    url = reverse("customer-mark", args=[customer.pk])

    response = api.post(url, {"mood": "unhappy", "incident_at": "2026-03-01T08:00:00Z",
                              "occurred_at": "2026-03-03T08:00:00Z", "note": "Parcel lost"}, format="json")
    assert response.status_code == 201, response.json()
    assert api.post(url, {"mood": "happy", "incident_at": "2026-03-01T08:00:00Z"}, format="json").status_code == 400
    assert api.post(url, {"mood": "meh"}, format="json").status_code == 400
    assert api.post(reverse("customer-mark", args=[999999]), {"mood": "happy"}, format="json").status_code == 404
    services.dirty_customers_recompute()

    body = api.get(reverse("customer-metrics", args=[customer.pk])).json()
    assert body["snapshot"]["unhappy_now"] is True
    assert body["snapshot"]["unhappy_since"] == "2026-03-01T08:00:00Z"
    assert body["snapshot"]["journeys"] == 1
    [journey] = body["journeys"]
    assert journey["opening_signal"] == "mark" and journey["started_at"] == "2026-03-01T08:00:00Z"
    assert journey["opened_at"] == "2026-03-03T08:00:00Z" and journey["closed_at"] is None

    api.post(url, {"mood": "happy", "occurred_at": "2026-03-04T08:00:00Z"}, format="json")
    services.dirty_customers_recompute()
    body = api.get(reverse("customer-metrics", args=[customer.pk])).json()
    assert body["snapshot"]["unhappy_now"] is False
    assert body["journeys"][0]["tth_seconds"] == 3 * 86400


def test_customer_detail_embeds_the_snapshot_and_the_list_filters(api, django_assert_num_queries):
    sad = ingest("sad@example.com", when=DAY1, sentiment=-0.9).customer_id
    glad = ingest("glad@example.com", when=DAY1, sentiment=0.9).customer_id
    never = CustomerFactory().pk
    services.customers_recompute(customer_ids=[sad, glad])
    CustomerSnapshot.objects.filter(customer_id=glad).update(at_risk=True)

    detail = api.get(reverse("customer-detail", args=[sad])).json()
    assert detail["metrics"]["unhappy_now"] is True and detail["metrics"]["unhappy_since"] == "2026-03-02T10:00:00Z"
    assert api.get(reverse("customer-detail", args=[never])).json()["metrics"] is None

    url = reverse("customer-list")
    api.get(url)
    # count, page, identities, segments: the filters ride along in the same queries
    with django_assert_num_queries(4):
        unhappy = api.get(url, {"unhappy_now": "true"}).json()
    assert [c["id"] for c in unhappy["results"]] == [sad]
    assert [c["id"] for c in api.get(url, {"at_risk": "true"}).json()["results"]] == [glad]
    assert sorted(c["id"] for c in api.get(url, {"unhappy_now": "false"}).json()["results"]) == sorted([glad, never])
    assert api.get(url, {"unhappy_now": "true", "at_risk": "true"}).json()["count"] == 0


def _survey(customer, kind, score, when, channel="chat", conversation=None, respondent="customer"):
    services.survey_response_create(customer_id=customer.pk, kind=kind, score=score, answered_at=when, channel=channel,
                                    conversation_id=conversation, respondent=respondent)


def test_kpis_from_the_survey_table_per_week_and_per_channel(api, settings):
    # given: the NPS row 9, 10, 5, 1, 0, 7 on Monday and Tuesday of one week;
    # CSAT: email 5, 4, 4, 2 (75 %), chat 5, 3 (50 %); all in week of 2 March 2026
    settings.KPI_DECIMALS = 1
    customer = CustomerFactory()
    for index, score in enumerate([9, 10, 5, 1, 0, 7]):
        _survey(customer, "nps", score, DAY1 + timedelta(days=index % 2))
    for score in (5, 4, 4, 2):
        _survey(customer, "csat", score, DAY1 + timedelta(days=2), channel="email")
    for score in (5, 3):
        _survey(customer, "csat", score, DAY1 + timedelta(days=3), channel="chat")
    # calibration: the agent predicted 5 and 2; the customer answered 3 and 4 -> diffs +2, -2
    for predicted, answered in ((5, 3), (2, 4)):
        conversation = ConversationFactory(customer=customer).pk
        _survey(customer, "tws", predicted, DAY1, conversation=conversation, respondent="agent")
        _survey(customer, "tws", answered, DAY1 + timedelta(hours=1), conversation=conversation)
    services.rollups_rebuild_dirty()

    # when
    response = api.get(reverse("metrics-kpis"), {"from": "2026-03-02", "to": "2026-03-08", "granularity": "week",
                                                 "by": "channel"})

    # then
    assert response.status_code == 200, response.json()
    body = response.json()
    [week] = body["periods"]
    assert week["start"] == "2026-03-02"
    kpis = week["kpis"]
    assert kpis["nps"] == {"value": -16.7, "n": 6}
    assert kpis["csat_share"] == {"value": 66.7, "n": 6}  # 4 of 6
    assert kpis["csat_mean"] == {"value": 3.8, "n": 6}  # 23 / 6
    assert kpis["tws_mean"] == {"value": 3.5, "n": 2}  # the customers' 3 and 4; predictions are not answers
    assert kpis["calibration_mean"] == {"value": 0.0, "n": 2}
    assert kpis["calibration_abs_mean"] == {"value": 2.0, "n": 2}
    assert kpis["ces_mean"] == {"value": None, "n": 0}
    assert week["groups"]["email"]["csat_share"] == {"value": 75.0, "n": 4}
    assert week["groups"]["chat"]["csat_share"] == {"value": 50.0, "n": 2}
    assert week["consistency"]["csat_share"] == {"range": 25.0, "cv": 0.2, "channels": 2}  # stdev 12.5 / mean 62.5
    assert body["totals"]["kpis"]["nps"] == {"value": -16.7, "n": 6}


def test_kpis_journeys_came_back_churn_and_segments(api):
    # given: a VIP customer unhappy on 2 Mar (email), delighted on 4 Mar -> TTH 2 days
    vip = SegmentFactory(slug="vip")
    a = ingest("a@example.com", when=DAY1, channel="email", sentiment=-0.8).customer_id
    ingest("a@example.com", when=DAY1 + timedelta(days=2), channel="email", sentiment=0.8)
    from customers.models import Customer

    Customer.objects.get(pk=a).segments.add(vip)
    services.all_recompute()

    body = api.get(reverse("metrics-kpis"), {"from": "2026-03-01", "to": "2026-03-31", "granularity": "month",
                                             "by": "segment"}).json()

    [month] = body["periods"]
    assert month["start"] == "2026-03-01"
    assert month["kpis"]["tth_p50_seconds"] == {"value": 172800.0, "n": 1}
    assert month["kpis"]["before_contact_p50_seconds"] == {"value": 0.0, "n": 1}
    assert month["groups"]["vip"]["tth_p50_seconds"] == {"value": 172800.0, "n": 1}
    # active since 2 March: not active at the month's start, so no churn denominator
    assert month["kpis"]["churn_rate"] == {"value": None, "n": 0}

    june = api.get(reverse("metrics-kpis"), {"from": "2026-06-01", "to": "2026-06-30", "granularity": "month"}).json()
    # active at 1 June (last visit 4 Mar, churns 2 June): churned in June -> 100 %
    assert june["periods"][0]["kpis"]["churn_rate"] == {"value": 100.0, "n": 1}


@pytest.mark.parametrize("query", [{"from": "2026-03-02"}, {"from": "x", "to": "2026-03-02"},
                                   {"from": "2026-03-09", "to": "2026-03-02"},
                                   {"from": "2026-03-02", "to": "2026-03-09", "granularity": "hour"},
                                   {"from": "2026-03-02", "to": "2026-03-09", "by": "planet"},
                                   {"from": "2000-01-01", "to": "2026-03-09", "granularity": "day"}])
def test_kpi_query_errors_are_400(api, query):
    response = api.get(reverse("metrics-kpis"), query)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid"


def test_kpis_need_the_metrics_scope(scoped_api):
    response = scoped_api("customers:read").get(reverse("metrics-kpis"), {"from": "2026-03-02", "to": "2026-03-02"})
    assert response.status_code == 403


def _rollup_history():
    """Surveys (with a calibration pair), journeys and conversations on several days, a segment."""
    vip = SegmentFactory(slug="vip")
    customer = CustomerFactory()
    customer.segments.add(vip)
    for day, (kind, score, channel) in enumerate([("nps", 9, "email"), ("nps", 3, "chat"), ("csat", 4, "chat"),
                                                  ("ces", 6, "email"), ("tws", 2, "chat")]):
        _survey(customer, kind, score, DAY1 + timedelta(days=day % 3, hours=day), channel=channel)
    conversation = ConversationFactory(customer=customer).pk
    _survey(customer, "tws", 5, DAY1, conversation=conversation, respondent="agent")
    _survey(customer, "tws", 3, DAY1 + timedelta(hours=2), conversation=conversation)
    other = ingest("roll@example.com", when=DAY1, channel="email", sentiment=-0.8, incident_at=DAY1 - timedelta(hours=5))
    ingest("roll@example.com", when=DAY1 + timedelta(hours=1), direction="outbound", author="bot")
    ingest("roll@example.com", when=DAY1 + timedelta(days=1), sentiment=0.8)
    services.customers_recompute(customer_ids=[customer.pk, other.customer_id])


def _rollup_rows():
    from metrics.models import MetricRollup

    return sorted(MetricRollup.objects.values_list("day", "dimension", "key", "metric", "n", "total", "total2",
                                                   "hits", "hits2", "values"))


@pytest.mark.postgres
def test_set_based_rollups_on_postgresql_equal_the_python_ones(monkeypatch):
    # given
    _rollup_history()
    rows = _rollup_rows

    for days in (None, {DAY1.date(), (DAY1 + timedelta(days=2)).date()}):
        # when
        services.rollups_rebuild(days=days)
        in_sql = rows()
        monkeypatch.setattr(services, "_ROLLUPS_IN_PYTHON", True)
        services.rollups_rebuild(days=days)
        in_python = rows()
        monkeypatch.setattr(services, "_ROLLUPS_IN_PYTHON", False)

        # then
        assert in_sql == in_python
        assert {r[3] for r in in_sql} >= {"nps", "csat", "ces", "tws", "calibration", "tth", "bot_only"}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("connections", [2, 3])
def test_full_rollup_rebuild_shared_by_several_connections_equals_the_python_one(monkeypatch, connections):
    # given: the history committed (the connections that share the work read committed rows only)
    from metrics import storage

    monkeypatch.setattr(storage, "ROLLUP_CONNECTIONS", connections)
    _rollup_history()
    _survey(CustomerFactory(), "nps", 10, datetime(1999, 12, 31, 23, tzinfo=timezone.utc))  # an old import
    with connection.cursor() as cursor:  # rows a rebuild that rolled back left in the build table
        for part in (0, 7):
            cursor.execute(f"INSERT INTO {storage.ROLLUP_BUILD_TABLE} (part, day, dimension, key, metric, n, total, "
                           "total2, hits, hits2) VALUES (%s, '2020-01-01', 'all', '', 'nps', 1, 0, 0, 1, 0)", [part])

    # when: a rebuild of every day outside any transaction (the nightly's), then the Python one
    written = services.rollups_rebuild(days=None)
    shared = _rollup_rows()
    monkeypatch.setattr(services, "_ROLLUPS_IN_PYTHON", True)
    services.rollups_rebuild(days=None)

    # then
    assert written == len(shared)
    assert shared == _rollup_rows()
    assert {r[3] for r in shared} >= {"nps", "csat", "ces", "tws", "calibration", "tth", "bot_only"}
    assert {r[1] for r in shared} == {"all", "channel", "segment"}
    with connection.cursor() as cursor:  # the connections' build table is left empty
        cursor.execute(f"SELECT count(*) FROM {storage.ROLLUP_BUILD_TABLE}")
        assert cursor.fetchone()[0] == 0
