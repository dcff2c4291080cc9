from rest_framework import serializers

from crm.api import AwareDateTimeField
from interactions.models import Channel
from metrics.models import Journey, SurveyResponse


def _agent_exists(value):
    from django.contrib.auth import get_user_model

    if value is not None and not get_user_model().objects.filter(pk=value).exists():
        raise serializers.ValidationError(f"No user #{value}.", code="not_found")
    return value


class SurveyIn(serializers.Serializer):
    kind = serializers.ChoiceField(choices=SurveyResponse.Kind.choices)
    score = serializers.IntegerField()
    customer_id = serializers.IntegerField(min_value=1, required=False,
                                           help_text="Who answered; may be omitted when conversation_id is given.")
    conversation_id = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    channel = serializers.ChoiceField(choices=Channel.choices, default=Channel.SURVEY,
                                      help_text="Where the question was asked.")
    question = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
    question_version = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")
    comment = serializers.CharField(max_length=20000, required=False, allow_blank=True, default="")
    respondent = serializers.ChoiceField(choices=SurveyResponse.Respondent.choices, default="customer",
                                         help_text="'agent' for an agent's prediction of time well spent.")
    agent_id = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    answered_at = AwareDateTimeField(required=False)
    source = serializers.CharField(max_length=64, required=False, default="api")
    external_id = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")

    def validate_agent_id(self, value):
        return _agent_exists(value)

    def validate(self, data):
        low, high = SurveyResponse.SCALES[data["kind"]]
        if not low <= data["score"] <= high:
            raise serializers.ValidationError(
                {"score": [serializers.ErrorDetail(f"A {data['kind']} score is from {low} to {high}.", code="out_of_range")]}
            )
        if data["respondent"] == "agent" and data["kind"] != SurveyResponse.Kind.TWS:
            raise serializers.ValidationError(
                {"respondent": [serializers.ErrorDetail("Only time well spent has agent predictions.", code="invalid")]}
            )
        if data["respondent"] == "agent" and not data.get("conversation_id"):
            raise serializers.ValidationError(
                {"conversation_id": [serializers.ErrorDetail("An agent's prediction is for a conversation.", code="required")]}
            )
        if not data.get("customer_id") and not data.get("conversation_id"):
            raise serializers.ValidationError(
                {"customer_id": [serializers.ErrorDetail("Give customer_id or conversation_id.", code="required")]}
            )
        return data


class SurveyOut(serializers.ModelSerializer):
    customer_id = serializers.IntegerField(read_only=True)
    conversation_id = serializers.IntegerField(read_only=True, allow_null=True)
    interaction_id = serializers.IntegerField(read_only=True, allow_null=True)
    agent_id = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = SurveyResponse
        fields = ["id", "kind", "score", "customer_id", "conversation_id", "interaction_id", "channel", "question",
                  "question_version", "comment", "respondent", "agent_id", "answered_at", "source", "external_id",
                  "created_at"]
        read_only_fields = fields


class MarkIn(serializers.Serializer):
    mood = serializers.ChoiceField(choices=[("happy", "happy"), ("unhappy", "unhappy")])
    incident_at = AwareDateTimeField(required=False, allow_null=True,
                                     help_text="When the trouble began, e.g. two days ago.")
    occurred_at = AwareDateTimeField(required=False, help_text="When the mark was made; now by default.")
    note = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")
    confirmed_by = serializers.ChoiceField(choices=[("agent", "agent"), ("customer", "customer")], default="agent")
    agent_id = serializers.IntegerField(min_value=1, required=False, allow_null=True)

    def validate_agent_id(self, value):
        return _agent_exists(value)

    def validate(self, data):
        if data.get("incident_at") and data["mood"] != "unhappy":
            raise serializers.ValidationError(
                {"incident_at": [serializers.ErrorDetail("Only an unhappy mark has an incident time.", code="invalid")]}
            )
        occurred = data.get("occurred_at")
        if data.get("incident_at") and occurred and data["incident_at"] > occurred:
            raise serializers.ValidationError(
                {"incident_at": [serializers.ErrorDetail("The incident cannot be after the mark.", code="invalid")]}
            )
        return data


class JourneyOut(serializers.ModelSerializer):
    class Meta:
        model = Journey
        fields = ["seq", "started_at", "opened_at", "opening_interaction_id", "opening_signal", "first_contact_at",
                  "closed_at", "closing_interaction_id", "closing_signal", "channel", "channels",
                  "customer_interactions", "channel_switches", "call_chat_minutes", "misery_signals", "tth_seconds",
                  "time_before_contact_seconds", "time_in_hands_seconds"]
        read_only_fields = fields


class SnapshotOut(serializers.Serializer):
    journeys = serializers.IntegerField()
    unhappy_now = serializers.BooleanField()
    unhappy_since = serializers.DateTimeField(allow_null=True)
    open_journey_interaction_id = serializers.IntegerField(allow_null=True)
    last_tth_seconds = serializers.FloatField(allow_null=True)
    median_tth_seconds = serializers.FloatField(allow_null=True)
    visits = serializers.IntegerField()
    return_visits = serializers.IntegerField()
    first_visit_at = serializers.DateTimeField(allow_null=True)
    last_visit_at = serializers.DateTimeField(allow_null=True)
    days_since_last_visit = serializers.IntegerField(allow_null=True)
    usual_gap_days = serializers.FloatField(allow_null=True)
    churned = serializers.BooleanField()
    at_risk = serializers.BooleanField()
    latest_nps = serializers.IntegerField(allow_null=True)
    csat_mean = serializers.FloatField(allow_null=True)
    ces_mean = serializers.FloatField(allow_null=True)
    tws_mean = serializers.FloatField(allow_null=True)
    computed_at = serializers.DateTimeField()


class KpiQueryIn(serializers.Serializer):
    # "from" is a keyword: the field is renamed in to_internal_value.
    to = serializers.DateField()
    granularity = serializers.ChoiceField(choices=["day", "week", "month"], default="day")
    by = serializers.ChoiceField(choices=["channel", "segment"], required=False, allow_null=True, default=None)

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = serializers.DateField()
        return fields

    def validate(self, data):
        if data["to"] < data["from"]:
            raise serializers.ValidationError({"to": [serializers.ErrorDetail("Must not be before from.", code="invalid")]})
        return data
