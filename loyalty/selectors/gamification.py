"""Reading badges, challenges and leaderboards."""

from datetime import datetime

from django.db.models import Q

from loyalty.models import Member
from loyalty.models.gamification import Badge, BadgeAward, Challenge, ChallengeProgress
from loyalty.rules.criteria import KINDS, MemberOrders, Window
from loyalty.services.gamification import Period, period_current


def masked(member: Member) -> str:
    """`Anna K.`: a first name and an initial, never more."""
    first = (member.first_name or "").strip() or "A member"
    initial = (member.last_name or "").strip()[:1]
    return f"{first} {initial}." if initial else first


def badges_active(*, program_id: int):
    return Badge.objects.filter(program_id=program_id, active=True).select_related("tier")


def member_badges(*, member: Member, now: datetime, badges=None) -> list[dict]:
    """Every active badge (or those given, e.g. a page of them): earned ones with when, locked ones
    with the progress towards them."""
    badges = badges_active(program_id=member.program_id) if badges is None else badges
    awards = {a.badge_id: a for a in BadgeAward.objects.filter(member=member, badge__in=[b.pk for b in badges])}
    orders = MemberOrders(member)  # one read of the member's orders for every badge
    result = []
    for badge in badges:
        award = awards.get(badge.pk)
        if award is None and badge.kind != "none":
            window = Window.until(badge.starts_at, badge.ends_at, now)
            value = KINDS[badge.kind].value(badge, member, window, now, orders)
        else:
            value = award.value if award else 0
        result.append({"badge": badge, "awarded_at": award.awarded_at if award else None, "value": value})
    return result


def challenges_running(*, program_id: int, now: datetime):
    return Challenge.objects.filter(
        program_id=program_id, active=True, starts_at__lte=now, ends_at__gt=now
    ).select_related("reward_badge")


def member_challenges(*, member: Member, now: datetime, challenges=None) -> list[dict]:
    """Challenges running now (or those given, e.g. a page of them) in their current period, with
    the member's progress."""
    challenges = challenges_running(program_id=member.program_id, now=now) if challenges is None else challenges
    rows = {
        (p.challenge_id, p.period_start): p
        for p in ChallengeProgress.objects.filter(member=member, challenge__in=[c.pk for c in challenges])
    }
    result = []
    for challenge in challenges:
        period = period_current(challenge, now)
        row = rows.get((challenge.pk, period.start))
        result.append(
            {
                "challenge": challenge,
                "period": period,
                "progress": row,
                "joined": (not challenge.opt_in) or (row is not None and row.joined_at is not None),
            }
        )
    return result


def challenge_leaderboard(*, challenge: Challenge, now: datetime, member: Member | None = None) -> dict:
    """Top N of the current period by progress, ties to who got there first; names masked; and the
    asking member's own rank."""
    period: Period | None = period_current(challenge, now)
    if period is None or not challenge.leaderboard_size:
        return {"period": period, "entries": [], "me": None}
    rows = ChallengeProgress.objects.filter(challenge=challenge, period_start=period.start, value__gt=0)
    if challenge.opt_in:
        rows = rows.filter(joined_at__isnull=False)
    ordered = rows.select_related("member").order_by("-value", "reached_at", "id")
    entries = [
        {
            "rank": i + 1,
            "name": masked(row.member),
            "value": row.value,
            "completed": bool(row.completed_at),
            "member_id": row.member_id,
        }
        for i, row in enumerate(ordered[: challenge.leaderboard_size])
    ]
    me = None
    if member is not None:
        mine = rows.filter(member=member).first()
        if mine is not None:
            ahead = rows.filter(
                Q(value__gt=mine.value)
                | Q(value=mine.value, reached_at__lt=mine.reached_at)
                | Q(value=mine.value, reached_at=mine.reached_at, id__lt=mine.pk)
            ).count()
            me = {"rank": ahead + 1, "name": masked(member), "value": mine.value, "completed": bool(mine.completed_at)}
    return {"period": period, "entries": entries, "me": me}
