from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class SurveyResponse(models.Model):
    """One answer to an NPS, CSAT, CES or time-well-spent question, or an agent's prediction of one."""

    class Kind(models.TextChoices):
        NPS = "nps", "Net Promoter Score (0-10)"
        CSAT = "csat", "Customer satisfaction (1-5)"
        CES = "ces", "Customer effort (1-7, 7 = very easy)"
        TWS = "tws", "Time well spent (1-5)"

    class Respondent(models.TextChoices):
        CUSTOMER = "customer"
        AGENT = "agent"

    # (min, max) of each kind's scale.
    SCALES = {Kind.NPS: (0, 10), Kind.CSAT: (1, 5), Kind.CES: (1, 7), Kind.TWS: (1, 5)}

    kind = models.CharField(max_length=8, choices=Kind.choices)
    score = models.SmallIntegerField()
    question = models.TextField(blank=True)
    question_version = models.CharField(max_length=32, blank=True)
    comment = models.TextField(blank=True)
    channel = models.CharField(max_length=16)
    customer = models.ForeignKey("customers.Customer", on_delete=models.PROTECT, related_name="survey_responses")
    conversation = models.ForeignKey(
        "interactions.Conversation", null=True, blank=True, on_delete=models.SET_NULL, related_name="survey_responses"
    )
    # The timeline entry this answer shows as.
    interaction = models.ForeignKey(
        "interactions.Interaction", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    respondent = models.CharField(max_length=16, choices=Respondent.choices, default=Respondent.CUSTOMER)
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="survey_predictions"
    )
    answered_at = models.DateTimeField()
    source = models.CharField(max_length=64)
    external_id = models.CharField(max_length=255)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-answered_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["source", "external_id"], name="survey_source_external_uniq"),
            models.CheckConstraint(
                condition=(
                    Q(kind="nps", score__gte=0, score__lte=10)
                    | Q(kind="csat", score__gte=1, score__lte=5)
                    | Q(kind="ces", score__gte=1, score__lte=7)
                    | Q(kind="tws", score__gte=1, score__lte=5)
                ),
                name="survey_score_in_scale",
            ),
            # Only time well spent has agent predictions.
            models.CheckConstraint(condition=Q(respondent="customer") | Q(kind="tws"), name="survey_agent_only_tws"),
        ]
        indexes = [
            models.Index(fields=["answered_at"], name="survey_answered_idx"),
            models.Index(fields=["customer", "-answered_at"], name="survey_customer_idx"),
            models.Index(fields=["conversation", "kind"], name="survey_conversation_idx"),
        ]

    def __str__(self):
        return f"{self.kind}={self.score} ({self.respondent}) #{self.pk}"


class IntentRule(models.Model):
    """A keyword rule: an inbound text containing any keyword gets this intent (when the integration gave none)."""

    intent = models.CharField(max_length=64)
    keywords = models.TextField(help_text="One keyword or phrase per line; matched case-insensitively, in any script.")
    priority = models.IntegerField(default=100, help_text="Lower wins when several rules match.")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["priority", "id"]

    def __str__(self):
        return f"{self.intent} ({self.priority})"

    @property
    def keyword_list(self):
        return [line.strip().casefold() for line in self.keywords.splitlines() if line.strip()]


class TextAnalysis(models.Model):
    """What the analyser and the intent rules made of one inbound text that arrived without sentiment or intent.

    Kept apart from the interaction (which stays as it was sent): analysed
    once, read by every recompute. A null sentiment is an honest "unscored"
    (a language the analyser does not know), not neutral.
    """

    interaction = models.OneToOneField(
        "interactions.Interaction", primary_key=True, on_delete=models.CASCADE, related_name="metrics_analysis"
    )
    sentiment = models.FloatField(null=True, blank=True)
    language = models.CharField(max_length=16, blank=True)
    intent = models.CharField(max_length=64, blank=True)
    analyser = models.CharField(max_length=200)
    analysed_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"analysis of #{self.interaction_id}"


