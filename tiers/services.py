"""Tier rules: upgrades when spend crosses a threshold, drops on refunds, year-end evaluation,
rolling windows, staff pins, and the birthday reward.

- An upgrade happens in the same transaction as the order that crosses the threshold; the next
  order earns at the new multiplier.
- A refund or cancel that takes this window's spend below the threshold of a tier earned in this
  window drops the member to the tier the remaining spend supports, never below the tier carried
  over from the last evaluation (`tier_floor`). Refunds of orders from an earlier window do not
  change a tier that window's evaluation already decided.
- On 1 January every member whose status has run out is re-evaluated from last year's spend (one
  set-based SQL statement per step, in bounded memory); `one_down` or `to_earned`.
"""

from datetime import date, datetime

from django.db import connection, transaction
from django.utils import timezone

from loyalty import errors
from loyalty.dates import local_date, year_bounds
from loyalty.models import AccountKind, Member, Order, Program, Reward, RewardClaim, RewardKind, TransactionKind
from loyalty.services.audit import audit_record, staff_require
from loyalty.services.ledger import Book
from loyalty.services.locks import members_lock
from loyalty.services.points import points_credit
from tiers.models import (
    BirthdayChoice,
    BirthdayGift,
    DowngradePolicy,
    Tier,
    TierChange,
    TierChangeReason,
    TierEvaluation,
    TierWindow,
)
from tiers.selectors import (
    spend_between,
    status_end,
    tier_effective,
    tier_for_spend,
    tier_pinned,
    tier_policy,
    tier_status,
    tiers_ranked,
    window_bounds,
)


class BirthdayNotNow(errors.LoyaltyError):
    code, title = "not_birthday_month", "Birthday rewards are taken in the member's birthday month"


class BirthdayTaken(errors.Conflict):
    code, title = "birthday_taken", "This year's birthday reward was already taken"


class BirthdayPointsNotForTier(errors.LoyaltyError):
    code, title = "birthday_points_not_for_tier", "Points instead of the gift are for higher tiers"


def _tier_set(
    book: Book,
    member: Member,
    tier: Tier,
    valid_until: date | None,
    *,
    reason: str,
    floor: Tier | None = None,
    note: str = "",
    staff_user=None,
) -> None:
    """Change the earned tier, record the history, and say so if the tier in effect changed."""
    today = local_date(book.now, member.program.timezone)
    before = tier_effective(member, today)
    old = member.tier
    member.tier, member.tier_valid_until = tier, valid_until
    fields = {"tier": tier, "tier_valid_until": valid_until}
    if floor is not None:
        member.tier_floor = fields["tier_floor"] = floor
    Member.objects.filter(pk=member.pk).update(**fields)
    if old != tier:
        TierChange.objects.create(
            member=member,
            from_tier=old,
            to_tier=tier,
            reason=reason,
            note=note,
            valid_until=valid_until,
            created_by=staff_user,
            changed_at=book.now,
        )
    _announce(book, member, before, tier_effective(member, today), reason)


def _announce(book: Book, member: Member, before: Tier | None, after: Tier | None, reason: str) -> None:
    if before != after:
        book.emit(
            "tier.changed",
            member,
            {
                "from": before.code if before else None,
                "to": after.code if after else None,
                "reason": reason,
                "rank": after.rank if after else None,
            },
        )


def tier_refresh(book: Book, *, member: Member) -> Tier | None:
    """Post what a late job has not (a lapsed status re-evaluated, a staff pin ended) and return the
    tier in effect now. Called under the member's lock before an order earns."""
    status = tier_status(member, book.now)
    if (status.tier, status.valid_until) != (member.tier, member.tier_valid_until):
        policy = tier_policy(member.program)
        calendar = policy.window == TierWindow.CALENDAR_YEAR
        _tier_set(
            book,
            member,
            status.tier,
            status.valid_until,
            reason=TierChangeReason.YEAR_END if calendar else TierChangeReason.WINDOW,
            floor=status.tier if calendar else None,
        )
    today = local_date(book.now, member.program.timezone)
    if member.tier_override_id and not tier_pinned(member, today):
        _override_end(book, member)
    return tier_effective(member, today)


