from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import models

from .program import CURRENCY_CHOICES, Asset, Program


class EarnRuleKind(models.TextChoices):
    BASE_RATE = "base_rate", "Base rate: points per 1 unit of base currency (optionally for one order currency)"
    CATEGORY_BONUS = "category_bonus", "Category bonus: extra points per base unit spent in a category"
    SKU_BONUS = "sku_bonus", "SKU bonus: extra points per base unit and/or per item of a SKU"
    PROMOTION = "promotion", "Promotion: multiplies base points (optionally for one tier)"
    FIRST_ORDER_BONUS = "first_order_bonus", "First-order bonus: fixed points on a member's first order"


class EarnRule(models.Model):
    """One earning rule; its `kind` picks the strategy class in loyalty/rules/earn.py.

    Points = floor(qualifying base amount x base rate x tier multiplier x promotion multipliers
    + category and SKU bonuses) + fixed bonuses."""

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="earn_rules")
    name = models.CharField(max_length=120)
    kind = models.CharField(max_length=20, choices=EarnRuleKind.choices)
    active = models.BooleanField(default=True)
    starts_at = models.DateTimeField(null=True, blank=True, help_text="Empty: no start.")
    ends_at = models.DateTimeField(null=True, blank=True, help_text="Empty: no end (exclusive).")
    asset = models.ForeignKey(
        Asset,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Point currency earned; empty: the program's primary one.",
    )
    currency = models.CharField(
        max_length=3, blank=True, choices=CURRENCY_CHOICES, help_text="Base rate: only orders in this currency."
    )
    category = models.CharField(max_length=64, blank=True)
    sku = models.CharField(max_length=64, blank=True)
    tier = models.ForeignKey(
        "tiers.Tier",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="earn_rules",
        help_text="Only for members of this tier.",
    )
    rate = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal("0"))
    multiplier = models.DecimalField(max_digits=6, decimal_places=3, default=Decimal("1"))
    points = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["kind", "id"]

    def __str__(self):
        return self.name

    def clean(self):
        errors = {}
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            errors["ends_at"] = "The end must come after the start."
        if self.kind == EarnRuleKind.BASE_RATE and self.rate <= 0:
            errors["rate"] = "A base rate needs a rate above zero."
        if self.kind == EarnRuleKind.CATEGORY_BONUS and not (self.category and self.rate > 0):
            errors["category"] = "A category bonus needs a category and a rate above zero."
        if self.kind == EarnRuleKind.SKU_BONUS and not (self.sku and (self.rate > 0 or self.points > 0)):
            errors["sku"] = "A SKU bonus needs a SKU and a rate or points per item."
        if self.kind == EarnRuleKind.PROMOTION and self.multiplier <= 0:
            errors["multiplier"] = "A promotion needs a multiplier above zero."
        if self.kind == EarnRuleKind.FIRST_ORDER_BONUS and not self.points:
            errors["points"] = "A first-order bonus needs points."
        if errors:
            raise ValidationError(errors)
