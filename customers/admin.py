"""Customers in the admin: identities inline, the unified timeline on the customer's page, merge and undo."""

from django.contrib import admin, messages
from django.db.models import Count
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from crm.errors import Conflict
from customers.agent_page import agent_page_urls
from customers.models import Customer, Identity, Merge, MergeSuggestion, Segment
from customers.selectors import customer_list
from customers.services import customer_merge, customer_update, merge_suggestion_accept, merge_suggestion_dismiss, merge_undo
from interactions.selectors import channel_counts, timeline_queryset

TIMELINE_ON_PAGE = 50


class IdentityInline(admin.TabularInline):
    """Identities are written by ingestion and merges, which normalise them; here they are shown."""

    model = Identity
    fields = ("kind", "value", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False


class TombstoneFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return (("live", _("live")), ("merged", _("merged (tombstone)")))

    def queryset(self, request, queryset):
        if self.value() == "live":
            return queryset.filter(merged_into__isnull=True)
        if self.value() == "merged":
            return queryset.filter(merged_into__isnull=False)
        return queryset


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "customer_count")
    search_fields = ("slug", "name")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(customer_count=Count("customers"))

    @admin.display(description=_("customers"), ordering="customer_count")
    def customer_count(self, obj):
        return obj.customer_count


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ("__str__", "id", "identity_list", "segment_list", "created_at", "merged_into")
    list_filter = (TombstoneFilter, "segments", ("created_at", admin.DateFieldListFilter))
    search_fields = ("name",)
    search_help_text = _("Name, or any identity (email, phone, handle) — normalised the same way as on ingestion.")
    date_hierarchy = "created_at"
    inlines = [IdentityInline]
    actions = ["merge_selected"]
    list_select_related = ("merged_into",)
    fields = (
        "agent_page_link", "name", "segments", "attributes", "switching_cost",
        "channel_summary", "merged_into", "merged_at", "created_at", "timeline",
    )
    readonly_fields = ("agent_page_link", "channel_summary", "merged_into", "merged_at", "created_at", "timeline")
    filter_horizontal = ("segments",)

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("identities", "segments")

    def get_urls(self):
        return agent_page_urls() + super().get_urls()

    def get_search_results(self, request, queryset, search_term):
        if not search_term.strip():
            return queryset, False
        matching = customer_list(search=search_term.strip()).values("pk")
        return queryset.filter(pk__in=matching), False

    def has_delete_permission(self, request, obj=None):
        # Customers are merged, never deleted: a deletion would lose interactions and break old ids.
        return False

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.merged_into_id:
            return self.fields  # a tombstone is history; its survivor is the one to edit
        return self.readonly_fields

    def save_model(self, request, obj, form, change):
        if not change:
            super().save_model(request, obj, form, change)
            return
        data = form.cleaned_data
        customer_update(
            customer=obj,
            name=data.get("name"),
            attributes=data.get("attributes"),
            switching_cost=data.get("switching_cost"),
            segments=[segment.slug for segment in data.get("segments", [])],
            fields_set={"name", "attributes", "switching_cost", "segments"},
        )

    def save_related(self, request, form, formsets, change):
        if not change:
            super().save_related(request, form, formsets, change)
            return
        # An edit's segments were set by customer_update, so the form's m2m save is skipped.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    @admin.display(description=_("identities"))
    def identity_list(self, obj):
        return ", ".join(f"{i.kind}:{i.value}" for i in obj.identities.all()[:4])

    @admin.display(description=_("segments"))
    def segment_list(self, obj):
        return ", ".join(s.slug for s in obj.segments.all())

    @admin.display(description=_("agent's page"))
    def agent_page_link(self, obj):
        if obj.pk is None:
            return "—"
        url = reverse("admin:customers_customer_agent", args=[obj.pk])
        return format_html('<a class="button" href="{}">{}</a>', url, _("Open the agent's customer page"))

    @admin.display(description=_("interactions per channel"))
    def channel_summary(self, obj):
        if obj.pk is None:
            return "—"
        counts = channel_counts(customer_id=obj.pk)
        return ", ".join(f"{channel}: {n}" for channel, n in counts.items()) or "—"

    @admin.display(description=_("timeline (newest first)"))
    def timeline(self, obj):
        if obj.pk is None:
            return "—"
        rows = list(timeline_queryset(customer_id=obj.pk)[:TIMELINE_ON_PAGE])
        if not rows:
            return _("No interactions yet.")
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td dir=\"auto\">{}</td></tr>",
            (
                (
                    row.occurred_at.strftime("%Y-%m-%d %H:%M"),
                    row.channel,
                    row.kind,
                    row.direction,
                    row.author_type,
                    (row.subject + " — " if row.subject else "") + (row.body or "")[:200],
                )
                for row in rows
            ),
        )
        table = format_html(
            '<table class="crm-timeline"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th>'
            "<th>{}</th></tr></thead><tbody>{}</tbody></table>",
            _("when"), _("channel"), _("kind"), _("direction"), _("author"), _("content"), body,
        )
        changelist = reverse("admin:interactions_interaction_changelist") + f"?customer__id__exact={obj.pk}"
        return format_html('{}<p><a href="{}">{}</a></p>', table, changelist, _("All interactions of this customer"))

    @admin.action(description=_("Merge the selected customers (the oldest survives)"))
    def merge_selected(self, request, queryset):
        customers = sorted(queryset.filter(merged_into__isnull=True), key=lambda c: (c.created_at, c.pk))
        if len(customers) < 2:
            self.message_user(request, _("Select at least two live customers to merge."), messages.WARNING)
            return
        survivor, merged = customers[0], []
        for other in customers[1:]:
            try:
                customer_merge(survivor=survivor, merged=other, actor=request.user)
            except Conflict as exc:
                self.message_user(request, f"#{other.pk}: {exc.detail}", messages.ERROR)
            else:
                merged.append(other.pk)
        if merged:
            self.message_user(
                request,
                _("Merged %(merged)s into #%(survivor)s.")
                % {"merged": ", ".join(f"#{pk}" for pk in merged), "survivor": survivor.pk},
                messages.SUCCESS,
            )


