from rest_framework import serializers

from crm.api import AwareDateTimeField

from interactions.models import Channel
from standards.models import CannedResponse, CannedResponseVariant, Evaluation, Metric, Standard, StandardVersion
from standards.selectors import GRANULARITIES


class VersionOut(serializers.ModelSerializer):
    author = serializers.CharField(source="author.username", default=None, read_only=True)
    proposal_id = serializers.SerializerMethodField()

    class Meta:
        model = StandardVersion
        fields = ["number", "status", "content", "effective_from", "effective_to", "reason", "author", "published_at",
                  "proposal_id"]
        read_only_fields = fields

    def get_proposal_id(self, obj) -> int | None:
        # The reverse one-to-one raises when no proposal produced this version.
        try:
            return obj.proposal.pk
        except StandardVersion.proposal.RelatedObjectDoesNotExist:
            return None


class StandardOut(serializers.ModelSerializer):
    segments = serializers.SlugRelatedField(slug_field="slug", many=True, read_only=True)
    calendar = serializers.SerializerMethodField()
    current_version = serializers.IntegerField(source="current_version.number", default=None, read_only=True)

    class Meta:
        model = Standard
        fields = ["id", "title", "description", "why", "goal", "how", "metric", "target", "channels", "segments",
                  "calendar", "status", "effective_from", "effective_to", "current_version", "created_at", "updated_at"]
        read_only_fields = fields

    def get_calendar(self, obj) -> dict | None:
        if obj.current_version is not None:
            return obj.current_version.content.get("calendar")
        return None


class StandardFilterIn(serializers.Serializer):
    status = serializers.ChoiceField(choices=Standard.Status.choices, required=False)
    metric = serializers.ChoiceField(choices=Metric.choices, required=False)
    q = serializers.CharField(required=False, max_length=200)


class StandardDetailOut(StandardOut):
    versions = VersionOut(many=True, read_only=True)
    canned_responses = serializers.SerializerMethodField()

    class Meta(StandardOut.Meta):
        fields = StandardOut.Meta.fields + ["versions", "canned_responses"]
        read_only_fields = fields

    def get_canned_responses(self, obj) -> list[int]:
        return [response.pk for response in obj.canned_responses.all()]


class ComplianceQueryIn(serializers.Serializer):
    start = AwareDateTimeField(source="from")
    end = AwareDateTimeField(source="to")
    granularity = serializers.ChoiceField(choices=GRANULARITIES, default="month")
    by = serializers.ChoiceField(choices=["channel"], required=False)
    standard = serializers.IntegerField(required=False, min_value=1)

    def to_internal_value(self, data):
        # `from`/`to` are Python keywords: accepted in the query string, renamed here.
        data = data.copy()
        for outside, inside in (("from", "start"), ("to", "end")):
            if outside in data and inside not in data:
                data[inside] = data[outside]
        return super().to_internal_value(data)

    def validate(self, attrs):
        if attrs["to"] <= attrs["from"]:
            raise serializers.ValidationError({"to": "Must be after from."})
        if (attrs["to"] - attrs["from"]).days > 3 * 366:
            raise serializers.ValidationError({"to": "At most three years at a time."})
        return attrs


class EvaluationOut(serializers.ModelSerializer):
    standard_id = serializers.IntegerField(read_only=True)
    standard_title = serializers.CharField(source="standard.title", read_only=True)
    version = serializers.IntegerField(source="version.number", read_only=True)
    metric = serializers.CharField(source="version.content.metric", read_only=True)
    conversation_id = serializers.IntegerField(read_only=True, allow_null=True)
    customer_id = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = Evaluation
        fields = ["id", "standard_id", "standard_title", "version", "metric", "subject", "subject_id",
                  "conversation_id", "customer_id", "channel", "started_at", "due_at", "completed_at",
                  "elapsed_seconds", "value", "target", "status", "late_seconds", "warned_at", "breached_at",
                  "evaluated_at"]
        read_only_fields = fields


class EvaluationFilterIn(serializers.Serializer):
    status = serializers.ChoiceField(choices=Evaluation.Status.choices, required=False)
    standard = serializers.IntegerField(required=False, min_value=1)
    channel = serializers.ChoiceField(choices=Channel.choices, required=False)
    conversation = serializers.IntegerField(required=False, min_value=1)
    customer = serializers.IntegerField(required=False, min_value=1)
    since = AwareDateTimeField(required=False)
    until = AwareDateTimeField(required=False)


class VariantOut(serializers.ModelSerializer):
    class Meta:
        model = CannedResponseVariant
        fields = ["channel", "body"]
        read_only_fields = fields


class CannedResponseOut(serializers.ModelSerializer):
    standard_id = serializers.IntegerField(read_only=True, allow_null=True)
    variants = VariantOut(many=True, read_only=True)

    class Meta:
        model = CannedResponse
        fields = ["id", "title", "body", "keywords", "standard_id", "is_active", "variants", "created_at", "updated_at"]
        read_only_fields = fields


class CannedResponseFilterIn(serializers.Serializer):
    q = serializers.CharField(required=False, max_length=200)
    channel = serializers.ChoiceField(choices=Channel.choices, required=False)
    standard = serializers.IntegerField(required=False, min_value=1)


class RenderQueryIn(serializers.Serializer):
    channel = serializers.ChoiceField(choices=Channel.choices, required=False)
    customer = serializers.IntegerField(required=False, min_value=1)
    conversation = serializers.IntegerField(required=False, min_value=1)
    agent_name = serializers.CharField(required=False, max_length=200, allow_blank=True)


class RenderedOut(serializers.Serializer):
    id = serializers.IntegerField()
    channel = serializers.CharField(allow_null=True)
    text = serializers.CharField()
