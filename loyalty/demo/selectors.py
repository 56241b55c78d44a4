"""What a demo holds, counted in the database (the summary seed_demo prints, and what tests check)."""

from django.db.models import Count, Q, Sum

from loyalty.models import (
    BadgeAward,
    ChallengeProgress,
    Event,
    Member,
    Order,
    Program,
    Redemption,
    Refund,
    RewardClaim,
    SurveyResponse,
    SurveySend,
    Transaction,
    TransactionKind,
    WinbackGrant,
)
from referrals.models import Referral
from tiers.models import TierChange


def demo_census(*, program: Program) -> dict[str, int]:
    """How many of every kind of thing the demo's history makes (a fixed number of queries)."""
    orders = Order.objects.filter(program=program).aggregate(
        orders=Count("id"),
        cancelled=Count("id", filter=Q(status="cancelled")),
        refunded=Count("id", filter=Q(status__in=["refunded", "partially_refunded"])),
    )
    refunds = Refund.objects.filter(order__program=program).aggregate(
        refunds=Count("id", filter=Q(kind="refund")), cancels=Count("id", filter=Q(kind="cancel"))
    )
    redemptions = Redemption.objects.filter(program=program).aggregate(
        **{f"redemptions_{s}": Count("id", filter=Q(status=s)) for s in ("captured", "voided", "expired", "held")}
    )
    referrals = Referral.objects.filter(program=program).aggregate(
        **{f"referrals_{s}": Count("id", filter=Q(status=s)) for s in ("qualified", "rejected", "pending", "held")}
    )
    points = Transaction.objects.filter(program=program, kind=TransactionKind.EXPIRE).aggregate(n=Count("id"))
    expired = (
        Transaction.objects.filter(program=program, kind=TransactionKind.EXPIRE)
        .filter(entries__amount__gt=0)
        .aggregate(p=Sum("entries__amount"))["p"]
        or 0
    )
    members = Member.objects.filter(program=program).aggregate(
        members=Count("id"),
        vib=Count("id", filter=Q(tier__code="vib")),
        rouge=Count("id", filter=Q(tier__code="rouge")),
    )
    return {
        **members,
        **orders,
        **refunds,
        **redemptions,
        "reward_claims": RewardClaim.objects.filter(reward__program=program).count(),
        **referrals,
        "reviews": Event.objects.filter(program=program, type="review.posted").count(),
        "badges_awarded": BadgeAward.objects.filter(badge__program=program).count(),
        "challenges_completed": ChallengeProgress.objects.filter(
            challenge__program=program, completed_at__isnull=False
        ).count(),
        "surveys_sent": SurveySend.objects.filter(program=program).count(),
        "survey_answers": SurveyResponse.objects.filter(program=program).count(),
        "expiries": points["n"],
        "points_expired": expired,
        "tier_changes": TierChange.objects.filter(member__program=program).count(),
        "winback_grants": WinbackGrant.objects.filter(program=program).count(),
    }