def tier_spend_changed(book: Book, *, member: Member, order: Order, reason: str = TierChangeReason.SPEND) -> None:
    """An order, refund or cancel changed the member's qualifying spend in the current window."""
    policy = tier_policy(member.program)
    start, end = window_bounds(policy, book.now)
    if start is not None and not start <= order.placed_at < end:
        return  # an order of an earlier window: its evaluation stands
    tier_spend_apply(book, member=member, spend=spend_between(member, start, end), reason=reason)


def tier_spend_apply(book: Book, *, member: Member, spend, reason: str = TierChangeReason.SPEND) -> None:
    """The tier rule for a member whose spend in the current window is now `spend`."""
    program = member.program
    policy = tier_policy(program)
    tiers = tiers_ranked(program)
    if not tiers or member.tier is None:
        return
    supported = tier_for_spend(tiers, spend)
    current = member.tier
    if supported.rank > current.rank:
        _tier_set(
            book, member, supported, status_end(policy, member, supported, book.now), reason=TierChangeReason.SPEND
        )
    elif supported == current and reason == TierChangeReason.SPEND and current.rank:
        valid_until = status_end(policy, member, current, book.now)  # re-qualified: the status holds longer
        if member.tier_valid_until is not None and valid_until is not None and valid_until > member.tier_valid_until:
            member.tier_valid_until = valid_until
            Member.objects.filter(pk=member.pk).update(tier_valid_until=valid_until)
    elif supported.rank < current.rank and reason == TierChangeReason.REFUND:
        floor = member.tier_floor or tiers[0]
        new = supported if supported.rank >= floor.rank else floor
        if new.rank < current.rank:
            if new.rank > floor.rank:
                valid_until = status_end(policy, member, new, book.now)
            elif new.rank and policy.window == TierWindow.CALENDAR_YEAR:
                valid_until = date(local_date(book.now, program.timezone).year, 12, 31)
            else:
                valid_until = status_end(policy, member, new, book.now)
            _tier_set(
                book,
                member,
                new,
                valid_until,
                reason=TierChangeReason.REFUND,
                note=f"Spend now {spend:.2f} {program.base_currency}",
            )


# --- staff pins -------------------------------------------------------------------------------------
def tier_override_set(
    *, member: Member, tier: Tier, until: date, reason: str, staff_user, now: datetime | None = None
) -> Member:
    """Pin a tier until a date (inclusive), with a reason; the earned tier keeps being computed."""
    now = now or timezone.now()
    staff_require(staff_user, "loyalty.pin_tier", "pin a tier")
    if tier.program_id != member.program_id:
        raise errors.InvalidInput("That tier belongs to another program")
    if not reason.strip():
        raise errors.InvalidInput("A pin needs a reason", errors=[{"field": "reason", "message": "required"}])
    if until < local_date(now, member.program.timezone):
        raise errors.InvalidInput("The end date is in the past", errors=[{"field": "until", "message": "in the past"}])
    with transaction.atomic():
        [member] = members_lock(member_ids=[member.pk])
        book = Book(program=member.program, now=now)
        today = local_date(now, member.program.timezone)
        before = tier_effective(member, today)
        member.tier_override, member.tier_override_until = tier, until
        Member.objects.filter(pk=member.pk).update(tier_override=tier, tier_override_until=until)
        TierChange.objects.create(
            member=member,
            from_tier=before,
            to_tier=tier,
            reason=TierChangeReason.OVERRIDE,
            note=reason.strip()[:300],
            valid_until=until,
            created_by=staff_user,
            changed_at=now,
        )
        _announce(book, member, before, tier, TierChangeReason.OVERRIDE)
        audit_record(
            actor=staff_user,
            action="tier.pin",
            obj=member,
            program=member.program,
            reason=reason.strip(),
            before={"tier": before.code if before else None},
            after={"tier": tier.code, "until": until.isoformat()},
            now=now,
        )
        book.commit()
    return member


