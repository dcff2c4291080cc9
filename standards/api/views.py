from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from crm.api import PageNumberPagination
from crm.errors import error_response
from standards import selectors
from standards.api.serializers import (
    CannedResponseFilterIn,
    CannedResponseOut,
    ComplianceQueryIn,
    EvaluationFilterIn,
    EvaluationOut,
    RenderedOut,
    RenderQueryIn,
    StandardDetailOut,
    StandardFilterIn,
    StandardOut,
    VersionOut,
)


def _paginated(view, request, queryset, serializer):
    paginator = PageNumberPagination()
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer(page, many=True).data)


class StandardListApi(APIView):
    """Service standards with their why, goal and how, target, channels and current version."""

    required_scopes = {"read": "standards:read"}

    @extend_schema(parameters=[StandardFilterIn], responses=StandardOut(many=True))
    def get(self, request):
        filters = StandardFilterIn(data=request.query_params)
        filters.is_valid(raise_exception=True)
        f = filters.validated_data
        queryset = selectors.standard_list(status=f.get("status"), metric=f.get("metric"), search=f.get("q"))
        return _paginated(self, request, queryset, StandardOut)


class StandardDetailApi(APIView):
    """One standard with every published version (newest first) and its canned responses."""

    required_scopes = {"read": "standards:read"}

    @extend_schema(responses=StandardDetailOut)
    def get(self, request, pk):
        return Response(StandardDetailOut(get_object_or_404(selectors.standard_detail_queryset(), pk=pk)).data)


class StandardVersionDiffApi(APIView):
    """The difference between version `number` and the one before it (or `?against=`)."""

    required_scopes = {"read": "standards:read"}

    @extend_schema(responses=VersionOut)
    def get(self, request, pk, number):
        versions = {v.number: v for v in selectors.standard_versions(standard_id=pk)}
        new = versions.get(number)
        if new is None:
            return error_response("not_found", f"Standard #{pk} has no version {number}.", 404)
        against = request.query_params.get("against")
        try:
            old_number = int(against) if against is not None else number - 1
        except ValueError:
            return error_response("invalid", "The request has invalid fields.", 400,
                                  errors={"against": [{"code": "invalid", "message": "A version number."}]})
        if against is not None and old_number not in versions:
            return error_response("not_found", f"Standard #{pk} has no version {old_number}.", 404)
        old = versions.get(old_number)
        rows = selectors.version_diff(old=old, new=new)
        return Response({
            "standard_id": pk,
            "from_version": old.number if old else None,
            "to_version": new.number,
            "version": VersionOut(new).data,
            "fields": [{k: row[k] for k in ("field", "label", "old", "new", "changed")} for row in rows],
        })


class ComplianceApi(APIView):
    """Compliance per standard (and per channel) per period: judged, met, breached, mean lateness."""

    required_scopes = {"read": "standards:read"}

    @extend_schema(parameters=[ComplianceQueryIn])
    def get(self, request):
        query = ComplianceQueryIn(data=request.query_params)
        query.is_valid(raise_exception=True)
        q = query.validated_data
        return Response(selectors.compliance_summary(
            start=q["from"], end=q["to"], granularity=q["granularity"], by=q.get("by"), standard_id=q.get("standard"),
        ))


class EvaluationListApi(APIView):
    """How conversations and journeys stand against the standards: pending, warned, met or breached."""

    required_scopes = {"read": "standards:read"}

    @extend_schema(parameters=[EvaluationFilterIn], responses=EvaluationOut(many=True))
    def get(self, request):
        filters = EvaluationFilterIn(data=request.query_params)
        filters.is_valid(raise_exception=True)
        f = filters.validated_data
        queryset = selectors.evaluation_list(
            status=f.get("status"), standard_id=f.get("standard"), channel=f.get("channel"),
            conversation_id=f.get("conversation"), customer_id=f.get("customer"), since=f.get("since"),
            until=f.get("until"),
        )
        return _paginated(self, request, queryset, EvaluationOut)


class CannedResponseListApi(APIView):
    """Search the message repository: every word of `q` in the title, keywords, body or a variant."""

    required_scopes = {"read": "standards:read"}

    @extend_schema(parameters=[CannedResponseFilterIn], responses=CannedResponseOut(many=True))
    def get(self, request):
        filters = CannedResponseFilterIn(data=request.query_params)
        filters.is_valid(raise_exception=True)
        f = filters.validated_data
        queryset = selectors.canned_response_search(q=f.get("q"), channel=f.get("channel"), standard_id=f.get("standard"))
        return _paginated(self, request, queryset, CannedResponseOut)


class CannedResponseRenderApi(APIView):
    """The response's wording for a channel with its placeholders filled for a customer and conversation."""

    required_scopes = {"read": "standards:read"}

    @extend_schema(parameters=[RenderQueryIn], responses=RenderedOut)
    def get(self, request, pk):
        from customers.selectors import customer_get_resolved
        from interactions.selectors import conversation_list

        query = RenderQueryIn(data=request.query_params)
        query.is_valid(raise_exception=True)
        q = query.validated_data
        response = selectors.canned_response_get(pk=pk)
        if response is None:
            return error_response("not_found", f"No canned response #{pk}.", 404)
        customer_name = ""
        if q.get("customer"):
            customer, _ = customer_get_resolved(customer_id=q["customer"])
            if customer is None:
                return error_response("not_found", f"No customer #{q['customer']}.", 404)
            customer_name = customer.name
        conversation = None
        if q.get("conversation"):
            conversation = conversation_list().filter(pk=q["conversation"]).first()
            if conversation is None:
                return error_response("not_found", f"No conversation #{q['conversation']}.", 404)
        agent_name = q.get("agent_name")
        if agent_name is None and request.auth is None and request.user.is_authenticated:
            agent_name = request.user.get_full_name() or request.user.get_username()
        text = selectors.canned_response_render(
            response=response, channel=q.get("channel"), customer_name=customer_name, agent_name=agent_name or "",
            conversation_reference=selectors.conversation_reference(conversation),
        )
        return Response({"id": response.pk, "channel": q.get("channel"), "text": text})