@admin.register(Merge)
class MergeAdmin(admin.ModelAdmin):
    list_display = ("id", "merged", "survivor", "reason", "moved_summary", "created_at", "created_by", "undone_at")
    list_filter = ("reason", ("undone_at", admin.EmptyFieldListFilter), "created_at")
    list_select_related = ("merged", "survivor", "created_by")
    search_fields = ("=survivor__id", "=merged__id", "survivor__name", "merged__name")
    readonly_fields = [f.name for f in Merge._meta.fields]
    actions = ["undo_selected"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description=_("moved"))
    def moved_summary(self, obj):
        return ", ".join(f"{len(ids)} {name}" for name, ids in sorted(obj.moved.items()))

    @admin.action(description=_("Undo the selected merges"))
    def undo_selected(self, request, queryset):
        # Newest first: undoing a later merge first is what lets an earlier one over the same survivor go back.
        for merge in queryset.order_by("-created_at", "-id"):
            try:
                merge_undo(merge=merge, actor=request.user)
            except Conflict as exc:
                self.message_user(request, f"Merge #{merge.pk}: {exc.detail}", messages.ERROR)
            else:
                self.message_user(request, _("Undid merge #%(pk)s.") % {"pk": merge.pk}, messages.SUCCESS)


@admin.register(MergeSuggestion)
class MergeSuggestionAdmin(admin.ModelAdmin):
    list_display = ("id", "customer_a", "customer_b", "status", "evidence", "created_at", "decided_by", "merge")
    list_filter = ("status", "created_at")
    list_select_related = ("customer_a", "customer_b", "decided_by", "merge")
    readonly_fields = [f.name for f in MergeSuggestion._meta.fields]
    actions = ["accept_selected", "dismiss_selected"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def _decide(self, request, queryset, decide, done):
        for suggestion in queryset:
            try:
                decide(suggestion=suggestion, actor=request.user)
            except Conflict as exc:
                self.message_user(request, f"Suggestion #{suggestion.pk}: {exc.detail}", messages.ERROR)
            else:
                self.message_user(request, done % {"pk": suggestion.pk}, messages.SUCCESS)

    @admin.action(description=_("Accept: merge the pair (the older customer survives)"))
    def accept_selected(self, request, queryset):
        self._decide(request, queryset, merge_suggestion_accept, _("Accepted suggestion #%(pk)s."))

    @admin.action(description=_("Dismiss: they are different people"))
    def dismiss_selected(self, request, queryset):
        self._decide(request, queryset, merge_suggestion_dismiss, _("Dismissed suggestion #%(pk)s."))
