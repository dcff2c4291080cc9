"""Service standards in the admin.

CX leads (group "CX leads") edit the working copy, publish it as an immutable
version, retire it and decide proposals; agents (group "Agents") read,
acknowledge, propose and comment. Every action calls a service; the services
check the publish/decide permissions again, so the admin is not the only guard.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from crm.admin import ReadOnlyAdmin
from interactions.models import Channel
from standards import selectors, services
from standards.business_time import Calendar, CalendarInvalid
from standards.models import (
    Acknowledgement,
    BusinessCalendar,
    CannedResponse,
    CannedResponseUse,
    CannedResponseVariant,
    Evaluation,
    Holiday,
    Proposal,
    ProposalComment,
    Standard,
    StandardVersion,
)


def _errors_text(exc: ValidationError) -> str:
    if hasattr(exc, "message_dict"):
        return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
    return " ".join(exc.messages)


# --- Business hours ------------------------------------------------------------------


class HolidayInline(admin.TabularInline):
    model = Holiday
    extra = 1


class BusinessCalendarForm(forms.ModelForm):
    class Meta:
        model = BusinessCalendar
        fields = ["name", "time_zone", "schedule"]

    def clean(self):
        cleaned = super().clean()
        try:
            Calendar.from_dict({"time_zone": cleaned.get("time_zone"), "schedule": cleaned.get("schedule") or {}})
        except CalendarInvalid as exc:
            raise ValidationError(str(exc)) from None
        return cleaned


@admin.register(BusinessCalendar)
class BusinessCalendarAdmin(admin.ModelAdmin):
    form = BusinessCalendarForm
    list_display = ("name", "time_zone", "weekly_hours", "holiday_count")
    inlines = [HolidayInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(holiday_count=Count("holidays"))

    @admin.display(description=_("holidays"), ordering="holiday_count")
    def holiday_count(self, obj):
        return obj.holiday_count

    @admin.display(description=_("weekly schedule"))
    def weekly_hours(self, obj):
        return "; ".join(
            f"{day}: " + ", ".join(f"{a}–{b}" for a, b in intervals) for day, intervals in sorted(obj.schedule.items())
        )


# --- Standards ------------------------------------------------------------------------


class StandardForm(forms.ModelForm):
    channels = forms.MultipleChoiceField(
        choices=Channel.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Channels it covers; none ticked covers every channel."),
    )

    class Meta:
        model = Standard
        fields = [
            "title", "description", "why", "goal", "how", "metric", "target", "channels", "segments", "calendar",
            "effective_from", "effective_to",
        ]


class PublishForm(forms.Form):
    reason = forms.CharField(label=_("Why this version is published"), widget=forms.Textarea(attrs={"rows": 3}))
    effective_from = forms.DateTimeField(
        label=_("In force from"), required=False, help_text=_("Empty: the standard's own start, or now.")
    )


class ReasonForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), widget=forms.Textarea(attrs={"rows": 3}))


@admin.register(Standard)
class StandardAdmin(admin.ModelAdmin):
    form = StandardForm
    list_display = ("title", "metric", "target", "channel_list", "status", "version_number", "acknowledged",
                    "effective_from", "effective_to")
    list_filter = ("status", "metric", "segments")
    search_fields = ("title", "description")
    list_select_related = ("current_version",)
    filter_horizontal = ("segments",)
    readonly_fields = ("status", "current_version", "created_by", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("title", "description", "status", "current_version")}),
        (_("Why, what for, and how"), {"fields": ("why", "goal", "how")}),
        (_("The promise"), {"fields": ("metric", "target", "channels", "segments", "calendar")}),
        (_("In force"), {"fields": ("effective_from", "effective_to")}),
        (_("Record"), {"classes": ("collapse",), "fields": ("created_by", "created_at", "updated_at")}),
    )

    def has_delete_permission(self, request, obj=None):
        # Versions, acknowledgements and evaluations hang off a standard: retire it instead.
        return False

    def get_list_display(self, request):
        # The acknowledgement column for every row from two queries, counted once per request
        # (a closure, not an attribute: the admin instance is shared by concurrent requests).
        counted = []

        @admin.display(description=_("acknowledged"))
        def acknowledged(obj):
            if obj.status != Standard.Status.ACTIVE:
                return "—"
            if not counted:
                counted.append(selectors.standards_acknowledgement_counts())
            counts, expected = counted[0]
            return f"{counts.get(obj.pk, 0)} / {expected}"

        return [acknowledged if name == "acknowledged" else name for name in self.list_display]

    @admin.display(description=_("acknowledged"))
    def acknowledged(self, obj):
        """One standard's count; the changelist swaps in the per-request counter above."""
        if obj.status != Standard.Status.ACTIVE:
            return "—"
        counts, expected = selectors.standards_acknowledgement_counts()
        return f"{counts.get(obj.pk, 0)} / {expected}"

    @admin.display(description=_("channels"))
    def channel_list(self, obj):
        return ", ".join(obj.channels) or _("all")

    @admin.display(description=_("version"))
    def version_number(self, obj):
        return obj.current_version.number if obj.current_version_id else "—"

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        info = "standards_standard"
        return [
            path("<int:pk>/publish/", wrap(self.publish_view), name=f"{info}_publish"),
            path("<int:pk>/retire/", wrap(self.retire_view), name=f"{info}_retire"),
            path("<int:pk>/versions/", wrap(self.versions_view), name=f"{info}_versions"),
            path("<int:pk>/acknowledge/", wrap(self.acknowledge_view), name=f"{info}_acknowledge"),
        ] + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        standard = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if standard is not None:
            unacknowledged = list(selectors.standard_unacknowledged_users(standard=standard))
            extra.update(
                standard_obj=standard,
                can_publish=request.user.has_perm("standards.publish_standard"),
                can_acknowledge=request.user.has_perm("standards.add_acknowledgement"),
                can_propose=request.user.has_perm("standards.add_proposal"),
                unacknowledged=unacknowledged,
                has_acknowledged=standard.pk in selectors.user_acknowledged(user=request.user, standard_ids=[standard.pk]),
                open_proposals=list(selectors.proposal_list(standard_id=standard.pk, status=Proposal.Status.OPEN)),
                proposal_add_url=reverse("admin:standards_proposal_add") + f"?standard={standard.pk}",
            )
        return super().change_view(request, object_id, form_url, extra)

    def _standard(self, request, pk, perm):
        standard = get_object_or_404(Standard, pk=pk)
        if perm and not request.user.has_perm(perm):
            raise PermissionDenied
        return standard

    def _change_url(self, standard):
        return reverse("admin:standards_standard_change", args=[standard.pk])

    def _form_page(self, request, standard, form, title, button, template="admin/standards/standard/action_form.html"):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": standard,
            "title": title,
            "form": form,
            "button": button,
            "current": standard.current_version,
        }
        return TemplateResponse(request, template, context)

    def publish_view(self, request, pk):
        standard = self._standard(request, pk, "standards.publish_standard")
        form = PublishForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                version = services.standard_publish(
                    standard=standard, actor=request.user, reason=form.cleaned_data["reason"],
                    effective_from=form.cleaned_data["effective_from"],
                )
            except ValidationError as exc:
                form.add_error(None, _errors_text(exc))
            else:
                self.message_user(
                    request, _("Published version %(n)s of “%(title)s”.") % {"n": version.number, "title": standard},
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(self._change_url(standard))
        return self._form_page(request, standard, form, _("Publish “%s”") % standard, _("Publish"))

    def retire_view(self, request, pk):
        standard = self._standard(request, pk, "standards.publish_standard")
        form = ReasonForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                services.standard_retire(standard=standard, actor=request.user, reason=form.cleaned_data["reason"])
            except ValidationError as exc:
                form.add_error(None, _errors_text(exc))
            else:
                self.message_user(request, _("Retired “%s”.") % standard, messages.SUCCESS)
                return HttpResponseRedirect(self._change_url(standard))
        return self._form_page(request, standard, form, _("Retire “%s”") % standard, _("Retire"))

    def acknowledge_view(self, request, pk):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        standard = self._standard(request, pk, "standards.add_acknowledgement")
        try:
            ack = services.acknowledgement_create(standard=standard, user=request.user)
        except ValidationError as exc:
            self.message_user(request, _errors_text(exc), messages.ERROR)
        else:
            self.message_user(
                request, _("You acknowledged version %(n)s of “%(title)s”.") % {"n": ack.version.number, "title": standard},
                messages.SUCCESS,
            )
        return HttpResponseRedirect(self._change_url(standard))

    def versions_view(self, request, pk):
        standard = self._standard(request, pk, "standards.view_standardversion")
        versions = list(selectors.standard_versions(standard_id=standard.pk))
        by_number = {v.number: v for v in versions}
        diff, old, new = None, None, None
        if versions:
            try:
                new = by_number.get(int(request.GET.get("b", versions[0].number)))
                old = by_number.get(int(request.GET.get("a", new.number - 1 if new else 0)))
            except (TypeError, ValueError):
                new = None
            if new is not None:
                diff = selectors.version_diff(old=old, new=new)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": standard,
            "title": _("Versions of “%s”") % standard,
            "versions": versions,
            "old": old,
            "new": new,
            "diff": diff,
        }
        return TemplateResponse(request, "admin/standards/standard/versions.html", context)