class DirtyCustomer(models.Model):
    """A customer whose metrics must be recomputed; the row is deleted in the transaction that recomputes them.

    No foreign key: marking must be one cheap INSERT ... ON CONFLICT DO NOTHING
    from the ingestion hot path, and a customer deleted meanwhile is skipped.
    """

    customer_id = models.BigIntegerField(primary_key=True)
    marked_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"dirty #{self.customer_id}"


class DirtyDay(models.Model):
    """A day whose KPI roll-ups must be rebuilt because rows behind them changed."""

    day = models.DateField(primary_key=True)

    def __str__(self):
        return str(self.day)


class Journey(models.Model):
    """One trip of a customer from misery to happiness, computed from signals (never edited by hand)."""

    customer = models.ForeignKey("customers.Customer", on_delete=models.CASCADE, related_name="journeys")
    seq = models.PositiveIntegerField(help_text="1 for the customer's first journey, and so on.")
    started_at = models.DateTimeField(help_text="The opening signal, or an earlier reported incident time.")
    opened_at = models.DateTimeField(help_text="When the opening misery signal happened.")
    opening_interaction_id = models.BigIntegerField()
    opening_signal = models.CharField(max_length=32)
    first_contact_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    closing_interaction_id = models.BigIntegerField(null=True, blank=True)
    closing_signal = models.CharField(max_length=32, blank=True)
    channel = models.CharField(max_length=16, blank=True, help_text="Channel of first contact (else of the opening signal).")
    channels = models.JSONField(default=list)
    customer_interactions = models.PositiveIntegerField(default=0)
    channel_switches = models.PositiveIntegerField(default=0)
    call_chat_minutes = models.FloatField(default=0)
    misery_signals = models.PositiveIntegerField(default=1)
    tth_seconds = models.FloatField(null=True, blank=True)
    time_before_contact_seconds = models.FloatField(null=True, blank=True)
    time_in_hands_seconds = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["customer", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["customer", "seq"], name="journey_customer_seq_uniq"),
            models.UniqueConstraint(fields=["customer", "opening_interaction_id"], name="journey_customer_opening_uniq"),
            models.UniqueConstraint(fields=["customer"], condition=Q(closed_at__isnull=True), name="journey_one_open"),
            models.CheckConstraint(condition=Q(closed_at__isnull=True) | Q(closed_at__gte=models.F("started_at")),
                                   name="journey_closes_after_start"),
        ]
        indexes = [
            models.Index(fields=["closed_at"], name="journey_closed_idx"),
            models.Index(fields=["first_contact_at"], name="journey_contact_idx"),
        ]

    def __str__(self):
        return f"journey {self.seq} of #{self.customer_id}"


class ConversationMetrics(models.Model):
    """The clocks of one conversation: first response, resolution, hand-off, and whether the customer came back."""

    class Handler(models.TextChoices):
        NONE = "none", "no response yet"
        BOT = "bot", "bot only"
        HUMAN = "human", "agents only"
        BOT_HUMAN = "bot_human", "bot, then agents"

    conversation_id = models.BigIntegerField(primary_key=True)
    customer = models.ForeignKey("customers.Customer", on_delete=models.CASCADE, related_name="conversation_metrics")
    channel = models.CharField(max_length=16, blank=True)
    opened_at = models.DateTimeField()
    first_inbound_at = models.DateTimeField(null=True, blank=True)
    first_response_at = models.DateTimeField(null=True, blank=True)
    first_response_seconds = models.FloatField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution_seconds = models.FloatField(null=True, blank=True)
    reopen_count = models.PositiveIntegerField(default=0)
    handler = models.CharField(max_length=16, choices=Handler.choices, default=Handler.NONE)
    handoff_seconds = models.FloatField(null=True, blank=True, help_text="First bot reply to first agent reply.")
    # Null until the come-back window after resolution has passed (or when never resolved).
    came_back = models.BooleanField(null=True, blank=True)
    days_to_return = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at"]
        indexes = [
            models.Index(fields=["customer"], name="convmetrics_customer_idx"),
            models.Index(fields=["opened_at"], name="convmetrics_opened_idx"),
            models.Index(fields=["resolved_at"], name="convmetrics_resolved_idx"),
        ]

    def __str__(self):
        return f"clocks of conversation #{self.conversation_id}"


