from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import exceptions, status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from integrations import selectors, services
from integrations.api import serializers
from integrations.events import EVENT_TYPES

SCOPES = {"read": "webhooks:read", "write": "webhooks:write"}


def drf_validation_error(exc: DjangoValidationError) -> exceptions.ValidationError:
    if hasattr(exc, "error_dict"):
        return exceptions.ValidationError(exc.message_dict)
    return exceptions.ValidationError({"non_field_errors": exc.messages})


def subscription_or_404(pk):
    subscription = selectors.webhook_subscription_get(pk=pk)
    if subscription is None:
        raise Http404
    return subscription


class SubscriptionListView(GenericAPIView):
    """Outbound webhook subscriptions: list, and create (the secret is shown once)."""

    required_scopes = SCOPES
    serializer_class = serializers.SubscriptionOutSerializer

    def get_queryset(self):
        return selectors.webhook_subscription_list()

    @extend_schema(operation_id="webhook_subscriptions_list", responses=serializers.SubscriptionOutSerializer(many=True))
    def get(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(serializers.SubscriptionOutSerializer(page, many=True).data)

    @extend_schema(
        request=serializers.SubscriptionCreateInSerializer,
        responses={201: serializers.SubscriptionWithSecretOutSerializer},
    )
    def post(self, request):
        data = serializers.SubscriptionCreateInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            subscription = services.webhook_subscription_create(**data.validated_data)
        except DjangoValidationError as exc:
            raise drf_validation_error(exc) from exc
        return Response(
            serializers.SubscriptionWithSecretOutSerializer(subscription).data, status=status.HTTP_201_CREATED
        )


class SubscriptionDetailView(GenericAPIView):
    required_scopes = SCOPES
    serializer_class = serializers.SubscriptionOutSerializer

    def get(self, request, pk):
        return Response(serializers.SubscriptionOutSerializer(subscription_or_404(pk)).data)

    @extend_schema(request=serializers.SubscriptionUpdateInSerializer, responses=serializers.SubscriptionOutSerializer)
    def patch(self, request, pk):
        subscription = subscription_or_404(pk)
        data = serializers.SubscriptionUpdateInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            subscription = services.webhook_subscription_update(subscription=subscription, **data.validated_data)
        except DjangoValidationError as exc:
            raise drf_validation_error(exc) from exc
        return Response(serializers.SubscriptionOutSerializer(subscription).data)

    def delete(self, request, pk):
        services.webhook_subscription_delete(subscription=subscription_or_404(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class SubscriptionRotateSecretView(GenericAPIView):
    """A new secret (shown once); the old one keeps signing until WEBHOOK_SECRET_ROTATION_HOURS pass."""

    required_scopes = SCOPES
    serializer_class = serializers.SubscriptionWithSecretOutSerializer

    @extend_schema(
        request=serializers.SubscriptionRotateInSerializer, responses=serializers.SubscriptionWithSecretOutSerializer
    )
    def post(self, request, pk):
        subscription = subscription_or_404(pk)
        data = serializers.SubscriptionRotateInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            subscription = services.webhook_subscription_rotate_secret(
                subscription=subscription, secret=data.validated_data.get("secret")
            )
        except DjangoValidationError as exc:
            raise drf_validation_error(exc) from exc
        return Response(serializers.SubscriptionWithSecretOutSerializer(subscription).data)


class DeliveryListView(GenericAPIView):
    """Deliveries, newest first; filter by subscription, status, event_type or webhook_id."""

    required_scopes = SCOPES
    serializer_class = serializers.DeliveryOutSerializer

    def get_queryset(self):
        return selectors.webhook_delivery_list()

    @extend_schema(
        operation_id="webhook_deliveries_list",
        parameters=[serializers.DeliveryFilterSerializer],
        responses=serializers.DeliveryOutSerializer(many=True),
    )
    def get(self, request):
        filters = serializers.DeliveryFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        params = filters.validated_data
        deliveries = selectors.webhook_delivery_list(
            subscription_id=params.get("subscription"),
            status=params.get("status"),
            event_type=params.get("event_type"),
            webhook_id=params.get("webhook_id"),
        )
        page = self.paginate_queryset(deliveries)
        return self.get_paginated_response(serializers.DeliveryOutSerializer(page, many=True).data)


def delivery_or_404(pk):
    delivery = selectors.webhook_delivery_get(pk=pk)
    if delivery is None:
        raise Http404
    return delivery


class DeliveryDetailView(GenericAPIView):
    """One delivery with its payload and every attempt."""

    required_scopes = SCOPES
    serializer_class = serializers.DeliveryDetailOutSerializer

    def get(self, request, pk):
        return Response(serializers.DeliveryDetailOutSerializer(delivery_or_404(pk)).data)


class DeliveryRedeliverView(GenericAPIView):
    """Send a delivery again: same webhook-id, same body, a fresh attempt budget."""

    required_scopes = SCOPES
    serializer_class = serializers.DeliveryOutSerializer

    @extend_schema(request=None, responses={202: serializers.DeliveryOutSerializer})
    def post(self, request, pk):
        delivery = services.webhook_delivery_redeliver(delivery=delivery_or_404(pk))
        return Response(serializers.DeliveryOutSerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


class EventTypeListView(GenericAPIView):
    """The event types a subscription can name."""

    required_scopes = SCOPES
    pagination_class = None

    @extend_schema(
        responses=inline_serializer("EventTypeList", {"results": serializers.EventTypeOutSerializer(many=True)})
    )
    def get(self, request):
        return Response(
            {"results": [{"type": name, "description": text} for name, text in EVENT_TYPES.items()]}
        )
