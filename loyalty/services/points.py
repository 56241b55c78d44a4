"""Points in and out of a member's buckets, on a Book: credit a lot, spend soonest-expiring lots,
settle what time has made true (maturation, expiry), and the expiry policies."""

from datetime import datetime

from django.db import connection

from loyalty.dates import add_months, start_of_next_month
from loyalty.errors import InsufficientPoints
from loyalty.models import (
    AccountKind,
    Asset,
    ExpiryPolicy,
    Lot,
    LotState,
    Member,
    Order,
    TransactionKind,
)
from loyalty.services.ledger import Book, Posted, db_value, update_statements
from loyalty.services.rows import row_new

BUCKET_OF_STATE = {LotState.PENDING: AccountKind.PENDING, LotState.AVAILABLE: AccountKind.AVAILABLE}


# --- expiry policy ------------------------------------------------------------------------------
def expiry_for(*, member: Member, earned_at: datetime) -> datetime | None:
    """When a credit earned at `earned_at` expires under the program's policy.

    - `fixed`: N months after earning, at the end of that month.
    - `inactivity`: all points expire together N months after the member's last order or
      redemption (enrollment if none yet); a credit to a member who has already lapsed gets
      N months from the credit itself.
    """
    program = member.program
    months = program.expiry_months
    if program.expiry_policy == ExpiryPolicy.FIXED:
        return start_of_next_month(add_months(earned_at, months), program.timezone)
    if program.expiry_policy == ExpiryPolicy.INACTIVITY:
        lapse = add_months(member.last_activity_at or member.enrolled_at, months)
        return lapse if lapse > earned_at else add_months(earned_at, months)
    return None


def activity_record(book: Book, *, member: Member, at: datetime) -> None:
    """An order or a redemption: under `inactivity` it pushes back the expiry of all open points
    (never reviving points already past their expiry)."""
    if member.last_activity_at is not None and at <= member.last_activity_at:
        return
    activity_record_many(book, last_at={member.pk: (member, at)})
    if member.program.expiry_policy != ExpiryPolicy.INACTIVITY:
        return
    new_expiry = add_months(at, member.program.expiry_months)
    for lots in (lots for (member_id, _), lots in book._lots.items() if member_id == member.pk):
        for lot in lots:
            if lot.expires_at and book.now < lot.expires_at < new_expiry:
                lot.expires_at = new_expiry


def activity_record_many(book: Book, *, last_at: dict[int, tuple[Member, datetime]]) -> None:
    """Record the members' activity at their time in `last_at` and, under `inactivity`, push back
    the expiry of their open lots: one statement on PostgreSQL (it runs under the members' locks,
    so every round trip counts: it goes with the book's writes), two elsewhere."""
    later = {pk: (m, at) for pk, (m, at) in last_at.items() if m.last_activity_at is None or at > m.last_activity_at}
    if not later:
        return
    for member, at in later.values():
        member.last_activity_at = at
    program = book.program
    if program.expiry_policy != ExpiryPolicy.INACTIVITY:
        for sql, params in update_statements(
            Member._meta.db_table, ["last_activity_at"], [(pk, at) for pk, (_, at) in later.items()]
        ):
            book.execute(sql, params)
        return
    values = [(pk, at, add_months(at, program.expiry_months)) for pk, (_, at) in later.items()]
    activity = "activity (member_id, at, new_expiry) AS (VALUES {})".format(", ".join(["(%s, %s, %s)"] * len(values)))
    members = (
        "UPDATE loyalty_member SET last_activity_at = activity.at FROM activity "
        "WHERE loyalty_member.id = activity.member_id"
    )
    lots = (
        "UPDATE loyalty_lot SET expires_at = activity.new_expiry FROM activity "
        "WHERE loyalty_lot.member_id = activity.member_id AND loyalty_lot.remaining > 0 "
        "AND loyalty_lot.state <> 'expired' AND loyalty_lot.expires_at > %s "
        "AND loyalty_lot.expires_at < activity.new_expiry"
    )
    params = [db_value(v) for row in values for v in row]
    now = db_value(book.now)
    if connection.vendor == "postgresql":
        book.execute(f"WITH {activity}, touched AS ({members}) {lots}", [*params, now])
    else:  # no UPDATE inside WITH
        book.execute(f"WITH {activity} {members}", params)
        book.execute(f"WITH {activity} {lots}", [*params, now])


