"""Running the program: the program itself with its accepted currencies and FX rates, point
currencies, earn rules and tier policy; earn rules and promotions on their own list; the rewards
catalog. The tiers themselves are in tiers/admin.py."""

import zoneinfo
from decimal import Decimal

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from loyalty.models import Asset, EarnRule, FxRate, Program, Reward
from loyalty.services.audit import audit_record, staff_require
from loyalty.services.config import config_snapshot
from loyalty.services.ledger import system_accounts_create
from loyalty.services.programs import program_create
from tiers.models import TierPolicy

from .base import (
    AuditedConfigMixin,
    ProgramScopedInlineFormSet,
    SameProgramModelForm,
    disable_on_existing,
    money,
    money_currency_error,
    points,
)

PROGRAM_SETTINGS = (
    "timezone",
    "pending_days",
    "expiry_policy",
    "expiry_months",
    "refund_policy",
    "activity_window_days",
    "acquisition_cost",
)


def clean_timezone_name(value: str) -> str:
    if value not in zoneinfo.available_timezones():
        raise ValidationError("Not a time zone name (e.g. Europe/Warsaw, America/New_York, UTC).")
    return value


class ProgramForm(forms.ModelForm):
    class Meta:
        model = Program
        fields = ("code", "name", "base_currency", *PROGRAM_SETTINGS)

    def clean_timezone(self):
        return clean_timezone_name(self.cleaned_data["timezone"])

    def clean(self):
        cleaned_data = super().clean()
        base = cleaned_data.get("base_currency") or self.instance.base_currency
        if error := money_currency_error(cleaned_data.get("acquisition_cost"), base):
            self.add_error("acquisition_cost", error)
        return cleaned_data


class ProgramCreateForm(ProgramForm):
    """A new program comes with its primary point currency, its system accounts and its base
    currency accepted at rate 1: `program_create` makes all of them."""

    point_code = forms.CharField(max_length=12, initial="PTS", label="Point currency code")
    point_name = forms.CharField(max_length=60, initial="Points", label="Point currency name")
    unit_value = forms.DecimalField(
        max_digits=12,
        decimal_places=6,
        min_value=Decimal("0"),
        initial=Decimal("0.01"),
        help_text="What one point is worth at redemption, in the base currency.",
    )


class FxRateFormSet(forms.BaseInlineFormSet):
    def clean(self):
        super().clean()
        if any(form.errors for form in self.forms):
            return
        kept = {
            form.cleaned_data["currency"]: form.cleaned_data["rate"]
            for form in self.forms
            if form.cleaned_data and not self._should_delete_form(form)
        }
        base = self.instance.base_currency
        if kept.get(base) != Decimal(1):
            raise ValidationError(f"The base currency {base} must stay accepted, at rate 1.")


class FxRateForm(forms.ModelForm):
    class Meta:
        model = FxRate
        fields = ("currency", "rate")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        disable_on_existing(self, "currency")


class FxRateInline(admin.TabularInline):
    model = FxRate
    form = FxRateForm
    formset = FxRateFormSet
    fields = ("currency", "rate", "updated_at")
    readonly_fields = ("updated_at",)
    extra = 0
    verbose_name_plural = "accepted currencies and FX rates (1 unit = rate x base currency)"


class AssetForm(forms.ModelForm):
    class Meta:
        model = Asset
        fields = ("code", "name", "kind", "is_primary", "unit_value", "redeem_min", "redeem_step", "redeem_min_order")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        disable_on_existing(self, "code", "kind")  # ledger rows and API clients refer to them


class AssetInline(admin.TabularInline):
    model = Asset
    form = AssetForm
    extra = 0
    can_delete = False  # the ledger counts in it; a point currency is never deleted
    verbose_name_plural = "point currencies (value and redemption rules)"


class EarnRuleForm(SameProgramModelForm):
    program_scoped_fields = ("asset", "tier")

    class Meta:
        model = EarnRule
        fields = (
            "program",
            "name",
            "kind",
            "active",
            "starts_at",
            "ends_at",
            "asset",
            "currency",
            "category",
            "sku",
            "tier",
            "rate",
            "multiplier",
            "points",
        )

    def clean(self):
        cleaned_data = super().clean()
        program = cleaned_data.get("program") or getattr(self.instance, "program", None)
        currency = cleaned_data.get("currency")
        if program is not None and currency and not program.fx_rates.filter(currency=currency).exists():
            self.add_error("currency", f"{program.code} does not accept {currency}.")
        return cleaned_data


class EarnRuleInline(admin.TabularInline):
    model = EarnRule
    form = EarnRuleForm
    formset = ProgramScopedInlineFormSet
    fields = (
        "name",
        "kind",
        "active",
        "starts_at",
        "ends_at",
        "asset",
        "currency",
        "category",
        "sku",
        "tier",
        "rate",
        "multiplier",
        "points",
    )
    extra = 0
    show_change_link = True
    verbose_name_plural = "earn rules and promotions"


class TierPolicyInline(admin.TabularInline):
    """How tiers are earned and kept. A program without one runs on the defaults shown (an unchanged
    form saves nothing). A change is not retroactive: status already earned keeps its end date."""

    model = TierPolicy
    fields = ("window", "downgrade_policy")
    extra = 1
    can_delete = False
    verbose_name_plural = "tier policy (how tiers are earned and kept)"


