"""Reading tiers: the policy, windows, qualifying spend, the tier in effect, progress to the next."""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db.models import Sum

from loyalty.dates import add_months, local_date, start_of_day, year_bounds
from loyalty.models import Member, Order, Program
from tiers.models import DowngradePolicy, Tier, TierPolicy, TierWindow

ZERO = Decimal("0")


def tier_policy(program: Program) -> TierPolicy:
    """The program's policy (the defaults when staff never set one)."""
    try:
        return program.tier_policy  # cached on the program once read (or select_related with it)
    except TierPolicy.DoesNotExist:
        return TierPolicy(program=program)


def tiers_ranked(program: Program) -> list[Tier]:
    """The program's tiers, lowest first (read once per program instance)."""
    if not hasattr(program, "_tiers_ranked"):
        program._tiers_ranked = list(Tier.objects.filter(program=program).order_by("rank"))
    return program._tiers_ranked


def tier_for_spend(tiers: list[Tier], spend: Decimal) -> Tier | None:
    """The highest tier whose threshold the spend reaches (349.99 is not 350)."""
    reached = [tier for tier in tiers if tier.threshold.amount <= spend]
    return reached[-1] if reached else (tiers[0] if tiers else None)


def tier_below(tiers: list[Tier], tier: Tier) -> Tier:
    lower = [t for t in tiers if t.rank < tier.rank]
    return lower[-1] if lower else tier


def window_bounds(policy: TierPolicy, at: datetime) -> tuple[datetime | None, datetime | None]:
    """The spend window that `at` falls in: [start, end). None means unbounded."""
    program = policy.program
    if policy.window == TierWindow.CALENDAR_YEAR:
        return year_bounds(local_date(at, program.timezone).year, program.timezone)
    if policy.window == TierWindow.ROLLING_12_MONTHS:
        # By day: an order placed on day P counts through P + 12 months - 1 day, and leaves the next day.
        today = local_date(at, program.timezone)
        first_day = add_months(datetime(today.year, today.month, today.day), -12).date() + timedelta(days=1)
        return start_of_day(first_day, program.timezone), at + timedelta(microseconds=1)
    return None, None


def spend_between(member: Member, start: datetime | None, end: datetime | None) -> Decimal:
    """Qualifying spend in the base currency, net of refunds and cancels, at each order's snapshot."""
    orders = Order.objects.filter(member=member)
    if start is not None:
        orders = orders.filter(placed_at__gte=start)
    if end is not None:
        orders = orders.filter(placed_at__lt=end)
    return orders.aggregate(total=Sum("spend_base"))["total"] or ZERO


def status_end(policy: TierPolicy, member: Member, tier: Tier, at: datetime) -> date | None:
    """The last day a tier earned at `at` holds.

    - calendar year: 31 December of the following year;
    - rolling 12 months: the day before the order that keeps the spend above the threshold leaves
      the window;
    - lifetime, or the entry tier: never ends (None)."""
    if tier.rank == 0 or policy.window == TierWindow.LIFETIME:
        return None
    tz = policy.program.timezone
    if policy.window == TierWindow.CALENDAR_YEAR:
        return date(local_date(at, tz).year + 1, 12, 31)
    start, end = window_bounds(policy, at)
    orders = list(
        Order.objects.filter(member=member, placed_at__gte=start, placed_at__lt=end, spend_base__gt=0)
        .order_by("placed_at")
        .values_list("placed_at", "spend_base")
    )
    total = sum((amount for _, amount in orders), ZERO)
    for placed_at, amount in orders:  # the oldest leave the window first
        total -= amount
        if total < tier.threshold.amount:
            return local_date(add_months(placed_at, 12), tz) - timedelta(days=1)
    return local_date(at, tz)


def tier_pinned(member: Member, on: date) -> bool:
    return bool(member.tier_override_id) and (member.tier_override_until is None or member.tier_override_until >= on)


def tier_effective(member: Member, on: date) -> Tier | None:
    """The tier in effect on a day: a staff pin that has not ended, else the earned tier."""
    return member.tier_override if tier_pinned(member, on) else member.tier


def tier_in_effect(member: Member, now: datetime) -> Tier | None:
    """The tier an order placed now earns at: a live staff pin, else the earned tier as of now."""
    if tier_pinned(member, local_date(now, member.program.timezone)):
        return member.tier_override
    return tier_status(member, now).tier


