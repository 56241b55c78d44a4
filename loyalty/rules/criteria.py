"""Badge and challenge criteria as small strategies: a definition's `kind` picks one class here.

Each class says which events can change its value (`triggers`), computes the member's value over a
window from the database (member-indexed queries: the cost does not grow with the member count),
and says why a definition could never be met (`problems`, shown in admin). Values are recomputed,
not incremented: evaluating twice, late, or after an edit gives the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import ClassVar
from zoneinfo import ZoneInfo

from django.db.models import Q, Sum
from django.db.models.functions import TruncMonth

from loyalty.models import Event, Member, Order, OrderLine, OrderStatus
from loyalty.models.gamification import Counts, Criterion, CriterionKind

ORDER_EVENTS = frozenset({"order.placed", "order.matured", "order.refunded", "order.cancelled"})
ZERO = Decimal(0)


@dataclass(frozen=True)
class Window:
    start: datetime | None
    end: datetime  # exclusive

    @classmethod
    def until(cls, start: datetime | None, end: datetime | None, now: datetime) -> Window:
        """[start, end) cut at `now`, inclusive of what happened at `now` itself."""
        upto = now + timedelta(microseconds=1)
        return cls(start, min(end, upto) if end is not None else upto)

    def contains(self, moment: datetime) -> bool:
        return (self.start is None or moment >= self.start) and moment < self.end


def months_spanned(start: datetime, end: datetime, repeat: str = "none") -> int:
    if repeat == "month":
        return 1
    return (end.year - start.year) * 12 + end.month - start.month + (1 if end.day > 1 or end.hour else 0)


class CriterionStrategy:
    kind: ClassVar[str]
    triggers: ClassVar[frozenset[str]] = frozenset()
    whole: ClassVar[bool] = True  # the target is a count

    def triggered_by(self, criterion: Criterion, event_type: str) -> bool:
        return event_type in self.triggers

    def value(self, criterion: Criterion, member: Member, window: Window, now: datetime) -> Decimal:
        raise NotImplementedError

    def problems(self, criterion: Criterion) -> dict[str, str]:
        if criterion.target is None or criterion.target <= 0:
            return {"target": "The target must be above zero, or it is met before anything happens."}
        if self.whole and criterion.target != criterion.target.to_integral_value():
            return {"target": "This kind counts things: the target must be a whole number."}
        return {}


def orders_counted(criterion: Criterion, member: Member, window: Window, now: datetime):
    """Orders that count: in the window, not cancelled, not refunded to nothing, and (for `matured`)
    past their return window."""
    orders = Order.objects.filter(member=member, placed_at__lt=window.end, spend_base__gt=0).exclude(
        status=OrderStatus.CANCELLED
    )
    if window.start is not None:
        orders = orders.filter(placed_at__gte=window.start)
    if criterion.counts == Counts.MATURED:
        orders = orders.filter(available_at__lte=now)
    return orders


class OrderCount(CriterionStrategy):
    kind, triggers = CriterionKind.ORDER_COUNT, ORDER_EVENTS

    def value(self, criterion, member, window, now):
        return Decimal(orders_counted(criterion, member, window, now).count())


class Spend(CriterionStrategy):
    kind, triggers, whole = CriterionKind.SPEND, ORDER_EVENTS, False

    def value(self, criterion, member, window, now):
        return orders_counted(criterion, member, window, now).aggregate(s=Sum("spend_base"))["s"] or ZERO


class CategorySpend(CriterionStrategy):
    """Spend on the category's lines, net of refunds: what is left of each line (refunded quantities
    removed) times what is left of the order's qualifying amount over its lines (refunds by amount
    and the part paid with points taken out pro rata), at the order's FX snapshot."""

    kind, triggers, whole = CriterionKind.CATEGORY_SPEND, ORDER_EVENTS, False

    def value(self, criterion, member, window, now):
        orders = orders_counted(criterion, member, window, now)
        lines = OrderLine.objects.filter(order__in=orders, gift_card=False).values_list(
            "order_id",
            "category",
            "net",
            "quantity",
            "refunded_quantity",
            "order__qualifying",
            "order__refunded_qualifying",
            "order__fx_rate",
        )
        per_order: dict[int, list] = {}
        for order_id, category, net, quantity, refunded, qualifying, refunded_q, fx in lines:
            left = net * (quantity - refunded) / quantity
            per_order.setdefault(order_id, [ZERO, ZERO, (qualifying - refunded_q) * fx])
            per_order[order_id][0] += left
            if category == criterion.category:
                per_order[order_id][1] += left
        total = sum((cat * base / all_ for all_, cat, base in per_order.values() if all_), ZERO)
        return total.quantize(Decimal("0.01"))

    def problems(self, criterion):
        return super().problems(criterion) or (
            {} if criterion.category else {"category": "Name the category whose spend counts."}
        )


