"""Members: find one by email or external id, edit personal data, read balances and the ledger,
adjust points with a reason (through `points_adjust`, never by touching the ledger)."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.db.models.functions import Lower
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from loyalty.errors import LoyaltyError, MemberClosed
from loyalty.models import Asset, Lot, Member, MemberStatus, Order, Redemption, Transaction
from loyalty.selectors.members import member_balances, member_expiring, member_pending_lots, member_transactions
from loyalty.services.adjustments import points_adjust
from loyalty.services.members import PROFILE_FIELDS, member_update

from .base import changelist_url, points

RECENT_TRANSACTIONS = 50
RECENT_ROWS = 20
MAX_ADJUSTMENT = 1_000_000_000


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


@admin.register(Member)
class MemberAdmin(admin.ModelAdmin):
    form = MemberForm
    list_display = ("external_id", "email", "name", "tier", "status", "enrolled_at")
    list_filter = ("status", "tier", "program", "enrolled_at")
    list_select_related = ("tier",)
    search_fields = ("=external_id", "email")
    search_help_text = "The exact external id, or an email in any case (its beginning is enough)."
    show_full_result_count = False
    ordering = ("-id",)
    fieldsets = (
        (None, {"fields": ("program", "external_id", "status", "enrolled_at", "closed_at")}),
        (
            "Personal data",
            {"fields": ("email", ("first_name", "last_name"), "birth_date", ("locale", "country"), "marketing_opt_in")},
        ),
        ("Tier", {"fields": ("tier", "tier_valid_until")}),
        ("Activity", {"fields": ("last_activity_at", "user")}),
    )
    readonly_fields = (
        "program",
        "external_id",
        "status",
        "enrolled_at",
        "closed_at",
        "tier",
        "tier_valid_until",
        "last_activity_at",
        "user",
    )

    @admin.display(description="name", ordering="last_name")
    def name(self, obj):
        return " ".join(part for part in (obj.first_name, obj.last_name) if part) or "-"

    # --- permissions: members are enrolled by checkout and erased by a service, never deleted --
    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_adjust_permission(self, request, obj=None):
        return self.has_change_permission(request, obj)

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.status == MemberStatus.CLOSED:  # erased: nothing left to edit
            return self.readonly_fields + PROFILE_FIELDS
        return self.readonly_fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("program", "tier")

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
        return {
            "has_adjust_permission": self.has_adjust_permission(request, member),
            "adjust_url": reverse("admin:loyalty_member_adjust", args=[member.pk]),
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
        }

    # --- adjust points ---------------------------------------------------------------------------
    def get_urls(self):
        return [
            path(
                "<path:object_id>/adjust/",
                self.admin_site.admin_view(self.adjust_view),
                name="loyalty_member_adjust",
            ),
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
