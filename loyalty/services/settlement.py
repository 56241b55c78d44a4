"""Posting what time has made true, for every member it is due for: points that matured, points
that expired, holds whose time ran out. The same member_settle the spend services call; the jobs
only make the books show it sooner."""

from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet

from loyalty.models import (
    IdempotencyRecord,
    Lot,
    LotState,
    Order,
    OrderStatus,
    Program,
    Redemption,
    RedemptionStatus,
)
from loyalty.services.ledger import Book
from loyalty.services.locks import members_lock
from loyalty.services.redemptions import member_settle

BATCH = settings.LOYALTY["SETTLE_BATCH"]


def members_settle(*, due: QuerySet, now: datetime, batch: int = BATCH) -> int:
    """Settle every member in `due` (a queryset with a `member_id`), `batch` members per committed
    transaction, in member id order; -> members settled."""
    done, last = 0, 0
    while True:
        ids = list(
            due.filter(member_id__gt=last).order_by("member_id").values_list("member_id", flat=True).distinct()[:batch]
        )
        if not ids:
            return done
        with transaction.atomic():
            members = members_lock(member_ids=ids)
            by_program = defaultdict(list)
            for member in members:
                by_program[member.program_id].append(member)
            for program_id, group in by_program.items():
                program = Program.objects.get(pk=program_id)
                assets = list(program.assets.all())
                book = Book(program=program, now=now)
                for member in group:
                    member.program = program
                    for asset in assets:
                        member_settle(book, member=member, asset=asset)
                book.commit()
        done += len(ids)
        last = ids[-1]


def points_mature(now: datetime) -> int:
    """Post matured pending points (-> members settled), then complete the orders whose return
    window closed with no points left to mature."""
    # Lots clawed back to nothing while pending just change state: nothing to post.
    Lot.objects.filter(state=LotState.PENDING, remaining=0, matures_at__lte=now).update(state=LotState.AVAILABLE)
    settled = members_settle(due=Lot.objects.filter(state=LotState.PENDING, matures_at__lte=now), now=now)
    orders_complete(now)
    return settled


def orders_complete(now: datetime, *, batch: int = BATCH) -> int:
    """Orders past their return window with no pending lot (they earned nothing, or a clawback
    emptied their lot) become `completed` and say `order.matured`, as maturing a lot does for the
    others; -> orders completed. Rows another run holds are skipped, so two runs complete each once."""
    done = 0
    pending_lot = Lot.objects.filter(order=OuterRef("pk"), state=LotState.PENDING)
    while True:
        with transaction.atomic():
            orders = list(
                Order.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("program", "member")
                .filter(status=OrderStatus.PENDING, available_at__lte=now)
                .exclude(Exists(pending_lot))
                .order_by("pk")[:batch]
            )
            if not orders:
                return done
            Order.objects.filter(pk__in=[o.pk for o in orders]).update(status=OrderStatus.COMPLETED)
            by_program = defaultdict(list)
            for order in orders:
                by_program[order.program_id].append(order)
            for group in by_program.values():
                book = Book(program=group[0].program, now=now)
                for order in group:
                    book.emit(
                        "order.matured",
                        order.member,
                        {"order": order.external_id, "points": order.points_earned},
                        occurred_at=order.available_at,
                    )
                book.commit()
        done += len(orders)


def points_expire(now: datetime) -> int:
    return members_settle(
        due=Lot.objects.filter(remaining__gt=0, expires_at__lte=now).exclude(state=LotState.EXPIRED), now=now
    )


def holds_expire(now: datetime) -> int:
    return members_settle(due=Redemption.objects.filter(status=RedemptionStatus.HELD, expires_at__lte=now), now=now)


def idempotency_records_purge(now: datetime) -> int:
    keep = timedelta(hours=settings.LOYALTY["IDEMPOTENCY_KEY_TTL_HOURS"])
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=now - keep).delete()
    return deleted
