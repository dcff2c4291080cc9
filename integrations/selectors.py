import hashlib
from datetime import timedelta

from django.core.cache import cache
from django.utils import timezone

from integrations.models import ApiToken, WebhookDelivery, WebhookSubscription

LAST_USED_RESOLUTION = timedelta(minutes=1)


def token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


# Every API call authenticates, and a cache read costs a fraction of a query. The service that
# revokes or edits a token forgets its entry (api_token_cache_forget), so a revocation still takes
# effect at once wherever the cache is shared (Redis); the TTL bounds anything that bypasses it.
TOKEN_CACHE_SECONDS = 60
_CACHED_FIELDS = ("id", "name", "prefix", "token_hash", "scopes", "expires_at", "last_used_at", "created_at")


def token_cache_key(digest: str) -> str:
    return f"api-token:{digest}"


def api_token_get_active(*, raw: str) -> ApiToken | None:
    """The live token for a raw value, or None. Marks it used at most once a minute."""
    now = timezone.now()
    digest = token_hash(raw)
    cached = cache.get(token_cache_key(digest))
    if cached is not None:
        token = ApiToken(**cached)
        token._state.adding = False
    else:
        token = ApiToken.objects.filter(token_hash=digest, revoked_at__isnull=True).first()
        if token is None:
            return None
    if token.expires_at is not None and token.expires_at <= now:
        return None
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
        cached = None
    if cached is None:
        cache.set(token_cache_key(digest), {f: getattr(token, f) for f in _CACHED_FIELDS}, TOKEN_CACHE_SECONDS)
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
