"""Points as payment: hold (available -> held, with a time to live), capture (held -> redeemed) or
void (held -> available, giving each lot back what the hold took).

Each runs under the member's row lock, which every other payment of that member waits for, so the
work under it is kept short: nothing read twice, nothing looked for that cannot be there, and no
savepoint where the caller rolls back whole (`unit_of_work`)."""

from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from loyalty import errors
from loyalty.dates import add_months
from loyalty.models import (
    AccountKind,
    Asset,
    Event,
    ExpiryPolicy,
    LotMovement,
    LotState,
    Member,
    MemberStatus,
    Program,
    Redemption,
    RedemptionStatus,
    Transaction,
    TransactionKind,
)
from loyalty.money import points_value, to_base
from loyalty.services.ledger import Book
from loyalty.services.locks import member_id_query, unit_of_work
from loyalty.services.points import activity_record, available_spend, lots_consume, lots_settle
from loyalty.services.rows import id_take


def asset_get(*, program: Program, code: str | None) -> Asset:
    if not code:
        return program.primary_asset
    asset = program.assets.filter(code=code).first()
    if asset is None:
        raise errors.InvalidInput(f"No point currency {code!r}", errors=[{"field": "currency", "message": "unknown"}])
    return asset


def redemption_hold(
    *,
    program: Program,
    member_external_id: str,
    points: int,
    asset_code: str | None = None,
    order_external_id: str = "",
    order_amount: Decimal | None = None,
    order_currency: str | None = None,
    ttl_seconds: int | None = None,
    now: datetime | None = None,
) -> Redemption:
    now = now or timezone.now()
    asset = asset_get(program=program, code=asset_code)
    if points < asset.redeem_min or points % asset.redeem_step:
        raise errors.RedemptionStepError(
            f"{points} points: redemptions are at least {asset.redeem_min}, in steps of {asset.redeem_step}",
            minimum=asset.redeem_min,
            step=asset.redeem_step,
        )
    ttl = ttl_seconds or settings.LOYALTY["DEFAULT_HOLD_TTL_SECONDS"]
    value = points_value(points, unit_value=asset.unit_value, currency=program.base_currency)
    if order_amount is not None:
        from loyalty.services.orders import fx_rate_get

        currency = order_currency or program.base_currency
        base = to_base(
            order_amount, rate=fx_rate_get(program=program, currency=currency), base_currency=program.base_currency
        )
        if base < asset.redeem_min_order:
            raise errors.OrderTooSmall(
                f"Points pay for orders of at least {asset.redeem_min_order} {program.base_currency}"
            )
        if value > base:
            raise errors.RedemptionStepError(f"{points} points are worth {value}, more than the order")
    redemption_id = id_take(Redemption)  # before the lock: the row is written with the book's writes
    with unit_of_work():
        book = Book(program=program, now=now)
        member, [stale] = book.lock(
            external_id=member_external_id,
            asset=asset,
            also=[_stale(member_id=member_id_query(program=program, external_id=member_external_id), now=now)],
            ids={Transaction: 1},
        )
        if member.status == MemberStatus.CLOSED:
            raise errors.MemberClosed()
        holds_release_expired(book, member=member, stale=stale)
        lots_settle(book, member=member, asset=asset)
        redemption = Redemption(
            pk=redemption_id,
            program=program,
            member=member,
            asset=asset,
            points=points,
            value=value,
            value_currency=program.base_currency,
            order_external_id=order_external_id,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl),
        )
        book.write(redemption)
        available_spend(
            book,
            member=member,
            asset=asset,
            amount=points,
            target=book.account(member, asset, AccountKind.HELD),
            kind=TransactionKind.HOLD,
            redemption=redemption,
            reference=_reference(redemption),
        )
        book.commit()
    return redemption


def redemption_capture(*, program: Program, redemption_id: int, now: datetime | None = None) -> Redemption:
    """Capture a hold. Capturing a captured hold returns it unchanged; an expired or voided hold is
    refused."""
    now = now or timezone.now()
    with unit_of_work():
        book = Book(program=program, now=now)
        redemption, member = _lock(book, redemption_id=redemption_id, ids={Transaction: 1, Event: 1})
        if redemption.status == RedemptionStatus.CAPTURED:
            return redemption
        if redemption.status == RedemptionStatus.VOIDED:
            raise errors.HoldVoided(f"Redemption {redemption.pk} was voided")
        if redemption.status == RedemptionStatus.EXPIRED or redemption.expires_at <= now:
            raise errors.HoldExpired(f"Redemption {redemption.pk} expired at {redemption.expires_at.isoformat()}")
        asset = redemption.asset
        book.move(
            member=member,
            asset=asset,
            source=book.account(member, asset, AccountKind.HELD),
            target=book.system(asset, AccountKind.REDEEMED, member),
            amount=redemption.points,
            kind=TransactionKind.CAPTURE,
            redemption=redemption,
            reference=_reference(redemption),
        )
        redemption.status, redemption.settled_at = RedemptionStatus.CAPTURED, now
        book.write(redemption, fields=["status", "settled_at"])
        activity_record(book, member=member, at=now)
        book.emit(
            "redemption.captured",
            member,
            {
                "redemption": redemption.pk,
                "points": redemption.points,
                "asset": asset.code,
                "value": {"amount": str(redemption.value.amount), "currency": str(redemption.value.currency)},
                "order": redemption.order_external_id,
            },
        )
        book.commit()
    return redemption


