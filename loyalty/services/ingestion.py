"""Bulk ingestion: many orders in one transaction, set-based, with each order's own result.

The same rules as `order_place` (the same earning calculation, the same tier rule, the same Book),
but every read is one query for the whole batch and every write one bulk statement, so a batch of
a thousand orders costs a few dozen statements instead of tens of thousands:

- bad orders (unknown member, unaccepted currency, duplicate id) are answered and left out; the
  others go in together; an order id already placed is answered `exists` (idempotent per order);
- a member's orders are taken in time order and the tier they reach applies from their next order,
  exactly as one by one; a race with a concurrent writer falls back to one by one.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Q, Sum
from django.utils import timezone

from loyalty import errors
from loyalty.dates import local_date
from loyalty.models import (
    AccountKind,
    FxRate,
    Member,
    MemberStatus,
    Order,
    OrderLine,
    OrderStatus,
    Program,
    Redemption,
    RedemptionStatus,
    TransactionKind,
)
from loyalty.money import from_base
from loyalty.services.earning import ZERO, OrderDraft, earn_calculate, earn_rules_active
from loyalty.services.ledger import Book
from loyalty.services.locks import members_lock
from loyalty.services.orders import order_amounts_check, order_place
from loyalty.services.points import activity_record_many, points_credit
from loyalty.services.rows import collection_deferred, row_new, rows_insert
from tiers.selectors import tier_for_spend, tier_pinned, tier_policy, tiers_ranked, window_bounds
from tiers.services import tier_refresh, tier_spend_apply

MAX_BATCH = 1000


@dataclass
class Placed:
    external_id: str
    status: str  # created | exists | rejected
    order: Order | None = None
    error: errors.LoyaltyError | None = None
    lines: list[OrderLine] | None = None  # the lines of an order this batch placed, as written


def orders_place_bulk(*, program: Program, drafts: list[OrderDraft], now: datetime | None = None) -> list[Placed]:
    """Place up to MAX_BATCH orders; -> one result per draft, in the same order."""
    now = now or timezone.now()
    if len(drafts) > MAX_BATCH:
        raise errors.InvalidInput(
            f"At most {MAX_BATCH} orders per batch", errors=[{"field": "orders", "message": f"more than {MAX_BATCH}"}]
        )
    with collection_deferred():
        return _place_all(program, drafts, now)


def _place_all(program: Program, drafts: list[OrderDraft], now: datetime) -> list[Placed]:
    results: list[Placed | None] = [None] * len(drafts)
    rates = dict(FxRate.objects.filter(program=program).values_list("currency", "rate"))
    rates[program.base_currency] = Decimal(1)
    existing = {
        o.external_id: o
        for o in Order.objects.filter(program=program, external_id__in=[d.external_id for d in drafts]).select_related(
            "member"
        )
    }
    todo, seen = [], set()
    for i, draft in enumerate(drafts):
        if draft.external_id in existing:
            results[i] = Placed(draft.external_id, "exists", order=existing[draft.external_id])
        elif draft.external_id in seen:
            results[i] = Placed(
                draft.external_id,
                "rejected",
                error=errors.OrderExists(f"Order {draft.external_id} appears twice in the batch"),
            )
        elif draft.currency not in rates:
            results[i] = Placed(
                draft.external_id,
                "rejected",
                error=errors.CurrencyNotAccepted(
                    f"{program.code} does not accept {draft.currency}", currency=draft.currency
                ),
            )
        else:
            try:
                order_amounts_check(draft, fx_rate=rates[draft.currency], base_currency=program.base_currency)
            except errors.AmountTooLarge as error:
                results[i] = Placed(draft.external_id, "rejected", error=error)
                continue
            seen.add(draft.external_id)
            todo.append(i)
    if todo:
        try:
            with transaction.atomic():
                _place(program, drafts, todo, results, rates, now)
        except IntegrityError:  # a concurrent writer placed one of these: one by one decides
            for i in todo:
                results[i] = _place_one(program, drafts[i], now)
    return results


def _place_one(program: Program, draft: OrderDraft, now: datetime) -> Placed:
    try:
        return Placed(draft.external_id, "created", order=order_place(program=program, draft=draft, now=now))
    except errors.OrderExists:
        order = Order.objects.select_related("member").get(program=program, external_id=draft.external_id)
        return Placed(draft.external_id, "exists", order=order)
    except errors.LoyaltyError as exc:
        return Placed(draft.external_id, "rejected", error=exc)


def _place(program, drafts, todo, results, rates, now) -> None:
    wanted = {drafts[i].member for i in todo}
    ids = Member.objects.filter(program=program, external_id__in=wanted).values_list("pk", flat=True)
    members = {m.external_id: m for m in members_lock(member_ids=ids)}
    for m in members.values():
        m.program = program
    book = Book(program=program, now=now)
    book.preload(list(members.values()))
    placing = []
    for i in todo:
        member = members.get(drafts[i].member)
        if member is None:
            results[i] = Placed(
                drafts[i].external_id, "rejected", error=errors.MemberNotFound(f"No member {drafts[i].member!r}")
            )
        elif member.status == MemberStatus.CLOSED:
            results[i] = Placed(drafts[i].external_id, "rejected", error=errors.MemberClosed())
        else:
            placing.append(i)
    if not placing:
        return
    by_member = {m.pk: m for m in members.values()}
    # Reads for the whole batch, one query each.
    rules = earn_rules_active(program=program)
    policy, tiers = tier_policy(program), tiers_ranked(program)
    start, end = window_bounds(policy, now)
    window = Order.objects.filter(member__in=by_member)
    if start is not None:
        window = window.filter(placed_at__gte=start, placed_at__lt=end)
    spend = defaultdict(Decimal, window.values("member_id").annotate(s=Sum("spend_base")).values_list("member_id", "s"))
    ordered_before = set(
        Order.objects.filter(member__in=by_member)
        .exclude(status=OrderStatus.CANCELLED)
        .values_list("member_id", flat=True)
        .distinct()
    )
    paid = dict(
        Redemption.objects.filter(
            program=program,
            member__in=by_member,
            order_external_id__in=[drafts[i].external_id for i in placing],
        )
        .filter(Q(status=RedemptionStatus.CAPTURED) | Q(status=RedemptionStatus.HELD, expires_at__gt=now))
        .values("order_external_id")
        .annotate(v=Sum("value"))
        .values_list("order_external_id", "v")
    )
    today = local_date(now, program.timezone)
    for m in by_member.values():
        tier_refresh(book, member=m)  # posts what a late job has not
    earned_tier = {pk: m.tier for pk, m in by_member.items()}

    # Each member's orders in time order: the tier an order reaches applies from the next one.
    placing.sort(key=lambda i: (drafts[i].placed_at or now, i))
    orders, lines, crossings, last_at = [], [], [], {}
    for i in placing:
        draft = drafts[i]
        member = members[draft.member]
        placed_at = draft.placed_at or now
        rate = rates[draft.currency]
        payment = (
            min(from_base(paid[draft.external_id], rate=rate, currency=draft.currency), draft.earning_merchandise)
            if draft.external_id in paid
            else ZERO
        )
        tier = member.tier_override if tier_pinned(member, today) else earned_tier[member.pk]
        earning = earn_calculate(
            program=program,
            tier=tier,
            draft=draft,
            fx_rate=rate,
            placed_at=placed_at,
            rules=rules,
            first_order=member.pk not in ordered_before,
            points_payment=payment,
        )
        ordered_before.add(member.pk)
        order = row_new(
            Order,
            program=program,
            member=member,
            external_id=draft.external_id,
            placed_at=placed_at,
            fx_rate=rate,
            currency=draft.currency,
            base_currency=program.base_currency,
            merchandise=draft.merchandise,
            shipping=draft.shipping,
            tax=draft.tax,
            total=draft.total,
            points_payment=payment,
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
        order_lines = [
            row_new(
                OrderLine,
                order=order,
                sku=x.sku,
                category=x.category,
                quantity=x.quantity,
                currency=draft.currency,
                unit_price=x.unit_price,
                discount=x.discount,
                net=x.net,
                gift_card=x.gift_card,
            )
            for x in draft.lines
        ]
        orders.append((i, order, draft, order_lines))
        lines += order_lines
        if start is None or start <= placed_at < end:
            spend[member.pk] += earning.qualifying_base
            reached = tier_for_spend(tiers, spend[member.pk]) if tiers else None
            if (
                reached is not None
                and earned_tier[member.pk] is not None
                and reached.rank > earned_tier[member.pk].rank
            ):
                earned_tier[member.pk] = reached
                crossings.append((member, spend[member.pk]))
        last_at[member.pk] = (member, max(placed_at, last_at.get(member.pk, (member, placed_at))[1]))

    rows_insert([order for _, order, _, _ in orders])
    rows_insert(lines)
    activity_record_many(book, last_at=last_at)
    asset = program.primary_asset
    for i, order, draft, order_lines in orders:
        member = order.member
        if order.points_earned:
            points_credit(
                book,
                member=member,
                asset=asset,
                amount=order.points_earned,
                kind=TransactionKind.EARN,
                source=AccountKind.ISSUED,
                earned_at=order.placed_at,
                matures_at=order.available_at,
                order=order,
                reference=f"Order {order.external_id}",
            )
        book.emit(
            "order.placed",
            member,
            {
                "order": order.external_id,
                "currency": order.currency,
                "spend_base": str(order.qualifying_base.amount),
                "points": order.points_earned,
                "categories": sorted({x.category for x in draft.lines if x.category}),
            },
            occurred_at=order.placed_at,
        )
        if order.points_earned:
            book.emit(
                "points.earned",
                member,
                {
                    "order": order.external_id,
                    "points": order.points_earned,
                    "available_at": order.available_at.isoformat(),
                },
                occurred_at=order.placed_at,
            )
        results[i] = Placed(order.external_id, "created", order=order, lines=order_lines)
    for member, spend_then in crossings:  # the tier rule, crossing by crossing, as one by one would
        tier_spend_apply(book, member=member, spend=spend_then)
    for pk in {order.member_id for _, order, _, _ in orders if start is None or start <= order.placed_at < end}:
        tier_spend_apply(book, member=by_member[pk], spend=spend[pk])  # re-qualified: the status may hold longer
    book.commit()
