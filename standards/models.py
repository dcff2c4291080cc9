from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Metric(models.TextChoices):
    """What a standard promises on. Times are in seconds; floors are survey scores."""

    FIRST_RESPONSE_TIME = "first_response_time", "First response time"
    NEXT_RESPONSE_TIME = "next_response_time", "Next response time"
    RESOLUTION_TIME = "resolution_time", "Resolution time"
    TIME_TO_HAPPINESS = "time_to_happiness", "Time to happiness"
    CSAT_FLOOR = "csat_floor", "CSAT floor"
    CES_FLOOR = "ces_floor", "CES floor"


TIME_METRICS = {
    Metric.FIRST_RESPONSE_TIME,
    Metric.NEXT_RESPONSE_TIME,
    Metric.RESOLUTION_TIME,
    Metric.TIME_TO_HAPPINESS,
}


class BusinessCalendar(models.Model):
    """Working hours a standard's clock runs in: a weekly schedule, a time zone and holidays.

    `schedule` maps ISO weekday numbers ("1" = Monday … "7" = Sunday) to lists
    of ["HH:MM", "HH:MM"] intervals in the calendar's time zone.
    """

    name = models.CharField(max_length=100, unique=True)
    time_zone = models.CharField(max_length=64, default="UTC")
    schedule = models.JSONField(
        default=dict,
        help_text='e.g. {"1": [["09:00", "17:00"]], …, "5": [["09:00", "13:00"]]} — 1 is Monday, 7 is Sunday.',
    )

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Holiday(models.Model):
    """A day the calendar's clock stops, whatever its weekday."""

    calendar = models.ForeignKey(BusinessCalendar, on_delete=models.CASCADE, related_name="holidays")
    date = models.DateField()
    name = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["date"]
        constraints = [models.UniqueConstraint(fields=["calendar", "date"], name="holiday_calendar_date_uniq")]

    def __str__(self):
        return f"{self.date} {self.name}".strip()


class Standard(models.Model):
    """A service promise, such as "first reply on chat within 2 minutes", with its why, goal and how.

    The row is the working copy a CX lead edits; what staff acknowledge and
    what compliance is measured against are its published, immutable versions.
    """

    class Status(models.TextChoices):
        DRAFT = "draft"
        ACTIVE = "active"
        RETIRED = "retired"

    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    why = models.TextField("why it was chosen", blank=True)
    goal = models.TextField("what goal it serves", blank=True)
    how = models.TextField("the best way to meet it", blank=True)
    metric = models.CharField(max_length=32, choices=Metric.choices)
    target = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        help_text="Seconds for a time metric (at most); the score for a CSAT or CES floor (at least).",
    )
    channels = models.JSONField(default=list, blank=True, help_text="Channels it covers; empty covers every channel.")
    segments = models.ManyToManyField(
        "customers.Segment", blank=True, related_name="+", help_text="Segments it covers; none covers everyone."
    )
    calendar = models.ForeignKey(
        BusinessCalendar,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="standards",
        help_text="Business hours its clock runs in; empty: around the clock.",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT, editable=False)
    effective_from = models.DateTimeField(null=True, blank=True, help_text="Empty: from the moment it is published.")
    effective_to = models.DateTimeField(null=True, blank=True, help_text="Empty: until retired.")
    current_version = models.ForeignKey(
        "StandardVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title", "id"]
        permissions = [("publish_standard", "Can publish and retire service standards")]

    def __str__(self):
        return self.title


class StandardVersion(models.Model):
    """One published state of a standard; never changed once written.

    `content` holds every field that matters (title, why/goal/how, metric,
    target, channels, segment slugs, the calendar with its holidays), so a
    conversation is judged by the promise in force at its time.
    """

    standard = models.ForeignKey(Standard, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Standard.Status.choices)
    content = models.JSONField()
    effective_from = models.DateTimeField()
    effective_to = models.DateTimeField(null=True, blank=True)
    reason = models.TextField()
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    published_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["standard", "-number"]
        constraints = [models.UniqueConstraint(fields=["standard", "number"], name="version_standard_number_uniq")]
        indexes = [models.Index(fields=["effective_from"], name="version_effective_idx")]

    def __str__(self):
        return f"{self.content.get('title', self.standard_id)} v{self.number}"


class Acknowledgement(models.Model):
    """A staff member's statement that they read and will follow one version of a standard."""

    version = models.ForeignKey(StandardVersion, on_delete=models.CASCADE, related_name="acknowledgements")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    acknowledged_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-acknowledged_at"]
        constraints = [models.UniqueConstraint(fields=["version", "user"], name="ack_version_user_uniq")]

    def __str__(self):
        return f"{self.user} ✓ {self.version}"


