from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from crm.api import KeysetPagination, PageNumberPagination
from crm.errors import error_response
from interactions.api.serializers import (
    ConversationFilterIn,
    ConversationOut,
    ConversationUpdateIn,
    InteractionOut,
    interactions_out,
    TimelineQueryIn,
)
from interactions.ingest import item_parse, item_schema
from interactions.models import Conversation, Interaction
from interactions.selectors import conversation_list, timeline_page
from interactions.services import conversation_update, interactions_ingest

INGEST_STATUS = {"created": status.HTTP_201_CREATED, "duplicate": status.HTTP_200_OK}


class InteractionCreateApi(APIView):
    """Push one interaction. A replay of (source, external_id) answers 200 with the stored one."""

    required_scopes = {"write": "interactions:write"}
    parser_classes = [JSONParser]  # item_parse judges unstorable text, with the other field errors

    @extend_schema(request={"application/json": item_schema()}, responses={201: InteractionOut, 200: InteractionOut})
    def post(self, request):
        item, errors = item_parse(request.data)
        if errors:
            return error_response("invalid", "The interaction has invalid fields.", 400, errors=errors)
        result = interactions_ingest(items=[item])[0]
        if result.status == "rejected":
            return error_response("invalid", "The interaction has invalid fields.", 400, errors=result.errors)
        return Response(InteractionOut(result.interaction).data, status=INGEST_STATUS[result.status])


class InteractionBulkApi(APIView):
    """Push up to BULK_MAX_ITEMS interactions; valid items are stored even when others are rejected."""

    required_scopes = {"write": "interactions:write"}
    parser_classes = [JSONParser]  # item_parse judges unstorable text, per item

    @extend_schema(
        request={"application/json": {"type": "object", "properties": {"items": {"type": "array", "items": item_schema()}}, "required": ["items"]}},
        responses=inline_serializer("BulkResult", {
            "created": serializers.IntegerField(),
            "duplicates": serializers.IntegerField(),
            "rejected": serializers.IntegerField(),
            "results": serializers.ListField(child=serializers.DictField()),
        }),
    )
    def post(self, request):
        items = request.data.get("items") if isinstance(request.data, dict) else None
        if not isinstance(items, list):
            return error_response("invalid", "Send {\"items\": [...]}.", 400,
                                  errors={"items": [{"code": "required", "message": "A list of interactions."}]})
        if len(items) > settings.BULK_MAX_ITEMS:
            return error_response(
                "too_many_items", f"A batch holds at most {settings.BULK_MAX_ITEMS} items; this one has {len(items)}.",
                400, errors={"items": [{"code": "too_many_items", "message": f"At most {settings.BULK_MAX_ITEMS}."}]},
            )
        results = [None] * len(items)
        valid, positions = [], []
        for index, payload in enumerate(items):
            item, errors = item_parse(payload)
            if errors:
                results[index] = {"index": index, "status": "rejected", "errors": errors}
            else:
                valid.append(item)
                positions.append(index)
        for index, result in zip(positions, interactions_ingest(items=valid)):
            entry = {"index": index, "status": result.status}
            if result.interaction is not None:
                entry["id"] = result.interaction.pk
                entry["customer_id"] = result.interaction.customer_id
            if result.errors:
                entry["errors"] = result.errors
            results[index] = entry
        counts = {name: sum(1 for r in results if r["status"] == name) for name in ("created", "duplicate", "rejected")}
        return Response({"created": counts["created"], "duplicates": counts["duplicate"],
                         "rejected": counts["rejected"], "results": results})


class InteractionDetailApi(APIView):
    required_scopes = {"read": "interactions:read"}

    @extend_schema(responses=InteractionOut)
    def get(self, request, pk):
        return Response(InteractionOut(get_object_or_404(Interaction, pk=pk)).data)


class TimelineApi(APIView):
    """A customer's whole history across channels, newest first. A tombstone's id answers with its survivor's."""

    required_scopes = {"read": "customers:read"}

    @extend_schema(parameters=[TimelineQueryIn], responses=InteractionOut(many=True))
    def get(self, request, pk):
        query = TimelineQueryIn(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        paginator = KeysetPagination(
            default_size=settings.TIMELINE_PAGE_SIZE, max_size=settings.TIMELINE_MAX_PAGE_SIZE
        )
        size = paginator.page_size(request)
        live, rows = timeline_page(
            customer_id=pk,
            limit=size + 1,
            channel=sorted(params.get("channel", [])),
            kind=sorted(params.get("kind", [])),
            direction=params.get("direction"),
            author_type=sorted(params.get("author_type", [])),
            since=params.get("since"),
            until=params.get("until"),
            before=paginator.cursor_from(request),
        )
        if live is None:
            return error_response("not_found", f"No customer #{pk}.", 404)
        extra = {"customer_id": live, "redirected_from": pk if live != pk else None}
        return paginator.response(request, rows, size, interactions_out(rows[:size]), extra)


class ConversationListApi(APIView):
    required_scopes = {"read": "conversations:read"}

    @extend_schema(parameters=[ConversationFilterIn], responses=ConversationOut(many=True))
    def get(self, request):
        filters = ConversationFilterIn(data=request.query_params)
        filters.is_valid(raise_exception=True)
        f = filters.validated_data
        queryset = conversation_list(
            customer_id=f.get("customer"), status=f.get("status"), assignee_id=f.get("assignee"), channel=f.get("channel")
        )
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(ConversationOut(page, many=True).data)


class ConversationDetailApi(APIView):
    required_scopes = {"read": "conversations:read", "write": "conversations:write"}

    @extend_schema(responses=ConversationOut)
    def get(self, request, pk):
        return Response(ConversationOut(get_object_or_404(Conversation, pk=pk)).data)

    @extend_schema(request=ConversationUpdateIn, responses=ConversationOut)
    def patch(self, request, pk):
        conversation = get_object_or_404(Conversation, pk=pk)
        data = ConversationUpdateIn(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        if "assignee_id" in fields:
            fields["assignee"] = fields.pop("assignee_id")
        conversation = conversation_update(conversation=conversation, fields=fields, actor=request.user)
        return Response(ConversationOut(conversation).data)