@admin.register(StandardVersion)
class StandardVersionAdmin(ReadOnlyAdmin):
    list_display = ("standard", "number", "status", "author", "published_at", "effective_from", "effective_to", "reason")
    list_filter = ("status",)
    list_select_related = ("standard", "author")
    search_fields = ("standard__title", "reason")


@admin.register(Acknowledgement)
class AcknowledgementAdmin(ReadOnlyAdmin):
    list_display = ("user", "standard", "version_number", "acknowledged_at")
    list_filter = ("version__standard",)
    list_select_related = ("user", "version", "version__standard")

    @admin.display(description=_("standard"))
    def standard(self, obj):
        return obj.version.standard

    @admin.display(description=_("version"))
    def version_number(self, obj):
        return obj.version.number


# --- Proposals ----------------------------------------------------------------------------


class ProposalForm(forms.ModelForm):
    proposed_channels = forms.MultipleChoiceField(
        label=_("Proposed channels"), choices=Channel.choices, required=False, widget=forms.CheckboxSelectMultiple,
        help_text=_("Tick none to leave the channels as they are."),
    )

    class Meta:
        model = Proposal
        fields = ["standard", "kind", "reasoning", "proposed_description", "proposed_why", "proposed_goal",
                  "proposed_how", "proposed_target", "proposed_channels"]


