"""What portal pages read. Balances, tiers, badges and challenges come from the same selectors the
member API uses; this module adds the portal's own views of them (catalog eligibility, history
in plain words)."""

from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.utils.translation import gettext as _

from loyalty.dates import local_date, period_start
from loyalty.models import Member, MemberStatus, Program, Reward, RewardClaim, RewardKind, TransactionKind
from loyalty.selectors.gamification import challenge_leaderboard, member_badges, member_challenges
from loyalty.selectors.members import member_balances, member_expiring, member_pending_lots, member_transactions
from loyalty.services.rewards import reward_eligibility_error
from tiers.selectors import tier_progress, tiers_ranked


def portal_program() -> Program | None:
    """The program whose members sign in here: PORTAL_PROGRAM, or the only program there is."""
    found = Program.objects.filter(code=settings.PORTAL_PROGRAM).first()
    if found is None:
        only = list(Program.objects.all()[:2])
        found = only[0] if len(only) == 1 else None
    return found


# --- the signed-in member -------------------------------------------------------------------------
def portal_member(user) -> Member | None:
    """The active member behind a portal account (None for staff and for closed members)."""
    if user is None or not user.is_authenticated or user.is_staff:
        return None
    return (
        Member.objects.select_related("program__tier_policy", "tier", "tier_floor", "tier_override")
        .filter(user=user, status=MemberStatus.ACTIVE)
        .first()
    )


# --- home -----------------------------------------------------------------------------------------
def home_summary(*, member: Member, now: datetime) -> dict:
    """Balances (primary point currency first), pending lots with their dates, next expiry, tier."""
    program = member.program
    balances = member_balances(member=member, now=now)
    primary = program.primary_asset
    buckets = balances.get(primary.code, {"available": 0, "pending": 0, "held": 0})
    expiring = member_expiring(member=member, now=now).get(primary.code)
    pending = list(member_pending_lots(member=member, now=now).filter(asset=primary).select_related("order")[:10])
    progress = tier_progress(member=member, now=now)
    return {
        "asset": primary,
        "buckets": buckets,
        "value": (Decimal(max(buckets["available"], 0)) * primary.unit_value).quantize(Decimal("0.01")),
        "base_currency": program.base_currency,
        "other_balances": {code: b for code, b in balances.items() if code != primary.code},
        "expiring": expiring,
        "pending_lots": pending,
        "tier": tier_card(progress, tiers_ranked(program)) if progress else None,
    }


def tier_card(progress: dict, tiers: list) -> dict:
    """The tier card: name, until when, next tier and the spend still needed, and a progress %."""
    spend = Decimal(progress["spend"]["amount"])
    needed = Decimal(progress["spend_needed"]["amount"]) if progress["spend_needed"] else None
    percent = 100 if needed is None else int((spend * 100 / (spend + needed)) if (spend + needed) else 100)
    return {
        **progress,
        "percent": max(0, min(percent, 100)),
        "spend_amount": spend,
        "needed_amount": needed,
        "currency": progress["spend"]["currency"],
        "next_tier_name": next((t.name for t in tiers if t.code == progress["next_tier"]), None),
    }


# --- history --------------------------------------------------------------------------------------
HISTORY_FILTERS = {
    "earned": [
        TransactionKind.EARN,
        TransactionKind.MATURE,
        TransactionKind.REFERRAL,
        TransactionKind.BADGE,
        TransactionKind.CHALLENGE,
        TransactionKind.BIRTHDAY,
        TransactionKind.WINBACK,
        TransactionKind.IMPORT,
    ],
    "redeemed": [TransactionKind.HOLD, TransactionKind.CAPTURE, TransactionKind.VOID, TransactionKind.CLAIM],
    "expired": [TransactionKind.EXPIRE],
    "adjusted": [TransactionKind.ADJUST, TransactionKind.CLAWBACK],
}


def history_transactions(*, member: Member, kind: str | None):
    """The member's ledger, newest first, with the lots each transaction credited."""
    rows = member_transactions(member=member).prefetch_related("lots")
    if kind in HISTORY_FILTERS:
        rows = rows.filter(kind__in=HISTORY_FILTERS[kind])
    return rows


