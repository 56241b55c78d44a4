"""Badges and challenges, evaluated from events after commit (never inside checkout's transaction).

For a member's events, under the member's lock: the badges the member does not have yet and the open
challenge periods whose criterion the events can move are re-evaluated from the database (the
members of a batch of events together, with a few queries for all of them). A badge is
awarded once (unique constraint); a challenge period pays once (its progress row says so). Refunds
lower progress until completion; a reward given stands (documented in README).
"""

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from loyalty import errors
from loyalty.dates import start_of_next_month
from loyalty.models import AccountKind, Event, Member, MemberStatus, Order, TransactionKind
from loyalty.models.gamification import (
    Badge,
    BadgeAward,
    Challenge,
    ChallengeProgress,
    CriterionKind,
    Repeat,
    definitions_version,
)
from loyalty.rules.criteria import KINDS, ORDER_KINDS, MemberOrders, Window
from loyalty.services.events import task_memo
from loyalty.services.ledger import Book
from loyalty.services.locks import members_lock
from loyalty.services.points import points_credit


class NotOptIn(errors.LoyaltyError):
    code, title = "challenge_not_opt_in", "Everyone takes part in this challenge: there is nothing to join"


class ChallengeNotOpen(errors.LoyaltyError):
    code, title = "challenge_not_open", "The challenge is not running"


class ChallengeNotFound(errors.NotFound):
    code, title = "challenge_not_found", "No such challenge"


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime


def grace(challenge: Challenge) -> timedelta:
    """How long after a period ends late events (refunds, maturity) still move its progress."""
    return timedelta(days=challenge.program.pending_days + 1)


def challenge_periods(challenge: Challenge, now: datetime) -> list[Period]:
    """The periods that have started by `now`: the window, or each calendar month of it."""
    if challenge.repeat == Repeat.NONE:
        return [Period(challenge.starts_at, challenge.ends_at)] if challenge.starts_at <= now else []
    periods, start = [], challenge.starts_at
    while start < challenge.ends_at and start <= now:
        end = min(start_of_next_month(start, challenge.program.timezone), challenge.ends_at)
        periods.append(Period(start, end))
        start = end
    return periods


def period_current(challenge: Challenge, now: datetime) -> Period | None:
    """The period running now, else the last one that ran."""
    periods = challenge_periods(challenge, now)
    running = [p for p in periods if p.start <= now < p.end]
    return (running or periods or [None])[-1]


def periods_open(challenge: Challenge, now: datetime) -> list[Period]:
    return [p for p in challenge_periods(challenge, now) if now < p.end + grace(challenge)]


# --- evaluation ---------------------------------------------------------------------------------
# What to evaluate: member id -> (the badges, the challenges) to re-evaluate for that member.
Plan = dict[int, tuple[list[Badge], list[Challenge]]]


def gamification_process(events: list[Event], *, now: datetime) -> None:
    """The event processor (loyalty.services.events.PROCESSORS): events of one program, evaluated
    once per member for all the types of that member's events, the members together; a member whose
    events no definition can move is not evaluated at all (not even locked)."""
    types: dict[int, set[str]] = {}
    for event in events:
        if event.member_id is not None:
            types.setdefault(event.member_id, set()).add(event.type)
    if types:
        gamification_evaluate_members(_plan(events[0].program_id, types, now), now=now)


def gamification_evaluate(
    *,
    member_id: int,
    now: datetime,
    event_type: str | None = None,
    event_types: set[str] | None = None,
    challenge: Challenge | None = None,
    program_id: int | None = None,
) -> None:
    """Re-evaluate for one member what events of `event_type` (or of any of `event_types`) can move
    (everything when neither is given; one challenge only when given)."""
    if challenge is not None:
        plan: Plan = {member_id: ([], [challenge])}
    else:
        if program_id is None:
            program_id = Member.objects.filter(pk=member_id).values_list("program_id", flat=True).first()
        types = {event_type} if event_type else set(event_types or ())
        plan = _plan(program_id, {member_id: types or None}, now)
    gamification_evaluate_members(plan, now=now)


def _plan(program_id: int, types: dict[int, set[str] | None], now: datetime) -> Plan:
    """For each member, the definitions the types of their events can move (all of them for None)."""
    badges, challenges = task_memo(("gamification", program_id, now), lambda: _definitions(program_id, now))
    moved: dict[frozenset[str], tuple[list[Badge], list[Challenge]]] = {}
    plan: Plan = {}
    for member_id, member_types in types.items():
        if member_types is None:
            plan[member_id] = (badges, challenges)
            continue
        key = frozenset(member_types)
        if key not in moved:
            moved[key] = (
                [b for b in badges if any(KINDS[b.kind].triggered_by(b, t) for t in key)],
                [c for c in challenges if any(KINDS[c.kind].triggered_by(c, t) for t in key)],
            )
        if moved[key][0] or moved[key][1]:
            plan[member_id] = moved[key]
    return plan