def redemption_void(*, program: Program, redemption_id: int, now: datetime | None = None) -> Redemption:
    """Void a hold: its points go back to available. Voiding a voided or expired hold returns it
    unchanged; a captured hold cannot be voided."""
    now = now or timezone.now()
    with unit_of_work():
        book = Book(program=program, now=now)
        redemption, member = _lock(book, redemption_id=redemption_id)
        if redemption.status in (RedemptionStatus.VOIDED, RedemptionStatus.EXPIRED):
            return redemption
        if redemption.status == RedemptionStatus.CAPTURED:
            raise errors.HoldCaptured(f"Redemption {redemption.pk} was captured")
        hold_release(book, member=member, redemption=redemption, status=RedemptionStatus.VOIDED)
        lots_settle(book, member=member, asset=redemption.asset)
        book.commit()
    return redemption


def _lock(book: Book, *, redemption_id: int, ids: dict | None = None) -> tuple[Redemption, Member]:
    """Lock the member of a redemption, and read it again under the lock (with the member's
    accounts, in the same round trip)."""
    program = book.program
    member_id = Redemption.objects.filter(program=program, pk=redemption_id).values_list("member_id", flat=True).first()
    if member_id is None:
        raise errors.RedemptionNotFound(f"No redemption {redemption_id}")
    member, [[redemption]] = book.lock(
        member_id=member_id, also=[Redemption.objects.select_related("asset").filter(pk=redemption_id)], ids=ids
    )
    redemption.member = member
    return redemption, member


def hold_release(book: Book, *, member: Member, redemption: Redemption, status: str) -> None:
    """Held -> available, and each lot gets back what the hold took from it.

    What comes back into an overdrawn balance (policy `unlimited`) pays the debt first, as any credit
    does. A lot that expired while its points were held gets them back as available, for the
    caller's `lots_settle` to expire at once. Under `inactivity`, activity while a lot was wholly held
    (nothing left in it to push back) pushes its expiry back now, as it would have then."""
    asset = redemption.asset
    available = book.account(member, asset, AccountKind.AVAILABLE)
    debt = max(0, -available.balance)
    posted = book.move(
        member=member,
        asset=asset,
        source=book.account(member, asset, AccountKind.HELD),
        target=available,
        amount=redemption.points,
        kind=TransactionKind.VOID,
        redemption=redemption,
        reference=_reference(redemption),
        memo="Hold expired" if status == RedemptionStatus.EXPIRED else "",
    )
    open_lots = {lot.pk: lot for lot in book.lots(member, asset)}
    taken = LotMovement.objects.filter(
        transaction__redemption=redemption, transaction__kind=TransactionKind.HOLD
    ).select_related("lot__order")
    lapse = _inactivity_lapse(member)
    for movement in taken:
        lot = open_lots.get(movement.lot_id)
        if lot is None:  # spent down to nothing: it comes back into the book's open lots
            lot = movement.lot
            lot.member, lot.asset = member, asset
            book.lots(member, asset).append(lot)
            open_lots[lot.pk] = lot
        book.change_lot(lot, posted, -movement.amount)
        if lot.state == LotState.EXPIRED:  # the rest of it expired meanwhile: these points follow
            lot.state = LotState.AVAILABLE
        elif lapse and lot.expires_at and member.last_activity_at < lot.expires_at < lapse:
            lot.expires_at = lapse
    book.sort_lots(book.lots(member, asset))
    if debt:
        lots_consume(
            book,
            member=member,
            asset=asset,
            amount=min(debt, redemption.points),
            posted=posted,
            states=(LotState.AVAILABLE,),
        )
    redemption.status, redemption.settled_at = status, book.now
    book.write(redemption, fields=["status", "settled_at"])


def _inactivity_lapse(member: Member) -> datetime | None:
    """Under `inactivity`, when the member's points lapse given their last activity."""
    program = member.program
    if program.expiry_policy != ExpiryPolicy.INACTIVITY or member.last_activity_at is None:
        return None
    return add_months(member.last_activity_at, program.expiry_months)


def holds_release_expired(book: Book, *, member: Member, stale: list[Redemption] | None = None) -> None:
    """Void the member's holds whose time to live has run out (status `expired`): `stale`, when
    the caller read them with the lock (`_stale`).

    A member with nothing held has no hold to look for (their buckets are read anyway)."""
    if stale is None:
        if not any(a.balance for a in book.accounts(member) if a.kind == AccountKind.HELD):
            return
        stale = _stale(member=member, now=book.now)
    for redemption in stale:
        hold_release(book, member=member, redemption=redemption, status=RedemptionStatus.EXPIRED)


def _stale(*, now: datetime, **of_member):
    return Redemption.objects.filter(status=RedemptionStatus.HELD, expires_at__lte=now, **of_member).select_related(
        "asset"
    )


def member_settle(book: Book, *, member: Member, asset: Asset) -> None:
    """Everything time has made true for a member, posted before they spend: stale holds voided,
    lots expired and matured."""
    holds_release_expired(book, member=member)
    lots_settle(book, member=member, asset=asset)


def _reference(redemption: Redemption) -> str:
    suffix = f" for order {redemption.order_external_id}" if redemption.order_external_id else ""
    return f"Redemption {redemption.pk}{suffix}"
