from django.utils import timezone
from rest_framework import serializers

from crm.api import AwareDateTimeField

from interactions.models import Conversation, Interaction


class InteractionOut(serializers.ModelSerializer):
    customer_id = serializers.IntegerField(read_only=True)
    conversation_id = serializers.IntegerField(read_only=True, allow_null=True)
    agent_id = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = Interaction
        fields = [
            "id", "customer_id", "conversation_id", "channel", "kind", "direction", "author_type", "author_name",
            "agent_id", "occurred_at", "subject", "body", "sentiment", "intent", "incident_at", "source",
            "external_id", "data", "created_at",
        ]
        read_only_fields = fields


INTERACTION_OUT_FIELDS = InteractionOut.Meta.fields
_INTERACTION_TIMES = {"occurred_at", "incident_at", "created_at"}


def _iso(value):
    if value is None:
        return None
    text = timezone.localtime(value).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def interactions_out(rows) -> list[dict]:
    """What `InteractionOut(rows, many=True).data` gives, without building DRF fields per request.

    The timeline is the hottest read; a test pins the two to the same output.
    """
    return [
        {name: _iso(getattr(row, name)) if name in _INTERACTION_TIMES else getattr(row, name)
         for name in INTERACTION_OUT_FIELDS}
        for row in rows
    ]


class ConversationOut(serializers.ModelSerializer):
    customer_id = serializers.IntegerField(read_only=True)
    assignee_id = serializers.IntegerField(read_only=True, allow_null=True)
    first_response_seconds = serializers.SerializerMethodField()
    resolution_seconds = serializers.SerializerMethodField()

    class Meta:
        model = Conversation
        fields = [
            "id", "customer_id", "status", "subject", "assignee_id", "channels", "opened_at", "last_activity_at",
            "first_inbound_at", "first_response_at", "resolved_at", "reopen_count", "first_response_seconds",
            "resolution_seconds",
        ]
        read_only_fields = fields

    def get_first_response_seconds(self, obj) -> float | None:
        if obj.first_inbound_at and obj.first_response_at:
            return (obj.first_response_at - obj.first_inbound_at).total_seconds()
        return None

    def get_resolution_seconds(self, obj) -> float | None:
        if obj.resolved_at:
            return (obj.resolved_at - obj.opened_at).total_seconds()
        return None


class ConversationUpdateIn(serializers.Serializer):
    status = serializers.ChoiceField(choices=Conversation.Status.choices, required=False)
    assignee_id = serializers.IntegerField(required=False, allow_null=True)
    subject = serializers.CharField(required=False, allow_blank=True, max_length=300)

    def validate_assignee_id(self, value):
        from django.contrib.auth import get_user_model

        if value is None:
            return None
        user = get_user_model().objects.filter(pk=value, is_staff=True, is_active=True).first()
        if user is None:
            raise serializers.ValidationError("No active staff user with this id.", code="not_found")
        return user


class ConversationFilterIn(serializers.Serializer):
    status = serializers.ChoiceField(choices=Conversation.Status.choices, required=False)
    customer = serializers.IntegerField(required=False, min_value=1)
    assignee = serializers.IntegerField(required=False, min_value=1)
    channel = serializers.CharField(required=False, max_length=16)


class TimelineQueryIn(serializers.Serializer):
    channel = serializers.MultipleChoiceField(choices=Interaction._meta.get_field("channel").choices, required=False)
    kind = serializers.MultipleChoiceField(choices=Interaction.Kind.choices, required=False)
    direction = serializers.ChoiceField(choices=Interaction.Direction.choices, required=False)
    author_type = serializers.MultipleChoiceField(choices=Interaction.AuthorType.choices, required=False)
    since = AwareDateTimeField(required=False)
    until = AwareDateTimeField(required=False)
    cursor = serializers.CharField(required=False)
    page_size = serializers.IntegerField(required=False)
