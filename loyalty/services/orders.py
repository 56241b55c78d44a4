"""Orders: quote, place, refund, cancel. Points land pending and mature after the return window;
refunds claw back pro rata under the program's refund policy and lower tier spend."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import F, Q, Sum
from django.utils import timezone

from loyalty import errors
from loyalty.models import (
    AccountKind,
    FxRate,
    MemberStatus,
    Order,
    OrderLine,
    OrderStatus,
    Program,
    Redemption,
    RedemptionStatus,
    Refund,
    RefundKind,
    RefundPolicy,
    TransactionKind,
)
from loyalty.money import MAX_MONEY, from_base, money_round, points_floor, to_base
from loyalty.services.earning import ZERO, Earning, OrderDraft, earn_calculate, earn_rules_active
from loyalty.services.ledger import Book
from loyalty.services.locks import member_lock, members_lock
from loyalty.services.points import activity_record, lots_consume, lots_settle, points_credit
from loyalty.services.redemptions import holds_release_expired
from tiers.models import TierChangeReason
from tiers.selectors import tier_in_effect
from tiers.services import tier_refresh, tier_spend_changed


def fx_rate_get(*, program: Program, currency: str) -> Decimal:
    if currency == program.base_currency:
        return Decimal(1)
    rate = FxRate.objects.filter(program=program, currency=currency).values_list("rate", flat=True).first()
    if rate is None:
        raise errors.CurrencyNotAccepted(f"{program.code} does not accept {currency}", currency=currency)
    return rate


def order_amounts_check(draft: OrderDraft, *, fx_rate: Decimal, base_currency: str) -> None:
    """An order whose total, in its currency or in the base currency, the books cannot hold."""
    total = draft.total
    if max(total, to_base(total, rate=fx_rate, base_currency=base_currency)) > MAX_MONEY:
        raise errors.AmountTooLarge(
            f"Order {draft.external_id}: a total of {total} {draft.currency} is more than the books can hold",
            errors=[{"field": "lines", "message": f"the order's total may be at most {MAX_MONEY} in any currency"}],
        )


def _points_payment(*, program: Program, member, draft: OrderDraft, fx_rate: Decimal, now: datetime) -> Decimal:
    """The part of the merchandise paid with points: holds made for this order, captured or still
    held (not those whose time ran out, which will be voided)."""
    value = (
        Redemption.objects.filter(program=program, member=member, order_external_id=draft.external_id)
        .filter(Q(status=RedemptionStatus.CAPTURED) | Q(status=RedemptionStatus.HELD, expires_at__gt=now))
        .aggregate(total=Sum("value"))["total"]
    )
    if not value:
        return ZERO
    return min(from_base(value, rate=fx_rate, currency=draft.currency), draft.earning_merchandise)


# --- quote --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Quote:
    earning: Earning
    redeemable_points: int
    redeemable_value: Decimal  # base currency
    fx_rate: Decimal


def order_quote(*, program: Program, draft: OrderDraft, now: datetime | None = None) -> Quote:
    """What the order would earn and how many points could pay for it. Writes nothing."""
    from loyalty.selectors.members import member_balances, member_get

    now = now or timezone.now()
    fx_rate = fx_rate_get(program=program, currency=draft.currency)
    member = member_get(program=program, external_id=draft.member)
    earning = earn_calculate(
        program=program,
        tier=tier_in_effect(member, now),
        draft=draft,
        fx_rate=fx_rate,
        placed_at=draft.placed_at or now,
        rules=earn_rules_active(program=program),
        first_order=not member.orders.exclude(status=OrderStatus.CANCELLED).exists(),
        points_payment=_points_payment(program=program, member=member, draft=draft, fx_rate=fx_rate, now=now),
    )
    asset = program.primary_asset
    available = member_balances(member=member, now=now).get(asset.code, {}).get("available", 0)
    merchandise_base = to_base(draft.earning_merchandise, rate=fx_rate, base_currency=program.base_currency)
    points = 0
    if merchandise_base >= asset.redeem_min_order and asset.unit_value > 0:
        cap = min(available, points_floor(merchandise_base / asset.unit_value))
        points = cap - cap % asset.redeem_step
        points = points if points >= asset.redeem_min else 0
    value = money_round(points * asset.unit_value, program.base_currency)
    return Quote(earning=earning, redeemable_points=points, redeemable_value=value, fx_rate=fx_rate)


# --- place --------------------------------------------------------------------------------------
def order_place(*, program: Program, draft: OrderDraft, now: datetime | None = None) -> Order:
    """Record an order and credit its points (pending until the return window ends)."""
    now = now or timezone.now()
    try:
        return _order_place(program=program, draft=draft, now=now)
    except IntegrityError:
        # The same order placed before, or concurrently: the unique constraint caught it.
        if Order.objects.filter(program=program, external_id=draft.external_id).exists():
            raise errors.OrderExists(f"Order {draft.external_id} was already placed")
        raise


@transaction.atomic
def _order_place(*, program: Program, draft: OrderDraft, now: datetime) -> Order:
    fx_rate = fx_rate_get(program=program, currency=draft.currency)
    order_amounts_check(draft, fx_rate=fx_rate, base_currency=program.base_currency)
    member = member_lock(program=program, external_id=draft.member)
    if member.status == MemberStatus.CLOSED:
        raise errors.MemberClosed()
    # A second order with the same id fails on the unique constraint when it is inserted (below);
    # order_place answers OrderExists then. No look-up first: one round trip less on every order.
    placed_at = draft.placed_at or now
    book = Book(program=program, now=now)
    tier = tier_refresh(book, member=member)  # the tier in effect now (a late year-end job posted first)
    points_payment = _points_payment(program=program, member=member, draft=draft, fx_rate=fx_rate, now=now)
    earning = earn_calculate(
        program=program,
        tier=tier,
        draft=draft,
        fx_rate=fx_rate,
        placed_at=placed_at,
        rules=earn_rules_active(program=program),
        first_order=not member.orders.exclude(status=OrderStatus.CANCELLED).exists(),
        points_payment=points_payment,
    )
    currency, base = draft.currency, program.base_currency
    order = Order.objects.create(
        program=program,
        member=member,
        external_id=draft.external_id,
        placed_at=placed_at,
        fx_rate=fx_rate,
        currency=currency,
        base_currency=base,
        merchandise=draft.merchandise,
        shipping=draft.shipping,
        tax=draft.tax,
        total=draft.total,
        points_payment=points_payment,
        qualifying=earning.qualifying,
        refunded=ZERO,
        refunded_merchandise=ZERO,
        refunded_qualifying=ZERO,
        qualifying_base=earning.qualifying_base,
        spend_base=earning.qualifying_base,
        points_earned=earning.points,
        earn_breakdown=earning.breakdown,
        available_at=placed_at + timedelta(days=program.pending_days),
        payment_fingerprint=draft.payment_fingerprint,
        device_id=draft.device_id,
        metadata=draft.metadata or {},
    )
    lines = OrderLine.objects.bulk_create(
        OrderLine(
            order=order,
            sku=line.sku,
            category=line.category,
            quantity=line.quantity,
            currency=currency,
            unit_price=line.unit_price,
            discount=line.discount,
            net=line.net,
            gift_card=line.gift_card,
        )
        for line in draft.lines
    )
    activity_record(book, member=member, at=placed_at)
    if earning.points:
        points_credit(
            book,
            member=member,
            asset=program.primary_asset,
            amount=earning.points,
            kind=TransactionKind.EARN,
            source=AccountKind.ISSUED,
            earned_at=placed_at,
            matures_at=order.available_at,
            order=order,
            reference=f"Order {order.external_id}",
        )
    book.emit(
        "order.placed",
        member,
        {
            "order": order.external_id,
            "currency": currency,
            "spend_base": str(earning.qualifying_base),
            "points": earning.points,
            "categories": sorted({line.category for line in draft.lines if line.category}),
        },
        occurred_at=placed_at,
    )
    if earning.points:
        book.emit(
            "points.earned",
            member,
            {"order": order.external_id, "points": earning.points, "available_at": order.available_at.isoformat()},
            occurred_at=placed_at,
        )
    tier_spend_changed(book, member=member, order=order)  # an upgrade takes effect from the next order
    book.commit()
    order._prefetched_objects_cache = {"lines": lines, "refunds": []}  # a new order: read it back from memory
    return order


# --- refunds and cancel -------------------------------------------------------------------------
@dataclass(frozen=True)
class RefundLine:
    sku: str
    quantity: int


def order_refund(
    *,
    program: Program,
    order_external_id: str,
    refund_external_id: str,
    amount: Decimal | None = None,
    lines: list[RefundLine] | None = None,
    reason: str = "",
    now: datetime | None = None,
) -> Refund:
    """Refund part of an order by amount (in the order's currency) or by lines."""
    now = now or timezone.now()
    try:
        return _refund(
            program=program,
            order_external_id=order_external_id,
            external_id=refund_external_id,
            amount=amount,
            lines=lines or [],
            reason=reason,
            kind=RefundKind.REFUND,
            now=now,
        )
    except IntegrityError:
        if Refund.objects.filter(
            order__program=program, order__external_id=order_external_id, external_id=refund_external_id
        ).exists():
            raise errors.RefundExists(f"Refund {refund_external_id} was already recorded")
        raise


def order_cancel(*, program: Program, order_external_id: str, reason: str = "", now: datetime | None = None) -> Refund:
    """Reverse what is left of an order: its points (under the refund policy) and its tier spend.
    Cancelling a cancelled order returns the first cancel."""
    now = now or timezone.now()
    return _refund(
        program=program,
        order_external_id=order_external_id,
        external_id="cancel",
        amount=None,
        lines=[],
        reason=reason,
        kind=RefundKind.CANCEL,
        now=now,
    )


@transaction.atomic
def _refund(*, program, order_external_id, external_id, amount, lines, reason, kind, now) -> Refund:
    member_id = (
        Order.objects.filter(program=program, external_id=order_external_id).values_list("member_id", flat=True).first()
    )
    if member_id is None:
        raise errors.OrderNotFound(f"No order {order_external_id}")
    [member] = members_lock(member_ids=[member_id])
    order = Order.objects.get(program=program, external_id=order_external_id)  # re-read inside the lock
    if kind == RefundKind.CANCEL and order.status == OrderStatus.CANCELLED:
        return order.refunds.get(kind=RefundKind.CANCEL)
    if order.status == OrderStatus.CANCELLED:
        raise errors.OrderCancelled(f"Order {order.external_id} is cancelled")
    if order.refunds.filter(external_id=external_id).exists():
        raise errors.RefundExists(f"Refund {external_id} was already recorded")

    currency = str(order.currency)
    taken: dict[int, int] = {}
    merchandise_left = order.merchandise.amount - order.refunded_merchandise.amount
    qualifying_left = order.qualifying.amount - order.refunded_qualifying.amount
    if kind == RefundKind.CANCEL:
        money_back = order.total.amount - order.refunded.amount
        merchandise, qualifying = merchandise_left, qualifying_left
    elif lines:
        money_back, merchandise, qualifying, taken = _refund_lines(order, lines)
        if amount is not None:  # an explicit amount may add shipping or tax to the lines' value
            if amount < money_back:
                raise errors.InvalidInput(
                    "The amount is less than the value of the lines refunded",
                    errors=[{"field": "amount", "message": "less than the lines refunded"}],
                )
            money_back = amount
    else:
        money_back = amount
        merchandise = min(amount, merchandise_left)
        share = order.qualifying.amount / order.merchandise.amount if order.merchandise.amount else ZERO
        qualifying = min(money_round(merchandise * share, currency), qualifying_left)
    if money_back > order.total.amount - order.refunded.amount or merchandise > merchandise_left:
        raise errors.RefundExceedsOrder(
            f"{money_back} {currency} asked, {order.total.amount - order.refunded.amount} {currency} left to refund"
        )
    if merchandise == merchandise_left:
        qualifying = qualifying_left  # the last refund takes whatever rounding left behind

    # Pro rata, cumulative over all refunds of the order, so that a full refund reverses everything.
    qualifying_after = qualifying_left - qualifying
    full = order.qualifying.amount
    kept = (
        points_floor(order.points_earned * qualifying_after / full)
        if full
        else (0 if merchandise == merchandise_left else order.points_earned)
    )
    if kind == RefundKind.CANCEL:
        kept = 0
    points_due = order.points_earned - kept - order.points_reversed
    spend_after = (
        money_round(order.qualifying_base.amount * qualifying_after / full, program.base_currency) if full else ZERO
    )
    spend_reversed = order.spend_base.amount - spend_after

    refund = Refund.objects.create(
        order=order,
        external_id=external_id,
        kind=kind,
        currency=currency,
        base_currency=program.base_currency,
        amount=money_back,
        merchandise=merchandise,
        lines=[{"sku": x.sku, "quantity": x.quantity} for x in lines],
        spend_reversed_base=spend_reversed,
        points_due=points_due,
        points_reversed=0,
        reason=reason,
        created_at=now,
    )
    book = Book(program=program, now=now)
    reversed_, unrecovered = points_clawback(book, member=member, order=order, refund=refund, amount=points_due)
    refund.points_reversed, refund.points_unrecovered = reversed_, unrecovered
    refund.save(update_fields=["points_reversed", "points_unrecovered"])

    order.refunded = order.refunded.amount + money_back
    order.refunded_merchandise = order.refunded_merchandise.amount + merchandise
    order.refunded_qualifying = order.refunded_qualifying.amount + qualifying
    order.points_reversed += points_due
    order.spend_base = spend_after
    if kind == RefundKind.CANCEL:
        order.status = OrderStatus.CANCELLED
    elif order.refunded_merchandise.amount >= order.merchandise.amount:
        order.status = OrderStatus.REFUNDED
    else:
        order.status = OrderStatus.PARTIALLY_REFUNDED
    order.save(
        update_fields=[
            "refunded",
            "refunded_merchandise",
            "refunded_qualifying",
            "points_reversed",
            "spend_base",
            "status",
        ]
    )
    for line_id, quantity in taken.items():
        OrderLine.objects.filter(pk=line_id).update(refunded_quantity=F("refunded_quantity") + quantity)
    book.emit(
        "order.cancelled" if kind == RefundKind.CANCEL else "order.refunded",
        member,
        {
            "order": order.external_id,
            "refund": refund.external_id,
            "points_reversed": reversed_,
            "points_unrecovered": unrecovered,
            "spend_reversed_base": str(spend_reversed),
        },
    )
    tier_spend_changed(book, member=member, order=order, reason=TierChangeReason.REFUND)
    book.commit()
    return refund


def _refund_lines(order: Order, lines: list[RefundLine]) -> tuple[Decimal, Decimal, Decimal, dict[int, int]]:
    """-> (money back, merchandise, qualifying, units taken per order line id) for refunded lines, all
    in the order's currency. A SKU may be on several lines (at different prices) and may be asked
    for in several entries: the units are taken from its lines in order, first line first."""
    currency = str(order.currency)
    order_lines = list(order.lines.order_by("id"))
    by_sku: dict[str, list[OrderLine]] = {}
    for line in order_lines:
        by_sku.setdefault(line.sku, []).append(line)
    earning = sum((x.net.amount for x in order_lines if not x.gift_card), ZERO)
    share = order.qualifying.amount / earning if earning else ZERO
    asked: dict[str, int] = {}
    for i, entry in enumerate(lines):
        if entry.sku not in by_sku:
            raise errors.InvalidInput(
                f"SKU {entry.sku} is not on order {order.external_id}",
                errors=[{"field": f"lines[{i}].sku", "message": "not on the order"}],
            )
        asked[entry.sku] = asked.get(entry.sku, 0) + entry.quantity
    merchandise = qualifying = ZERO
    taken: dict[int, int] = {}
    for sku, quantity in asked.items():
        left = sum(line.quantity - line.refunded_quantity for line in by_sku[sku])
        if quantity > left:
            raise errors.RefundExceedsOrder(f"{quantity} x {sku} asked, {left} left to refund")
        for line in by_sku[sku]:
            take = min(quantity, line.quantity - line.refunded_quantity)
            if not take:
                continue
            quantity -= take
            taken[line.pk] = take
            # valued cumulatively, so that a line's refunds add up to exactly its net amount
            done = line.refunded_quantity
            value = money_round(line.net.amount * (done + take) / line.quantity, currency) - money_round(
                line.net.amount * done / line.quantity, currency
            )
            merchandise += value
            if not line.gift_card:
                qualifying += money_round(value * share, currency)
    qualifying = min(qualifying, order.qualifying.amount - order.refunded_qualifying.amount)
    return merchandise, merchandise, qualifying, taken


def points_clawback(book: Book, *, member, order: Order, refund: Refund, amount: int) -> tuple[int, int]:
    """Take back `amount` points for a refund: pending first (the order's own lot first), then
    available (soonest-expiring first), as the program's refund policy allows. -> (taken, not taken)."""
    if amount <= 0:
        return 0, 0
    program = book.program
    asset = program.primary_asset
    holds_release_expired(book, member=member)
    lots_settle(book, member=member, asset=asset)
    own = next((lot for lot in book.lots(member, asset) if lot.order_id == order.pk), None)
    issued = book.system(asset, AccountKind.ISSUED, member)
    fields = {
        "kind": TransactionKind.CLAWBACK,
        "order": order,
        "refund": refund,
        "reference": f"Refund {refund.external_id} of order {order.external_id}",
    }
    left = amount
    for bucket, state, allowed in (
        (AccountKind.PENDING, "pending", True),
        (AccountKind.AVAILABLE, "available", program.refund_policy != RefundPolicy.ONLY_PENDING),
    ):
        account = book.account(member, asset, bucket)
        take = min(left, max(account.balance, 0)) if allowed else 0
        if take:
            posted = book.move(member=member, asset=asset, source=account, target=issued, amount=take, **fields)
            lots_consume(book, member=member, asset=asset, amount=take, posted=posted, states=(state,), first=own)
            left -= take
    if left and program.refund_policy == RefundPolicy.UNLIMITED:
        book.move(
            member=member,
            asset=asset,
            source=book.account(member, asset, AccountKind.AVAILABLE),
            target=issued,
            amount=left,
            allow_overdraft=True,
            **fields,
        )
        left = 0
    return amount - left, left
