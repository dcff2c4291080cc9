"""Admin pages: intent rules are edited here; surveys, journeys and snapshots are read (they are computed)."""

from django.contrib import admin, messages

from crm.admin import ReadOnlyAdmin
from metrics import services
from metrics.models import CustomerSnapshot, IntentRule, Journey, SurveyResponse


@admin.register(IntentRule)
class IntentRuleAdmin(admin.ModelAdmin):
    list_display = ["intent", "priority", "is_active", "keyword_preview", "created_at"]
    list_filter = ["is_active", "intent"]
    list_editable = ["priority", "is_active"]
    search_fields = ["intent", "keywords"]
    fields = ["intent", "keywords", "priority", "is_active"]

    @admin.display(description="keywords")
    def keyword_preview(self, obj):
        words = obj.keyword_list
        return ", ".join(words[:5]) + (" …" if len(words) > 5 else "")


@admin.register(SurveyResponse)
class SurveyResponseAdmin(ReadOnlyAdmin):
    list_display = ["id", "kind", "score", "respondent", "customer", "conversation_id", "channel", "answered_at"]
    list_filter = ["kind", "respondent", "channel", "answered_at"]
    search_fields = ["question", "comment", "external_id"]
    raw_id_fields = ["customer", "conversation", "interaction", "agent"]
    date_hierarchy = "answered_at"
    list_select_related = ["customer"]


@admin.register(Journey)
class JourneyAdmin(ReadOnlyAdmin):
    list_display = ["customer", "seq", "started_at", "first_contact_at", "closed_at", "tth_hours", "opening_signal",
                    "closing_signal", "channel", "customer_interactions", "channel_switches"]
    list_filter = ["opening_signal", "closing_signal", "channel", ("closed_at", admin.EmptyFieldListFilter)]
    raw_id_fields = ["customer"]
    date_hierarchy = "started_at"
    list_select_related = ["customer"]

    @admin.display(description="TTH (h)", ordering="tth_seconds")
    def tth_hours(self, obj):
        return round(obj.tth_seconds / 3600, 1) if obj.tth_seconds is not None else None


@admin.register(CustomerSnapshot)
class CustomerSnapshotAdmin(ReadOnlyAdmin):
    list_display = ["customer", "unhappy_since", "journeys", "median_tth_seconds", "visits", "last_visit_at",
                    "at_risk", "churned", "latest_nps", "csat_mean", "computed_at"]
    list_filter = ["at_risk", "churned", ("unhappy_since", admin.EmptyFieldListFilter)]
    raw_id_fields = ["customer"]
    list_select_related = ["customer"]
    actions = ["recompute"]

    @admin.action(description="Recompute the selected customers now")
    def recompute(self, request, queryset):
        count = services.customers_recompute(customer_ids=list(queryset.values_list("customer_id", flat=True)))
        services.rollups_rebuild_dirty()
        self.message_user(request, f"Recomputed {count} customer(s).", messages.SUCCESS)

    def has_change_permission(self, request, obj=None):
        # Actions need the change permission; the form stays read-only (no editable fields).
        return request.user.has_perm("metrics.change_customersnapshot") and obj is None