def history_line(row, *, now: datetime) -> dict:
    """One transaction in plain words: what happened, the points (signed) and, for points still
    pending, the day they become available."""
    net = sum(e.amount for e in row.member_entries)
    moved = max((abs(e.amount) for e in row.member_entries), default=0)
    order = row.order.external_id if row.order_id else ""
    pending_until = None
    if row.kind in (TransactionKind.EARN, TransactionKind.REFERRAL, TransactionKind.BADGE, TransactionKind.CHALLENGE):
        waiting = [lot.matures_at for lot in row.lots.all() if lot.state == "pending" and lot.matures_at > now]
        pending_until = min(waiting) if waiting else None
    texts = {
        TransactionKind.EARN: _("Order #%(order)s") % {"order": order},
        TransactionKind.MATURE: _("Points now available") + (f" (#{order})" if order else ""),
        TransactionKind.EXPIRE: _("Points expired"),
        TransactionKind.CLAWBACK: _("Refund of order #%(order)s") % {"order": order} if order else _("Refund"),
        TransactionKind.HOLD: _("Points held at checkout"),
        TransactionKind.CAPTURE: _("Points paid at checkout"),
        TransactionKind.VOID: _("Checkout cancelled: points back"),
        TransactionKind.CLAIM: _("Reward claimed: %(name)s") % {"name": row.reference.removeprefix("Reward: ")},
        TransactionKind.ADJUST: _("Adjustment by our team"),
        TransactionKind.REFERRAL: _("Referral reward"),
        TransactionKind.BADGE: _("Badge reward: %(name)s") % {"name": row.reference.removeprefix("Badge: ")},
        TransactionKind.CHALLENGE: _("Challenge reward: %(name)s")
        % {"name": row.reference.removeprefix("Challenge: ")},
        TransactionKind.BIRTHDAY: _("Birthday gift"),
        TransactionKind.WINBACK: _("Welcome-back gift"),
        TransactionKind.IMPORT: _("Points brought over"),
    }
    moves = row.kind in (TransactionKind.MATURE, TransactionKind.HOLD, TransactionKind.VOID)
    return {
        "row": row,
        "text": texts.get(row.kind, row.reference),
        "points": moved if moves else net,
        "signed": not moves,
        "pending_until": pending_until,
    }


# --- rewards --------------------------------------------------------------------------------------
def reward_catalog(*, member: Member, now: datetime, available: int) -> dict:
    """The catalog split into what the member can claim now and what not yet (with why), in two
    queries whatever the catalog's size."""
    program = member.program
    rewards = list(
        Reward.objects.filter(program=program, active=True)
        .exclude(kind=RewardKind.BIRTHDAY_GIFT)
        .select_related("min_tier", "asset")
    )
    limited = [r.pk for r in rewards if r.limit_per_member is not None]
    claimed: dict[int, list[datetime]] = {}
    if limited:
        for reward_id, at in RewardClaim.objects.filter(member=member, reward_id__in=limited).values_list(
            "reward_id", "claimed_at"
        ):
            claimed.setdefault(reward_id, []).append(at)
    claimable, locked = [], []
    for reward in rewards:
        why = None
        problem = reward_eligibility_error(reward=reward, member=member)
        if problem is not None:
            why = problem.code
        elif reward.limit_per_member is not None:
            start = period_start(now, reward.limit_period, program.timezone)
            times = [t for t in claimed.get(reward.pk, []) if start is None or t >= start]
            if len(times) >= reward.limit_per_member:
                why = "claim_limit_reached"
        if why is None and reward.cost > available:
            why = "insufficient_points"
        entry = {"reward": reward, "why": why, "missing": max(reward.cost - available, 0)}
        (locked if why else claimable).append(entry)
    return {"claimable": claimable, "locked": locked}


def member_claims(*, member: Member):
    return RewardClaim.objects.filter(member=member).select_related("reward").order_by("-claimed_at", "-id")


def birthday_offer(*, member: Member, now: datetime) -> dict | None:
    """In the birthday month, before this year's reward is taken: the gift, or points for tiers
    that offer them."""
    from tiers.models import BirthdayGift
    from tiers.selectors import tier_in_effect

    program = member.program
    today = local_date(now, program.timezone)
    if member.birth_date is None or member.birth_date.month != today.month:
        return None
    taken = BirthdayGift.objects.filter(member=member, year=today.year).first()
    tier = tier_in_effect(member, now)
    gift = Reward.objects.filter(program=program, kind=RewardKind.BIRTHDAY_GIFT, active=True).first()
    return {
        "taken": taken,
        "gift": gift,
        "points": tier.birthday_points if tier else 0,
        "year": today.year,
    }


# --- referrals ------------------------------------------------------------------------------------
def member_referral_code(*, member: Member) -> str | None:
    from referrals.models import ReferralCode

    return ReferralCode.objects.filter(member=member, retired_at__isnull=True).values_list("code", flat=True).first()


def member_referrals(*, member: Member):
    from referrals.models import Referral

    return Referral.objects.filter(referrer=member).select_related("referee").order_by("-created_at", "-id")


# --- badges and challenges ------------------------------------------------------------------------
def badges_page(*, member: Member, now: datetime) -> dict:
    badges = member_badges(member=member, now=now)
    for row in badges:
        target = row["badge"].target or Decimal("1")
        row["percent"] = 100 if row["awarded_at"] else int(min(Decimal(row["value"]) * 100 / target, 100))
    challenges = member_challenges(member=member, now=now)
    for row in challenges:
        value = row["progress"].value if row["progress"] else Decimal("0")
        target = row["challenge"].target or Decimal("1")
        row["value"] = value
        row["percent"] = int(min(value * 100 / target, 100))
        row["completed"] = bool(row["progress"] and row["progress"].completed_at)
        row["board"] = challenge_leaderboard(challenge=row["challenge"], now=now, member=member)
    return {
        "earned": [b for b in badges if b["awarded_at"]],
        "locked": [b for b in badges if not b["awarded_at"]],
        "challenges": challenges,
    }
