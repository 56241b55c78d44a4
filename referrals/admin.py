"""Referral codes, view-only: issued at enrollment and retired by the referrals service; referrals,
filtered by status and reason, held, approved or rejected by staff with a reason."""

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import Q
from django.template.response import TemplateResponse

from loyalty.admin.base import ViewOnlyAdmin, admin_link
from loyalty.errors import LoyaltyError
from referrals.models import Referral, ReferralCode
from referrals.services import referral_approve, referral_code_normalize, referral_hold, referral_reject


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


# --- referrals: filtered by status and reason, decided by staff with a reason -------------------
@admin.register(Referral)
class ReferralAdmin(ViewOnlyAdmin):
    """Referrals are written by enrollment and the qualification job; staff hold, approve or reject
    them through the referrals service (which checks `decide_referral` and audits the decision)."""

    list_display = (
        "created_at",
        "referrer_link",
        "referee_link",
        "status",
        "reason",
        "referrer_points",
        "referee_points",
        "decided_at",
        "decided_by",
        "program",
    )
    list_filter = ("status", "reason", "staff_approved", "program", "created_at")
    list_select_related = ("referrer", "referee", "decided_by", "program")
    search_fields = ("=referrer__external_id", "=referee__external_id", "=code")
    search_help_text = "The referrer's or the referee's exact external id, or the code used."
    ordering = ("-created_at", "-id")
    actions = ("approve", "reject", "hold")
    fields = (
        "program",
        "referrer_link",
        "referee_link",
        "code",
        "status",
        "reason",
        "note",
        "staff_approved",
        "order",
        "referrer_points",
        "referee_points",
        "referrer_transaction",
        "referee_transaction",
        "payment_fingerprint",
        "device_id",
        "ip_address",
        "created_at",
        "decided_at",
        "decided_by",
    )
    readonly_fields = ("referrer_link", "referee_link")

    def has_decide_permission(self, request):
        return request.user.has_perm("referrals.decide_referral")

    @admin.display(description="referrer", ordering="referrer__external_id")
    def referrer_link(self, obj):
        return admin_link(obj.referrer, obj.referrer.external_id)

    @admin.display(description="referee", ordering="referee__external_id")
    def referee_link(self, obj):
        return admin_link(obj.referee, obj.referee.external_id)

    def _decide(self, request, queryset, *, action, service, title, intro, submit, done):
        referrals = list(queryset.select_related("referrer", "referee"))
        note = (request.POST.get("note") or "").strip()
        if request.POST.get("post") != "yes" or not note:
            return TemplateResponse(
                request,
                "admin/action_note.html",
                {
                    **self.admin_site.each_context(request),
                    "title": title,
                    "subtitle": None,
                    "opts": self.opts,
                    "intro": intro,
                    "objects": referrals,
                    "selected": [r.pk for r in referrals],
                    "action": action,
                    "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                    "submit": submit,
                    "note": note,
                    "note_error": "A decision needs a reason." if request.POST.get("post") == "yes" else "",
                    "media": self.media,
                },
            )
        decided = 0
        for referral in referrals:
            try:
                result = service(referral=referral, staff_user=request.user, note=note)
            except LoyaltyError as error:
                self.message_user(request, f"{referral}: nothing was changed: {error.message}", messages.ERROR)
                continue
            self.log_change(request, result, f"{done}: {note}")
            decided += 1
        if decided:
            self.message_user(request, f"{done}: {decided} referral{'s' if decided != 1 else ''}.", messages.SUCCESS)
        return None

    @admin.action(description="Approve selected referrals (skip fraud checks and the cap)", permissions=["decide"])
    def approve(self, request, queryset):
        return self._decide(
            request,
            queryset,
            action="approve",
            service=referral_approve,
            title="Approve referrals",
            intro="Fraud checks and the monthly cap no longer apply to these referrals: both sides are rewarded "
            "as soon as the first qualifying order has matured (at once if it has).",
            submit="Approve",
            done="Approved",
        )

    @admin.action(description="Reject selected referrals", permissions=["decide"])
    def reject(self, request, queryset):
        return self._decide(
            request,
            queryset,
            action="reject",
            service=referral_reject,
            title="Reject referrals",
            intro="Nobody is rewarded for these referrals.",
            submit="Reject",
            done="Rejected",
        )

    @admin.action(description="Hold selected referrals for review", permissions=["decide"])
    def hold(self, request, queryset):
        return self._decide(
            request,
            queryset,
            action="hold",
            service=referral_hold,
            title="Hold referrals for review",
            intro="The qualification job leaves these referrals alone until staff approve or reject them.",
            submit="Hold",
            done="Held",
        )
