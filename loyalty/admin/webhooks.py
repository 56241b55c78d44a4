"""Webhooks: staff register endpoints per program (URL, events, a generated secret), rotate the
secret (the old one keeps signing for 24 hours), and read the delivery log with a resend action."""

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.utils.html import format_html

from loyalty.models import WEBHOOK_EVENTS, WebhookDelivery, WebhookEndpoint
from loyalty.services.audit import audit_record, staff_require
from loyalty.services.webhooks import _new_secret, webhook_resend, webhook_secret_rotate

from .base import AuditedConfigMixin, ViewOnlyAdmin, admin_link, changelist_url


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(max_length=500, assume_scheme="https")
    events = forms.MultipleChoiceField(
        choices=[(e, e) for e in WEBHOOK_EVENTS],
        widget=forms.CheckboxSelectMultiple,
        help_text="The event types sent to this URL.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ("program", "url", "events", "active")

    def clean_url(self):
        url = self.cleaned_data["url"]
        if not url.startswith(("https://", "http://")):
            raise forms.ValidationError("An http(s) URL.")
        return url


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(AuditedConfigMixin, admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = ("url", "events_display", "active", "created_at", "deliveries_link", "program")
    list_filter = ("active", "program")
    list_select_related = ("program",)
    search_fields = ("url",)
    actions = ("rotate_secret",)

    def get_fields(self, request, obj=None):
        fields = ["program", "url", "events", "active"]
        if obj is None:
            return fields
        secret = ["secret_display"] if self.has_change_permission(request, obj) else []  # not for viewers
        return [*fields, *secret, "previous_secret_until", "created_at"]

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else ("program", "secret_display", "previous_secret_until", "created_at")

    @admin.display(description="signing secret")
    def secret_display(self, obj):
        """Shown to staff who may change the endpoint (they set it up on the receiving side)."""
        return format_html("<code>{}</code>", obj.secret)

    @admin.display(description="events")
    def events_display(self, obj):
        return ", ".join(obj.events)

    @admin.display(description="deliveries")
    def deliveries_link(self, obj):
        return format_html('<a href="{}">Log</a>', changelist_url(WebhookDelivery, endpoint__id__exact=obj.pk))

    def save_model(self, request, obj, form, change):
        if not change:
            obj.secret = _new_secret()
        super().save_model(request, obj, form, change)

    @admin.action(description="Rotate the signing secret (the old one signs too for 24 hours)", permissions=["change"])
    def rotate_secret(self, request, queryset):
        staff_require(request.user, "loyalty.change_webhookendpoint", "rotate webhook secrets")
        for endpoint in queryset:
            with transaction.atomic():
                webhook_secret_rotate(endpoint=endpoint)
                audit_record(
                    actor=request.user,
                    action="webhookendpoint.rotate_secret",
                    obj=endpoint,
                    program=endpoint.program,
                    after={"previous_secret_until": endpoint.previous_secret_until.isoformat()},
                )
            self.log_change(request, endpoint, "Rotated the signing secret")
            self.message_user(
                request, f"{endpoint}: new secret; the old one also signs until {endpoint.previous_secret_until}."
            )


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ViewOnlyAdmin):
    list_display = (
        "created_at",
        "event_type",
        "event_id",
        "endpoint_link",
        "status",
        "attempts",
        "last_status_code",
        "last_error",
        "next_attempt_at",
        "delivered_at",
    )
    list_filter = ("status", "event__type", "endpoint")
    list_select_related = ("event", "endpoint")
    search_fields = ("=event__id",)
    search_help_text = "The event's number (evt_123: 123)."
    ordering = ("-created_at", "-id")
    actions = ("resend",)
    fields = (
        "endpoint",
        "event",
        "status",
        "attempts",
        "last_status_code",
        "last_error",
        "next_attempt_at",
        "created_at",
        "delivered_at",
    )

    def has_resend_permission(self, request):
        return request.user.has_perm("loyalty.change_webhookendpoint")

    @admin.display(description="event", ordering="event__type")
    def event_type(self, obj):
        return obj.event.type

    @admin.display(description="event id")
    def event_id(self, obj):
        return f"evt_{obj.event_id}"

    @admin.display(description="endpoint")
    def endpoint_link(self, obj):
        return admin_link(obj.endpoint, obj.endpoint.url)

    @admin.action(description="Resend selected deliveries now (same event id)", permissions=["resend"])
    def resend(self, request, queryset):
        count = 0
        for delivery in queryset:
            webhook_resend(delivery=delivery)
            count += 1
        self.message_user(request, f"{count} deliver{'ies' if count != 1 else 'y'} queued again.", messages.SUCCESS)