def gamification_evaluate_members(plan: Plan, *, now: datetime) -> None:
    """Evaluate members of one program in one transaction, under their locks (taken together, in id
    order): their accounts, awards, progress rows, orders and lines are read once for all of them,
    the ledger postings written by one book, and the progress rows that changed written together.
    What is left per member is per award (an award row) and per criterion that counts something other
    than orders (events, referrals, the tier: a query each)."""
    if not plan:
        return
    # inside the events' transaction no savepoint is needed: a failure fails the batch as a whole
    with transaction.atomic(savepoint=False):
        members = [m for m in members_lock(member_ids=plan) if m.status == MemberStatus.ACTIVE]
        if not members:
            return
        book = Book(program=members[0].program, now=now)
        book.preload(members)  # the accounts of whoever is credited, one read for all
        orders = MemberOrders.read(members)
        badge_ids = {b.pk for badges, _ in plan.values() for b in badges}
        challenge_ids = {c.pk for _, challenges in plan.values() for c in challenges}
        awarded = set(
            BadgeAward.objects.filter(member__in=members, badge__in=badge_ids).values_list("member_id", "badge_id")
            if badge_ids
            else ()
        )
        rows = {
            (row.member_id, row.challenge_id, row.period_start): row
            for row in (
                ChallengeProgress.objects.filter(member__in=members, challenge__in=challenge_ids)
                if challenge_ids
                else ()
            )
        }
        to_write: list[ChallengeProgress] = []
        for member in members:
            badges, challenges = plan[member.pk]
            for badge in badges:
                if (member.pk, badge.pk) in awarded:
                    continue
                window = Window.until(badge.starts_at, badge.ends_at, now)
                value = KINDS[badge.kind].value(badge, member, window, now, orders[member.pk])
                if value >= badge.target:
                    badge_award(book, member=member, badge=badge, value=value, source="criterion")
            for found in challenges:
                for period in periods_open(found, now):
                    row = rows.get((member.pk, found.pk, period.start))
                    _progress(book, member, found, period, now, row, orders[member.pk], to_write)
        book.commit()
        ChallengeProgress.objects.bulk_create([row for row in to_write if row.pk is None])
        ChallengeProgress.objects.bulk_update([row for row in to_write if row.pk], ["value", "reached_at"])


DEFINITIONS_MAX_AGE = 30.0  # seconds a worker trusts the definitions it read (tiers, program settings)
_definitions_read: dict[int, tuple[str | None, float, list[Badge], list[Challenge]]] = {}


def _definitions(program_id: int, now: datetime) -> tuple[list[Badge], list[Challenge]]:
    """A program's active badges and its challenges with a period open now. Read once per process
    until a badge or challenge is saved (`definitions_version`) or DEFINITIONS_MAX_AGE passes, not
    once per task: a checkout's task would otherwise spend a third of its time reading them."""
    version = definitions_version(program_id)
    found = _definitions_read.get(program_id)
    if version is None or found is None or found[0] != version or time.monotonic() - found[1] > DEFINITIONS_MAX_AGE:
        badges = list(Badge.objects.filter(program_id=program_id, active=True).select_related("tier", "program"))
        challenges = list(
            Challenge.objects.filter(program_id=program_id, active=True, closed_at__isnull=True).select_related(
                "tier", "program", "reward_badge"
            )
        )
        found = _definitions_read[program_id] = (version, time.monotonic(), badges, challenges)
    _, _, badges, challenges = found
    return badges, [c for c in challenges if c.closed_at is None and c.starts_at <= now and periods_open(c, now)]


def _progress(
    book: Book,
    member: Member,
    challenge: Challenge,
    period: Period,
    now: datetime,
    row: ChallengeProgress | None,
    orders: MemberOrders,
    to_write: list[ChallengeProgress],
) -> None:
    """One period's progress: recomputed, rewarded once; a row that changed without completing is
    added to `to_write` for the caller to write (a completed one is written by the book)."""
    if challenge.opt_in and (row is None or row.joined_at is None):
        return  # not joined: no progress
    start = max(period.start, row.joined_at) if challenge.opt_in else period.start
    value = KINDS[challenge.kind].value(challenge, member, Window.until(start, period.end, now), now, orders)
    if row is None:
        if not value:
            return
        row = ChallengeProgress(challenge=challenge, member=member, period_start=period.start)
    changed = row.pk is None or value != row.value
    if changed:
        row.value, row.reached_at = value, now
    if row.completed_at is None and value >= challenge.target:
        row.completed_at = now
        if challenge.reward_points:
            lot = points_credit(
                book,
                member=member,
                asset=book.program.primary_asset,
                amount=challenge.reward_points,
                kind=TransactionKind.CHALLENGE,
                source=AccountKind.GAMIFICATION,
                reference=f"Challenge: {challenge.name}",
            )
            row.transaction = lot.transaction
        if challenge.reward_badge_id:
            badge_award(
                book, member=member, badge=challenge.reward_badge, value=value, source=f"challenge:{challenge.code}"
            )
        book.emit(
            "challenge.completed",
            member,
            {
                "challenge": challenge.code,
                "period_start": period.start.isoformat(),
                "points": challenge.reward_points,
            },
        )
        book.save_after(row)
        return
    if changed:
        to_write.append(row)