@admin.register(Program)
class ProgramAdmin(AuditedConfigMixin, admin.ModelAdmin):
    form = ProgramForm
    list_display = ("code", "name", "base_currency", "pending_days", "expiry_policy", "refund_policy")
    search_fields = ("code", "name")
    fieldsets = (
        (None, {"fields": ("code", "name", "base_currency", "timezone", "created_at")}),
        ("Points", {"fields": ("pending_days", "expiry_policy", "expiry_months", "refund_policy")}),
        ("Metrics", {"fields": ("activity_window_days", "acquisition_cost")}),
    )
    add_fieldsets = (
        (None, {"fields": ("code", "name", "base_currency", "timezone")}),
        ("Point currency", {"fields": ("point_code", "point_name", "unit_value")}),
        ("Points", {"fields": ("pending_days", "expiry_policy", "expiry_months", "refund_policy")}),
        ("Metrics", {"fields": ("activity_window_days", "acquisition_cost")}),
    )
    inlines = (FxRateInline, AssetInline, EarnRuleInline, TierPolicyInline)

    def has_delete_permission(self, request, obj=None):
        return False  # members, orders and the ledger belong to it

    def get_fieldsets(self, request, obj=None):
        return self.add_fieldsets if obj is None else self.fieldsets

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = ProgramCreateForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        # The code is the API's name for the program; amounts everywhere are in the base currency.
        return ("code", "base_currency", "created_at") if obj is not None else ()

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else ()

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        staff_require(request.user, "loyalty.add_program", "add a program")
        data = form.cleaned_data
        with transaction.atomic():
            created = program_create(
                code=data["code"],
                name=data["name"],
                base_currency=data["base_currency"],
                point_code=data["point_code"],
                point_name=data["point_name"],
                unit_value=data["unit_value"],
                **{name: data[name] for name in PROGRAM_SETTINGS},
            )
            audit_record(
                actor=request.user,
                action="program.create",
                obj=created,
                program=created,
                after=config_snapshot(created, ("code", "name", "base_currency", *PROGRAM_SETTINGS)),
            )
        obj.pk, obj.created_at = created.pk, created.created_at
        obj._state.adding, obj._state.db = False, created._state.db

    def save_formset(self, request, form, formset, change):
        super().save_formset(request, form, formset, change)
        if formset.model is Asset:
            for asset in formset.new_objects:
                system_accounts_create(program=form.instance, asset=asset)


class RuleWindowFilter(admin.SimpleListFilter):
    title = "window"
    parameter_name = "window"

    def lookups(self, request, model_admin):
        return [("running", "Running now"), ("scheduled", "Scheduled"), ("ended", "Ended")]

    def queryset(self, request, queryset):
        now = timezone.now()
        started = Q(starts_at__isnull=True) | Q(starts_at__lte=now)
        not_ended = Q(ends_at__isnull=True) | Q(ends_at__gt=now)
        if self.value() == "running":
            return queryset.filter(started & not_ended)
        if self.value() == "scheduled":
            return queryset.filter(starts_at__gt=now)
        if self.value() == "ended":
            return queryset.filter(ends_at__lte=now)
        return queryset


@admin.register(EarnRule)
class EarnRuleAdmin(AuditedConfigMixin, admin.ModelAdmin):
    form = EarnRuleForm
    list_display = ("name", "kind", "active", "starts_at", "ends_at", "tier", "rate", "multiplier", "points", "program")
    list_editable = ("active",)
    list_filter = ("kind", "active", RuleWindowFilter, "tier", "program")
    list_select_related = ("tier", "program")
    search_fields = ("name", "category", "sku")
    fieldsets = (
        (None, {"fields": ("program", "name", "kind", "active")}),
        ("When", {"fields": ("starts_at", "ends_at")}),
        ("Applies to", {"fields": ("asset", "currency", "category", "sku", "tier")}),
        ("Amounts", {"fields": ("rate", "multiplier", "points")}),
    )


class RewardForm(SameProgramModelForm):
    program_scoped_fields = ("asset", "min_tier")

    class Meta:
        model = Reward
        fields = (
            "program",
            "name",
            "description",
            "kind",
            "active",
            "asset",
            "cost",
            "value",
            "min_tier",
            "stock",
            "limit_per_member",
            "limit_period",
            "coupon_prefix",
        )

    def clean(self):
        cleaned_data = super().clean()
        program = cleaned_data.get("program") or getattr(self.instance, "program", None)
        if program is not None and (error := money_currency_error(cleaned_data.get("value"), program.base_currency)):
            self.add_error("value", error)
        return cleaned_data


@admin.register(Reward)
class RewardAdmin(AuditedConfigMixin, admin.ModelAdmin):
    form = RewardForm
    list_display = (
        "name",
        "kind",
        "cost_display",
        "value_display",
        "min_tier",
        "stock",
        "limit_display",
        "active",
        "program",
    )
    list_editable = ("stock", "active")
    list_filter = ("active", "kind", "min_tier", "program")
    list_select_related = ("asset", "min_tier", "program")
    search_fields = ("name", "coupon_prefix")
    fieldsets = (
        (None, {"fields": ("program", "name", "description", "kind", "active")}),
        ("Price", {"fields": ("asset", "cost", "value", "min_tier")}),
        ("Availability", {"fields": ("stock", ("limit_per_member", "limit_period"), "coupon_prefix")}),
    )

    @admin.display(description="cost", ordering="cost")
    def cost_display(self, obj):
        return f"{points(obj.cost)} {obj.asset.code}"

    @admin.display(description="value", ordering="value")
    def value_display(self, obj):
        return money(obj.value)

    @admin.display(description="limit per member")
    def limit_display(self, obj):
        if obj.limit_per_member is None:
            return "-"
        return f"{obj.limit_per_member} {obj.get_limit_period_display().lower()}"
