import hashlib
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from integrations.models import ApiToken

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
