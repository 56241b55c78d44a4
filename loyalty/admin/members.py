"""Members: find one by email or external id, edit personal data, read balances and the ledger,
adjust points with a reason (through `points_adjust`, never by touching the ledger), read the tier
status and history, pin a tier with a reason and an end date or end the pin (through
`tier_override_set` / `tier_override_clear`)."""

import operator
from datetime import date, datetime
from functools import reduce

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.contrib.admin.widgets import AdminDateWidget
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import OuterRef, Q, Subquery
from django.db.models.functions import Lower
from django.http import HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format

from loyalty.dates import local_date
from loyalty.errors import LoyaltyError, MemberClosed
from loyalty.models import Asset, Lot, Member, MemberStatus, Order, Program, Redemption, Transaction
from loyalty.selectors.members import member_balances, member_expiring, member_pending_lots, member_transactions
from loyalty.services.adjustments import points_adjust
from loyalty.services.audit import audit_record
from loyalty.services.members import PROFILE_FIELDS, member_update
from loyalty.services.privacy import ERASE_PERMISSION, member_erase, member_export
from tiers.models import Tier, TierChange
from tiers.selectors import tier_pinned, tier_progress
from tiers.services import tier_override_clear, tier_override_set

from .base import admin_link, changelist_url, points

RECENT_TRANSACTIONS = 50
RECENT_ROWS = 20
MAX_ADJUSTMENT = 1_000_000_000
PIN_REASON_LENGTH = 300  # TierChange.note


class MemberForm(forms.ModelForm):
    """Personal data only: the external id, tier and balances are not edited here."""

    class Meta:
        model = Member
        fields = PROFILE_FIELDS

    def clean_email(self):
        email = self.cleaned_data["email"]
        # The same rule as member_update (one member per email in a program, any case), checked
        # here so that staff see it on the field instead of an error page.
        others = Member.objects.filter(program_id=self.instance.program_id).exclude(pk=self.instance.pk)
        if others.annotate(email_ci=Lower("email")).filter(email_ci=email.lower()).exists():
            raise ValidationError("Another member of this program is enrolled with this email.")
        return email


class PointsAdjustForm(forms.Form):
    asset = forms.ModelChoiceField(queryset=Asset.objects.none(), label="Point currency", empty_label=None)
    points = forms.IntegerField(
        min_value=-MAX_ADJUSTMENT,
        max_value=MAX_ADJUSTMENT,
        help_text="Positive to credit (available at once), negative to debit (never below zero).",
    )
    reason = forms.CharField(
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Required. Kept on the ledger transaction and shown to auditors.",
    )

    def __init__(self, *args, program, **kwargs):
        super().__init__(*args, **kwargs)
        assets = list(program.assets.order_by("-is_primary", "code"))
        self.fields["asset"].queryset = program.assets.all()
        self.fields["asset"].choices = [(a.pk, f"{a.code} ({a.name})") for a in assets]
        self.fields["asset"].initial = assets[0].pk if assets else None

    def clean_points(self):
        value = self.cleaned_data["points"]
        if value == 0:
            raise ValidationError("An adjustment needs a number of points other than zero.")
        return value


class TierPinForm(forms.Form):
    tier = forms.ModelChoiceField(queryset=Tier.objects.none(), empty_label=None)
    until = forms.DateField(
        label="Pinned until",
        widget=AdminDateWidget,
        help_text="The last day of the pin (inclusive), in the program's time zone. Then the earned tier returns.",
    )
    reason = forms.CharField(
        max_length=PIN_REASON_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Required. Kept in the member's tier history with your name.",
    )

    def __init__(self, *args, program, **kwargs):
        super().__init__(*args, **kwargs)
        tiers = list(program.tiers.order_by("rank"))
        self.fields["tier"].queryset = program.tiers.all()
        self.fields["tier"].choices = [(t.pk, f"{t.name} ({t.code})") for t in tiers]


class TierUnpinForm(forms.Form):
    reason = forms.CharField(
        max_length=PIN_REASON_LENGTH,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Optional. Kept in the member's tier history with your name.",
    )