def badge_award(book: Book, *, member: Member, badge: Badge, value, source: str) -> BadgeAward | None:
    """Award once (the member is locked; a unique constraint backs it). -> the award, or None."""
    if (
        book.will_save(BadgeAward, badge_id=badge.pk, member_id=member.pk)
        or BadgeAward.objects.filter(badge=badge, member=member).exists()
    ):
        return None
    award = BadgeAward(badge=badge, member=member, awarded_at=book.now, value=value, source=source)
    if badge.points:
        lot = points_credit(
            book,
            member=member,
            asset=book.program.primary_asset,
            amount=badge.points,
            kind=TransactionKind.BADGE,
            source=AccountKind.GAMIFICATION,
            reference=f"Badge: {badge.name}",
        )
        award.transaction = lot.transaction
    book.emit("badge.awarded", member, {"badge": badge.code, "name": badge.name, "points": badge.points})
    book.save_after(award)
    return award


# --- joining, recompute, closing ------------------------------------------------------------------
def challenge_join(*, challenge: Challenge, member: Member, now: datetime | None = None) -> ChallengeProgress:
    """Opt in to the running period; activity counts from now. Joining twice is joining once."""
    now = now or timezone.now()
    if not challenge.opt_in:
        raise NotOptIn()
    period = period_current(challenge, now)
    if not challenge.active or period is None or not period.start <= now < period.end:
        raise ChallengeNotOpen(f"{challenge.name} is not running")
    with transaction.atomic():
        members_lock(member_ids=[member.pk])
        row, _ = ChallengeProgress.objects.get_or_create(
            challenge=challenge, member=member, period_start=period.start, defaults={"joined_at": now}
        )
        if row.joined_at is None:
            row.joined_at = now
            row.save(update_fields=["joined_at"])
    return row


def challenge_participants(challenge: Challenge) -> list[int]:
    """Members who may have progress: a progress row, or activity of the criterion's kind in the window."""
    start, end, program = challenge.starts_at, challenge.ends_at, challenge.program
    ids = set(ChallengeProgress.objects.filter(challenge=challenge).values_list("member_id", flat=True))
    if challenge.opt_in:
        return sorted(ids)
    if challenge.kind in ORDER_KINDS:
        activity = Order.objects.filter(program=program, placed_at__gte=start, placed_at__lt=end)
    elif challenge.kind == CriterionKind.EVENT_COUNT:
        activity = Event.objects.filter(
            program=program, type=challenge.event_type, occurred_at__gte=start, occurred_at__lt=end
        )
    elif challenge.kind == CriterionKind.REFERRALS:
        from referrals.models import Referral

        activity = Referral.objects.filter(program=program, decided_at__gte=start, decided_at__lt=end).annotate(
            member_id=F("referrer_id")
        )
    else:  # tier reached
        activity = Member.objects.filter(program=program, tier__rank__gte=challenge.tier.rank).annotate(
            member_id=F("pk")
        )
    ids.update(activity.values_list("member_id", flat=True).distinct())
    return sorted(ids)


def challenge_recompute(*, challenge: Challenge, now: datetime | None = None) -> int:
    """Re-evaluate every possible participant of a challenge with the same code as live evaluation
    (after staff edited it). Completions stand; a lowered target completes whoever reached it."""
    now = now or timezone.now()
    member_ids = challenge_participants(challenge)
    for member_id in member_ids:
        gamification_evaluate(member_id=member_id, now=now, challenge=challenge)
    return len(member_ids)


def challenges_close(now: datetime) -> int:
    """Challenges whose last period is past its grace period are final."""
    closed = 0
    for challenge in Challenge.objects.filter(closed_at__isnull=True, ends_at__lte=now).select_related("program"):
        if now >= challenge.ends_at + grace(challenge):
            challenge.closed_at = now
            challenge.save(update_fields=["closed_at"])
            closed += 1
    return closed
