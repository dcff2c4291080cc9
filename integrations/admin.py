"""API tokens and outbound webhooks in the admin. Every write goes through integrations.services."""

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Q
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from crm.api import SCOPES
from integrations import services
from integrations.events import EVENT_TYPES
from integrations.models import ApiToken, WebhookAttempt, WebhookDelivery, WebhookSubscription

# --- API tokens ------------------------------------------------------------------------


class ApiTokenAddForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=[(scope, f"{scope} — {text}") for scope, text in SCOPES.items()],
        widget=forms.CheckboxSelectMultiple,
        help_text=_("What the integration may do; give only what it needs."),
    )

    class Meta:
        model = ApiToken
        fields = ("name", "scopes", "expires_at")

    def clean_expires_at(self):
        expires_at = self.cleaned_data.get("expires_at")
        if expires_at is not None and expires_at <= timezone.now():
            raise ValidationError(_("The expiry must be in the future."))
        return expires_at


class TokenStateFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return (("active", _("active")), ("revoked", _("revoked")), ("expired", _("expired")))

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True).filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        if self.value() == "expired":
            return queryset.filter(revoked_at__isnull=True, expires_at__lte=now)
        return queryset


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """A token is created here once (its raw value shown in a message, then never again) and revoked, not edited."""

    list_display = ("name", "prefix", "scope_list", "state", "created_at", "expires_at", "last_used_at", "created_by")
    list_filter = (TokenStateFilter,)
    search_fields = ("name", "prefix")
    list_select_related = ("created_by",)
    actions = ["revoke_selected"]
    readonly_fields = (
        "name", "prefix", "scope_list", "state", "created_by", "created_at", "expires_at", "last_used_at", "revoked_at",
    )

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = ApiTokenAddForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("name", "scopes", "expires_at")
        return self.readonly_fields

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly_fields

    def has_delete_permission(self, request, obj=None):
        # Revoked, never deleted: the row is the record of who could call the API and when it was last used.
        return False

    def save_model(self, request, obj, form, change):
        if change:
            return
        data = form.cleaned_data
        token, raw = services.api_token_create(
            name=data["name"], scopes=data["scopes"], created_by=request.user, expires_at=data.get("expires_at")
        )
        # The admin goes on with `obj` (log entry, redirect): make it the stored token.
        obj.pk = token.pk
        obj.__dict__.update({f.attname: getattr(token, f.attname) for f in ApiToken._meta.concrete_fields})
        obj._state.adding = False
        self.message_user(
            request,
            format_html(
                "{} <code>{}</code> {}",
                _("The token is:"),
                raw,
                _("Copy it now: it is shown this once and cannot be recovered."),
            ),
            messages.WARNING,
        )

    @admin.display(description=_("scopes"))
    def scope_list(self, obj):
        return ", ".join(obj.scopes) or "—"

    @admin.display(description=_("state"))
    def state(self, obj):
        if obj.revoked_at is not None:
            return _("revoked")
        if obj.expires_at is not None and obj.expires_at <= timezone.now():
            return _("expired")
        return _("active")

    @admin.action(description=_("Revoke the selected tokens"))
    def revoke_selected(self, request, queryset):
        revoked = [services.api_token_revoke(token=token) for token in queryset.filter(revoked_at__isnull=True)]
        self.message_user(
            request, _("Revoked %(n)d token(s); calls made with them answer 401 from now on.") % {"n": len(revoked)}
        )


# --- Webhook subscriptions ------------------------------------------------------------


