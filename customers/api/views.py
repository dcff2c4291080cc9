from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from crm.api import PageNumberPagination
from crm.errors import error_response
from customers.api.serializers import (
    CustomerDetailOut,
    CustomerFilterIn,
    CustomerOut,
    CustomerUpdateIn,
    MergeIn,
    MergeOut,
    MergeSuggestionOut,
)
from customers.models import Customer, Merge, MergeSuggestion
from customers.selectors import customer_get_resolved, customer_list, merge_list, merge_suggestion_list
from customers.services import (
    customer_ids_resolve,
    customer_merge,
    customer_update,
    merge_suggestion_accept,
    merge_suggestion_dismiss,
    merge_undo,
)
from interactions.selectors import channel_counts
from metrics.selectors import customer_snapshots_get, customers_filter


def _paginated(request, view, queryset, serializer):
    paginator = PageNumberPagination()
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer(page, many=True).data)


class CustomerListApi(APIView):
    """Search customers by name or any identity; filter by segment."""

    required_scopes = {"read": "customers:read"}

    @extend_schema(parameters=[CustomerFilterIn], responses=CustomerOut(many=True))
    def get(self, request):
        filters = CustomerFilterIn(data=request.query_params)
        filters.is_valid(raise_exception=True)
        f = filters.validated_data
        queryset = customer_list(search=f.get("q"), segment=f.get("segment"))
        queryset = customers_filter(queryset=queryset, unhappy_now=f.get("unhappy_now"), at_risk=f.get("at_risk"))
        return _paginated(request, self, queryset, CustomerOut)


class CustomerDetailApi(APIView):
    required_scopes = {"read": "customers:read", "write": "customers:write"}

    def _detail(self, customer, redirected_from):
        context = {
            "channel_counts": channel_counts(customer_id=customer.pk),
            "redirected_from": redirected_from,
            "metrics": customer_snapshots_get(customer_ids=[customer.pk]).get(customer.pk),
        }
        return Response(CustomerDetailOut(customer, context=context).data)

    @extend_schema(responses=CustomerDetailOut)
    def get(self, request, pk):
        customer, redirected_from = customer_get_resolved(customer_id=pk)
        if customer is None:
            return error_response("not_found", f"No customer #{pk}.", 404)
        return self._detail(customer, redirected_from)

    @extend_schema(request=CustomerUpdateIn, responses=CustomerDetailOut)
    def patch(self, request, pk):
        customer = get_object_or_404(Customer, pk=pk)
        data = CustomerUpdateIn(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        customer_update(
            customer=customer,
            name=values.get("name"),
            attributes=values.get("attributes"),
            segments=values.get("segments"),
            switching_cost=values.get("switching_cost"),
            add_identities=[(i["kind"], i["value"]) for i in values.get("add_identities", [])],
            fields_set=set(values),
        )
        customer, redirected_from = customer_get_resolved(customer_id=pk)
        return self._detail(customer, redirected_from)


class CustomerMergeApi(APIView):
    """Merge `other` into this customer; this one survives and `other` becomes a tombstone."""

    required_scopes = {"write": "customers:write"}

    @extend_schema(request=MergeIn, responses={201: MergeOut})
    def post(self, request, pk):
        data = MergeIn(data=request.data)
        data.is_valid(raise_exception=True)
        other_id = data.validated_data["other"]
        live = customer_ids_resolve([pk, other_id])
        for asked in (pk, other_id):
            if asked not in live:
                return error_response("not_found", f"No customer #{asked}.", 404)
        if live[pk] == live[other_id]:
            return error_response("conflict", "These are already one customer.", 409)
        survivor = Customer.objects.get(pk=live[pk])
        merged = Customer.objects.get(pk=live[other_id])
        merge = customer_merge(survivor=survivor, merged=merged, reason=Merge.Reason.MANUAL, actor=request.user)
        return Response(MergeOut(merge).data, status=status.HTTP_201_CREATED)


class MergeListApi(APIView):
    required_scopes = {"read": "customers:read"}

    @extend_schema(responses=MergeOut(many=True))
    def get(self, request):
        return _paginated(request, self, merge_list(), MergeOut)


class MergeUndoApi(APIView):
    required_scopes = {"write": "customers:write"}

    @extend_schema(request=None, responses=MergeOut)
    def post(self, request, pk):
        merge = get_object_or_404(Merge, pk=pk)
        return Response(MergeOut(merge_undo(merge=merge, actor=request.user)).data)


class MergeSuggestionListApi(APIView):
    required_scopes = {"read": "customers:read"}

    @extend_schema(responses=MergeSuggestionOut(many=True))
    def get(self, request):
        wanted = request.query_params.get("status")
        if wanted and wanted not in MergeSuggestion.Status.values:
            return error_response("invalid", "Unknown status.", 400, errors={"status": [
                {"code": "invalid_choice", "message": f"One of: {', '.join(MergeSuggestion.Status.values)}."}]})
        return _paginated(request, self, merge_suggestion_list(status=wanted), MergeSuggestionOut)


class MergeSuggestionAcceptApi(APIView):
    required_scopes = {"write": "customers:write"}

    @extend_schema(request=None, responses={201: MergeOut})
    def post(self, request, pk):
        suggestion = get_object_or_404(MergeSuggestion, pk=pk)
        merge = merge_suggestion_accept(suggestion=suggestion, actor=request.user)
        return Response(MergeOut(merge).data, status=status.HTTP_201_CREATED)


class MergeSuggestionDismissApi(APIView):
    required_scopes = {"write": "customers:write"}

    @extend_schema(request=None, responses=MergeSuggestionOut)
    def post(self, request, pk):
        suggestion = get_object_or_404(MergeSuggestion, pk=pk)
        return Response(MergeSuggestionOut(merge_suggestion_dismiss(suggestion=suggestion, actor=request.user)).data)
