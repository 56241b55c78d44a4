"""Badge and challenge criteria as small strategies: a definition's `kind` picks one class here.

Each class says which events can change its value (`triggers`), computes the member's value over a
window from the database, and says why a definition could never be met (`problems`, shown in
admin). Values are recomputed, not incremented: evaluating twice, late, or after an edit gives the
same answer.

Order-based kinds compute from `MemberOrders`: the orders (and their lines) of the members evaluated
together read once, with member-indexed queries, and shared by every badge and challenge period
evaluated for them. A batch of events costs the same few queries however many definitions and
periods they can move; the work grows with the members' own histories, not with the program's size.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cached_property
from typing import ClassVar, NamedTuple
from zoneinfo import ZoneInfo

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
        if event_type not in self.triggers:
            return False
        # an order maturing moves only what counts matured orders: counts of placed ones cannot move then
        return event_type != "order.matured" or criterion.counts == Counts.MATURED

    def value(
        self, criterion: Criterion, member: Member, window: Window, now: datetime, orders: MemberOrders | None = None
    ) -> Decimal:
        """The member's value over the window; `orders` shares one read of the member's orders."""
        raise NotImplementedError

    def problems(self, criterion: Criterion) -> dict[str, str]:
        if criterion.target is None or criterion.target <= 0:
            return {"target": "The target must be above zero, or it is met before anything happens."}
        if self.whole and criterion.target != criterion.target.to_integral_value():
            return {"target": "This kind counts things: the target must be a whole number."}
        return {}


class CountedOrder(NamedTuple):
    id: int
    placed_at: datetime
    available_at: datetime
    currency: str
    spend_base: Decimal
    qualifying: Decimal
    refunded_qualifying: Decimal
    fx_rate: Decimal


class MemberOrders:
    """A member's orders that can count (not cancelled, not refunded to nothing), read once (one
    query, oldest first) and their lines once (one query, only when a criterion needs them).
    Members evaluated together (`read`) share both reads: one query for all their orders, one for
    all their lines."""

    def __init__(self, member: Member, group: list[MemberOrders] | None = None):
        self.member = member
        self._group = group if group is not None else [self]

    @classmethod
    def read(cls, members: list[Member]) -> dict[int, MemberOrders]:
        """member id -> its orders, for many members in one query."""
        group: list[MemberOrders] = []
        found = {m.pk: cls(m, group) for m in members}
        group.extend(found.values())
        for each in group:
            each.__dict__["orders"] = []
        for member_id, *row in cls._query(list(found)).values_list("member_id", *CountedOrder._fields):
            found[member_id].__dict__["orders"].append(CountedOrder(*row))
        return found

    @staticmethod
    def _query(member_ids: list[int]):
        return (
            Order.objects.filter(member_id__in=member_ids, spend_base__gt=0)
            .exclude(status=OrderStatus.CANCELLED)
            .order_by("placed_at", "id")
        )

    @cached_property
    def orders(self) -> list[CountedOrder]:
        return [CountedOrder(*row) for row in self._query([self.member.pk]).values_list(*CountedOrder._fields)]

    @cached_property
    def lines(self) -> dict[int, list[tuple[str, Decimal, int, int]]]:
        """order id -> [(category, net, quantity, refunded quantity)] of lines that earn (no gift cards)."""
        owner = {o.id: each for each in self._group for o in each.orders}
        for each in self._group:
            each.__dict__.setdefault("lines", {})
        counted = self._query([each.member.pk for each in self._group]).values("id")  # a subquery, not ids
        rows = OrderLine.objects.filter(order_id__in=counted, gift_card=False).order_by("id")
        for order_id, *line in rows.values_list("order_id", "category", "net", "quantity", "refunded_quantity"):
            owner[order_id].__dict__["lines"].setdefault(order_id, []).append(line)
        return self.__dict__["lines"]

    def counted(self, criterion: Criterion, window: Window, now: datetime) -> list[CountedOrder]:
        """Orders that count: in the window and (for `matured`) past their return window."""
        matured = criterion.counts == Counts.MATURED
        return [o for o in self.orders if window.contains(o.placed_at) and (not matured or o.available_at <= now)]


def orders_counted(criterion: Criterion, member: Member, window: Window, now: datetime, orders=None):
    return (orders or MemberOrders(member)).counted(criterion, window, now)


class OrderCount(CriterionStrategy):
    kind, triggers = CriterionKind.ORDER_COUNT, ORDER_EVENTS

    def value(self, criterion, member, window, now, orders=None):
        return Decimal(len(orders_counted(criterion, member, window, now, orders)))


class Spend(CriterionStrategy):
    kind, triggers, whole = CriterionKind.SPEND, ORDER_EVENTS, False

    def value(self, criterion, member, window, now, orders=None):
        return sum((o.spend_base for o in orders_counted(criterion, member, window, now, orders)), ZERO)


class CategorySpend(CriterionStrategy):
    """Spend on the category's lines, net of refunds: what is left of each line (refunded quantities
    removed) times what is left of the order's qualifying amount over its lines (refunds by amount
    and the part paid with points taken out pro rata), at the order's FX snapshot."""

    kind, triggers, whole = CriterionKind.CATEGORY_SPEND, ORDER_EVENTS, False

    def value(self, criterion, member, window, now, orders=None):
        orders = orders or MemberOrders(member)
        total = ZERO
        for order in orders.counted(criterion, window, now):
            all_ = cat = ZERO
            for category, net, quantity, refunded in orders.lines.get(order.id, ()):
                left = net * (quantity - refunded) / quantity
                all_ += left
                if category == criterion.category:
                    cat += left
            if all_:
                total += cat * ((order.qualifying - order.refunded_qualifying) * order.fx_rate) / all_
        return total.quantize(Decimal("0.01"))

    def problems(self, criterion):
        return super().problems(criterion) or (
            {} if criterion.category else {"category": "Name the category whose spend counts."}
        )


