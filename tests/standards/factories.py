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