class EraseForm(forms.Form):
    reason = forms.CharField(
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Required, e.g. the request's reference. Kept in the audit log.",
    )
    confirm = forms.BooleanField(
        label="I understand that this cannot be undone",
        help_text="Personal data is replaced for good; points, orders and the ledger's amounts stay.",
    )


class PinnedFilter(admin.SimpleListFilter):
    """A staff pin in effect today (in each program's time zone); a pin past its end date that the
    daily job has not cleared yet does not count."""

    title = "pinned tier"
    parameter_name = "pinned"

    def lookups(self, request, model_admin):
        return [("yes", "Pinned"), ("no", "Not pinned")]

    def queryset(self, request, queryset):
        if self.value() not in ("yes", "no"):
            return queryset
        now = timezone.now()
        running = reduce(
            operator.or_,
            (
                Q(program_id=pk, tier_override_until__gte=local_date(now, tz))
                for pk, tz in Program.objects.values_list("pk", "timezone")
            ),
            Q(tier_override_until__isnull=True),
        )
        pinned = Q(tier_override__isnull=False) & running
        return queryset.filter(pinned) if self.value() == "yes" else queryset.exclude(pinned)


@admin.register(Member)
class MemberAdmin(admin.ModelAdmin):
    form = MemberForm
    list_display = ("external_id", "email", "name", "tier", "pin", "status", "enrolled_at")
    list_filter = ("status", "tier", PinnedFilter, "program", "enrolled_at")
    list_select_related = ("program", "tier", "tier_override")
    search_fields = ("=external_id", "email")
    search_help_text = "The exact external id, or an email in any case (its beginning is enough)."
    show_full_result_count = False
    ordering = ("-id",)
    actions = ("regenerate_referral_code",)
    fieldsets = (
        (None, {"fields": ("program", "external_id", "status", "enrolled_at", "closed_at")}),
        (
            "Personal data",
            {"fields": ("email", ("first_name", "last_name"), "birth_date", ("locale", "country"), "marketing_opt_in")},
        ),
        (
            "Tier",
            {
                "fields": (
                    ("earned_tier", "tier_valid_until"),
                    "tier_floor",
                    "tier_pin",
                    "tier_in_effect",
                    "tier_progress_message",
                )
            },
        ),
        ("Activity", {"fields": ("last_activity_at", "user")}),
    )
    readonly_fields = (
        "program",
        "external_id",
        "status",
        "enrolled_at",
        "closed_at",
        "earned_tier",
        "tier_valid_until",
        "tier_floor",
        "tier_pin",
        "tier_in_effect",
        "tier_progress_message",
        "last_activity_at",
        "user",
    )

    @admin.display(description="name", ordering="last_name")
    def name(self, obj):
        return " ".join(part for part in (obj.first_name, obj.last_name) if part) or "-"

    @admin.display(description="pinned tier", ordering="tier_override__rank")
    def pin(self, obj):
        return pin_text(obj, local_date(timezone.now(), obj.program.timezone))

    # --- tier status (read-only: tiers change by spend, by the jobs, or by a pin below) ----------
    @admin.display(description="earned tier")
    def earned_tier(self, obj):
        return admin_link(obj.tier)

    @admin.display(description="staff pin")
    def tier_pin(self, obj):
        return tier_summary(obj)["pin"]

    @admin.display(description="tier in effect")
    def tier_in_effect(self, obj):
        return tier_summary(obj)["in_effect"]

    @admin.display(description="progress")
    def tier_progress_message(self, obj):
        return tier_summary(obj)["progress"]

    # --- permissions: members are enrolled by checkout and erased by a service, never deleted --
    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_adjust_permission(self, request, obj=None):
        # `support` adjusts (up to the program's limit, checked by points_adjust) without being
        # allowed to edit the member's personal data.
        return request.user.has_perm("loyalty.adjust_points")

    def has_pin_permission(self, request, obj=None):
        return request.user.has_perm("loyalty.pin_tier")

    def has_erase_permission(self, request, obj=None):
        return request.user.has_perm(ERASE_PERMISSION)

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.status == MemberStatus.CLOSED:  # erased: nothing left to edit
            return self.readonly_fields + PROFILE_FIELDS
        return self.readonly_fields

    def get_queryset(self, request):
        # program__tier_policy: the tier progress on the change page reads it with the member; user:
        # the portal account (every enrolled member has one) is shown on the page.
        from referrals.models import ReferralCode

        code = ReferralCode.objects.filter(member=OuterRef("pk"), retired_at__isnull=True).values("code")[:1]
        return (
            super()
            .get_queryset(request)
            .select_related("program__tier_policy", "tier", "tier_floor", "tier_override", "user")
            .annotate(active_referral_code=Subquery(code))
        )

    # --- search: indexed, case-insensitive on email ---------------------------------------------
    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        email = term.lower()
        # Lower(email) is what the unique constraint and the `member_email_ci` index are built on:
        # a whole address is one indexed lookup; anything else is taken as an address's beginning.
        whole_address = "@" in email and "." in email.rsplit("@", 1)[1]
        by_email = Q(email_ci=email) if whole_address else Q(email_ci__startswith=email)
        return queryset.annotate(email_ci=Lower("email")).filter(Q(external_id=term) | by_email), False

    # --- saving personal data goes through the members service -----------------------------------
    def save_model(self, request, obj, form, change):
        changes = {name: form.cleaned_data[name] for name in form.changed_data if name in PROFILE_FIELDS}
        if changes:
            member_update(member=Member.objects.select_related("program").get(pk=obj.pk), **changes)

    # --- the change page: balances, pending points, ledger, orders, redemptions ----------------
    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context.update(self.ledger_context(request, obj))
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    def ledger_context(self, request, member: Member) -> dict:
        now = timezone.now()
        balances = balance_rows(member, now=now, with_expiry=True)
        lots = member_pending_lots(member=member, now=now).select_related("asset", "order")[:RECENT_ROWS]
        transactions = member_transactions(member=member).select_related("created_by")[:RECENT_TRANSACTIONS]
        tier_changes = (
            TierChange.objects.filter(member=member)
            .select_related("from_tier", "to_tier", "created_by")
            .order_by("-changed_at", "-id")[:RECENT_ROWS]
        )
        return {
            "has_adjust_permission": self.has_adjust_permission(request, member),
            "adjust_url": reverse("admin:loyalty_member_adjust", args=[member.pk]),
            "has_pin_permission": self.has_pin_permission(request, member),
            "has_erase_permission": self.has_erase_permission(request, member),
            "export_url": reverse("admin:loyalty_member_export", args=[member.pk]),
            "erase_url": reverse("admin:loyalty_member_erase", args=[member.pk]),
            "pin_url": reverse("admin:loyalty_member_pin", args=[member.pk]),
            "unpin_url": reverse("admin:loyalty_member_unpin", args=[member.pk]),
            "tier_changes": tier_changes,
            "tier_changes_url": changelist_url(TierChange, member__id__exact=member.pk),
            "balances": balances,
            "pending_lots": [
                {"lot": lot, "remaining": points(lot.remaining), "amount": points(lot.amount)} for lot in lots
            ],
            "pending_lots_url": changelist_url(Lot, member__id__exact=member.pk),
            "transactions": [
                {
                    "row": row,
                    "entries": [
                        f"{points(e.amount, signed=True)} {e.account.asset.code} {e.account.kind}"
                        for e in row.member_entries
                    ],
                }
                for row in transactions
            ],
            "transactions_limit": RECENT_TRANSACTIONS,
            "transactions_url": changelist_url(Transaction, member__id__exact=member.pk),
            "orders": member.orders.order_by("-placed_at", "-id")[:RECENT_ROWS],
            "orders_url": changelist_url(Order, member__id__exact=member.pk),
            "redemptions": member.redemptions.select_related("asset").order_by("-created_at", "-id")[:RECENT_ROWS],
            "redemptions_url": changelist_url(Redemption, member__id__exact=member.pk),
            "recent_limit": RECENT_ROWS,
            **self.referral_context(member),
        }

    def referral_context(self, member: Member) -> dict:
        """The member's code and referral chain: who referred them, whom they referred (one query
        for both directions; the code is annotated on the member by get_queryset)."""
        from referrals.models import Referral

        rows = list(
            Referral.objects.filter(Q(referee=member) | Q(referrer=member))
            .select_related("referrer", "referee")
            .order_by("-created_at", "-id")[: RECENT_ROWS + 1]
        )
        return {
            "referral_code": getattr(member, "active_referral_code", None),
            "referred_by": next((r for r in rows if r.referee_id == member.pk), None),
            "referred": [r for r in rows if r.referrer_id == member.pk][:RECENT_ROWS],
            "referrals_url": changelist_url(Referral, referrer__id__exact=member.pk),
        }

    # --- staff regenerate a member's referral code (the old one is never valid again) -------------
    @admin.action(description="Regenerate the referral codes of the selected members", permissions=["change"])
    def regenerate_referral_code(self, request, queryset):
        from referrals.services import referral_code_regenerate

        for member in queryset.filter(status=MemberStatus.ACTIVE):
            code = referral_code_regenerate(member=member)
            self.log_change(request, member, f"Regenerated the referral code (now {code.code})")
            self.message_user(request, f"{member.external_id}: new referral code {code.code}.", messages.SUCCESS)

    # --- adjust points (and the pin views below) ---------------------------------------------------
    def get_urls(self):
        return [
            path(
                "<path:object_id>/adjust/",
                self.admin_site.admin_view(self.adjust_view),
                name="loyalty_member_adjust",
            ),
            path("<path:object_id>/pin/", self.admin_site.admin_view(self.pin_view), name="loyalty_member_pin"),
            path("<path:object_id>/unpin/", self.admin_site.admin_view(self.unpin_view), name="loyalty_member_unpin"),
            path(
                "<path:object_id>/export/", self.admin_site.admin_view(self.export_view), name="loyalty_member_export"
            ),
            path("<path:object_id>/erase/", self.admin_site.admin_view(self.erase_view), name="loyalty_member_erase"),
            *super().get_urls(),
        ]

    def adjust_view(self, request, object_id):
        member = self.get_object(request, unquote(object_id))
        if member is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_adjust_permission(request, member):
            raise PermissionDenied
        change_url = reverse("admin:loyalty_member_change", args=[member.pk])
        if member.status == MemberStatus.CLOSED:
            self.message_user(request, f"Nothing was posted: {MemberClosed().message}.", messages.ERROR)
            return HttpResponseRedirect(change_url)
        form = PointsAdjustForm(request.POST if request.method == "POST" else None, program=member.program)
        if form.is_valid():
            asset, amount, reason = (form.cleaned_data[k] for k in ("asset", "points", "reason"))
            try:
                row = points_adjust(
                    member=member, points=amount, reason=reason, staff_user=request.user, asset_code=asset.code
                )
            except LoyaltyError as error:
                self.message_user(request, f"Nothing was posted: {error.message}", messages.ERROR)
            else:
                balance = member_balances(member=member, now=timezone.now()).get(asset.code, {}).get("available", 0)
                self.log_change(
                    request, member, f"Adjusted {points(amount, signed=True)} {asset.code} (transaction #{row.pk})"
                )
                self.message_user(
                    request,
                    f"{points(amount, signed=True)} {asset.code} posted to {member.external_id} "
                    f"(transaction #{row.pk}). New available balance: {points(balance)} {asset.code}.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Adjust points of {member.external_id}",
            "subtitle": None,
            "opts": self.opts,
            "original": member,
            "adminform": helpers.AdminForm(form, [(None, {"fields": ["asset", "points", "reason"]})], {}),
            "errors": helpers.AdminErrorList(form, []),
            "media": self.media + form.media,
            "balances": balance_rows(member, now=timezone.now()),
        }
        return TemplateResponse(request, "admin/loyalty/member/adjust.html", context)

    # --- privacy: export the member's data, erase it -------------------------------------------------
    def _privacy_member(self, request, object_id):
        member = self.get_object(request, unquote(object_id))
        if member is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_erase_permission(request, member):
            raise PermissionDenied
        return member

    def export_view(self, request, object_id):
        member = self._privacy_member(request, object_id)
        if not isinstance(member, Member):
            return member
        data = member_export(member=member)
        audit_record(actor=request.user, action="member.export", obj=member, program=member.program)
        response = JsonResponse(data, json_dumps_params={"indent": 2, "ensure_ascii": False})
        response["Content-Disposition"] = f'attachment; filename="member-{member.pk}.json"'
        return response

    def erase_view(self, request, object_id):
        member = self._privacy_member(request, object_id)
        if not isinstance(member, Member):
            return member
        change_url = reverse("admin:loyalty_member_change", args=[member.pk])
        if member.status == MemberStatus.CLOSED:
            self.message_user(request, f"{member.external_id} is already erased.", messages.WARNING)
            return HttpResponseRedirect(change_url)
        form = EraseForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            try:
                member_erase(member=member, actor=request.user, reason=form.cleaned_data["reason"])
            except LoyaltyError as error:
                self.message_user(request, f"Nothing was erased: {error.message}", messages.ERROR)
            else:
                self.log_change(request, member, "Erased personal data")
                self.message_user(
                    request,
                    f"The personal data of {member.external_id} is erased; points and orders are kept.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(change_url)
        return self._tier_form_response(
            request,
            member,
            form,
            title=f"Erase the personal data of {member.external_id}",
            action="Erase personal data",
            fields=["reason", "confirm"],
            intro=(
                "The e-mail becomes a placeholder; names, birth date, language, country, payment and device "
                "fingerprints, the shop's order metadata and the referral code are removed; the portal account is "
                "closed and signed out. The points, orders and ledger amounts stay, so the books still verify. The "
                "shop is told by the member.erased webhook. Download the member's data first if it was asked for."
            ),
        )

    # --- pin a tier / end the pin ------------------------------------------------------------------
    def _pin_member(self, request, object_id) -> Member | HttpResponseRedirect:
        """The member for the pin views, or where to send staff instead (the change permission is
        required; a closed member keeps the tier it had)."""
        member = self.get_object(request, unquote(object_id))
        if member is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_pin_permission(request, member):
            raise PermissionDenied
        if member.status == MemberStatus.CLOSED:
            self.message_user(request, f"Nothing was changed: {MemberClosed().message}.", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:loyalty_member_change", args=[member.pk]))
        return member

    def pin_view(self, request, object_id):
        member = self._pin_member(request, object_id)
        if not isinstance(member, Member):
            return member
        form = TierPinForm(request.POST if request.method == "POST" else None, program=member.program)
        if form.is_valid():
            tier, until, reason = (form.cleaned_data[k] for k in ("tier", "until", "reason"))
            try:
                tier_override_set(member=member, tier=tier, until=until, reason=reason, staff_user=request.user)
            except LoyaltyError as error:
                self.message_user(request, f"Nothing was changed: {error.message}.", messages.ERROR)
            else:
                self.log_change(request, member, f"Pinned tier {tier.code} until {until.isoformat()}: {reason}")
                self.message_user(
                    request,
                    f"{member.external_id} is pinned at {tier.name} until {date_format(until)} (inclusive).",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:loyalty_member_change", args=[member.pk]))
        return self._tier_form_response(
            request,
            member,
            form,
            title=f"Pin the tier of {member.external_id}",
            action="Pin tier",
            fields=["tier", "until", "reason"],
            intro=(
                "The pinned tier is in effect (earn multiplier, promotions, rewards, birthday points) until the end "
                "date, whatever the spend; the earned tier keeps being computed and returns after it. A new pin "
                "replaces the current one."
            ),
        )

    def unpin_view(self, request, object_id):
        member = self._pin_member(request, object_id)
        if not isinstance(member, Member):
            return member
        change_url = reverse("admin:loyalty_member_change", args=[member.pk])
        if not member.tier_override_id:
            self.message_user(request, f"{member.external_id} has no pinned tier.", messages.WARNING)
            return HttpResponseRedirect(change_url)
        form = TierUnpinForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            pinned = member.tier_override
            try:
                member = tier_override_clear(member=member, staff_user=request.user, reason=form.cleaned_data["reason"])
            except LoyaltyError as error:
                self.message_user(request, f"Nothing was changed: {error.message}.", messages.ERROR)
            else:
                self.log_change(request, member, f"Ended the pin at {pinned.code}")
                self.message_user(
                    request,
                    f"The pin of {member.external_id} at {pinned.name} has ended; "
                    f"the earned tier {member.tier.name if member.tier else '-'} is in effect.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(change_url)
        return self._tier_form_response(
            request,
            member,
            form,
            title=f"End the pinned tier of {member.external_id}",
            action="End pin",
            fields=["reason"],
            intro="The earned tier is in effect again from now on. The pin and its end stay in the tier history.",
        )

    def _tier_form_response(self, request, member, form, *, title, action, fields, intro):
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "subtitle": None,
            "opts": self.opts,
            "original": member,
            "action": action,
            "intro": intro,
            "adminform": helpers.AdminForm(form, [(None, {"fields": fields})], {}),
            "errors": helpers.AdminErrorList(form, []),
            "media": self.media + form.media,
            "tier": tier_summary(member),
        }
        return TemplateResponse(request, "admin/loyalty/member/tier_pin.html", context)


def balance_rows(member: Member, *, now, with_expiry: bool = False) -> list[dict]:
    """One row per point currency: available, pending, held (as of now) and the next expiry."""
    expiring = member_expiring(member=member, now=now) if with_expiry else {}
    rows = []
    for code, buckets in sorted(member_balances(member=member, now=now).items()):
        soonest = expiring.get(code)
        rows.append(
            {
                "code": code,
                "available": points(buckets["available"]),
                "pending": points(buckets["pending"]),
                "held": points(buckets["held"]),
                "expiring": {"points": points(soonest["points"]), "at": soonest["expires_at"]} if soonest else None,
            }
        )
    return rows


# --- tier status --------------------------------------------------------------------------------------
def pin_text(member: Member, today: date) -> str:
    """The pin as staff read it (VIB until Dec. 31, 2026), saying so when it ran out and the daily job
    has not cleared it yet."""
    if not member.tier_override_id:
        return "-"
    until = f" until {date_format(member.tier_override_until)}" if member.tier_override_until else ""
    ended = "" if tier_pinned(member, today) else " (ended; the earned tier is in effect)"
    return f"{member.tier_override.name}{until}{ended}"


def tier_summary(member: Member, *, now: datetime | None = None) -> dict:
    """The member's tier status as staff read it, from `tier_progress` (computed once per member)."""
    cached = getattr(member, "_admin_tier_summary", None)
    if cached is not None:
        return cached
    now = now or timezone.now()
    progress = tier_progress(member=member, now=now)
    if progress is None:
        in_effect, message = "-", "The program has no tiers."
    else:
        until = f" until {date_format(progress['valid_until'])}" if progress["valid_until"] else ""
        in_effect = f"{progress['tier_name']}{until}{' (pinned by staff)' if progress['pinned'] else ''}"
        message = progress["message"]
    summary = {
        "earned": member.tier.name if member.tier else "-",
        "valid_until": date_format(member.tier_valid_until) if member.tier_valid_until else "no end date",
        "floor": member.tier_floor.name if member.tier_floor else "-",
        "pin": pin_text(member, local_date(now, member.program.timezone)),
        "in_effect": in_effect,
        "progress": message,
    }
    member._admin_tier_summary = summary
    return summary
