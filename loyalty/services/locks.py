"""Row locks, taken in one place and always in primary-key order (no deadlocks between services).

Every write to a member's balances happens under that member's row lock; decisions (is there enough,
was this already done) are re-read inside the lock."""

from collections.abc import Iterable
from contextlib import contextmanager
from contextvars import ContextVar

from django.db import transaction
from django.db.models import Subquery

from loyalty.errors import MemberNotFound
from loyalty.models import Member, Program

_ROLLED_BACK_WHOLE = ContextVar("rolled_back_whole", default=False)


@contextmanager
def rolled_back_whole():
    """Run a caller's transaction that is rolled back whole when anything in it fails (the API's
    POST handlers): the services inside then take no savepoint of their own, two round trips fewer
    while they hold a member's lock."""
    token = _ROLLED_BACK_WHOLE.set(True)
    try:
        yield
    finally:
        _ROLLED_BACK_WHOLE.reset(token)


def unit_of_work():
    """`transaction.atomic()` for a service that locks members: a savepoint only where the caller
    may carry on after a failure."""
    return transaction.atomic(savepoint=not _ROLLED_BACK_WHOLE.get())


def member_lock(*, program: Program, external_id: str) -> Member:
    member = member_lock_query(program=program, external_id=external_id).first()
    if member is None:
        raise MemberNotFound(f"No member {external_id!r} in program {program.code!r}")
    return member


def member_lock_query(*, program: Program | None = None, external_id: str | None = None, member_id: int | None = None):
    """The query that locks one member, by program and external id or by id (the Book reads what a
    payment needs with it, in one round trip: `Book.lock`)."""
    found = {"pk": member_id} if member_id is not None else {"program": program, "external_id": external_id}
    return _locking().filter(**found)


def member_id_query(*, program: Program, external_id: str) -> Subquery:
    """A member's id by external id, for filters sent before the member is read (`Book.lock`): a
    scalar subquery, so each table is read by its member index."""
    return Subquery(Member.objects.filter(program=program, external_id=external_id).values("pk")[:1])


def members_lock(*, member_ids: Iterable[int]) -> list[Member]:
    """Lock several members at once, in primary-key order; -> fresh rows in that order."""
    return list(_locking().filter(pk__in=set(member_ids)).order_by("pk"))


def _locking():
    return Member.objects.select_for_update(of=("self",)).select_related(
        "program", "program__tier_policy", "tier", "tier_override", "tier_floor"
    )