class WebhookSubscriptionForm(forms.ModelForm):
    url = forms.URLField(max_length=2000, assume_scheme="https")
    event_types = forms.MultipleChoiceField(
        choices=[(name, name) for name in EVENT_TYPES],
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text=_("None ticked: every event type, including those added later."),
    )

    class Meta:
        model = WebhookSubscription
        fields = ("url", "event_types", "is_active", "description")

    def clean(self):
        cleaned = super().clean()
        # The same checks the API makes (SSRF guard on the URL); errors land on their fields.
        if cleaned.get("url"):
            services.webhook_url_validate(cleaned["url"])
        cleaned["event_types"] = services.event_types_validate(list(cleaned.get("event_types") or []))
        return cleaned


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(admin.ModelAdmin):
    form = WebhookSubscriptionForm
    list_display = ("url", "event_type_list", "is_active", "pending_count", "dead_count", "created_at")
    list_filter = ("is_active",)
    search_fields = ("url", "description")
    actions = ["rotate_secret"]
    readonly_fields = ("secret_state", "created_at", "updated_at", "deliveries_link")

    def get_fields(self, request, obj=None):
        fields = ["url", "event_types", "is_active", "description"]
        return fields if obj is None else fields + list(self.readonly_fields)

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                pending_count=Count("deliveries", filter=Q(deliveries__status=WebhookDelivery.Status.PENDING)),
                dead_count=Count("deliveries", filter=Q(deliveries__status=WebhookDelivery.Status.DEAD)),
            )
        )

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            services.webhook_subscription_update(
                subscription=obj,
                url=data["url"],
                event_types=data["event_types"],
                is_active=data["is_active"],
                description=data["description"],
            )
            return
        subscription = services.webhook_subscription_create(
            url=data["url"], event_types=data["event_types"], is_active=data["is_active"], description=data["description"]
        )
        obj.pk = subscription.pk
        obj.__dict__.update(
            {f.attname: getattr(subscription, f.attname) for f in WebhookSubscription._meta.concrete_fields}
        )
        obj._state.adding = False
        self.message_secret(request, subscription)

    def delete_model(self, request, obj):
        services.webhook_subscription_delete(subscription=obj)

    def delete_queryset(self, request, queryset):
        for subscription in queryset:
            services.webhook_subscription_delete(subscription=subscription)

    def message_secret(self, request, subscription, rotated=False):
        lead = _("New signing secret for %(url)s:") if rotated else _("Signing secret for %(url)s:")
        self.message_user(
            request,
            format_html(
                "{} <code>{}</code> {}",
                lead % {"url": subscription.url},
                subscription.secret,
                _("Copy it now: it is shown this once."),
            ),
            messages.WARNING,
        )

    @admin.action(description=_("Rotate the signing secret (the old one keeps signing for a while)"))
    def rotate_secret(self, request, queryset):
        for subscription in queryset:
            rotated = services.webhook_subscription_rotate_secret(subscription=subscription)
            self.message_secret(request, rotated, rotated=True)

    @admin.display(description=_("event types"))
    def event_type_list(self, obj):
        return ", ".join(obj.event_types) or _("all")

    @admin.display(description=_("pending"), ordering="pending_count")
    def pending_count(self, obj):
        return obj.pending_count

    @admin.display(description=_("dead"), ordering="dead_count")
    def dead_count(self, obj):
        return obj.dead_count

    @admin.display(description=_("secret"))
    def secret_state(self, obj):
        # The secret itself is shown once, on creation or rotation; here only whether a rotation is running.
        if obj.previous_secret and obj.previous_secret_expires_at and obj.previous_secret_expires_at > timezone.now():
            return _("rotated; the previous secret also signs until %(when)s") % {
                "when": timezone.localtime(obj.previous_secret_expires_at).strftime("%Y-%m-%d %H:%M %Z")
            }
        return _("set (shown only when created or rotated)")

    @admin.display(description=_("deliveries"))
    def deliveries_link(self, obj):
        url = reverse("admin:integrations_webhookdelivery_changelist") + f"?subscription__id__exact={obj.pk}"
        return format_html('<a href="{}">{}</a>', url, _("Deliveries of this subscription"))


# --- Webhook deliveries ---------------------------------------------------------------


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    fields = ("number", "attempted_at", "status_code", "error", "response_excerpt", "duration_ms")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("number",)

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """Every delivery with its attempts; redelivery sends the same webhook-id and body again."""

    list_display = (
        "webhook_id", "event_type", "subscription", "status", "attempt_count", "last_status_code",
        "next_attempt_at", "created_at",
    )
    list_filter = ("status", "event_type", ("created_at", admin.DateFieldListFilter))
    search_fields = ("webhook_id", "event_id")
    list_select_related = ("subscription",)
    date_hierarchy = "created_at"
    inlines = [WebhookAttemptInline]
    actions = ["redeliver"]
    fields = (
        "subscription", "webhook_id", "event_id", "event_type", "status", "attempt_count", "next_attempt_at",
        "last_status_code", "last_error", "delivered_at", "created_at", "payload",
    )
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).defer("body")

    def get_urls(self):
        return [
            path(
                "<int:object_id>/redeliver/",
                self.admin_site.admin_view(self.redeliver_view),
                name="integrations_webhookdelivery_redeliver",
            ),
            *super().get_urls(),
        ]

    def redeliver_view(self, request, object_id):
        """The Redeliver button of a delivery's page (POST only)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        delivery = get_object_or_404(WebhookDelivery, pk=object_id)
        if not self.has_change_permission(request, delivery):
            raise PermissionDenied
        services.webhook_delivery_redeliver(delivery=delivery)
        self.message_user(request, _("Queued %(webhook_id)s again.") % {"webhook_id": delivery.webhook_id})
        return HttpResponseRedirect(reverse("admin:integrations_webhookdelivery_change", args=[delivery.pk]))

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description=_("payload"))
    def payload(self, obj):
        try:
            text = json.dumps(json.loads(obj.body), indent=2, ensure_ascii=False)
        except ValueError:
            text = obj.body
        return format_html('<pre dir="auto">{}</pre>', text)

    @admin.action(description=_("Redeliver (same webhook-id and body, a fresh attempt budget)"))
    def redeliver(self, request, queryset):
        count = 0
        for delivery in queryset:
            services.webhook_delivery_redeliver(delivery=delivery)
            count += 1
        self.message_user(request, _("Queued %(n)d delivery(ies) again.") % {"n": count})
