"""Referral codes, view-only: issued at enrollment and retired by the referrals service."""

from django.contrib import admin
from django.db.models import Q

from loyalty.admin.base import ViewOnlyAdmin
from referrals.models import ReferralCode
from referrals.services import referral_code_normalize


class ActiveFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("retired", "Retired")]

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.filter(retired_at__isnull=True)
        if self.value() == "retired":
            return queryset.filter(retired_at__isnull=False)
        return queryset


@admin.register(ReferralCode)
class ReferralCodeAdmin(ViewOnlyAdmin):
    list_display = ("code", "member", "active", "created_at", "retired_at", "program")
    list_filter = (ActiveFilter, "program")
    list_select_related = ("member", "program")
    search_fields = ("=code", "=member__external_id")
    search_help_text = "The code (any case, dashes ignored) or the member's exact external id."
    ordering = ("-id",)
    fields = ("program", "member", "code", "created_at", "retired_at")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("program", "member")

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(Q(code=referral_code_normalize(term)) | Q(member__external_id=term)), False

    @admin.display(description="active", boolean=True, ordering="retired_at")
    def active(self, obj):
        return obj.retired_at is None
