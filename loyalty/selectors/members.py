"""Reading a member: balances as of now (right even when a job is late), expiring points, history."""

from collections import defaultdict
from datetime import datetime

from django.db.models import Prefetch, Q, QuerySet, Sum

from loyalty.errors import MemberNotFound
from loyalty.models import (
    MEMBER_BUCKETS,
    Account,
    Entry,
    Lot,
    LotMovement,
    LotState,
    Member,
    Program,
    RedemptionStatus,
    Transaction,
    TransactionKind,
)


def member_get(*, program: Program, external_id: str) -> Member:
    member = (
        Member.objects.select_related("tier", "tier_override", "tier_floor")
        .filter(program=program, external_id=external_id)
        .first()
    )
    if member is None:
        raise MemberNotFound(f"No member {external_id!r} in program {program.code!r}")
    member.program = program
    return member


def member_balances(*, member: Member, now: datetime) -> dict[str, dict[str, int]]:
    """{asset code: {available, pending, held}} as of `now`.

    The books show what the jobs have posted; what time has made true since (lots matured or
    expired, holds run out) is applied on top, so the answer never waits for a job."""
    balances: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(MEMBER_BUCKETS, 0))
    codes = {}
    for account in Account.objects.filter(member=member).select_related("asset"):
        codes[account.asset_id] = account.asset.code
        balances[account.asset.code][account.kind] = account.balance
    due = (
        Lot.objects.filter(member=member)
        .filter(Q(state=LotState.PENDING, matures_at__lte=now) | Q(remaining__gt=0, expires_at__lte=now))
        .exclude(state=LotState.EXPIRED)
        .values_list("asset_id", "state", "remaining", "expires_at")
    )
    # A hold whose time ran out gives each lot back what it took; points of lots that have expired
    # since then go straight to expired, the others to available.
    stale = LotMovement.objects.filter(
        transaction__kind=TransactionKind.HOLD,
        transaction__redemption__member=member,
        transaction__redemption__status=RedemptionStatus.HELD,
        transaction__redemption__expires_at__lte=now,
    ).values_list("lot__asset_id", "lot__expires_at", "amount")
    for asset_id, expires_at, taken in stale:
        buckets = balances[codes[asset_id]]
        buckets["held"] += taken  # `taken` is negative
        if expires_at is None or expires_at > now:
            buckets["available"] -= taken
    for asset_id, state, remaining, expires_at in due:
        buckets = balances[codes[asset_id]]
        if expires_at is not None and expires_at <= now:
            buckets[state] -= remaining
        else:  # matured
            buckets["pending"] -= remaining
            buckets["available"] += remaining
    return {code: {k: (max(v, 0) if k != "available" else v) for k, v in b.items()} for code, b in balances.items()}


def member_expiring(*, member: Member, now: datetime) -> dict[str, dict]:
    """{asset code: {points, expires_at}}: the next points to expire, per point currency."""
    rows = (
        Lot.objects.filter(member=member, remaining__gt=0, expires_at__gt=now)
        .exclude(state=LotState.EXPIRED)
        .values("asset__code", "expires_at")
        .annotate(points=Sum("remaining"))
        .order_by("asset__code", "expires_at")
    )
    result = {}
    for row in rows:  # one row per distinct expiry date: a handful
        result.setdefault(row["asset__code"], {"points": row["points"], "expires_at": row["expires_at"]})
    return result


def member_pending_lots(*, member: Member, now: datetime) -> QuerySet[Lot]:
    return Lot.objects.filter(member=member, state=LotState.PENDING, remaining__gt=0, matures_at__gt=now).order_by(
        "matures_at"
    )


def member_transactions(*, member: Member) -> QuerySet[Transaction]:
    """The member's ledger history, newest first, each with the entries on the member's buckets."""
    return (
        Transaction.objects.filter(member=member)
        .select_related("order")
        .prefetch_related(
            Prefetch(
                "entries",
                queryset=Entry.objects.filter(account__member=member).select_related("account__asset").order_by("id"),
                to_attr="member_entries",
            )
        )
        .order_by("-id")
    )