class CommentForm(forms.Form):
    body = forms.CharField(label=_("Comment"), widget=forms.Textarea(attrs={"rows": 3}))


class DecisionForm(forms.Form):
    reason = forms.CharField(label=_("Reason for the decision"), widget=forms.Textarea(attrs={"rows": 3}))


@admin.register(Proposal)
class ProposalAdmin(admin.ModelAdmin):
    form = ProposalForm
    list_display = ("__str__", "standard", "kind", "status", "author", "created_at", "comment_count", "produced")
    list_filter = ("status", "kind", "standard")
    search_fields = ("reasoning", "standard__title")
    readonly_fields = ("author", "created_at", "status", "decided_by", "decided_at", "decision_reason",
                       "produced_version_link")

    def get_queryset(self, request):
        return selectors.proposal_list()

    def get_fields(self, request, obj=None):
        fields = list(ProposalForm.Meta.fields)
        if obj is not None:
            fields += list(self.readonly_fields)
        return fields

    def has_change_permission(self, request, obj=None):
        # A proposal is a record of what someone asked: comment on it or decide it, never rewrite it.
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description=_("comments"), ordering="comment_count")
    def comment_count(self, obj):
        return obj.comment_count

    @admin.display(description=_("version produced"))
    def produced(self, obj):
        return f"v{obj.produced_version.number}" if obj.produced_version_id else "—"

    @admin.display(description=_("version produced"))
    def produced_version_link(self, obj):
        if not obj.produced_version_id:
            return "—"
        url = reverse("admin:standards_standard_versions", args=[obj.standard_id]) + f"?b={obj.produced_version.number}"
        return format_html('<a href="{}">v{}</a>', url, obj.produced_version.number)

    def save_model(self, request, obj, form, change):
        data = {f: form.cleaned_data.get(f) for f in ProposalForm.Meta.fields}
        proposed = {k: v for k, v in data.items() if k.startswith("proposed_") and v not in (None, "", [])}
        created = services.proposal_create(
            standard=data["standard"], author=request.user, kind=data["kind"], reasoning=data["reasoning"], **proposed
        )
        obj.pk = created.pk
        obj.refresh_from_db()

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/comment/", wrap(self.comment_view), name="standards_proposal_comment"),
            path("<int:pk>/decide/", wrap(self.decide_view), name="standards_proposal_decide"),
        ] + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        proposal = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if proposal is not None:
            extra.update(
                proposal=proposal,
                comments=list(proposal.comments.select_related("author")),
                comment_form=CommentForm(),
                decision_form=DecisionForm(),
                can_comment=request.user.has_perm("standards.add_proposalcomment"),
                can_decide=request.user.has_perm("standards.decide_proposal") and proposal.status == Proposal.Status.OPEN,
                current=proposal.standard.current_version,
            )
        return super().change_view(request, object_id, form_url, extra)

    def _change_url(self, proposal):
        return reverse("admin:standards_proposal_change", args=[proposal.pk])

    def comment_view(self, request, pk):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not request.user.has_perm("standards.add_proposalcomment"):
            raise PermissionDenied
        proposal = get_object_or_404(Proposal, pk=pk)
        form = CommentForm(request.POST)
        if form.is_valid():
            services.proposal_comment_create(proposal=proposal, author=request.user, body=form.cleaned_data["body"])
            self.message_user(request, _("Comment added."), messages.SUCCESS)
        else:
            self.message_user(request, _("A comment needs some text."), messages.ERROR)
        return HttpResponseRedirect(self._change_url(proposal))

    def decide_view(self, request, pk):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not request.user.has_perm("standards.decide_proposal"):
            raise PermissionDenied
        proposal = get_object_or_404(Proposal, pk=pk)
        form = DecisionForm(request.POST)
        decision = request.POST.get("decision")
        if not form.is_valid() or decision not in ("accept", "reject"):
            self.message_user(request, _("Choose accept or reject and give a reason."), messages.ERROR)
            return HttpResponseRedirect(self._change_url(proposal))
        decide = services.proposal_accept if decision == "accept" else services.proposal_reject
        try:
            proposal = decide(proposal=proposal, actor=request.user, reason=form.cleaned_data["reason"])
        except ValidationError as exc:
            self.message_user(request, _errors_text(exc), messages.ERROR)
        else:
            if proposal.produced_version_id:
                self.message_user(
                    request, _("Accepted: version %(n)s of “%(title)s” is published.")
                    % {"n": proposal.produced_version.number, "title": proposal.standard}, messages.SUCCESS,
                )
            else:
                self.message_user(request, _("Proposal %s.") % proposal.status, messages.SUCCESS)
        return HttpResponseRedirect(self._change_url(proposal))


