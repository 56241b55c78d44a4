"""Staff adjustments: a credit or a debit with a reason and the staff user, as a ledger transaction."""

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from loyalty import errors
from loyalty.models import AccountKind, Member, MemberStatus, Transaction, TransactionKind
from loyalty.services.audit import AdjustmentOverLimit, audit_record, staff_require
from loyalty.services.ledger import Book
from loyalty.services.locks import members_lock
from loyalty.services.points import available_spend, points_credit
from loyalty.services.redemptions import asset_get, member_settle


def points_adjust(
    *,
    member: Member,
    points: int,
    reason: str,
    staff_user,
    asset_code: str | None = None,
    now: datetime | None = None,
) -> Transaction:
    """Credit (points > 0, available at once) or debit (points < 0, never below zero) a member."""
    now = now or timezone.now()
    if not points:
        raise errors.InvalidInput(
            "An adjustment needs a number of points other than zero",
            errors=[{"field": "points", "message": "must not be zero"}],
        )
    if not reason.strip():
        raise errors.InvalidInput("An adjustment needs a reason", errors=[{"field": "reason", "message": "required"}])
    program = member.program
    staff_require(staff_user, "loyalty.adjust_points", "adjust points")
    if abs(points) > program.staff_adjust_limit and not staff_user.has_perm("loyalty.adjust_points_unlimited"):
        raise AdjustmentOverLimit(f"{abs(points)} points is over your limit of {program.staff_adjust_limit}")
    if member.status == MemberStatus.CLOSED:
        raise errors.MemberClosed()
    asset = asset_get(program=program, code=asset_code)
    fields = {
        "kind": TransactionKind.ADJUST,
        "memo": reason.strip(),
        "created_by": staff_user,
        "reference": f"Adjustment by {staff_user}",
    }
    with transaction.atomic():
        [member] = members_lock(member_ids=[member.pk])
        book = Book(program=program, now=now)
        before = book.balance(member, asset, "available")
        if points > 0:
            lot = points_credit(
                book, member=member, asset=asset, amount=points, source=AccountKind.ADJUSTMENTS, **fields
            )
            row = lot.transaction
        else:
            member_settle(book, member=member, asset=asset)
            row = available_spend(
                book,
                member=member,
                asset=asset,
                amount=-points,
                target=book.system(asset, AccountKind.ADJUSTMENTS, member),
                **fields,
            ).row
        book.emit("points.adjusted", member, {"points": points, "reason": reason.strip(), "asset": asset.code})
        audit_record(
            actor=staff_user,
            action="points.adjust",
            obj=member,
            program=program,
            reason=reason.strip(),
            before={"available": before},
            after={"available": book.balance(member, asset, "available")},
            now=now,
        )
        book.commit()
    return row