def tier_override_clear(*, member: Member, staff_user, reason: str = "", now: datetime | None = None) -> Member:
    now = now or timezone.now()
    staff_require(staff_user, "loyalty.pin_tier", "end a tier pin")
    with transaction.atomic():
        [member] = members_lock(member_ids=[member.pk])
        book = Book(program=member.program, now=now)
        if member.tier_override_id:
            pinned = member.tier_override
            _override_end(book, member, staff_user=staff_user, note=reason)
            audit_record(
                actor=staff_user,
                action="tier.unpin",
                obj=member,
                program=member.program,
                reason=reason,
                before={"tier": pinned.code},
                after={"tier": member.tier.code if member.tier else None},
                now=now,
            )
        book.commit()
    return member


def _override_end(book: Book, member: Member, *, staff_user=None, note: str = "") -> None:
    pinned = member.tier_override
    member.tier_override, member.tier_override_until = None, None
    Member.objects.filter(pk=member.pk).update(tier_override=None, tier_override_until=None)
    TierChange.objects.create(
        member=member,
        from_tier=pinned,
        to_tier=member.tier,
        reason=TierChangeReason.OVERRIDE_END,
        note=note[:300],
        valid_until=member.tier_valid_until,
        created_by=staff_user,
        changed_at=book.now,
    )
    _announce(book, member, pinned, member.tier, TierChangeReason.OVERRIDE_END)


# --- jobs -------------------------------------------------------------------------------------------
def tiers_year_end(now: datetime) -> int:
    """On or after 1 January, evaluate each calendar-year program into the new year, once."""
    changed = 0
    for program in Program.objects.all():
        policy = tier_policy(program)
        if policy.window != TierWindow.CALENDAR_YEAR or not program.tiers.exists():
            continue
        year = local_date(now, program.timezone).year
        if TierEvaluation.objects.filter(program=program, year=year).exists():
            continue
        changed += tier_year_end_evaluate(program=program, year=year, now=now)
    return changed


_EVALUATION = """
CREATE TEMP TABLE tier_evaluation AS
WITH spend AS (
    SELECT o.member_id, ROUND(SUM(o.spend_base), 2) AS total
    FROM loyalty_order o
    WHERE o.program_id = %(program)s AND o.placed_at >= %(start)s AND o.placed_at < %(end)s
    GROUP BY o.member_id
), evaluated AS (
    SELECT m.id AS member_id, m.tier_id AS old_id, cur.rank AS old_rank, cur.code AS old_code,
           COALESCE((SELECT MAX(t.rank) FROM tiers_tier t
                     WHERE t.program_id = %(program)s AND t.threshold <= COALESCE(s.total, 0)), 0) AS earned_rank,
           CASE WHEN m.tier_override_id IS NOT NULL
                     AND (m.tier_override_until IS NULL OR m.tier_override_until >= %(jan1)s)
                THEN 1 ELSE 0 END AS pinned
    FROM loyalty_member m
    JOIN tiers_tier cur ON cur.id = m.tier_id
    LEFT JOIN spend s ON s.member_id = m.id
    WHERE m.program_id = %(program)s AND m.tier_valid_until IS NOT NULL AND m.tier_valid_until < %(jan1)s
), decided AS MATERIALIZED (
    SELECT e.*, CASE
        WHEN %(one_down)s = 1 AND e.earned_rank < e.old_rank
            THEN (SELECT MAX(t2.rank) FROM tiers_tier t2 WHERE t2.program_id = %(program)s AND t2.rank < e.old_rank)
        ELSE e.earned_rank END AS new_rank
    FROM evaluated e
)
SELECT d.member_id, d.old_id, d.old_code, d.pinned, nt.id AS new_id, nt.rank AS new_rank, nt.code AS new_code
FROM decided d
JOIN tiers_tier nt ON nt.program_id = %(program)s AND nt.rank = d.new_rank
"""

