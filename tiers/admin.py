"""Tiers: staff edit the levels of each program (threshold, earn multiplier, birthday points, perks)
and see how many members hold each; the tier history, year-end evaluations and birthday rewards are
view-only (written by tiers/services.py). A member's pin is set on the member page; the policy of
how tiers are earned and kept is edited on the program page."""

from django.contrib import admin
from django.db.models import Count, IntegerField, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils.html import format_html

from loyalty.admin.base import (
    AuditedConfigMixin,
    SameProgramModelForm,
    ViewOnlyAdmin,
    changelist_url,
    money_currency_error,
    points,
)
from loyalty.models import Member
from tiers.models import BirthdayGift, Tier, TierChange, TierChangeReason, TierEvaluation


class TierForm(SameProgramModelForm):
    class Meta:
        model = Tier
        fields = ("program", "code", "name", "rank", "threshold", "earn_multiplier", "birthday_points", "perks")

    def clean(self):
        cleaned_data = super().clean()
        program = cleaned_data.get("program") or getattr(self.instance, "program", None)
        if program is not None and (
            error := money_currency_error(cleaned_data.get("threshold"), program.base_currency)
        ):
            self.add_error("threshold", error)
        return cleaned_data


@admin.register(Tier)
class TierAdmin(AuditedConfigMixin, admin.ModelAdmin):
    form = TierForm
    list_display = (
        "program",
        "rank",
        "code",
        "name",
        "threshold",
        "earn_multiplier",
        "birthday_points",
        "members",
    )
    list_display_links = ("code", "name")
    list_filter = ("program",)
    list_select_related = ("program",)
    ordering = ("program", "rank")
    search_fields = ("code", "name")
    fieldsets = (
        (None, {"fields": ("program", "code", "name", "rank")}),
        ("Qualification", {"fields": ("threshold",)}),
        ("Benefits", {"fields": ("earn_multiplier", "birthday_points", "perks")}),
    )

    def get_queryset(self, request):
        # Member.tier has no reverse accessor (related_name="+"): count with a correlated subquery,
        # one statement for the whole page, on the index of the foreign key.
        earned = Member.objects.filter(tier=OuterRef("pk")).order_by().values("tier").annotate(n=Count("pk"))
        return (
            super()
            .get_queryset(request)
            .annotate(member_count=Coalesce(Subquery(earned.values("n"), output_field=IntegerField()), Value(0)))
        )

    @admin.display(description="members", ordering="member_count")
    def members(self, obj):
        """Members whose earned tier is this one (a staff pin does not count), linked to their list."""
        return format_html(
            '<a href="{}">{}</a>', changelist_url(Member, tier__id__exact=obj.pk), points(obj.member_count)
        )


@admin.register(TierChange)
class TierChangeAdmin(ViewOnlyAdmin):
    list_display = ("changed_at", "member", "from_tier", "to_tier", "reason", "note", "valid_until", "created_by")
    list_filter = ("reason", "changed_at", "to_tier", "member__program")
    list_select_related = ("member", "from_tier", "to_tier", "created_by")
    search_fields = ("=member__external_id",)
    search_help_text = "The member's exact external id."
    ordering = ("-changed_at", "-id")
    fields = ("member", "from_tier", "to_tier", "reason", "note", "valid_until", "created_by", "changed_at")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("member", "from_tier", "to_tier", "created_by")


@admin.register(TierEvaluation)
class TierEvaluationAdmin(ViewOnlyAdmin):
    list_display = ("year", "program", "members_changed", "ran_at")
    list_filter = ("program",)
    list_select_related = ("program",)
    ordering = ("-year", "program")
    fields = ("program", "year", "members_changed", "ran_at", "changes_link")
    readonly_fields = ("changes_link",)

    @admin.display(description="tier changes")
    def changes_link(self, obj):
        return format_html(
            '<a href="{}">Year-end tier changes of this program</a>',
            changelist_url(
                TierChange, reason__exact=TierChangeReason.YEAR_END, member__program__id__exact=obj.program_id
            ),
        )


@admin.register(BirthdayGift)
class BirthdayGiftAdmin(ViewOnlyAdmin):
    list_display = ("year", "member", "choice", "points", "coupon_code", "taken_at")
    list_filter = ("year", "choice", "member__program")
    list_select_related = ("member",)
    search_fields = ("=member__external_id", "=coupon_code")
    search_help_text = "The member's exact external id or the exact coupon code."
    ordering = ("-taken_at", "-id")
    fields = ("member", "year", "choice", "points", "coupon_code", "taken_at")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("member")
