"""Metrics data in the admin: win-back offers (managers create them; granting is on the dashboard's
at-risk and segment pages), and view-only lists of the grants, surveys sent, answers and snapshots."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from loyalty.models import MetricSnapshot, SurveyResponse, SurveySend, WinbackGrant, WinbackOffer, WinbackOfferKind

from .base import SameProgramModelForm, ViewOnlyAdmin, admin_link, points


class WinbackOfferForm(SameProgramModelForm):
    program_scoped_fields = ("asset", "reward")

    class Meta:
        model = WinbackOffer
        fields = ("program", "name", "kind", "points", "asset", "reward", "message", "active")

    def clean(self):
        data = super().clean()
        kind = data.get("kind")
        if kind == WinbackOfferKind.POINTS:
            if not data.get("points"):
                self.add_error("points", "Bonus points need a number of points.")
            if data.get("reward"):
                self.add_error("reward", "Leave empty for bonus points.")
            if data.get("asset") is not None and data["asset"].kind != "points":
                self.add_error("asset", "Choose a point currency.")
        elif kind == WinbackOfferKind.REWARD:
            if not data.get("reward"):
                self.add_error("reward", "Choose the reward to give.")
            if data.get("points"):
                self.add_error("points", "Leave empty for a reward.")
            data["points"] = None
        return data


@admin.register(WinbackOffer)
class WinbackOfferAdmin(admin.ModelAdmin):
    form = WinbackOfferForm
    list_display = ("name", "program", "kind", "what", "active", "granted", "created_at")
    list_filter = ("program", "kind", "active")
    list_select_related = ("program", "reward", "asset")
    search_fields = ("name",)
    readonly_fields = ("created_at",)

    def has_delete_permission(self, request, obj=None):
        return False  # grants point at offers: deactivate instead

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.grants.exists():  # what was given stays what it was
            return ("program", "kind", "points", "asset", "reward", "created_at")
        return self.readonly_fields

    @admin.display(description="offer")
    def what(self, obj):
        return obj.description

    @admin.display(description="granted")
    def granted(self, obj):
        url = reverse("admin:loyalty_winbackgrant_changelist") + f"?offer__id__exact={obj.pk}"
        return format_html('<a href="{}">{}</a>', url, points(obj.grants.count()))


@admin.register(WinbackGrant)
class WinbackGrantAdmin(ViewOnlyAdmin):
    list_display = ("granted_at", "offer", "member_link", "audience", "points", "reward_claim", "granted_by")
    list_filter = ("offer", "audience")
    list_select_related = ("offer", "member", "reward_claim", "granted_by")
    search_fields = ("=member__external_id",)
    ordering = ("-granted_at", "-id")
    date_hierarchy = "granted_at"

    @admin.display(description="member", ordering="member__external_id")
    def member_link(self, obj):
        return admin_link(obj.member)


@admin.register(SurveySend)
class SurveySendAdmin(ViewOnlyAdmin):
    list_display = ("sent_at", "kind", "survey_id", "member", "program")
    list_filter = ("kind", "program")
    list_select_related = ("member", "program")
    search_fields = ("=member__external_id", "=survey_id")
    ordering = ("-sent_at", "-id")


@admin.register(SurveyResponse)
class SurveyResponseAdmin(ViewOnlyAdmin):
    list_display = ("responded_at", "kind", "score", "member", "survey_id", "comment_start")
    list_filter = ("kind", "score", "program")
    list_select_related = ("member",)
    search_fields = ("=member__external_id", "=survey_id", "comment")
    ordering = ("-responded_at", "-id")

    @admin.display(description="comment")
    def comment_start(self, obj):
        return (obj.comment[:80] + "…") if len(obj.comment) > 80 else obj.comment or "-"


@admin.register(MetricSnapshot)
class MetricSnapshotAdmin(ViewOnlyAdmin):
    list_display = ("end", "start", "program", "full", "customers", "retention", "computed_at", "seconds_taken")
    list_filter = ("program",)
    ordering = ("-end", "-start")
    fields = ("program", "start", "end", "computed_at", "seconds", "at_risk", "summary", "segments", "cohorts", "flows")

    @admin.display(description="full", boolean=True)
    def full(self, obj):
        return obj.cohorts is not None

    @admin.display(description="active customers")
    def customers(self, obj):
        return points(obj.summary.get("customers_at_end"))

    @admin.display(description="retention %")
    def retention(self, obj):
        return obj.summary.get("retention_rate")

    @admin.display(description="seconds")
    def seconds_taken(self, obj):
        return f"{obj.seconds:.2f}"