_HISTORY = """
INSERT INTO tiers_tierchange (member_id, from_tier_id, to_tier_id, reason, note, valid_until, changed_at)
SELECT member_id, old_id, new_id, 'year_end', '', CASE WHEN new_rank = %(entry)s THEN NULL ELSE %(dec31)s END,
       %(now)s
FROM tier_evaluation WHERE new_id <> old_id
"""

_EVENTS = """
INSERT INTO loyalty_event (program_id, member_id, type, occurred_at, properties, custom, created_at)
SELECT %(program)s, member_id, 'tier.changed', %(now)s,
       {json}('from', old_code, 'to', new_code, 'reason', 'year_end', 'rank', new_rank), %(false)s, %(now)s
FROM tier_evaluation
WHERE new_id <> old_id AND pinned = 0
"""

_UPDATE = """
UPDATE loyalty_member SET tier_id = e.new_id, tier_floor_id = e.new_id,
       tier_valid_until = CASE WHEN e.new_rank = %(entry)s THEN NULL ELSE %(dec31)s END
FROM tier_evaluation e WHERE loyalty_member.id = e.member_id
"""


def tier_year_end_evaluate(*, program: Program, year: int, now: datetime) -> int:
    """Every member whose status ran out before 1 January `year`, from their spend in `year - 1`:
    set-based SQL (a temporary table and three statements), memory independent of the member count.
    Running it twice changes nothing: evaluated members hold their status until 31 December."""
    policy = tier_policy(program)
    start, end = year_bounds(year - 1, program.timezone)
    tiers = tiers_ranked(program)
    postgres = connection.vendor == "postgresql"
    params = {
        "program": program.pk,
        "start": start,
        "end": end,
        "jan1": date(year, 1, 1),
        "dec31": date(year, 12, 31),
        "one_down": int(policy.downgrade_policy == DowngradePolicy.ONE_DOWN),
        "entry": tiers[0].rank,
        "now": now,
        "false": False,
    }
    with transaction.atomic(), connection.cursor() as cursor:
        if TierEvaluation.objects.select_for_update().filter(program=program, year=year).exists():
            return 0
        cursor.execute("DROP TABLE IF EXISTS tier_evaluation")
        cursor.execute(_EVALUATION, params)
        if postgres:
            cursor.execute("ANALYZE tier_evaluation")  # the three statements below join it: real row counts
        cursor.execute(_HISTORY, params)
        changed = cursor.rowcount
        cursor.execute(_EVENTS.format(json="jsonb_build_object" if postgres else "json_object"), params)
        cursor.execute(_UPDATE, params)
        cursor.execute("DROP TABLE tier_evaluation")
        TierEvaluation.objects.create(program=program, year=year, members_changed=changed, ran_at=now)
    return changed


def tiers_window_lapse(now: datetime) -> int:
    """Rolling windows: members whose status ran out (orders left the window) are re-evaluated."""
    from loyalty.services.settlement import BATCH

    done = 0
    for program in Program.objects.exclude(tier_policy__window=TierWindow.CALENDAR_YEAR).filter(
        tier_policy__isnull=False
    ):
        today = local_date(now, program.timezone)
        due = Member.objects.filter(program=program, tier_valid_until__lt=today)
        while ids := list(due.order_by("pk").values_list("pk", flat=True)[:BATCH]):
            with transaction.atomic():
                book = Book(program=program, now=now)
                for member in members_lock(member_ids=ids):
                    tier_refresh(book, member=member)
                book.commit()
            done += len(ids)
    return done


