"""`manage.py load_demo_data`: the demo history the run command loads, at small sizes."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from customers.management.commands.load_demo_data import Generator, batches
from customers.models import Customer, Merge
from interactions.models import Conversation, Interaction

SMALL = ["--customers", "30", "--interactions", "600"]


def load(*args):
    out = StringIO()
    call_command("load_demo_data", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def small_demo(db):
    return load(*SMALL)


def test_loads_the_requested_customers_and_interactions(small_demo):
    live = Customer.objects.filter(merged_into__isnull=True)

    assert live.count() == 30
    stories = Interaction.objects.exclude(kind="survey")
    # at least as many as asked (a story in progress is finished); survey answers come on top
    assert 600 <= stories.count() <= 660
    assert "30 customers" in small_demo and f"{stories.count()} interactions" in small_demo
    # every live customer has a name and a timeline
    assert not live.filter(name="").exists()
    assert not live.filter(interactions__isnull=True).exists()


def test_history_spans_six_months_across_every_channel(small_demo):
    occurred = Interaction.objects.order_by("occurred_at").values_list("occurred_at", flat=True)
    channels = set(Interaction.objects.values_list("channel", flat=True))
    kinds = set(Interaction.objects.values_list("channel", "kind"))
    authors = set(Interaction.objects.values_list("author_type", flat=True))

    assert occurred.last() - occurred.first() >= timedelta(days=180)
    assert occurred.last() < timezone.now()
    assert {"chat", "email", "phone", "sms", "whatsapp", "facebook", "instagram", "web", "store"} <= channels
    assert {("web", "visit"), ("web", "purchase"), ("phone", "call")} <= kinds
    assert {kind for channel, kind in kinds if channel in ("facebook", "instagram")} >= {"message", "reaction"}
    assert authors == {"customer", "agent", "bot", "system"}


def test_customers_first_seen_as_two_people_are_auto_merged(small_demo):
    merges = Merge.objects.select_related("survivor", "merged")

    # personas 5, 17 and 29 of 30 chat anonymously before they give their email
    assert merges.count() == 3
    for merge in merges:
        assert merge.reason == Merge.Reason.AUTO
        assert merge.merged.merged_into_id == merge.survivor_id
        kinds = set(merge.survivor.identities.values_list("kind", flat=True))
        assert {"chat", "email"} <= kinds
        assert Interaction.objects.filter(customer=merge.merged).count() == 0
    assert "3 first seen as two people" in small_demo


def test_journeys_go_from_misery_to_magic_and_conversations_resolve_in_the_past(small_demo):
    inbound = Interaction.objects.filter(direction="inbound", author_type="customer")
    resolved = Conversation.objects.filter(status="resolved")

    assert inbound.filter(sentiment__lte=-0.3).exists()
    assert inbound.filter(sentiment__gte=0.3).exists()
    assert inbound.filter(intent="complaint", incident_at__isnull=False).exists()
    assert inbound.filter(sentiment__isnull=True, body__gt="").exists()  # left for the analyser
    assert resolved.exists()
    assert all(c.opened_at <= c.resolved_at < timezone.now() for c in resolved)
    # a conversation continued on another channel
    assert any(len(c.channels) > 1 for c in Conversation.objects.all())


def test_agents_are_staff_users_and_some_customers_write_persian_or_arabic(small_demo, django_user_model):
    agents = django_user_model.objects.filter(username__endswith=".agent")

    assert agents.count() == 6
    assert all(agent.is_staff and agent.groups.filter(name="Agents").exists() for agent in agents)
    assert set(Interaction.objects.filter(author_type="agent").values_list("agent__username", flat=True)) <= set(
        agents.values_list("username", flat=True)
    )
    assert Customer.objects.filter(name__regex=r"[\u0600-\u06FF]").exists()
    assert Interaction.objects.filter(body__regex=r"[\u0600-\u06FF]").exists()
    # identities arrive unnormalised (Persian digits, mixed case) and are stored normalised
    assert not Customer.objects.filter(identities__value__regex=r"[A-Z۰-۹]").exists()


def test_a_second_run_changes_nothing(small_demo):
    counts = (Customer.objects.count(), Interaction.objects.count())

    output = load(*SMALL)

    assert "not loaded" in output
    assert (Customer.objects.count(), Interaction.objects.count()) == counts


def test_the_same_seed_gives_the_same_history():
    now = timezone.now()
    agents = [(1, "A"), (2, "B")]

    def history(seed):
        _personas, demo = Generator(customers=20, interactions=300, seed=seed, now=now, agent_ids=agents).build()
        return [(i.external_id, i.occurred_at, i.channel, i.body, i.identities) for i in demo.items]

    assert history(3) == history(3)
    assert history(3) != history(4)


def test_batches_keep_time_order_and_hold_back_a_joining_item():
    _personas, demo = Generator(
        customers=24, interactions=400, seed=1, now=timezone.now(), agent_ids=[(1, "A")]
    ).build()

    chunks = list(batches(demo, 1000))

    assert [item for chunk in chunks for item in chunk] == demo.items
    assert len(chunks) >= 2  # a batch is cut before a join whose customer's halves are in it
    for chunk in chunks:
        assert len(chunk) <= 1000
        for position, item in enumerate(chunk):
            if item.external_id in demo.joins:
                persona = demo.persona_of[item.external_id]
                assert all(demo.persona_of[other.external_id] != persona for other in chunk[:position])


def test_bad_sizes_are_refused(db):
    with pytest.raises(CommandError):
        load("--customers", "1")
    with pytest.raises(CommandError):
        load("--batch-size", "1001")


def test_surveys_are_answered_and_metrics_computed(small_demo):
    from metrics.models import SurveyResponse
    from metrics.selectors import customer_snapshots_get, kpis_compute

    live_ids = list(Customer.objects.filter(merged_into__isnull=True).values_list("pk", flat=True))
    answers = SurveyResponse.objects.all()
    today = timezone.now().date()

    assert {(a.kind, a.respondent) for a in answers} >= {
        ("csat", "customer"), ("nps", "customer"), ("tws", "customer"), ("tws", "agent")
    }
    # each answer is on its customer's timeline, at the time it was given
    assert all(a.interaction.kind == "survey" and a.interaction.occurred_at == a.answered_at for a in answers)
    assert f"{answers.count()} survey answers" in small_demo
    # metrics were computed once at the end, for every customer
    assert set(customer_snapshots_get(customer_ids=live_ids)) == set(live_ids)
    totals = kpis_compute(start=today - timedelta(days=200), end=today, granularity="month")["totals"]["kpis"]
    assert totals["csat_share"]["n"] > 0 and totals["tth_p50_seconds"]["n"] > 0
