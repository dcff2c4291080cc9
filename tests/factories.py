import factory
from django.utils import timezone

from customers.models import Customer, Identity, Segment
from interactions.models import Conversation, Interaction


class SegmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Segment
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"segment-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.title())


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    name = factory.Faker("name")


class IdentityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Identity

    customer = factory.SubFactory(CustomerFactory)
    kind = Identity.Kind.EMAIL
    value = factory.Sequence(lambda n: f"person{n}@example.com")


class ConversationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Conversation

    customer = factory.SubFactory(CustomerFactory)


class InteractionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Interaction

    customer = factory.SubFactory(CustomerFactory)
    channel = "chat"
    kind = Interaction.Kind.MESSAGE
    direction = Interaction.Direction.INBOUND
    author_type = Interaction.AuthorType.CUSTOMER
    occurred_at = factory.LazyFunction(timezone.now)
    body = factory.Faker("sentence")
    source = "test"
    external_id = factory.Sequence(lambda n: f"ext-{n}")