@admin.register(ProposalComment)
class ProposalCommentAdmin(ReadOnlyAdmin):
    list_display = ("proposal", "author", "created_at", "body")
    list_select_related = ("proposal", "proposal__standard", "author")


# --- Compliance -----------------------------------------------------------------------------


@admin.register(Evaluation)
class EvaluationAdmin(ReadOnlyAdmin):
    list_display = ("subject", "subject_id", "standard", "version_number", "channel", "status", "started_at", "due_at",
                    "completed_at", "elapsed_seconds", "late_seconds")
    list_filter = ("status", "subject", "channel", "standard")
    list_select_related = ("standard", "version")
    date_hierarchy = "started_at"

    @admin.display(description=_("version"))
    def version_number(self, obj):
        return obj.version.number


# --- Canned responses --------------------------------------------------------------------------


class VariantInline(admin.TabularInline):
    model = CannedResponseVariant
    extra = 1


@admin.register(CannedResponse)
class CannedResponseAdmin(admin.ModelAdmin):
    list_display = ("title", "standard", "variant_channels", "use_count", "is_active", "updated_at")
    list_filter = ("is_active", "standard")
    search_fields = ("title", "keywords", "body", "variants__body")
    inlines = [VariantInline]

    def get_queryset(self, request):
        return (
            super().get_queryset(request).select_related("standard").prefetch_related("variants")
            .annotate(use_count=Count("uses", distinct=True))
        )

    @admin.display(description=_("channel variants"))
    def variant_channels(self, obj):
        return ", ".join(v.channel for v in obj.variants.all()) or "—"

    @admin.display(description=_("uses"), ordering="use_count")
    def use_count(self, obj):
        return obj.use_count


@admin.register(CannedResponseUse)
class CannedResponseUseAdmin(ReadOnlyAdmin):
    list_display = ("response", "channel", "agent", "interaction", "used_at")
    list_filter = ("channel", "response")
    list_select_related = ("response", "agent", "interaction")