class Currencies(CriterionStrategy):
    kind, triggers = CriterionKind.CURRENCIES, ORDER_EVENTS

    def value(self, criterion, member, window, now, orders=None):
        return Decimal(len({o.currency for o in orders_counted(criterion, member, window, now, orders)}))

    def problems(self, criterion):
        accepted = criterion.program.fx_rates.count() if criterion.program_id else None
        if accepted is not None and criterion.target and criterion.target > accepted:
            return {"target": f"The program accepts {accepted} currencies: {criterion.target} cannot be met."}
        return super().problems(criterion)


class Referrals(CriterionStrategy):
    kind, triggers = CriterionKind.REFERRALS, frozenset({"referral.qualified"})

    def value(self, criterion, member, window, now, orders=None):
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

    def value(self, criterion, member, window, now, orders=None):
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

    def value(self, criterion, member, window, now, orders=None):
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

    def value(self, criterion, member, window, now, orders=None):
        tz = ZoneInfo(member.program.timezone)
        local = (o.placed_at.astimezone(tz) for o in orders_counted(criterion, member, window, now, orders))
        months = sorted({m.year * 12 + m.month - 1 for m in local})
        best = run = 0
        for i, month in enumerate(months):
            run = run + 1 if i and month == months[i - 1] + 1 else 1
            best = max(best, run)
        return Decimal(best)


class NoCriterion(CriterionStrategy):
    kind = CriterionKind.NONE

    def triggered_by(self, criterion, event_type):
        return False

    def value(self, criterion, member, window, now, orders=None):
        return ZERO

    def problems(self, criterion):
        return {}


KINDS: dict[str, CriterionStrategy] = {
    cls.kind: cls()
    for cls in (OrderCount, Spend, CategorySpend, Currencies, Referrals, EventCount, TierReached, Streak, NoCriterion)
}
ORDER_KINDS = [k for k, s in KINDS.items() if s.triggers == ORDER_EVENTS]
