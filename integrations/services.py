import json
import logging
import secrets
import time
import uuid
from datetime import timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from crm.api import SCOPES
from crm.bulk import rows_insert
from integrations.events import EVENT_TYPES, event_type_validate
from integrations.models import ApiToken, IdempotencyKey, WebhookAttempt, WebhookDelivery, WebhookSubscription
from integrations.selectors import token_cache_key, token_hash
from integrations.signing import webhook_secret_generate, webhook_secret_key, webhook_signature_header
from integrations.transport import TargetRefused, TransportError, host_literal_refusal, url_check, webhook_post

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
        api_token_cache_forget(token=token)
    return token


def api_token_cache_forget(*, token: ApiToken):
    """Drop the cached copy of a token after any change to it (scopes, expiry, revocation).

    Now and again after commit: a request that read the row before the
    change committed may have cached it meanwhile.
    """
    key = token_cache_key(token.token_hash)
    cache.delete(key)
    transaction.on_commit(lambda: cache.delete(key))


# --- Outbound webhooks -------------------------------------------------------------

logger = logging.getLogger(__name__)

# Above this many deliveries one task fans out, instead of one broker round trip each.
FANOUT_THRESHOLD = 20


def events_emit(*, events: list[tuple[str, dict]]) -> None:
    """Record a delivery per (event, matching active subscription) and queue them after commit.

    Call it inside the transaction that causes the events: a rollback drops the
    deliveries with it. One query finds the subscriptions; with none matching
    nothing else happens (payloads are not even serialised), so bulk ingestion
    pays one cheap query per call.
    """
    if not events:
        return
    for event_type in {event_type for event_type, _ in events}:
        event_type_validate(event_type)
    subscriptions = list(
        WebhookSubscription.objects.filter(is_active=True).order_by("id").values_list("id", "event_types")
    )
    if not subscriptions:
        return
    now = timezone.now()
    timestamp = now.isoformat()
    rows = []
    for event_type, payload in events:
        targets = [pk for pk, types in subscriptions if not types or event_type in types]
        if not targets:
            continue
        event_id = f"evt_{uuid.uuid4().hex}"
        body = json.dumps(
            {"id": event_id, "type": event_type, "timestamp": timestamp, "data": payload},
            cls=DjangoJSONEncoder,
            ensure_ascii=False,
            separators=(",", ":"),
        )
        rows.extend(
            WebhookDelivery(
                subscription_id=pk,
                webhook_id=f"msg_{uuid.uuid4().hex}",
                event_id=event_id,
                event_type=event_type,
                body=body,
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
            )
            for pk in targets
        )
    if not rows:
        return
    # One INSERT … unnest on PostgreSQL: a bulk ingest's thousands of deliveries cost one statement.
    ids = [row.pk for row in rows_insert(WebhookDelivery, rows)]
    # robust: the rows are committed whatever happens to the broker; the sweeper re-queues them.
    transaction.on_commit(lambda: webhook_deliveries_queue(delivery_ids=ids), robust=True)


def event_emit(*, event_type: str, payload: dict) -> None:
    """`events_emit` for one event."""
    events_emit(events=[(event_type, payload)])


def webhook_deliveries_queue(*, delivery_ids: list[int]) -> None:
    """Hand deliveries to the workers (in-process when there is no broker)."""
    from integrations.tasks import webhook_deliveries_send_many, webhook_delivery_send

    if len(delivery_ids) > FANOUT_THRESHOLD:
        webhook_deliveries_send_many.delay(delivery_ids)
    else:
        for delivery_id in delivery_ids:
            webhook_delivery_send.delay(delivery_id)


def event_types_validate(event_types) -> list[str]:
    """Known types, sorted and unique; [] and ["*"] both mean every type."""
    if event_types is None:
        return []
    if not isinstance(event_types, (list, tuple)) or not all(isinstance(t, str) for t in event_types):
        raise ValidationError({"event_types": "Event types are a list of event type names."})
    types = set(event_types)
    if types == {"*"}:
        return []
    unknown = sorted(t for t in types if t not in EVENT_TYPES)
    if unknown:
        raise ValidationError(
            {"event_types": f"Unknown event types: {', '.join(map(str, unknown))}. Known: {', '.join(EVENT_TYPES)}."}
        )
    return sorted(types)


def webhook_url_validate(url: str) -> str:
    try:
        url_check(url)
    except TargetRefused as exc:
        raise ValidationError({"url": str(exc)}) from exc
    if not settings.WEBHOOK_ALLOW_PRIVATE_TARGETS:
        reason = host_literal_refusal(urlsplit(url).hostname or "")
        if reason:
            raise ValidationError({"url": f"{reason}; webhooks go to public addresses only."})
    return url