# --- credit and spend ---------------------------------------------------------------------------
def points_credit(
    book: Book,
    *,
    member: Member,
    asset: Asset,
    amount: int,
    kind: str,
    source: str,
    earned_at: datetime | None = None,
    matures_at: datetime | None = None,
    order: Order | None = None,
    expires_at: datetime | None = None,
    **fields,
) -> Lot:
    """Credit a new lot from system account `source`: pending until `matures_at`, else available.
    A credit into an overdrawn available balance first pays the debt off."""
    earned_at = earned_at or book.now
    matures_at = matures_at or earned_at
    state = LotState.PENDING if matures_at > book.now else LotState.AVAILABLE
    target = book.account(member, asset, BUCKET_OF_STATE[state])
    debt = max(0, -target.balance) if state == LotState.AVAILABLE else 0
    posted = book.move(
        member=member,
        asset=asset,
        source=book.system(asset, source, member),
        target=target,
        amount=amount,
        kind=kind,
        order=order,
        **fields,
    )
    lot = book.add_lot(
        row_new(
            Lot,
            member=member,
            asset=asset,
            amount=amount,
            remaining=amount,
            state=state,
            earned_at=earned_at,
            matures_at=matures_at,
            expires_at=expires_at or expiry_for(member=member, earned_at=earned_at),
            order=order,
            transaction=posted.row,
        )
    )
    if debt:
        book.change_lot(lot, posted, -min(debt, amount))
    return lot


def available_spend(book: Book, *, member: Member, asset: Asset, amount: int, target, kind: str, **fields) -> Posted:
    """Move `amount` from available to `target`, consuming the soonest-expiring lots first.
    The caller settled the member first (so matured points count and expired ones do not)."""
    available = book.account(member, asset, AccountKind.AVAILABLE)
    if available.balance < amount:
        raise InsufficientPoints(
            f"{amount} points asked, {max(available.balance, 0)} available", available=max(available.balance, 0)
        )
    posted = book.move(member=member, asset=asset, source=available, target=target, amount=amount, kind=kind, **fields)
    lots_consume(book, member=member, asset=asset, amount=amount, posted=posted, states=(LotState.AVAILABLE,))
    return posted


def lots_consume(book: Book, *, member, asset, amount: int, posted: Posted, states, first: Lot | None = None) -> int:
    """Take up to `amount` from lots in `states` (the `first` lot before the others); -> taken."""
    left = amount
    lots = [lot for lot in book.lots(member, asset) if lot.state in states and lot.remaining > 0]
    if first is not None and first in lots:
        lots.remove(first)
        lots.insert(0, first)
    for lot in lots:
        if not left:
            break
        take = min(left, lot.remaining)
        book.change_lot(lot, posted, -take)
        left -= take
    return amount - left


# --- settlement ---------------------------------------------------------------------------------
def lots_settle(book: Book, *, member: Member, asset: Asset) -> None:
    """Post what time has made true: expire lots past `expires_at`, mature lots past `matures_at`.

    Services call this under the member's lock before they spend; the periodic jobs call it for
    every member with due lots. Either way it posts each change once (the lot's state says so)."""
    now = book.now
    lots = book.lots(member, asset)
    for lot in [x for x in lots if x.expires_at is not None and x.expires_at <= now and x.remaining]:
        bucket = book.account(member, asset, BUCKET_OF_STATE[lot.state])
        posted = book.move(
            member=member,
            asset=asset,
            source=bucket,
            target=book.system(asset, AccountKind.EXPIRED, member),
            amount=lot.remaining,
            kind=TransactionKind.EXPIRE,
            order=lot.order,
            effective_at=lot.expires_at,
            reference=_lot_reference(lot),
        )
        book.emit("points.expired", member, {"points": lot.remaining, "asset": asset.code}, occurred_at=lot.expires_at)
        book.change_lot(lot, posted, -lot.remaining)
        lot.state = LotState.EXPIRED
        lots.remove(lot)
    for lot in sorted(
        (x for x in lots if x.state == LotState.PENDING and x.matures_at <= now), key=lambda x: x.matures_at
    ):
        lot_mature(book, lot=lot)


def lot_mature(book: Book, *, lot: Lot) -> None:
    member, asset = lot.member, lot.asset
    if lot.remaining:
        available = book.account(member, asset, AccountKind.AVAILABLE)
        debt = max(0, -available.balance)
        posted = book.move(
            member=member,
            asset=asset,
            source=book.account(member, asset, AccountKind.PENDING),
            target=available,
            amount=lot.remaining,
            kind=TransactionKind.MATURE,
            order=lot.order,
            effective_at=lot.matures_at,
            reference=_lot_reference(lot),
        )
        if debt:
            book.change_lot(lot, posted, -min(debt, lot.remaining))
    lot.state = LotState.AVAILABLE
    book.touch_lot(lot)
    if lot.order_id:
        book.completed_orders.add(lot.order_id)
        book.emit(
            "order.matured", member, {"order": lot.order.external_id, "points": lot.amount}, occurred_at=lot.matures_at
        )
    book.emit("points.matured", member, {"points": lot.remaining, "asset": asset.code}, occurred_at=lot.matures_at)


def _lot_reference(lot: Lot) -> str:
    return f"Order {lot.order.external_id}" if lot.order_id else f"Lot {lot.pk}"
