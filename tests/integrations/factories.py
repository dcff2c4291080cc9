import factory

from integrations.models import WebhookSubscription
from integrations.signing import webhook_secret_generate


class WebhookSubscriptionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WebhookSubscription

    url = factory.Sequence(lambda n: f"https://hooks{n}.example.com/crm")
    event_types = factory.LazyFunction(list)
    secret = factory.LazyFunction(webhook_secret_generate)
