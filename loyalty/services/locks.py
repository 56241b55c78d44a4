"""Row locks, taken in one place and always in primary-key order (no deadlocks between services).

Every write to a member's balances happens under that member's row lock; decisions (is there enough,
was this already done) are re-read inside the lock."""

from collections.abc import Iterable

from loyalty.errors import MemberNotFound
from loyalty.models import Member, Program


def member_lock(*, program: Program, external_id: str) -> Member:
    member = (
        Member.objects.select_for_update(of=("self",))
        .select_related("program", "program__tier_policy", "tier", "tier_override", "tier_floor")
        .filter(program=program, external_id=external_id)
        .first()
    )
    if member is None:
        raise MemberNotFound(f"No member {external_id!r} in program {program.code!r}")
    return member


def members_lock(*, member_ids: Iterable[int]) -> list[Member]:
    """Lock several members at once, in primary-key order; -> fresh rows in that order."""
    return list(
        Member.objects.select_for_update(of=("self",))
        .select_related("program", "program__tier_policy", "tier", "tier_override", "tier_floor")
        .filter(pk__in=set(member_ids))
        .order_by("pk")
    )