@dataclass(frozen=True)
class Evaluation:
    tier: Tier
    valid_until: date | None


def tier_evaluate(*, policy: TierPolicy, tiers: list[Tier], current: Tier, spend: Decimal, year: int) -> Evaluation:
    """Year-end (1 January of `year`): the tier for the new year from last year's spend.

    `to_earned`: the tier the spend supports. `one_down`: at most one tier below the current one.
    The same rule as the set-based SQL of the year-end job (tiers/services.py), for one member."""
    earned = tier_for_spend(tiers, spend)
    new = earned
    if policy.downgrade_policy == DowngradePolicy.ONE_DOWN and earned.rank < current.rank:
        new = tier_below(tiers, current)
    return Evaluation(tier=new, valid_until=None if new.rank == tiers[0].rank else date(year, 12, 31))


def tier_status(member: Member, now: datetime) -> Evaluation:
    """The earned tier as of `now`, evaluating on the fly what a late job has not posted yet."""
    tier, valid_until = member.tier, member.tier_valid_until
    if tier is None or valid_until is None:
        return Evaluation(tier=tier, valid_until=valid_until)
    policy = tier_policy(member.program)
    tz = member.program.timezone
    today = local_date(now, tz)
    if valid_until >= today:
        return Evaluation(tier=tier, valid_until=valid_until)
    tiers = tiers_ranked(member.program)
    if policy.window == TierWindow.CALENDAR_YEAR:
        for year in range(valid_until.year + 1, today.year + 1):
            start, end = year_bounds(year - 1, tz)
            status = tier_evaluate(
                policy=policy, tiers=tiers, current=tier, spend=spend_between(member, start, end), year=year
            )
            tier, valid_until = status.tier, status.valid_until
            if valid_until is None or valid_until >= today:
                break
        return Evaluation(tier=tier, valid_until=valid_until)
    start, end = window_bounds(policy, now)
    supported = tier_for_spend(tiers, spend_between(member, start, end))
    if policy.downgrade_policy == DowngradePolicy.ONE_DOWN and supported.rank < tier.rank:
        supported = tier_below(tiers, tier)
    return Evaluation(tier=supported, valid_until=status_end(policy, member, supported, now))


def tier_progress(*, member: Member, now: datetime) -> dict | None:
    """Where the member stands: tier, until when, the next tier and the spend still needed, by when.
    e.g. "Spend 120.00 USD more by 31 Dec 2026 for VIB"."""
    program = member.program
    tiers = tiers_ranked(program)
    if not tiers or member.tier is None:
        return None
    policy = tier_policy(program)
    status = tier_status(member, now)
    today = local_date(now, program.timezone)
    pinned = tier_pinned(member, today)
    effective = member.tier_override if pinned else status.tier
    start, end = window_bounds(policy, now)
    spend = spend_between(member, start, end)
    base = program.base_currency
    above = [t for t in tiers if t.rank > status.tier.rank]
    next_tier = above[0] if above else None
    needed = max(next_tier.threshold.amount - spend, ZERO) if next_tier else None
    by = None
    if next_tier and policy.window == TierWindow.CALENDAR_YEAR:
        by = local_date(end, program.timezone) - timedelta(days=1)
    if next_tier is None:
        message = f"You have reached {status.tier.name}, our top tier."
    elif policy.window == TierWindow.CALENDAR_YEAR:
        message = f"Spend {needed:.2f} {base} more by {by:%d %b %Y} for {next_tier.name}"
    elif policy.window == TierWindow.ROLLING_12_MONTHS:
        message = f"Spend {needed:.2f} {base} more within 12 months for {next_tier.name}"
    else:
        message = f"Spend {needed:.2f} {base} more for {next_tier.name}"
    return {
        "tier": effective.code,
        "tier_name": effective.name,
        "valid_until": member.tier_override_until if pinned else status.valid_until,
        "pinned": pinned,
        "next_tier": next_tier.code if next_tier else None,
        "spend": {"amount": f"{spend:.2f}", "currency": base},
        "spend_needed": {"amount": f"{needed:.2f}", "currency": base} if next_tier else None,
        "by": by,
        "message": message,
    }
