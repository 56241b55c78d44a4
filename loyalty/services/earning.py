"""How many points an order earns: one pure calculation shared by the quote and the order.

Points = floor(Q x base rate x tier multiplier x promotion multipliers + bonuses) + fixed bonuses,
where Q is the qualifying amount (merchandise net of discounts, without gift cards and without the
part paid with points) in the base currency at the order's FX snapshot. The breakdown lists every
contribution; its points add up to the total.
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from loyalty.models import EarnRule, Program
from loyalty.money import money_round, points_floor, to_base
from loyalty.rules.earn import KINDS, EarnContext, EarnLine, num
from tiers.models import Tier

ZERO = Decimal(0)


@dataclass(frozen=True)
class LineDraft:
    sku: str
    quantity: int
    unit_price: Decimal
    category: str = ""
    discount: Decimal = ZERO
    gift_card: bool = False

    @property
    def net(self) -> Decimal:
        return self.quantity * self.unit_price - self.discount


@dataclass(frozen=True)
class OrderDraft:
    external_id: str
    member: str
    currency: str
    lines: tuple[LineDraft, ...]
    shipping: Decimal = ZERO
    tax: Decimal = ZERO
    placed_at: datetime | None = None
    payment_fingerprint: str = ""
    device_id: str = ""
    metadata: dict | None = None

    @property
    def merchandise(self) -> Decimal:
        return sum((line.net for line in self.lines), ZERO)

    @property
    def earning_merchandise(self) -> Decimal:
        return sum((line.net for line in self.lines if not line.gift_card), ZERO)

    @property
    def total(self) -> Decimal:
        return self.merchandise + self.shipping + self.tax


@dataclass(frozen=True)
class Earning:
    points: int
    breakdown: list[dict]
    qualifying: Decimal  # order currency
    qualifying_base: Decimal  # base currency


def earn_rules_active(*, program: Program) -> list[EarnRule]:
    return list(EarnRule.objects.filter(program=program, active=True))


def earn_calculate(
    *,
    program: Program,
    tier: Tier | None,
    draft: OrderDraft,
    fx_rate: Decimal,
    placed_at: datetime,
    rules: list[EarnRule],
    first_order: bool,
    points_payment: Decimal = ZERO,
) -> Earning:
    base = program.base_currency
    earning = draft.earning_merchandise
    qualifying = max(earning - points_payment, ZERO)
    share = qualifying / earning if earning else ZERO  # the part not paid with points
    qualifying_base = to_base(qualifying, rate=fx_rate, base_currency=base)
    ctx = EarnContext(
        currency=draft.currency,
        base_currency=base,
        placed_at=placed_at,
        tier_id=tier.pk if tier else None,
        qualifying_base=qualifying_base,
        first_order=first_order,
        lines=[
            EarnLine(
                sku=line.sku,
                category=line.category,
                quantity=line.quantity,
                base_amount=to_base(line.net * share, rate=fx_rate, base_currency=base),
            )
            for line in draft.lines
            if not line.gift_card
        ],
    )
    by_phase: dict[str, list[tuple[EarnRule, object]]] = {"rate": [], "multiplier": [], "bonus": [], "fixed": []}
    for rule in rules:
        strategy = KINDS[rule.kind]
        if strategy.applies(rule, ctx):
            by_phase[strategy.phase].append((rule, strategy))

    breakdown: list[dict] = []
    exact = ZERO
    # The base rate: an override for the order's currency beats the default.
    rates = sorted(by_phase["rate"], key=lambda pair: (pair[0].currency == "", -pair[0].pk))
    if rates:
        rule, strategy = rates[0]
        exact = qualifying_base * strategy.value(rule, ctx)
        breakdown.append(_item(rule.kind, strategy.describe(rule, ctx), exact))
    multipliers = []
    if tier is not None and tier.earn_multiplier != 1:
        multipliers.append(("tier_multiplier", f"{tier.name}: x{num(tier.earn_multiplier)}", tier.earn_multiplier))
    multipliers += [
        (rule.kind, strategy.describe(rule, ctx), strategy.value(rule, ctx))
        for rule, strategy in by_phase["multiplier"]
    ]
    for kind, description, factor in multipliers:
        extra = exact * (factor - 1)
        exact += extra
        breakdown.append(_item(kind, description, extra))
    for rule, strategy in by_phase["bonus"]:
        extra = strategy.value(rule, ctx)
        if extra:
            exact += extra
            breakdown.append(_item(rule.kind, strategy.describe(rule, ctx), extra))
    points = points_floor(exact)
    if exact != points:
        breakdown.append(_item("rounding", "Rounded down to whole points", points - exact))
    for rule, strategy in by_phase["fixed"]:
        bonus = points_floor(strategy.value(rule, ctx))
        points += bonus
        breakdown.append(_item(rule.kind, strategy.describe(rule, ctx), Decimal(bonus)))
    return Earning(
        points=points,
        breakdown=breakdown,
        qualifying=money_round(qualifying, draft.currency),
        qualifying_base=qualifying_base,
    )


def _item(rule: str, description: str, points: Decimal) -> dict:
    return {"rule": rule, "description": description, "points": f"{points.quantize(Decimal('0.01')):f}"}