def tier_overrides_end(now: datetime) -> int:
    """Staff pins whose end date has passed: the earned tier returns."""
    done = 0
    for program in Program.objects.all():
        today = local_date(now, program.timezone)
        ids = list(Member.objects.filter(program=program, tier_override_until__lt=today).values_list("pk", flat=True))
        if not ids:
            continue
        with transaction.atomic():
            book = Book(program=program, now=now)
            for member in members_lock(member_ids=ids):
                if member.tier_override_id and not tier_pinned(member, today):
                    _override_end(book, member)
                    done += 1
            book.commit()
    return done


# --- birthday ---------------------------------------------------------------------------------------
def birthday_take(*, member: Member, choice: str, now: datetime | None = None) -> BirthdayGift:
    """In the birthday month, once a year: the gift (a coupon) for everyone, or points instead for
    tiers that offer them (VIB and Rouge: 250 points in the demo)."""
    now = now or timezone.now()
    program = member.program
    today = local_date(now, program.timezone)
    if choice not in BirthdayChoice.values:
        raise errors.InvalidInput(
            f"Choose one of {', '.join(BirthdayChoice.values)}",
            errors=[{"field": "choice", "message": "unknown choice"}],
        )
    if member.birth_date is None or member.birth_date.month != today.month:
        raise BirthdayNotNow("Birthday rewards are taken in the birthday month")
    with transaction.atomic():
        [member] = members_lock(member_ids=[member.pk])
        if BirthdayGift.objects.filter(member=member, year=today.year).exists():
            raise BirthdayTaken(f"The {today.year} birthday reward was already taken")
        book = Book(program=program, now=now)
        tier = tier_refresh(book, member=member)
        gift = BirthdayGift(member=member, year=today.year, choice=choice, taken_at=now)
        if choice == BirthdayChoice.POINTS:
            if tier is None or not tier.birthday_points:
                raise BirthdayPointsNotForTier(f"{tier.name if tier else 'This'} members take the birthday gift")
            gift.points = tier.birthday_points
            points_credit(
                book,
                member=member,
                asset=program.primary_asset,
                amount=tier.birthday_points,
                kind=TransactionKind.BIRTHDAY,
                source=AccountKind.BIRTHDAY,
                reference=f"Birthday {today.year}",
            )
        else:
            from loyalty.services.rewards import coupon_code_generate

            reward = Reward.objects.filter(program=program, kind=RewardKind.BIRTHDAY_GIFT, active=True).first()
            if reward is None:
                raise errors.RewardUnavailable("The program has no birthday gift")
            gift.coupon_code = coupon_code_generate(reward.coupon_prefix)
            RewardClaim.objects.create(
                reward=reward, member=member, coupon_code=gift.coupon_code, points=0, claimed_at=now
            )
        gift.save()
        book.emit("birthday.taken", member, {"year": today.year, "choice": choice, "points": gift.points})
        book.commit()
    return gift


def birthdays_announce(now: datetime) -> int:
    """Once a year per member, in the birthday month: a `birthday.month` event (for the webhook or
    the e-mail that invites them to take the gift or the points). Deduplicated by event id."""
    from loyalty.models import Event
    from loyalty.services.events import events_create_once

    done = 0
    for program in Program.objects.all():
        today = local_date(now, program.timezone)
        members = Member.objects.filter(program=program, birth_date__month=today.month, status="active").exclude(
            birthday_gifts__year=today.year
        )
        for ids in _chunks(members.values_list("pk", flat=True).iterator(chunk_size=2000), 2000):
            events = [
                Event(
                    program=program,
                    member_id=pk,
                    type="birthday.month",
                    occurred_at=now,
                    external_id=f"birthday:{pk}:{today.year}",
                    properties={"year": today.year},
                )
                for pk in ids
            ]
            done += events_create_once(events)
    return done


def _chunks(iterable, size):
    chunk = []
    for item in iterable:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
