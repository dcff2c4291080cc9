from datetime import datetime, timedelta, timezone

import pytest
from django.urls import reverse

from tests.factories import CustomerFactory, IdentityFactory, InteractionFactory

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
CHANNELS = ["chat", "email", "phone", "sms", "whatsapp", "facebook", "instagram", "web"]


@pytest.fixture
def customer():
    customer = CustomerFactory()
    # Pairs of rows share a timestamp so the id must break the tie.
    for n in range(120):
        InteractionFactory(
            customer=customer, occurred_at=T0 + timedelta(hours=n // 2), channel=CHANNELS[n % len(CHANNELS)],
            direction="outbound" if n % 3 == 0 else "inbound", author_type="agent" if n % 3 == 0 else "customer",
        )
    InteractionFactory()  # someone else's
    return customer


def walk(api, url, params=None):
    pages, ids = 0, []
    response = api.get(url, params or {})
    while True:
        assert response.status_code == 200, response.json()
        body = response.json()
        pages += 1
        ids += [row["id"] for row in body["results"]]
        if not body["next"]:
            return pages, ids
        response = api.get(body["next"])


def test_timeline_pages_newest_first_without_gaps_or_repeats(api, customer):
    expected = list(customer.interactions.order_by("-occurred_at", "-id").values_list("pk", flat=True))

    pages, ids = walk(api, reverse("customer-timeline", args=[customer.pk]))

    assert ids == expected
    assert pages == 3  # 50 + 50 + 20


def test_timeline_page_size_and_filters(api, customer):
    url = reverse("customer-timeline", args=[customer.pk])
    expected = list(
        customer.interactions.filter(channel__in=["email", "sms"], direction="inbound",
                                     occurred_at__gte=T0 + timedelta(hours=10), occurred_at__lt=T0 + timedelta(hours=50))
        .order_by("-occurred_at", "-id").values_list("pk", flat=True)
    )

    pages, ids = walk(api, url, {
        "channel": ["email", "sms"], "direction": "inbound", "since": "2026-01-01T10:00:00Z",
        "until": "2026-01-03T02:00:00Z", "page_size": 3,
    })

    assert ids == expected and len(ids) > 3 and pages == -(-len(ids) // 3)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"page_size": 201}, "page_size"),
        ({"page_size": "many"}, "page_size"),
        ({"cursor": "garbage"}, "cursor"),
        ({"channel": "pigeon"}, "channel"),
        ({"since": "2026-01-01T10:00:00"}, "since"),
    ],
)
def test_bad_timeline_parameters_are_400(api, customer, params, field):
    response = api.get(reverse("customer-timeline", args=[customer.pk]), params)

    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_unknown_customer_is_404(api):
    assert api.get(reverse("customer-timeline", args=[999999])).status_code == 404


def test_timeline_query_count_is_pinned(api, customer, django_assert_num_queries):
    url = reverse("customer-timeline", args=[customer.pk])
    api.get(url)  # the token's last-used stamp is written on first use, and the token cached

    # one page, the live check riding along (the token is cached)
    with django_assert_num_queries(1):
        response = api.get(url, {"page_size": 200})
    assert len(response.json()["results"]) == 120


def test_customer_list_query_count_is_pinned_and_search_matches_identities(api, django_assert_num_queries):
    for n in range(30):
        IdentityFactory(customer=CustomerFactory(name=f"Person {n}"), value=f"p{n}@example.com")
    IdentityFactory(kind="phone", value="+4915112345678", customer=CustomerFactory(name="Lisa"))
    url = reverse("customer-list")
    api.get(url)

    # count, page, identities, segments (the token is cached)
    with django_assert_num_queries(4):
        response = api.get(url)
    assert response.json()["count"] == 31 and len(response.json()["results"]) == 31

    by_phone = api.get(url, {"q": "0049 151 1234 5678"}).json()["results"]
    by_email = api.get(url, {"q": "P7@Example.com"}).json()["results"]
    by_name = api.get(url, {"q": "lisa"}).json()["results"]
    assert [c["name"] for c in by_phone] == ["Lisa"]
    assert [c["name"] for c in by_email] == ["Person 7"]
    assert [c["name"] for c in by_name] == ["Lisa"]