def webhook_secret_validate(secret: str) -> str:
    try:
        webhook_secret_key(secret)
    except ValueError as exc:
        raise ValidationError({"secret": str(exc)}) from exc
    return secret


@transaction.atomic
def webhook_subscription_create(
    *, url: str, event_types=None, secret: str | None = None, is_active: bool = True, description: str = ""
) -> WebhookSubscription:
    """Create a subscription; a secret is generated unless one is given."""
    now = timezone.now()
    return WebhookSubscription.objects.create(
        url=webhook_url_validate(url),
        event_types=event_types_validate(event_types),
        secret=webhook_secret_validate(secret) if secret else webhook_secret_generate(),
        is_active=is_active,
        description=description or "",
        created_at=now,
        updated_at=now,
    )


_UNSET = object()


@transaction.atomic
def webhook_subscription_update(
    *, subscription: WebhookSubscription, url=_UNSET, event_types=_UNSET, is_active=_UNSET, description=_UNSET
) -> WebhookSubscription:
    """Change a subscription's URL, event types, state or description.

    Inactive means paused: no new deliveries, and pending ones wait; turning it
    active again queues those that are due.
    """
    was_active = subscription.is_active
    if url is not _UNSET:
        subscription.url = webhook_url_validate(url)
    if event_types is not _UNSET:
        subscription.event_types = event_types_validate(event_types)
    if is_active is not _UNSET:
        subscription.is_active = bool(is_active)
    if description is not _UNSET:
        subscription.description = description or ""
    subscription.updated_at = timezone.now()
    subscription.save()
    if subscription.is_active and not was_active:
        due = list(
            WebhookDelivery.objects.filter(
                subscription=subscription,
                status=WebhookDelivery.Status.PENDING,
                next_attempt_at__lte=subscription.updated_at,
            ).values_list("pk", flat=True)
        )
        if due:
            transaction.on_commit(lambda: webhook_deliveries_queue(delivery_ids=due), robust=True)
    return subscription


@transaction.atomic
def webhook_subscription_delete(*, subscription: WebhookSubscription) -> None:
    """Delete a subscription and its delivery history."""
    subscription.delete()


@transaction.atomic
def webhook_subscription_rotate_secret(
    *, subscription: WebhookSubscription, secret: str | None = None
) -> WebhookSubscription:
    """Give a subscription a new secret; the old one also signs until WEBHOOK_SECRET_ROTATION_HOURS pass."""
    subscription = WebhookSubscription.objects.select_for_update().get(pk=subscription.pk)
    now = timezone.now()
    subscription.previous_secret = subscription.secret
    subscription.previous_secret_expires_at = now + timedelta(hours=settings.WEBHOOK_SECRET_ROTATION_HOURS)
    subscription.secret = webhook_secret_validate(secret) if secret else webhook_secret_generate()
    subscription.updated_at = now
    subscription.save()
    return subscription


def subscription_signing_secrets(subscription: WebhookSubscription, now) -> list[str]:
    secrets_ = [subscription.secret]
    if (
        subscription.previous_secret
        and subscription.previous_secret_expires_at
        and subscription.previous_secret_expires_at > now
    ):
        secrets_.append(subscription.previous_secret)
    return secrets_


