from django.conf import settings
from django.db import models
from django.utils import timezone


class TokenUser:
    """The `request.user` of a call made with an API token: an integration, not a person."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, token):
        self.token = token
        self.username = f"token:{token.name}"

    def __str__(self):
        return self.username


class ApiToken(models.Model):
    """A credential for one integration; only its SHA-256 is stored."""

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, help_text="The first characters of the token, to recognise it.")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.JSONField(default=list)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    def has_scope(self, scope):
        return scope in self.scopes

    def as_user(self):
        return TokenUser(self)

    @property
    def is_active(self):
        now = timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class WebhookSubscription(models.Model):
    """An integration's URL that receives signed outbound events of the types it names."""

    url = models.URLField(max_length=2000)
    # An empty list means every event type.
    event_types = models.JSONField(default=list, blank=True)
    # Standard Webhooks secret: "whsec_" + base64 of the key bytes.
    secret = models.CharField(max_length=200)
    # After a rotation the old secret still signs (as a second signature) until it expires.
    previous_secret = models.CharField(max_length=200, blank=True, default="")
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    description = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["is_active"], name="webhooksub_active_idx")]

    def __str__(self):
        return self.url

    def wants(self, event_type):
        return not self.event_types or event_type in self.event_types


class WebhookDelivery(models.Model):
    """One event for one subscription: stored before any attempt, body bytes fixed for every retry."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        DEAD = "dead", "Dead"

    subscription = models.ForeignKey(WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries")
    # The Standard Webhooks `webhook-id`: the same on every retry and redelivery.
    webhook_id = models.CharField(max_length=64, unique=True)
    event_id = models.CharField(max_length=64, db_index=True)
    event_type = models.CharField(max_length=64)
    # The exact request body (UTF-8 JSON); signatures are computed over these bytes.
    body = models.TextField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    # Attempts ever made (numbers the attempt rows) and attempts since last queued (counts to the cap).
    attempt_count = models.PositiveIntegerField(default=0)
    cycle_attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # A sender holds the delivery until this time; another sender leaves it alone meanwhile.
    locked_until = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="webhookdel_due_idx"),
            models.Index(fields=["subscription", "-created_at"], name="webhookdel_sub_idx"),
        ]

    def __str__(self):
        return f"{self.event_type} → {self.subscription_id} ({self.webhook_id})"

    @property
    def body_bytes(self) -> bytes:
        return self.body.encode("utf-8")


class WebhookAttempt(models.Model):
    """One HTTP request made for a delivery, with what came back."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    attempted_at = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    response_excerpt = models.TextField(blank=True, default="")
    error = models.TextField(blank=True, default="")
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [
            models.UniqueConstraint(fields=["delivery", "number"], name="webhookattempt_unique_number"),
        ]

    def __str__(self):
        return f"attempt {self.number} of {self.delivery_id}: {self.status_code or self.error[:40]}"


class IdempotencyKey(models.Model):
    """The first response to a POST made with an `Idempotency-Key`, kept to answer repeats."""

    class Status(models.TextChoices):
        IN_FLIGHT = "in_flight", "In flight"
        COMPLETED = "completed", "Completed"

    # sha256 of caller + method + path + key: one row per key per caller and endpoint.
    fingerprint = models.CharField(max_length=64, unique=True)
    owner = models.CharField(max_length=64, help_text="token:<id> or user:<id>")
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=2000)
    request_hash = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.IN_FLIGHT)
    response_status = models.PositiveIntegerField(null=True, blank=True)
    response_body = models.BinaryField(null=True, blank=True)
    response_content_type = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["expires_at"], name="idemkey_expires_idx")]

    def __str__(self):
        return f"{self.owner} {self.method} {self.path} [{self.key}]"
