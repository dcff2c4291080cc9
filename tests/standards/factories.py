import factory
from django.contrib.auth.models import Group

from standards.models import BusinessCalendar, CannedResponse, CannedResponseVariant, Holiday, Standard


class BusinessCalendarFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BusinessCalendar

    name = factory.Sequence(lambda n: f"Office hours {n}")
    time_zone = "Europe/Berlin"
    schedule = factory.LazyFunction(lambda: {str(day): [["09:00", "17:00"]] for day in range(1, 6)})


class HolidayFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Holiday

    calendar = factory.SubFactory(BusinessCalendarFactory)
    name = "Holiday"


class StandardFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Standard

    title = factory.Sequence(lambda n: f"First reply within the hour {n}")
    description = "Answer every new conversation quickly."
    why = "Customers who wait leave."
    goal = "Customers feel heard."
    how = "Watch the queue; reply with a canned greeting if busy."
    metric = "first_response_time"
    target = 3600
    channels = factory.LazyFunction(list)


class CannedResponseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CannedResponse

    title = factory.Sequence(lambda n: f"Greeting {n}")
    body = "Hello {customer_name}, this is {agent_name} about {conversation_reference}."


class CannedResponseVariantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CannedResponseVariant

    response = factory.SubFactory(CannedResponseFactory)
    channel = "sms"
    body = "Hi {customer_name} - {agent_name}"


def standards_groups_ensure():
    """The groups migration 0002 makes, made again after a transactional test's flush removed them."""
    import importlib

    from django.apps import apps
    from django.contrib.auth.management import create_permissions
    from django.contrib.auth.models import Permission

    migration = importlib.import_module("standards.migrations.0002_groups")
    if Group.objects.filter(name__in=list(migration.PERMISSIONS)).count() == len(migration.PERMISSIONS):
        return
    from django.contrib.contenttypes.models import ContentType

    ContentType.objects.clear_cache()  # a flush took the rows the cache still names
    for app_config in apps.get_app_configs():
        create_permissions(app_config, verbosity=0)
    for name, codenames in migration.PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=name)
        permissions = list(Permission.objects.filter(content_type__app_label="standards", codename__in=codenames))
        for app_label, model in migration.READ_ELSEWHERE:
            permissions += list(Permission.objects.filter(content_type__app_label=app_label, codename=f"view_{model}"))
        group.permissions.add(*permissions)


def user_in_group(django_user_model, username, group_name):
    standards_groups_ensure()
    user = django_user_model.objects.create_user(
        username=username, password=f"{username}-password-1", is_staff=True, email=f"{username}@example.com"
    )
    user.groups.add(Group.objects.get(name=group_name))
    return django_user_model.objects.get(pk=user.pk)  # fresh: no stale permission cache


def kpi_history(*, months=6, now=None):
    """Six whole months of customers on four channels with journeys, surveys and resolved conversations,
    recomputed by the metrics app, so the KPI dashboard has lines to draw. Returns the customers."""
    from datetime import timedelta

    from django.utils import timezone

    from metrics.services import customers_recompute, rollups_rebuild, survey_response_create
    from tests.factories import ConversationFactory, CustomerFactory, InteractionFactory, SegmentFactory

    now = now or timezone.now()
    channels = ["chat", "email", "phone", "whatsapp"]
    segments = [SegmentFactory(slug="vip", name="VIP"), SegmentFactory(slug="b2b", name="B2B")]
    customers = []
    for month in range(months):
        # Each channel once in every one of the last `months` whole calendar months, early in the month:
        # steps of 30 days from now could skip a month (or land two in one), leaving a lone point between
        # gaps in the month view, depending on the day and hour the tests run.
        year, number = now.year, now.month - (months - month)
        while number <= 0:
            number += 12
            year -= 1
        first = now.replace(year=year, month=number, day=1, hour=10, minute=0, second=0, microsecond=0)
        for index, channel in enumerate(channels):
            start = first + timedelta(days=3 * index)
            customer = CustomerFactory(name=f"{channel} customer {month}")
            customer.segments.add(segments[index % 2])
            conversation = ConversationFactory(
                customer=customer, channels=[channel], opened_at=start, first_inbound_at=start,
                first_response_at=start + timedelta(minutes=10 + 5 * index), status="resolved",
                resolved_at=start + timedelta(hours=2 + index + month),
            )
            InteractionFactory(customer=customer, conversation=conversation, channel=channel, occurred_at=start,
                               sentiment=-0.7, intent="complaint", body="My parcel is lost")
            InteractionFactory(customer=customer, conversation=conversation, channel=channel,
                               occurred_at=start + timedelta(minutes=10 + 5 * index), direction="outbound",
                               author_type="agent", body="We are on it")
            InteractionFactory(customer=customer, conversation=conversation, channel=channel,
                               occurred_at=start + timedelta(hours=2 + index + month), sentiment=0.8,
                               body="Thank you, it arrived")
            answered = start + timedelta(hours=3 + index + month)
            survey_response_create(customer_id=customer.pk, kind="nps", score=(month + 2 * index + 4) % 11,
                                   channel=channel, answered_at=answered, conversation_id=conversation.pk)
            survey_response_create(customer_id=customer.pk, kind="csat", score=1 + (month + index) % 5,
                                   channel=channel, answered_at=answered, conversation_id=conversation.pk)
            survey_response_create(customer_id=customer.pk, kind="ces", score=1 + (2 * month + index) % 7,
                                   channel=channel, answered_at=answered, conversation_id=conversation.pk)
            if month % 2 == 0:  # half of them come back a week later
                InteractionFactory(customer=customer, channel="web", kind="visit",
                                   occurred_at=start + timedelta(days=7))
            customers.append(customer)
    customers_recompute(customer_ids=[c.pk for c in customers], now=now)
    rollups_rebuild()
    return customers
