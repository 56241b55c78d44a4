"""Badges and challenges: staff define them as data (a criterion kind, a target and its parameter),
refused with a message when they could never be met; awarded badges and challenge progress are
listed view-only; a challenge's progress is recomputed on demand after an edit."""

from django.contrib import admin, messages
from django.db.models import Count
from django.utils import timezone
from django.utils.html import format_html

from loyalty.models import Badge, BadgeAward, Challenge, ChallengeProgress
from loyalty.services.gamification import challenge_recompute

from .base import AuditedConfigMixin, SameProgramModelForm, ViewOnlyAdmin, admin_link, changelist_url, points

CRITERION = ("kind", "target", "category", "event_type", "tier", "counts")


class BadgeForm(SameProgramModelForm):
    program_scoped_fields = ("tier",)

    class Meta:
        model = Badge
        fields = ("program", "code", "name", "description", "icon", *CRITERION)
        fields += ("starts_at", "ends_at", "points", "active", "position")


@admin.register(Badge)
class BadgeAdmin(AuditedConfigMixin, admin.ModelAdmin):
    form = BadgeForm
    list_display = ("name", "code", "kind", "target", "points", "active", "awarded", "program")
    list_editable = ("active",)
    list_filter = ("active", "kind", "program")
    list_select_related = ("program",)
    search_fields = ("code", "name")
    fieldsets = (
        (None, {"fields": ("program", "code", "name", "description", "icon", "active", "position")}),
        ("Criterion", {"fields": CRITERION, "description": "What a member must reach (checked when you save)."}),
        ("Window and reward", {"fields": ("starts_at", "ends_at", "points")}),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(award_count=Count("awards"))

    @admin.display(description="awarded", ordering="award_count")
    def awarded(self, obj):
        return format_html(
            '<a href="{}">{}</a>', changelist_url(BadgeAward, badge__id__exact=obj.pk), points(obj.award_count)
        )


class ChallengeForm(SameProgramModelForm):
    program_scoped_fields = ("tier", "reward_badge")

    class Meta:
        model = Challenge
        fields = ("program", "code", "name", "description", "starts_at", "ends_at", "repeat", "opt_in", *CRITERION)
        fields += ("reward_points", "reward_badge", "leaderboard_size", "active")


@admin.register(Challenge)
class ChallengeAdmin(AuditedConfigMixin, admin.ModelAdmin):
    form = ChallengeForm
    list_display = (
        "name",
        "code",
        "starts_at",
        "ends_at",
        "kind",
        "target",
        "reward_points",
        "active",
        "progress_link",
    )
    list_filter = ("active", "kind", "opt_in", "program")
    list_select_related = ("program",)
    search_fields = ("code", "name")
    actions = ("recompute",)
    readonly_fields = ("closed_at",)
    fieldsets = (
        (None, {"fields": ("program", "code", "name", "description", "active")}),
        ("Window", {"fields": ("starts_at", "ends_at", "repeat", "opt_in", "closed_at")}),
        ("Goal", {"fields": CRITERION}),
        ("Reward", {"fields": ("reward_points", "reward_badge", "leaderboard_size")}),
    )

    @admin.display(description="progress")
    def progress_link(self, obj):
        return format_html('<a href="{}">Progress</a>', changelist_url(ChallengeProgress, challenge__id__exact=obj.pk))

    @admin.action(description="Recompute progress of the selected challenges", permissions=["change"])
    def recompute(self, request, queryset):
        """After an edit: every possible participant evaluated as live evaluation would."""
        now = timezone.now()
        for challenge in queryset.select_related("program", "tier", "reward_badge"):
            if challenge.closed_at:
                self.message_user(request, f"{challenge}: closed, its results are final.", messages.WARNING)
                continue
            count = challenge_recompute(challenge=challenge, now=now)
            self.log_change(request, challenge, f"Recomputed the progress of {count} members")
            self.message_user(request, f"{challenge}: progress of {count} members recomputed.", messages.SUCCESS)


@admin.register(BadgeAward)
class BadgeAwardAdmin(ViewOnlyAdmin):
    list_display = ("awarded_at", "badge", "member_link", "value", "source")
    list_filter = ("badge", "badge__program")
    list_select_related = ("badge", "member")
    search_fields = ("=member__external_id",)
    search_help_text = "The member's exact external id."
    ordering = ("-awarded_at", "-id")
    fields = ("badge", "member", "awarded_at", "value", "source", "transaction")

    @admin.display(description="member", ordering="member__external_id")
    def member_link(self, obj):
        return admin_link(obj.member, obj.member.external_id)


@admin.register(ChallengeProgress)
class ChallengeProgressAdmin(ViewOnlyAdmin):
    list_display = ("challenge", "period_start", "member_link", "value", "target", "reached_at", "completed_at")
    list_filter = ("challenge", "challenge__program")
    list_select_related = ("challenge", "member")
    search_fields = ("=member__external_id",)
    search_help_text = "The member's exact external id."
    ordering = ("challenge", "-period_start", "-value", "reached_at")
    fields = ("challenge", "member", "period_start", "joined_at", "value", "reached_at", "completed_at", "transaction")

    @admin.display(description="member", ordering="member__external_id")
    def member_link(self, obj):
        return admin_link(obj.member, obj.member.external_id)

    @admin.display(description="target")
    def target(self, obj):
        return obj.challenge.target