class Currencies(CriterionStrategy):
    kind, triggers = CriterionKind.CURRENCIES, ORDER_EVENTS

    def value(self, criterion, member, window, now):
        return Decimal(orders_counted(criterion, member, window, now).values("currency").distinct().count())

    def problems(self, criterion):
        accepted = criterion.program.fx_rates.count() if criterion.program_id else None
        if accepted is not None and criterion.target and criterion.target > accepted:
            return {"target": f"The program accepts {accepted} currencies: {criterion.target} cannot be met."}
        return super().problems(criterion)


class Referrals(CriterionStrategy):
    kind, triggers = CriterionKind.REFERRALS, frozenset({"referral.qualified"})

    def value(self, criterion, member, window, now):
        from referrals.models import Referral, ReferralStatus

        found = Referral.objects.filter(referrer=member, status=ReferralStatus.QUALIFIED, decided_at__lt=window.end)
        if window.start is not None:
            found = found.filter(decided_at__gte=window.start)
        return Decimal(found.count())


class EventCount(CriterionStrategy):
    """Events of one type: custom ones from the shop (review.posted) or the engine's own."""

    kind = CriterionKind.EVENT_COUNT

    def triggered_by(self, criterion, event_type):
        return event_type == criterion.event_type

    def value(self, criterion, member, window, now):
        found = Event.objects.filter(member=member, type=criterion.event_type, occurred_at__lt=window.end)
        if window.start is not None:
            found = found.filter(occurred_at__gte=window.start)
        return Decimal(found.count())

    def problems(self, criterion):
        return super().problems(criterion) or (
            {} if criterion.event_type else {"event_type": "Name the event type that counts, e.g. review.posted."}
        )


class TierReached(CriterionStrategy):
    """1 once the member's tier in effect is the criterion's tier or above it."""

    kind, triggers = CriterionKind.TIER, frozenset({"tier.changed"})

    def value(self, criterion, member, window, now):
        from tiers.selectors import tier_in_effect

        tier = tier_in_effect(member, now)
        return Decimal(1 if tier is not None and tier.rank >= criterion.tier.rank else 0)

    def problems(self, criterion):
        if criterion.tier_id is None:
            return {"tier": "Choose the tier to reach."}
        if criterion.program_id and criterion.tier.program_id != criterion.program_id:
            return {"tier": "That tier belongs to another program."}
        if criterion.target != 1:
            return {"target": "A tier is reached or not: the target is 1."}
        return {}


class Streak(CriterionStrategy):
    """The longest run of consecutive calendar months (program time zone) with a counted order;
    December and January are consecutive."""

    kind, triggers = CriterionKind.STREAK, ORDER_EVENTS

    def value(self, criterion, member, window, now):
        tz = ZoneInfo(member.program.timezone)
        months = sorted(
            {
                m.astimezone(tz).year * 12 + m.astimezone(tz).month - 1
                for m in orders_counted(criterion, member, window, now)
                .annotate(m=TruncMonth("placed_at", tzinfo=tz))
                .values_list("m", flat=True)
            }
        )
        best = run = 0
        for i, month in enumerate(months):
            run = run + 1 if i and month == months[i - 1] + 1 else 1
            best = max(best, run)
        return Decimal(best)


class NoCriterion(CriterionStrategy):
    kind = CriterionKind.NONE

    def triggered_by(self, criterion, event_type):
        return False

    def value(self, criterion, member, window, now):
        return ZERO

    def problems(self, criterion):
        return {}


KINDS: dict[str, CriterionStrategy] = {
    cls.kind: cls()
    for cls in (OrderCount, Spend, CategorySpend, Currencies, Referrals, EventCount, TierReached, Streak, NoCriterion)
}
ORDER_KINDS = [k for k, s in KINDS.items() if s.triggers == ORDER_EVENTS]


def kinds_for(event_type: str) -> Q:
    """A filter for the definitions an event of this type can move."""
    kinds = [k for k, s in KINDS.items() if event_type in s.triggers]
    moved = Q(kind__in=kinds)
    if event_type == "order.matured":  # maturity moves only what counts matured orders
        moved &= Q(counts=Counts.MATURED)
    return moved | Q(kind=CriterionKind.EVENT_COUNT, event_type=event_type)
