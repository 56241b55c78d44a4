from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from djmoney.models.fields import MoneyField

CURRENCY_CHOICES = [(code, code) for code in settings.CURRENCIES]


class ExpiryPolicy(models.TextChoices):
    NONE = "none", "Points never expire"
    INACTIVITY = "inactivity", "All points expire after N months without an order or a redemption"
    FIXED = "fixed", "Each credit expires N months after earning, at the end of that month"


class RefundPolicy(models.TextChoices):
    ONLY_PENDING = "only_pending", "Claw back from pending points only"
    WITHIN_BALANCE = "within_balance", "Claw back from pending, then available, never below zero"
    UNLIMITED = "unlimited", "Claw back everything; the available balance may go negative"


class Program(models.Model):
    """The tenant: everything (members, rules, tiers, rewards, API keys) belongs to one program."""

    code = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=120)
    base_currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES, default="USD")
    timezone = models.CharField(
        max_length=64, default="UTC", help_text="Calendar years, months and birthdays use this zone."
    )
    pending_days = models.PositiveIntegerField(
        default=30, help_text="Points stay pending this many days after the order (the return window)."
    )
    expiry_policy = models.CharField(max_length=16, choices=ExpiryPolicy.choices, default=ExpiryPolicy.NONE)
    expiry_months = models.PositiveIntegerField(default=18, validators=[MinValueValidator(1)])
    refund_policy = models.CharField(max_length=16, choices=RefundPolicy.choices, default=RefundPolicy.WITHIN_BALANCE)
    activity_window_days = models.PositiveIntegerField(
        default=365, help_text="Metrics: a member is an active customer with an order in this many days."
    )
    acquisition_cost = MoneyField(
        max_digits=14,
        decimal_places=2,
        null=True,
        blank=True,
        default_currency=None,
        currency_choices=CURRENCY_CHOICES,
        help_text="Metrics: subtracted from CLV when set.",
    )
    staff_adjust_limit = models.PositiveIntegerField(
        default=1000, help_text="Most points one adjustment may move, for staff without the unlimited permission."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["code"]

    def __str__(self):
        return f"{self.name} ({self.code})"

    @property
    def primary_asset(self) -> "Asset":
        """The program's main point currency (cached on the instance)."""
        if not hasattr(self, "_primary_asset"):
            self._primary_asset = self.assets.get(is_primary=True)
        return self._primary_asset


class AssetKind(models.TextChoices):
    POINTS = "points", "Points"
    MONEY = "money", "Money (store credit, cashback)"


class Asset(models.Model):
    """A unit the ledger counts: a point currency such as PTS, or money held as store credit.

    Amounts in the ledger are integers in the asset's smallest unit (whole points, or cents)."""

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="assets")
    code = models.CharField(max_length=12)
    name = models.CharField(max_length=60)
    kind = models.CharField(max_length=8, choices=AssetKind.choices, default=AssetKind.POINTS)
    is_primary = models.BooleanField(default=False, help_text="The point currency orders earn by default.")
    unit_value = models.DecimalField(
        max_digits=12,
        decimal_places=6,
        default=Decimal("0.01"),
        help_text="What one unit is worth at redemption, in the program's base currency.",
    )
    redeem_min = models.PositiveIntegerField(default=1, help_text="Smallest redemption, in units.")
    redeem_step = models.PositiveIntegerField(
        default=1, validators=[MinValueValidator(1)], help_text="Redemptions are multiples of this."
    )
    redeem_min_order = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        default=Decimal("0"),
        help_text="Points pay only towards orders of at least this much merchandise (base currency).",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["program", "code"], name="asset_code_unique_per_program"),
            models.UniqueConstraint(
                fields=["program"], condition=models.Q(is_primary=True), name="one_primary_asset_per_program"
            ),
        ]

    def __str__(self):
        return self.code

    def clean(self):
        if self.redeem_min % self.redeem_step:
            raise ValidationError({"redeem_min": "The minimum must be a multiple of the step."})


class FxRate(models.Model):
    """An accepted currency and its rate to the base currency (1 unit = `rate` base units).

    The table is the list of accepted currencies: the base currency has a row with rate 1. Staff
    edit rates; every order keeps a snapshot of the rate it was placed at."""

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="fx_rates")
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES)
    rate = models.DecimalField(max_digits=18, decimal_places=8, validators=[MinValueValidator(Decimal("0"))])
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["program", "currency"], name="fx_currency_unique_per_program"),
            models.CheckConstraint(condition=models.Q(rate__gt=0), name="fx_rate_positive"),
        ]
        ordering = ["currency"]
        verbose_name = "accepted currency and FX rate"

    def __str__(self):
        return f"{self.currency} = {self.rate}"
