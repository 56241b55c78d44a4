"""The demo program (`seed_demo`): Beauty Rewards, Sephora-like, exactly as the design's
demo-program.md describes it. Every value is data staff can change in admin."""

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db import transaction
from djmoney.money import Money

from loyalty.models import (
    Badge,
    Challenge,
    Counts,
    CriterionKind,
    EarnRule,
    EarnRuleKind,
    ExpiryPolicy,
    LimitPeriod,
    Program,
    RefundPolicy,
    Repeat,
    Reward,
    RewardKind,
)
from loyalty.services.programs import program_create
from referrals.models import ReferralPolicy
from tiers.models import DowngradePolicy, Tier, TierPolicy, TierWindow

CODE = "demo"
FX_TO_USD = {
    "USD": Decimal("1"),
    "EUR": Decimal("1.08"),
    "GBP": Decimal("1.27"),
    "CAD": Decimal("0.73"),
    "PLN": Decimal("0.25"),
    "JPY": Decimal("0.0067"),
}
TIERS = [  # code, name, rank, threshold USD, earn multiplier, birthday points, perks
    ("insider", "Insider", 0, "0", "1", 0, "Birthday gift; free samples with every order."),
    ("vib", "VIB", 1, "350", "1.25", 250, "1.25 points per dollar; birthday gift or 250 points; seasonal savings."),
    (
        "rouge",
        "Rouge",
        2,
        "1000",
        "1.5",
        250,
        "1.5 points per dollar; birthday gift or 250 points; Rouge Rewards; first access to launches.",
    ),
]
SPRING_SAVINGS = {"insider": "2", "vib": "3", "rouge": "4"}


def _utc(year, month, day):
    return datetime(year, month, day, tzinfo=ZoneInfo("UTC"))


@transaction.atomic
def demo_program_seed(*, year: int) -> Program:
    """Create the demo program, or return it unchanged if it exists."""
    existing = Program.objects.filter(code=CODE).first()
    if existing:
        return existing
    program = program_create(
        code=CODE,
        name="Beauty Rewards",
        base_currency="USD",
        timezone="UTC",
        pending_days=30,
        expiry_policy=ExpiryPolicy.INACTIVITY,
        expiry_months=18,
        refund_policy=RefundPolicy.WITHIN_BALANCE,
        point_code="PTS",
        point_name="Beauty Points",
        unit_value=Decimal("0.02"),
        fx_rates=FX_TO_USD,
    )
    asset = program.primary_asset
    asset.redeem_min, asset.redeem_step, asset.redeem_min_order = 500, 500, Decimal("10")
    asset.save()
    TierPolicy.objects.create(
        program=program, window=TierWindow.CALENDAR_YEAR, downgrade_policy=DowngradePolicy.TO_EARNED
    )
    tiers = {}
    for code, name, rank, threshold, multiplier, birthday, perks in TIERS:
        tiers[code] = Tier.objects.create(
            program=program,
            code=code,
            name=name,
            rank=rank,
            threshold=Money(threshold, "USD"),
            earn_multiplier=Decimal(multiplier),
            birthday_points=birthday,
            perks=perks,
        )
    EarnRule.objects.create(program=program, name="1 point per dollar", kind=EarnRuleKind.BASE_RATE, rate=1)
    EarnRule.objects.create(
        program=program,
        name="Skincare bonus",
        kind=EarnRuleKind.CATEGORY_BONUS,
        category="skincare",
        rate=2,
        starts_at=_utc(year, 5, 1),
        ends_at=_utc(year, 6, 1),
    )
    for code, multiplier in SPRING_SAVINGS.items():
        EarnRule.objects.create(
            program=program,
            name=f"Spring Savings Event ({tiers[code].name})",
            kind=EarnRuleKind.PROMOTION,
            tier=tiers[code],
            multiplier=Decimal(multiplier),
            starts_at=_utc(year, 4, 1),
            ends_at=_utc(year, 4, 11),
        )
    ReferralPolicy.objects.create(
        program=program, referrer_points=500, referee_points=250, min_order=Decimal("25"), monthly_cap=10
    )
    Reward.objects.create(
        program=program,
        name="Deluxe sample",
        kind=RewardKind.PRODUCT,
        asset=asset,
        cost=100,
        stock=1000,
        coupon_prefix="SAMPLE",
    )
    Reward.objects.create(
        program=program,
        name="$10 off",
        kind=RewardKind.DISCOUNT,
        asset=asset,
        cost=500,
        value=Money("10", "USD"),
        coupon_prefix="TEN",
    )
    Reward.objects.create(
        program=program,
        name="Rouge Reward: $100 off",
        kind=RewardKind.DISCOUNT,
        asset=asset,
        cost=2500,
        value=Money("100", "USD"),
        min_tier=tiers["rouge"],
        limit_per_member=1,
        limit_period=LimitPeriod.MONTH,
        coupon_prefix="ROUGE",
    )
    Reward.objects.create(
        program=program,
        name="Birthday gift",
        kind=RewardKind.BIRTHDAY_GIFT,
        asset=asset,
        cost=0,
        limit_per_member=1,
        limit_period=LimitPeriod.YEAR,
        coupon_prefix="BDAY",
        active=True,
    )
    _gamification_seed(program, tiers, year)
    return Program.objects.get(pk=program.pk)  # fresh: no relation cached while it was being built


