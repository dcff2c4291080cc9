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


def user_in_group(django_user_model, username, group_name):
    user = django_user_model.objects.create_user(
        username=username, password=f"{username}-password-1", is_staff=True, email=f"{username}@example.com"
    )
    user.groups.add(Group.objects.get(name=group_name))
    return django_user_model.objects.get(pk=user.pk)  # fresh: no stale permission cache
