import json

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from integrations.models import WebhookAttempt, WebhookDelivery, WebhookSubscription


class SubscriptionCreateInSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=2000)
    event_types = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, help_text="Empty or [\"*\"]: every event type."
    )
    secret = serializers.CharField(
        max_length=200, required=False, help_text="whsec_<base64>; generated when absent, shown once."
    )
    is_active = serializers.BooleanField(required=False, default=True)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class SubscriptionUpdateInSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=2000, required=False)
    event_types = serializers.ListField(child=serializers.CharField(max_length=64), required=False)
    is_active = serializers.BooleanField(required=False)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)


class SubscriptionRotateInSerializer(serializers.Serializer):
    secret = serializers.CharField(max_length=200, required=False)


class SubscriptionOutSerializer(serializers.ModelSerializer):
    previous_secret_expires_at = serializers.SerializerMethodField()

    class Meta:
        model = WebhookSubscription
        fields = [
            "id",
            "url",
            "event_types",
            "is_active",
            "description",
            "previous_secret_expires_at",
            "created_at",
            "updated_at",
        ]

    @extend_schema_field(OpenApiTypes.DATETIME)
    def get_previous_secret_expires_at(self, obj):
        if not obj.previous_secret or obj.previous_secret_expires_at is None:
            return None
        return serializers.DateTimeField().to_representation(obj.previous_secret_expires_at)


class SubscriptionWithSecretOutSerializer(SubscriptionOutSerializer):
    """Only on create and rotation: the one time the secret is shown."""

    class Meta(SubscriptionOutSerializer.Meta):
        fields = SubscriptionOutSerializer.Meta.fields + ["secret"]


class EventTypeOutSerializer(serializers.Serializer):
    type = serializers.CharField()
    description = serializers.CharField()


class DeliveryFilterSerializer(serializers.Serializer):
    subscription = serializers.IntegerField(required=False, min_value=1)
    status = serializers.ChoiceField(choices=WebhookDelivery.Status.choices, required=False)
    event_type = serializers.CharField(max_length=64, required=False)
    webhook_id = serializers.CharField(max_length=64, required=False)


class AttemptOutSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookAttempt
        fields = ["number", "attempted_at", "status_code", "response_excerpt", "error", "duration_ms"]


class DeliveryOutSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "subscription",
            "webhook_id",
            "event_id",
            "event_type",
            "status",
            "attempt_count",
            "next_attempt_at",
            "last_status_code",
            "last_error",
            "delivered_at",
            "created_at",
            "updated_at",
        ]


class DeliveryDetailOutSerializer(DeliveryOutSerializer):
    payload = serializers.SerializerMethodField()
    attempts = AttemptOutSerializer(many=True)

    class Meta(DeliveryOutSerializer.Meta):
        fields = DeliveryOutSerializer.Meta.fields + ["payload", "attempts"]

    def get_payload(self, obj) -> dict:
        return json.loads(obj.body)
