import secrets

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from crm.api import SCOPES
from integrations.models import ApiToken
from integrations.selectors import token_hash

TOKEN_PREFIX = "crm_"


def scopes_validate(scopes):
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ValidationError(f"Unknown scopes: {', '.join(unknown)}. Known: {', '.join(SCOPES)}.")
    return sorted(set(scopes))


@transaction.atomic
def api_token_create(*, name, scopes, created_by=None, expires_at=None) -> tuple[ApiToken, str]:
    """Create a token; the raw value is returned here once and never stored."""
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        name=name,
        prefix=raw[:12],
        token_hash=token_hash(raw),
        scopes=scopes_validate(scopes),
        created_by=created_by,
        expires_at=expires_at,
    )
    return token, raw


def api_token_revoke(*, token: ApiToken) -> ApiToken:
    """Revoke a token at once; calls made with it answer 401 from now on."""
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token
