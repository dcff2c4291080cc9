from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Channel(models.TextChoices):
    CHAT = "chat"
    EMAIL = "email"
    PHONE = "phone"
    SMS = "sms"
    WHATSAPP = "whatsapp"
    FACEBOOK = "facebook"
    INSTAGRAM = "instagram"
    TWITTER = "twitter"
    TELEGRAM = "telegram"
    WEB = "web"
    STORE = "store"
    SURVEY = "survey"
    INTERNAL = "internal"


class Conversation(models.Model):
    """The thread an agent works on; it may span channels."""

    class Status(models.TextChoices):
        OPEN = "open"
        PENDING = "pending"
        RESOLVED = "resolved"

    # Indexed by conv_customer_status_idx, which leads with the customer.
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.PROTECT, related_name="conversations", db_index=False
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    subject = models.CharField(max_length=300, blank=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="conversations"
    )
    channels = models.JSONField(default=list, help_text="Every channel this conversation has been on, in order.")
    opened_at = models.DateTimeField(default=timezone.now)
    last_activity_at = models.DateTimeField(default=timezone.now)
    first_inbound_at = models.DateTimeField(null=True, blank=True)
    first_response_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    reopen_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-last_activity_at", "-id"]
        indexes = [
            models.Index(fields=["customer", "status", "-last_activity_at"], name="conv_customer_status_idx"),
            models.Index(fields=["status", "-last_activity_at"], name="conv_status_activity_idx"),
        ]

    def __str__(self):
        return self.subject or f"Conversation #{self.pk}"


class Interaction(models.Model):
    """One thing that happened between a customer and the organisation, on any channel."""

    class Kind(models.TextChoices):
        MESSAGE = "message"
        CALL = "call"
        REACTION = "reaction"
        COMMENT = "comment"
        VISIT = "visit"
        PURCHASE = "purchase"
        SURVEY = "survey"
        NOTE = "note"
        EVENT = "event"

    class Direction(models.TextChoices):
        INBOUND = "inbound"
        OUTBOUND = "outbound"
        INTERNAL = "internal"

    class AuthorType(models.TextChoices):
        CUSTOMER = "customer"
        AGENT = "agent"
        BOT = "bot"
        SYSTEM = "system"

    # Both indexed by the composite indexes below, which lead with them: a second, single-column index
    # would only slow every insert and tempt the planner away from the timeline index.
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.PROTECT, related_name="interactions", db_index=False
    )
    conversation = models.ForeignKey(
        Conversation, null=True, blank=True, on_delete=models.SET_NULL, related_name="interactions", db_index=False
    )
    # The identity this interaction arrived through: undoing a merge sends it
    # back with that identity.
    identity = models.ForeignKey(
        "customers.Identity", null=True, blank=True, on_delete=models.SET_NULL, related_name="interactions"
    )
    channel = models.CharField(max_length=16, choices=Channel.choices)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    direction = models.CharField(max_length=16, choices=Direction.choices)
    author_type = models.CharField(max_length=16, choices=AuthorType.choices)
    author_name = models.CharField(max_length=200, blank=True)
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="interactions"
    )
    occurred_at = models.DateTimeField()
    subject = models.CharField(max_length=500, blank=True)
    body = models.TextField(blank=True)
    sentiment = models.FloatField(null=True, blank=True)
    intent = models.CharField(max_length=64, blank=True)
    incident_at = models.DateTimeField(
        null=True, blank=True, help_text="When the trouble this interaction reports began."
    )
    source = models.CharField(max_length=64)
    external_id = models.CharField(max_length=255)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["source", "external_id"], name="interaction_source_external_uniq"),
            models.CheckConstraint(
                condition=Q(sentiment__isnull=True) | Q(sentiment__gte=-1, sentiment__lte=1),
                name="interaction_sentiment_range",
            ),
        ]
        indexes = [
            # The timeline: one index range scan per page.
            models.Index(fields=["customer", "-occurred_at", "-id"], name="interaction_timeline_idx"),
            models.Index(fields=["conversation", "occurred_at"], name="interaction_conversation_idx"),
            models.Index(fields=["occurred_at"], name="interaction_occurred_idx"),
        ]

    def __str__(self):
        return f"{self.channel} {self.kind} {self.direction} #{self.pk}"


class InboundEvent(models.Model):
    """One provider webhook request, stored raw before it is acknowledged, then processed into interactions."""

    class Provider(models.TextChoices):
        EMAIL = "email"
        MAILGUN = "mailgun"
        SENDGRID = "sendgrid"
        TWILIO_VOICE = "twilio_voice"
        TWILIO_MESSAGING = "twilio_messaging"
        META = "meta"
        CHAT = "chat"

    class Status(models.TextChoices):
        PENDING = "pending"
        PROCESSED = "processed"
        FAILED = "failed"

    provider = models.CharField(max_length=32, choices=Provider.choices)
    # sha256 of the body: a provider's retry of the same request is the same row.
    body_sha256 = models.CharField(max_length=64)
    content_type = models.CharField(max_length=255, blank=True)
    headers = models.JSONField(default=dict, blank=True, help_text="The request headers verification needs.")
    body = models.BinaryField(null=True, blank=True, help_text="The raw body; emptied after the retention period.")
    body_size = models.PositiveIntegerField(default=0)
    received_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    result = models.JSONField(default=dict, blank=True, help_text="Counts of created, duplicate and updated interactions; skipped parts.")
    processed_at = models.DateTimeField(null=True, blank=True)
    purged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "body_sha256"], name="inbound_event_provider_body_uniq"),
        ]
        indexes = [
            models.Index(fields=["status", "received_at"], name="inbound_event_status_idx"),
            models.Index(fields=["provider", "-received_at"], name="inbound_event_provider_idx"),
        ]

    def __str__(self):
        return f"{self.provider} #{self.pk} ({self.status})"
