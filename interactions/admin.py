"""Interactions, conversations and inbound provider events in the admin.

Interactions are a record: they arrive through ingestion and are read here, not
edited. Conversation changes go through `conversation_update` (so resolving
stamps its time and emits its event); inbound events are replayed through
`inbound_events_replay`.
"""

import json

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from crm.admin import ReadOnlyAdmin
from interactions.inbound import inbound_events_replay
from interactions.models import Channel, Conversation, InboundEvent, Interaction
from interactions.services import conversation_update

BODY_SHOWN_BYTES = 200_000


@admin.register(Interaction)
class InteractionAdmin(ReadOnlyAdmin):
    """Read-only: interactions come in through ingestion, the one door."""

    list_display = ("occurred_at", "channel", "kind", "direction", "author_type", "customer", "short_text", "source")
    list_filter = ("channel", "direction", "author_type", "kind")
    date_hierarchy = "occurred_at"
    search_fields = ("subject", "body", "external_id", "author_name", "=customer__id")
    list_select_related = ("customer",)
    raw_id_fields = ("customer", "conversation", "identity", "agent")
    # Counting a table of millions on every page costs more than the page.
    show_full_result_count = False
    readonly_fields = (
        "customer", "conversation", "identity", "channel", "kind", "direction", "author_type", "author_name",
        "agent", "occurred_at", "subject", "body", "sentiment", "intent", "incident_at", "source", "external_id",
        "data_pretty", "created_at",
    )
    fields = readonly_fields

    @admin.display(description=_("text"))
    def short_text(self, obj):
        text = obj.subject or obj.body
        return text[:80] + ("…" if len(text) > 80 else "")

    @admin.display(description=_("data"))
    def data_pretty(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.data, indent=2, ensure_ascii=False, default=str))


class ConversationChannelFilter(admin.SimpleListFilter):
    title = _("channel")
    parameter_name = "channel"

    def lookups(self, request, model_admin):
        return Channel.choices

    def queryset(self, request, queryset):
        if self.value() in Channel.values:
            # `channels` is a JSON list of names: match the quoted name, the same on PostgreSQL and SQLite.
            return queryset.filter(channels__icontains=f'"{self.value()}"')
        return queryset


class InteractionInline(admin.TabularInline):
    model = Interaction
    fields = ("occurred_at", "channel", "kind", "direction", "author_type", "subject", "body")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True
    ordering = ("occurred_at", "id")


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    """Status, assignee and subject are edited here, through `conversation_update`."""

    list_display = ("__str__", "customer", "status", "assignee", "channel_list", "last_activity_at", "reopen_count")
    list_filter = ("status", ConversationChannelFilter, ("assignee", admin.RelatedOnlyFieldListFilter))
    search_fields = ("subject", "=customer__id")
    list_select_related = ("customer", "assignee")
    raw_id_fields = ("customer",)
    date_hierarchy = "last_activity_at"
    show_full_result_count = False
    fields = (
        "subject", "status", "assignee", "customer", "channel_list", "opened_at", "last_activity_at",
        "first_inbound_at", "first_response_at", "resolved_at", "reopen_count",
    )
    readonly_fields = (
        "customer", "channel_list", "opened_at", "last_activity_at", "first_inbound_at", "first_response_at",
        "resolved_at", "reopen_count",
    )
    inlines = [InteractionInline]

    def has_add_permission(self, request):
        return False  # a conversation opens when an interaction arrives

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description=_("channels"))
    def channel_list(self, obj):
        return ", ".join(obj.channels) or "—"

    def save_model(self, request, obj, form, change):
        fields = {name: form.cleaned_data[name] for name in form.changed_data if name in ("status", "assignee", "subject")}
        if fields:
            conversation_update(conversation=obj, fields=fields, actor=request.user)


@admin.register(InboundEvent)
class InboundEventAdmin(admin.ModelAdmin):
    """Every provider webhook as it arrived; failed ones are replayed from here after a fix."""

    list_display = ("id", "provider", "status", "attempts", "received_at", "body_size", "short_error")
    list_filter = ("status", "provider")
    search_fields = ("=id", "error", "body_sha256")
    date_hierarchy = "received_at"
    show_full_result_count = False
    actions = ["replay_selected"]
    fields = (
        "provider", "status", "attempts", "error", "result_pretty", "received_at", "processed_at", "purged_at",
        "content_type", "body_size", "body_sha256", "headers_pretty", "body_decoded",
    )
    readonly_fields = fields

    def get_urls(self):
        return [
            path(
                "<int:object_id>/replay/",
                self.admin_site.admin_view(self.replay_view),
                name="interactions_inboundevent_replay",
            ),
            *super().get_urls(),
        ]

    def replay_view(self, request, object_id):
        """The Replay button of an event's page (POST only)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        event = get_object_or_404(InboundEvent.objects.defer("body"), pk=object_id)
        if not self.has_change_permission(request, event):
            raise PermissionDenied
        self._replay(request, [event.pk])
        return HttpResponseRedirect(reverse("admin:interactions_inboundevent_change", args=[event.pk]))

    def has_add_permission(self, request):
        return False  # events arrive from providers only

    def has_delete_permission(self, request, obj=None):
        return False  # the record of what a provider sent; the purge empties old bodies

    def save_model(self, request, obj, form, change):
        pass  # every field is read-only; changing an event means replaying it

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        # The list never shows the raw bodies: leave them in the database.
        return qs.defer("body") if request.resolver_match and request.resolver_match.url_name.endswith("changelist") else qs

    @admin.display(description=_("error"))
    def short_error(self, obj):
        return obj.error[:100] + ("…" if len(obj.error) > 100 else "")

    @admin.display(description=_("result"))
    def result_pretty(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.result, indent=2, ensure_ascii=False))

    @admin.display(description=_("headers"))
    def headers_pretty(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.headers, indent=2, ensure_ascii=False))

    @admin.display(description=_("body"))
    def body_decoded(self, obj):
        if obj.body is None:
            return _("Purged after the retention period.")
        raw = bytes(obj.body)
        text = raw[:BODY_SHOWN_BYTES].decode("utf-8", errors="replace")
        more = _(" … (%(n)d more bytes)") % {"n": len(raw) - BODY_SHOWN_BYTES} if len(raw) > BODY_SHOWN_BYTES else ""
        return format_html("<pre style='white-space: pre-wrap'>{}{}</pre>", text, more)

    @admin.action(description=_("Replay (process again; stored interactions are not doubled)"), permissions=["change"])
    def replay_selected(self, request, queryset):
        self._replay(request, list(queryset.values_list("pk", flat=True)))

    def _replay(self, request, event_ids):
        queued, purged = inbound_events_replay(event_ids=event_ids)
        if queued:
            self.message_user(request, _("Queued %(n)d event(s) for replay.") % {"n": len(queued)})
        if purged:
            self.message_user(
                request,
                _("%(n)d event(s) cannot be replayed: their body was purged (ids %(ids)s).")
                % {"n": len(purged), "ids": ", ".join(map(str, purged))},
                messages.WARNING,
            )