class ActivitySpan(models.Model):
    """A stretch of a customer's activity with no 90-day gap; it churns 90 days after its last visit."""

    customer = models.ForeignKey("customers.Customer", on_delete=models.CASCADE, related_name="activity_spans")
    first_at = models.DateTimeField()
    last_at = models.DateTimeField()
    churn_at = models.DateTimeField(help_text="last_at + the churn window; churned once this has passed.")

    class Meta:
        ordering = ["customer", "first_at"]
        constraints = [models.UniqueConstraint(fields=["customer", "first_at"], name="span_customer_first_uniq")]
        indexes = [models.Index(fields=["first_at", "churn_at"], name="span_first_churn_idx")]

    def __str__(self):
        return f"#{self.customer_id} {self.first_at:%Y-%m-%d}…{self.last_at:%Y-%m-%d}"


class CustomerSnapshot(models.Model):
    """Everything the metrics know about one customer, one row, rewritten by each recompute."""

    customer = models.OneToOneField("customers.Customer", on_delete=models.CASCADE, primary_key=True,
                                    related_name="metrics_snapshot")
    journeys = models.PositiveIntegerField(default=0)
    open_journey_interaction_id = models.BigIntegerField(null=True, blank=True)
    unhappy_since = models.DateTimeField(null=True, blank=True)
    last_tth_seconds = models.FloatField(null=True, blank=True)
    median_tth_seconds = models.FloatField(null=True, blank=True)
    visits = models.PositiveIntegerField(default=0)
    return_visits = models.PositiveIntegerField(default=0)
    first_visit_at = models.DateTimeField(null=True, blank=True)
    last_visit_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    usual_gap_days = models.FloatField(null=True, blank=True)
    churned = models.BooleanField(default=False)
    at_risk = models.BooleanField(default=False)
    latest_nps = models.SmallIntegerField(null=True, blank=True)
    csat_mean = models.FloatField(null=True, blank=True)
    ces_mean = models.FloatField(null=True, blank=True)
    tws_mean = models.FloatField(null=True, blank=True)
    computed_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["unhappy_since"], name="snapshot_unhappy_idx", condition=Q(unhappy_since__isnull=False)),
            models.Index(fields=["at_risk"], name="snapshot_at_risk_idx", condition=Q(at_risk=True)),
        ]

    def __str__(self):
        return f"metrics of #{self.customer_id}"


class MetricRollup(models.Model):
    """The parts of one KPI for one day and one group (all, a channel or a segment); KPIs over years sum these."""

    class Dimension(models.TextChoices):
        ALL = "all"
        CHANNEL = "channel"
        SEGMENT = "segment"

    day = models.DateField()
    dimension = models.CharField(max_length=8, choices=Dimension.choices)
    key = models.CharField(max_length=64, blank=True)
    metric = models.CharField(max_length=32)
    n = models.PositiveIntegerField(default=0)
    total = models.FloatField(default=0)
    total2 = models.FloatField(default=0)
    hits = models.PositiveIntegerField(default=0)
    hits2 = models.PositiveIntegerField(default=0)
    # The samples behind percentiles (hours or seconds), sorted; null for additive metrics.
    values = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["day", "dimension", "key", "metric"]
        constraints = [
            models.UniqueConstraint(fields=["day", "dimension", "key", "metric"], name="rollup_day_group_metric_uniq")
        ]
        indexes = [models.Index(fields=["dimension", "day"], name="rollup_dimension_day_idx")]

    def __str__(self):
        return f"{self.day} {self.dimension}:{self.key} {self.metric}"