BADGES = [  # code, name, icon, kind, target, parameters
    ("first-order", "First Order", "🛍️", CriterionKind.ORDER_COUNT, 1, {}),
    ("regular", "Regular", "💄", CriterionKind.ORDER_COUNT, 5, {}),
    ("big-spender", "Big Spender", "💎", CriterionKind.SPEND, 1000, {}),
    ("globetrotter", "Globetrotter", "🌍", CriterionKind.CURRENCIES, 3, {}),
    ("ambassador", "Ambassador", "🤝", CriterionKind.REFERRALS, 3, {}),
    ("reviewer", "Reviewer", "✍️", CriterionKind.EVENT_COUNT, 3, {"event_type": "review.posted"}),
    ("streak", "Streak", "🔥", CriterionKind.STREAK, 3, {}),
]


def _gamification_seed(program: Program, tiers: dict, year: int) -> None:
    for position, (code, name, icon, kind, target, params) in enumerate(BADGES):
        Badge.objects.create(
            program=program,
            code=code,
            name=name,
            icon=icon,
            kind=kind,
            target=Decimal(target),
            counts=Counts.MATURED,
            position=position,
            **params,
        )
    devotee = Badge.objects.create(
        program=program,
        code="skincare-devotee",
        name="Skincare Devotee",
        icon="🧴",
        kind=CriterionKind.NONE,
        description="Completed a Skincare month",
        position=99,
    )
    Challenge.objects.create(
        program=program,
        code="spring-streak",
        name="Spring streak",
        description="3 orders in March: 300 points",
        kind=CriterionKind.ORDER_COUNT,
        target=Decimal(3),
        counts=Counts.PLACED,
        starts_at=_utc(year, 3, 1),
        ends_at=_utc(year, 4, 1),
        reward_points=300,
        leaderboard_size=10,
    )
    Challenge.objects.create(
        program=program,
        code="skincare-month",
        name="Skincare month",
        description="50 USD of skincare in a month: 200 points and the Skincare Devotee badge",
        kind=CriterionKind.CATEGORY_SPEND,
        category="skincare",
        target=Decimal(50),
        counts=Counts.PLACED,
        starts_at=_utc(year, 1, 1),
        ends_at=_utc(year + 1, 1, 1),
        repeat=Repeat.MONTH,
        reward_points=200,
        reward_badge=devotee,
        leaderboard_size=10,
    )