@transaction.atomic
def webhook_delivery_redeliver(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Make a delivery pending again (same webhook-id, same body) and queue it after commit."""
    now = timezone.now()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=WebhookDelivery.Status.PENDING,
        cycle_attempts=0,
        next_attempt_at=now,
        locked_until=None,
        updated_at=now,
    )
    delivery.refresh_from_db()
    transaction.on_commit(lambda: webhook_deliveries_queue(delivery_ids=[delivery.pk]), robust=True)
    return delivery


def retry_delay_seconds(*, cycle_attempts: int, retry_after: str | None) -> float:
    """Exponential backoff after the n-th failed attempt, or the receiver's Retry-After, within the cap."""
    cap = settings.WEBHOOK_RETRY_MAX_SECONDS
    if retry_after:
        seconds = retry_after_seconds(retry_after)
        if seconds is not None:
            return max(0.0, min(seconds, cap))
    return min(settings.WEBHOOK_RETRY_BASE_SECONDS * (2 ** max(cycle_attempts - 1, 0)), cap)


def retry_after_seconds(value: str) -> float | None:
    value = value.strip()
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return (when - timezone.now()).total_seconds()


def webhook_delivery_attempt(*, delivery_id: int) -> float | None:
    """Make one attempt if the delivery is due and nobody else holds it.

    Returns the seconds until the next attempt when one is due later, else None
    (delivered, dead, not ours to send, or gone). Holding the delivery is a
    conditional UPDATE with a lease, not a row lock: no transaction stays open
    across the HTTP request, and a sender that dies mid-request frees the
    delivery when its lease ends.
    """
    now = timezone.now()
    # A task may arrive slightly before its countdown ends; that is still due.
    due_by = now + timedelta(seconds=1)
    lease = timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS * 2 + 30)
    # A paused (inactive) subscription's deliveries wait, pending, until it is active again. Its
    # condition is a subquery, not a join, so the UPDATE's own conditions stay on the row it locks.
    claimed = (
        WebhookDelivery.objects.filter(pk=delivery_id, status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=due_by)
        .filter(Q(locked_until__isnull=True) | Q(locked_until__lt=now))
        .filter(subscription_id__in=WebhookSubscription.objects.filter(is_active=True).values("pk"))
        .update(locked_until=now + lease)
    )
    if not claimed:
        delivery = WebhookDelivery.objects.filter(pk=delivery_id).only("status", "next_attempt_at").first()
        if delivery is not None and delivery.status == WebhookDelivery.Status.PENDING and delivery.next_attempt_at > due_by:
            return (delivery.next_attempt_at - now).total_seconds()
        return None
    delivery = WebhookDelivery.objects.select_related("subscription").get(pk=delivery_id)
    subscription = delivery.subscription
    sent_at = timezone.now()
    timestamp = int(sent_at.timestamp())
    body = delivery.body_bytes
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "crm-webhooks/1",
        "webhook-id": delivery.webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": webhook_signature_header(
            secrets_=subscription_signing_secrets(subscription, sent_at),
            msg_id=delivery.webhook_id,
            timestamp=timestamp,
            body=body,
        ),
    }
    status_code, excerpt, error, retry_after = None, "", "", None
    refused = False
    started = time.monotonic()
    try:
        result = webhook_post(
            url=subscription.url,
            body=body,
            headers=headers,
            timeout=settings.WEBHOOK_TIMEOUT_SECONDS,
            allow_private=settings.WEBHOOK_ALLOW_PRIVATE_TARGETS,
        )
        status_code, excerpt = result.status, result.excerpt
        retry_after = {k.lower(): v for k, v in result.headers.items()}.get("retry-after")
    except TargetRefused as exc:
        refused, error = True, f"refused: {exc}"
    except TransportError as exc:
        error = str(exc)
    duration_ms = int((time.monotonic() - started) * 1000)
    return _attempt_record(
        delivery=delivery,
        status_code=status_code,
        excerpt=excerpt,
        error=error,
        refused=refused,
        retry_after=retry_after,
        duration_ms=duration_ms,
        attempted_at=sent_at,
    )


@transaction.atomic
def _attempt_record(*, delivery, status_code, excerpt, error, refused, retry_after, duration_ms, attempted_at):
    now = timezone.now()
    number = delivery.attempt_count + 1
    cycle = delivery.cycle_attempts + 1
    WebhookAttempt.objects.create(
        delivery=delivery,
        number=number,
        attempted_at=attempted_at,
        status_code=status_code,
        response_excerpt=excerpt,
        error=error,
        duration_ms=duration_ms,
    )
    update = {
        "attempt_count": F("attempt_count") + 1,
        "cycle_attempts": F("cycle_attempts") + 1,
        "last_status_code": status_code,
        "locked_until": None,
        "updated_at": now,
    }
    delay = None
    if status_code is not None and 200 <= status_code < 300:
        update.update(status=WebhookDelivery.Status.DELIVERED, delivered_at=now, last_error="")
    else:
        if status_code is not None:
            error = f"HTTP {status_code}"
        transient = not refused and (status_code is None or status_code >= 500 or status_code == 429)
        if transient and cycle < settings.WEBHOOK_MAX_ATTEMPTS:
            delay = retry_delay_seconds(cycle_attempts=cycle, retry_after=retry_after)
            update.update(next_attempt_at=now + timedelta(seconds=delay), last_error=error)
        else:
            if transient:
                error = f"{error}; gave up after {cycle} attempts"
            elif status_code is not None:
                error = f"{error}; not retried"
            update.update(status=WebhookDelivery.Status.DEAD, last_error=error)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(**update)
    return delay


def webhook_deliveries_requeue_due(*, limit: int = 1000) -> int:
    """Queue pending deliveries whose attempt is overdue (their task was lost, or never scheduled)."""
    now = timezone.now()
    overdue = now - timedelta(seconds=settings.WEBHOOK_REQUEUE_GRACE_SECONDS)
    ids = list(
        WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=overdue)
        .filter(Q(locked_until__isnull=True) | Q(locked_until__lt=now))
        .filter(subscription__is_active=True)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    if ids:
        webhook_deliveries_queue(delivery_ids=ids)
    return len(ids)


# --- Idempotency keys --------------------------------------------------------------


def idempotency_keys_purge(*, now=None) -> int:
    """Delete stored Idempotency-Key responses past their expiry."""
    deleted, _ = IdempotencyKey.objects.filter(expires_at__lte=now or timezone.now()).delete()
    return deleted