class Proposal(models.Model):
    """A staff member's proposal to revise, change or retire a standard, with their reasoning."""

    class Kind(models.TextChoices):
        REVISION = "revision", "Revise (wording, why/goal/how)"
        CHANGE = "change", "Change (target, scope)"
        RETIREMENT = "retirement", "Retire"

    class Status(models.TextChoices):
        OPEN = "open"
        ACCEPTED = "accepted"
        REJECTED = "rejected"

    standard = models.ForeignKey(Standard, on_delete=models.CASCADE, related_name="proposals")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    reasoning = models.TextField()
    proposed_description = models.TextField(blank=True)
    proposed_why = models.TextField(blank=True)
    proposed_goal = models.TextField(blank=True)
    proposed_how = models.TextField(blank=True)
    proposed_target = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    proposed_channels = models.JSONField(null=True, blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN, editable=False)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    decided_at = models.DateTimeField(null=True, blank=True, editable=False)
    decision_reason = models.TextField(blank=True, editable=False)
    produced_version = models.OneToOneField(
        StandardVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="proposal", editable=False
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("decide_proposal", "Can accept or reject proposals")]

    def __str__(self):
        return f"{self.get_kind_display()} of {self.standard} (#{self.pk})"


class ProposalComment(models.Model):
    """One staff member's comment on a proposal."""

    proposal = models.ForeignKey(Proposal, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    body = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self):
        return f"Comment #{self.pk} on proposal #{self.proposal_id}"


class Evaluation(models.Model):
    """How one conversation or journey stands against one standard version.

    While the clock runs the row is `pending` (or `warned`); it becomes `met`
    or `breached` when the thing it measures happens, or `breached` as soon as
    the deadline passes. `late_seconds` says how late, in the standard's
    business time.
    """

    class Subject(models.TextChoices):
        CONVERSATION = "conversation"
        JOURNEY = "journey"

    class Status(models.TextChoices):
        PENDING = "pending"
        WARNED = "warned"
        MET = "met"
        BREACHED = "breached"

    standard = models.ForeignKey(Standard, on_delete=models.CASCADE, related_name="evaluations")
    version = models.ForeignKey(StandardVersion, on_delete=models.CASCADE, related_name="evaluations")
    subject = models.CharField(max_length=16, choices=Subject.choices)
    subject_id = models.BigIntegerField()
    conversation = models.ForeignKey(
        "interactions.Conversation", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    customer = models.ForeignKey("customers.Customer", null=True, on_delete=models.CASCADE, related_name="+")
    channel = models.CharField(max_length=16, blank=True)
    started_at = models.DateTimeField(help_text="When the clock (or the period judged) started.")
    due_at = models.DateTimeField(null=True, blank=True, help_text="The deadline, in wall-clock time.")
    completed_at = models.DateTimeField(null=True, blank=True)
    elapsed_seconds = models.FloatField(null=True, blank=True, help_text="Business seconds used so far.")
    value = models.FloatField(null=True, blank=True, help_text="The measured score, for CSAT and CES floors.")
    target = models.FloatField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    late_seconds = models.FloatField(null=True, blank=True)
    warned_at = models.DateTimeField(null=True, blank=True)
    breached_at = models.DateTimeField(null=True, blank=True, help_text="When the breach was recorded.")
    evaluated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["standard", "subject", "subject_id"], name="evaluation_subject_uniq"),
        ]
        indexes = [
            models.Index(fields=["status", "due_at"], name="evaluation_status_due_idx"),
            models.Index(fields=["standard", "started_at"], name="evaluation_standard_idx"),
            models.Index(
                fields=["conversation"], condition=Q(conversation__isnull=False), name="evaluation_conversation_idx"
            ),
        ]

    def __str__(self):
        return f"{self.subject} #{self.subject_id} vs {self.standard_id}: {self.status}"

    @property
    def is_breach(self):
        return self.status == self.Status.BREACHED


class CannedResponse(models.Model):
    """A reusable message from the message repository, with placeholders and channel variants."""

    title = models.CharField(max_length=200)
    body = models.TextField(
        help_text="Placeholders: {customer_name}, {agent_name}, {conversation_reference}. Used where no channel variant exists."
    )
    keywords = models.CharField(max_length=300, blank=True, help_text="Words agents search it by.")
    standard = models.ForeignKey(
        Standard, null=True, blank=True, on_delete=models.SET_NULL, related_name="canned_responses"
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title", "id"]

    def __str__(self):
        return self.title


class CannedResponseVariant(models.Model):
    """The wording of a canned response for one channel (a short SMS, a formal email)."""

    response = models.ForeignKey(CannedResponse, on_delete=models.CASCADE, related_name="variants")
    channel = models.CharField(max_length=16)
    body = models.TextField()

    class Meta:
        ordering = ["channel"]
        constraints = [models.UniqueConstraint(fields=["response", "channel"], name="variant_response_channel_uniq")]

    def __str__(self):
        return f"{self.response} [{self.channel}]"


class CannedResponseUse(models.Model):
    """One outbound interaction that used a canned response."""

    response = models.ForeignKey(CannedResponse, on_delete=models.CASCADE, related_name="uses")
    interaction = models.OneToOneField("interactions.Interaction", on_delete=models.CASCADE, related_name="+")
    channel = models.CharField(max_length=16)
    agent = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    used_at = models.DateTimeField()

    class Meta:
        ordering = ["-used_at", "-id"]
        indexes = [models.Index(fields=["response", "-used_at"], name="canned_use_response_idx")]

    def __str__(self):
        return f"{self.response_id} used in {self.interaction_id}"
