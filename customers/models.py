from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Segment(models.Model):
    """A named group of customers, such as 'vip' or 'b2b'."""

    slug = models.SlugField(max_length=64, unique=True, allow_unicode=True)
    name = models.CharField(max_length=100)

    class Meta:
        ordering = ["slug"]

    def __str__(self):
        return self.name


class Customer(models.Model):
    """One person or account, known through any number of identities.

    A merged customer stays as a tombstone: `merged_into` points to the
    survivor, so ids handed out earlier keep resolving.
    """

    name = models.CharField(max_length=200, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    segments = models.ManyToManyField(Segment, blank=True, related_name="customers")
    switching_cost = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="What leaving us would cost this customer, in the organisation's currency.",
    )
    merged_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="tombstones"
    )
    merged_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["name"], name="customer_name_idx")]

    def __str__(self):
        return self.name or f"Customer #{self.pk}"

    @property
    def is_tombstone(self):
        return self.merged_into_id is not None


class Identity(models.Model):
    """One way to reach or recognise a customer, normalised: (kind, value) is unique."""

    class Kind(models.TextChoices):
        EMAIL = "email"
        PHONE = "phone"
        WHATSAPP = "whatsapp"
        FACEBOOK = "facebook"
        INSTAGRAM = "instagram"
        TWITTER = "twitter"
        TELEGRAM = "telegram"
        CHAT = "chat"
        EXTERNAL = "external"

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="identities")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    value = models.CharField(max_length=320)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["kind", "value"]
        verbose_name_plural = "identities"
        constraints = [models.UniqueConstraint(fields=["kind", "value"], name="identity_kind_value_uniq")]
        indexes = [models.Index(fields=["value"], name="identity_value_idx")]

    def __str__(self):
        return f"{self.kind}:{self.value}"


class Merge(models.Model):
    """One merge of `merged` into `survivor`, keeping exactly what moved so it can be undone."""

    class Reason(models.TextChoices):
        AUTO = "auto", "an interaction carried identities of both"
        MANUAL = "manual", "merged by a person or an integration"
        SUGGESTION = "suggestion", "an accepted merge suggestion"

    survivor = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="merges_survived")
    merged = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="merges_absorbed")
    reason = models.CharField(max_length=16, choices=Reason.choices)
    evidence = models.JSONField(default=dict, blank=True)
    # {"identities": [ids], "interactions": [ids], "conversations": [ids]}
    moved = models.JSONField(default=dict)
    # The survivor's name, attributes and segments before the merge filled them in.
    survivor_before = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    undone_at = models.DateTimeField(null=True, blank=True)
    undone_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # A customer is absorbed by at most one live merge at a time.
            models.UniqueConstraint(fields=["merged"], condition=Q(undone_at__isnull=True), name="merge_live_uniq"),
        ]

    def __str__(self):
        return f"#{self.merged_id} → #{self.survivor_id}"


class MergeSuggestion(models.Model):
    """Evidence that two customers are one person, waiting for someone to decide."""

    class Status(models.TextChoices):
        PENDING = "pending"
        ACCEPTED = "accepted"
        DISMISSED = "dismissed"

    customer_a = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    customer_b = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    evidence = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    merge = models.ForeignKey(Merge, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(customer_a__lt=models.F("customer_b")), name="suggestion_pair_ordered"),
            models.UniqueConstraint(
                fields=["customer_a", "customer_b"],
                condition=Q(status="pending"),
                name="suggestion_pending_pair_uniq",
            ),
        ]

    def __str__(self):
        return f"#{self.customer_a_id} ≟ #{self.customer_b_id}"
