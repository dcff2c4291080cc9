from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from crm.errors import error_response
from customers.services import customer_ids_resolve
from metrics import selectors, services
from metrics.api.serializers import JourneyOut, KpiQueryIn, MarkIn, SnapshotOut, SurveyIn, SurveyOut


def _live_customer(pk):
    return customer_ids_resolve([pk]).get(pk)


class SurveyCreateApi(APIView):
    """Store one NPS, CSAT, CES or time-well-spent answer (or an agent's prediction); it shows on the timeline.

    Out-of-range scores are 400s. A replay of (source, external_id) answers 200 with the stored answer.
    """

    required_scopes = {"write": "interactions:write"}

    @extend_schema(request=SurveyIn, responses={201: SurveyOut, 200: SurveyOut})
    def post(self, request):
        data = SurveyIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        customer_id = None
        if values.get("customer_id"):
            customer_id = _live_customer(values["customer_id"])
            if customer_id is None:
                return error_response("invalid", "The survey answer has invalid fields.", 400, errors={
                    "customer_id": [{"code": "not_found", "message": f"No customer #{values['customer_id']}."}]})
        if values.get("conversation_id"):
            owner = selectors.conversation_customer_get(conversation_id=values["conversation_id"])
            if owner is None or (customer_id is not None and owner != customer_id):
                return error_response("invalid", "The survey answer has invalid fields.", 400, errors={
                    "conversation_id": [{"code": "not_found",
                                         "message": f"No conversation #{values['conversation_id']} of this customer."}]})
            customer_id = owner
        values["customer_id"] = customer_id
        response, created = services.survey_response_create(**values)
        return Response(SurveyOut(response).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class CustomerMarkApi(APIView):
    """An agent (or the customer, confirmed by an agent) marks the customer happy or unhappy.

    An unhappy mark may carry `incident_at` ("it started two days ago"): the journey starts then.
    """

    required_scopes = {"write": "interactions:write"}

    @extend_schema(request=MarkIn, responses={201: inline_serializer("MarkOut", {
        "interaction_id": serializers.IntegerField(), "customer_id": serializers.IntegerField(),
        "mood": serializers.CharField()})})
    def post(self, request, pk):
        customer_id = _live_customer(pk)
        if customer_id is None:
            return error_response("not_found", f"No customer #{pk}.", 404)
        data = MarkIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        interaction = services.customer_mood_mark(customer_id=customer_id, **values)
        return Response(
            {"interaction_id": interaction.pk, "customer_id": interaction.customer_id, "mood": values["mood"]},
            status=status.HTTP_201_CREATED,
        )


class CustomerMetricsApi(APIView):
    """One customer's metrics: the snapshot and the latest journeys (newest first)."""

    required_scopes = {"read": "metrics:read"}

    @extend_schema(responses=inline_serializer("CustomerMetricsOut", {
        "customer_id": serializers.IntegerField(), "snapshot": SnapshotOut(allow_null=True),
        "journeys": JourneyOut(many=True)}))
    def get(self, request, pk):
        customer_id = _live_customer(pk)
        if customer_id is None:
            return error_response("not_found", f"No customer #{pk}.", 404)
        snapshot = selectors.customer_snapshots_get(customer_ids=[customer_id]).get(customer_id)
        journeys = selectors.customer_journeys(customer_id=customer_id, limit=selectors.JOURNEYS_SHOWN)
        return Response({
            "customer_id": customer_id,
            "snapshot": SnapshotOut(snapshot).data if snapshot else None,
            "journeys": JourneyOut(journeys, many=True).data,
        })


class KpiApi(APIView):
    """Organisation KPIs per period, each with its n, and their cross-channel consistency index.

    See `metrics.selectors.kpis_compute` for the shape.
    """

    required_scopes = {"read": "metrics:read"}

    @extend_schema(parameters=[
        OpenApiParameter("from", str, required=True, description="First day (YYYY-MM-DD, UTC), inclusive."),
        OpenApiParameter("to", str, required=True, description="Last day (YYYY-MM-DD, UTC), inclusive."),
        OpenApiParameter("granularity", str, enum=["day", "week", "month"]),
        OpenApiParameter("by", str, enum=["channel", "segment"]),
    ], responses=inline_serializer("KpiOut", {"periods": serializers.ListField(child=serializers.DictField())}))
    def get(self, request):
        query = KpiQueryIn(data=request.query_params)
        query.is_valid(raise_exception=True)
        values = query.validated_data
        try:
            result = selectors.kpis_compute(start=values["from"], end=values["to"],
                                            granularity=values["granularity"], by=values.get("by"))
        except ValueError as exc:
            return error_response("invalid", str(exc), 400)
        return Response(result)
