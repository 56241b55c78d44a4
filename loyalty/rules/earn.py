"""Earn rules as small strategies: an EarnRule row's `kind` picks one class here.

Each class says in which phase its rule acts:
- `rate`: the base rate, points per unit of base currency (an order-currency override wins);
- `multiplier`: multiplies the base points (promotions; the tier multiplier comes from the tier);
- `bonus`: extra exact points added before rounding (category and SKU bonuses);
- `fixed`: whole points added after rounding (first-order bonus).
Adding a kind is adding a class and registering it in KINDS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import ClassVar

from loyalty.models import EarnRule, EarnRuleKind


@dataclass
class EarnLine:
    sku: str
    category: str
    base_amount: Decimal  # the line's qualifying part, in the base currency
    quantity: int


@dataclass
class EarnContext:
    currency: str  # the order's currency
    base_currency: str
    placed_at: datetime
    tier_id: int | None
    qualifying_base: Decimal
    lines: list[EarnLine]
    first_order: bool
    breakdown: list[dict] = field(default_factory=list)


def num(value: Decimal) -> str:
    """1.2500 -> "1.25", 10 -> "10" (no exponent)."""
    return f"{value.normalize():f}"


class EarnRuleStrategy:
    kind: ClassVar[str]
    phase: ClassVar[str]

    @staticmethod
    def applies(rule: EarnRule, ctx: EarnContext) -> bool:
        if not rule.active:
            return False
        if rule.starts_at and ctx.placed_at < rule.starts_at:
            return False
        if rule.ends_at and ctx.placed_at >= rule.ends_at:
            return False
        return rule.tier_id is None or rule.tier_id == ctx.tier_id

    def value(self, rule: EarnRule, ctx: EarnContext) -> Decimal:
        raise NotImplementedError

    def describe(self, rule: EarnRule, ctx: EarnContext) -> str:
        return rule.name


class BaseRate(EarnRuleStrategy):
    kind, phase = EarnRuleKind.BASE_RATE, "rate"

    @staticmethod
    def applies(rule, ctx):
        return EarnRuleStrategy.applies(rule, ctx) and rule.currency in ("", ctx.currency)

    def value(self, rule, ctx):
        return rule.rate

    def describe(self, rule, ctx):
        return f"{rule.name}: {num(rule.rate)} per {ctx.base_currency} on {ctx.qualifying_base} {ctx.base_currency}"


class Promotion(EarnRuleStrategy):
    kind, phase = EarnRuleKind.PROMOTION, "multiplier"

    def value(self, rule, ctx):
        return rule.multiplier

    def describe(self, rule, ctx):
        return f"{rule.name}: x{num(rule.multiplier)}"


class CategoryBonus(EarnRuleStrategy):
    kind, phase = EarnRuleKind.CATEGORY_BONUS, "bonus"

    def value(self, rule, ctx):
        spent = sum((line.base_amount for line in ctx.lines if line.category == rule.category), Decimal(0))
        return spent * rule.rate

    def describe(self, rule, ctx):
        return f"{rule.name}: +{num(rule.rate)} per {ctx.base_currency} in {rule.category}"


class SkuBonus(EarnRuleStrategy):
    kind, phase = EarnRuleKind.SKU_BONUS, "bonus"

    def value(self, rule, ctx):
        lines = [line for line in ctx.lines if line.sku == rule.sku]
        return sum((line.base_amount * rule.rate + line.quantity * rule.points for line in lines), Decimal(0))

    def describe(self, rule, ctx):
        return f"{rule.name}: bonus on {rule.sku}"


class FirstOrderBonus(EarnRuleStrategy):
    kind, phase = EarnRuleKind.FIRST_ORDER_BONUS, "fixed"

    @staticmethod
    def applies(rule, ctx):
        return EarnRuleStrategy.applies(rule, ctx) and ctx.first_order

    def value(self, rule, ctx):
        return Decimal(rule.points)


KINDS: dict[str, EarnRuleStrategy] = {
    cls.kind: cls() for cls in (BaseRate, Promotion, CategoryBonus, SkuBonus, FirstOrderBonus)
}
