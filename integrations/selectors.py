import hashlib
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from integrations.models import ApiToken, WebhookDelivery, WebhookSubscription

LAST_USED_RESOLUTION = timedelta(minutes=1)


def token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def api_token_get_active(*, raw: str) -> ApiToken | None:
    """The live token for a raw value, or None. Marks it used at most once a minute."""
    now = timezone.now()
    token = (
        ApiToken.objects.filter(token_hash=token_hash(raw), revoked_at__isnull=True)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .first()
    )
    if token is not None and (token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION):
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


def webhook_subscription_list():
    return WebhookSubscription.objects.order_by("-created_at", "-id")


def webhook_subscription_get(*, pk) -> WebhookSubscription | None:
    return webhook_subscription_list().filter(pk=pk).first()


def webhook_delivery_list(*, subscription_id=None, status=None, event_type=None, webhook_id=None):
    """Deliveries, newest first; filters are exact matches."""
    deliveries = WebhookDelivery.objects.order_by("-created_at", "-id").defer("body")
    if subscription_id is not None:
        deliveries = deliveries.filter(subscription_id=subscription_id)
    if status:
        deliveries = deliveries.filter(status=status)
    if event_type:
        deliveries = deliveries.filter(event_type=event_type)
    if webhook_id:
        deliveries = deliveries.filter(webhook_id=webhook_id)
    return deliveries


def webhook_delivery_get(*, pk) -> WebhookDelivery | None:
    """One delivery with its attempts (one extra query), or None."""
    return WebhookDelivery.objects.prefetch_related("attempts").filter(pk=pk).first()