def test_customer_patch_updates_segments_and_adds_identities(api):
    customer = CustomerFactory(name="Old")
    other = IdentityFactory(value="taken@example.com")
    url = reverse("customer-detail", args=[customer.pk])

    response = api.patch(url, {"name": "New", "segments": ["VIP", "b2b"],
                               "add_identities": [{"kind": "phone", "value": "+49 151 12345678"}]}, format="json")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["name"] == "New" and body["segments"] == ["b2b", "vip"]
    assert [(i["kind"], i["value"]) for i in body["identities"]] == [("phone", "+4915112345678")]
    conflict = api.patch(url, {"add_identities": [{"kind": "email", "value": "TAKEN@example.com"}]}, format="json")
    assert conflict.status_code == 409
    assert f"#{other.customer_id}" in conflict.json()["detail"]
    invalid = api.patch(url, {"add_identities": [{"kind": "email", "value": "nope"}]}, format="json")
    assert invalid.status_code == 400


@pytest.mark.parametrize("time_zone", ["UTC", "Asia/Tehran"])
def test_the_timeline_fast_path_gives_what_the_interaction_serializer_gives(time_zone, settings):
    from django.utils import timezone as django_timezone

    from interactions.api.serializers import InteractionOut, interactions_out

    settings.TIME_ZONE = time_zone
    customer = CustomerFactory()
    rows = [
        InteractionFactory(customer=customer, sentiment=-0.25, intent="complaint", data={"a": [1, "ب"]},
                           incident_at=datetime(2026, 1, 1, 8, 0, 0, 123456, tzinfo=timezone.utc), body="‏سلام"),
        InteractionFactory(customer=customer, channel="phone", kind="call", data={}),
    ]
    with django_timezone.override(time_zone):
        assert interactions_out(rows) == InteractionOut(rows, many=True).data


def test_an_empty_timeline_and_a_tombstone_page_through_like_any_other(api, django_assert_num_queries):
    # given: a customer without interactions, and a tombstone whose survivor has 3
    empty = CustomerFactory()
    survivor = CustomerFactory()
    tombstone = CustomerFactory(merged_into=survivor)
    for minute in range(3):
        InteractionFactory(customer=survivor, occurred_at=T0 + timedelta(minutes=minute))
    api.get(reverse("customer-timeline", args=[empty.pk]))

    # when
    with django_assert_num_queries(2):  # the empty page, then the id resolved
        empty_page = api.get(reverse("customer-timeline", args=[empty.pk])).json()
    first = api.get(reverse("customer-timeline", args=[tombstone.pk]), {"page_size": 2}).json()
    second = api.get(first["next"]).json()

    # then
    assert empty_page == {"customer_id": empty.pk, "redirected_from": None, "next": None, "results": []}
    assert (first["customer_id"], first["redirected_from"]) == (survivor.pk, tombstone.pk)
    assert [r["occurred_at"] for r in first["results"] + second["results"]] == [
        "2026-01-01T00:02:00Z", "2026-01-01T00:01:00Z", "2026-01-01T00:00:00Z"]
    assert second["next"] is None


def test_customer_detail_query_count_is_pinned(api, django_assert_num_queries):
    customer = CustomerFactory()
    IdentityFactory(customer=customer)
    IdentityFactory(customer=customer, kind="phone", value="+4915112345678")
    for channel in ("chat", "email", "phone"):
        InteractionFactory(customer=customer, channel=channel)
    url = reverse("customer-detail", args=[customer.pk])
    api.get(url)

    # id resolution, the customer, identities, segments, counts per channel, metrics snapshot
    with django_assert_num_queries(6):
        response = api.get(url)
    assert response.json()["channel_counts"] == {"chat": 1, "email": 1, "phone": 1}
