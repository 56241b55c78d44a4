"""The demo's synthetic history: every kind of data, through the services, as of its own clock."""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import transaction

from loyalty.demo.history import demo_history_seed
from loyalty.demo.plans import Span, actions_between, external_id, member_actions, member_who
from loyalty.demo.selectors import demo_census
from loyalty.models import (
    BadgeAward,
    Event,
    Lot,
    Member,
    MetricSnapshot,
    Order,
    Redemption,
    Refund,
    RewardClaim,
    SurveyResponse,
    SurveySend,
    Transaction,
    WinbackGrant,
)
from loyalty.selectors.metrics import Period, at_risk_member_ids, metrics_summary
from loyalty.services.metrics import metrics_snapshots_backfill
from referrals.models import Referral
from tiers.models import BirthdayGift, TierEvaluation

END = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def member(index: int) -> Member:
    return Member.objects.get(external_id=external_id(index))


def test_two_years_of_history_hold_every_kind_of_data(program):
    # Given the demo program, when 14 members get the default two years of history
    result = demo_history_seed(program=program, members=14, days=730, seed=7, now=END)

    # Then every kind of thing happened, through the services
    census = demo_census(program=program)
    assert census["members"] == 14 and result.members == 14
    assert census["orders"] > 60
    assert Refund.objects.filter(kind="refund").exists() and Refund.objects.filter(kind="cancel").exists()
    statuses = set(Redemption.objects.values_list("status", flat=True))
    assert {"captured", "voided", "expired"} <= statuses  # paid at checkout, abandoned, left to run out
    assert Order.objects.filter(points_payment__gt=0).exists()  # the part paid with points earns nothing
    assert RewardClaim.objects.filter(points__gt=0).exists()
    assert Event.objects.filter(type="review.posted", custom=True).count() >= 4
    for kind in ("nps", "csat", "ces"):
        assert SurveySend.objects.filter(kind=kind).exists() and SurveyResponse.objects.filter(kind=kind).exists()

    # Referrals: the showcase member's friends qualified, one is still pending, fraud was rejected
    referrals = {r.referee.external_id: r for r in Referral.objects.select_related("referee")}
    assert {referrals[external_id(i)].status for i in (1, 2, 3)} == {"qualified"}
    assert referrals[external_id(12)].status == "pending"
    assert (referrals[external_id(5)].status, referrals[external_id(5)].reason) == ("rejected", "self_referral_device")
    assert (referrals[external_id(6)].status, referrals[external_id(6)].reason) == ("rejected", "self_referral_payment")

    # Time did its work: points expired for the early lapser, tiers were evaluated on 1 January
    assert Transaction.objects.filter(kind="expire", member=member(4)).exists()
    assert {2025, 2026} <= set(TierEvaluation.objects.values_list("year", flat=True))
    assert census["vib"] + census["rouge"] >= 3 and census["rouge"] >= 1

    # ... and the books show it: nothing left that the jobs should have posted by the end
    assert not Lot.objects.filter(state="pending", matures_at__lte=END).exists()
    assert not Lot.objects.filter(remaining__gt=0, expires_at__lte=END).exclude(state="expired").exists()
    assert not Redemption.objects.filter(status="held").exists()
    assert not Event.objects.filter(processed_at__isnull=True).exists()
    # ... and nothing happened after the end (the clock was passed, not read)
    assert not Order.objects.filter(placed_at__gt=END).exists()
    assert not Transaction.objects.filter(effective_at__gt=END).exists()
    assert not Event.objects.filter(occurred_at__gt=END).exists()

    # Members lapse: churned this month, at risk, reactivated, and a win-back campaign went out
    month = Period((END - timedelta(days=30)).date(), END.date(), "UTC")
    summary = metrics_summary(program=program, period=month, now=END)
    assert summary["lost_customers"] >= 1 and summary["churn_rate"] > 0
    assert member(8).pk in at_risk_member_ids(program=program, as_of=END)
    quarter = Period((END - timedelta(days=90)).date(), END.date(), "UTC")
    assert metrics_summary(program=program, period=quarter, now=END)["reactivated_customers"] >= 1
    assert WinbackGrant.objects.exists()
    assert summary["nps"] is not None

    # The showcase member (rundemo's portal login) has a rich, readable history
    showcase = member(0)
    assert showcase.orders.count() >= 12
    assert showcase.orders.filter(status__in=["partially_refunded", "refunded"]).exists()
    assert showcase.tier.rank >= 1
    assert Redemption.objects.filter(member=showcase, status="captured").exists()
    assert RewardClaim.objects.filter(member=showcase).count() >= 2
    assert Referral.objects.filter(referrer=showcase, status="qualified").count() == 3
    assert BadgeAward.objects.filter(member=showcase).count() >= 3
    assert BirthdayGift.objects.filter(member=showcase).exists()
    assert showcase.orders.filter(status="pending").exists()  # the latest order's points are on their way

    # And the dashboard's time series can be back-filled at once
    assert metrics_snapshots_backfill(program=program, days=90, now=END) == 90
    snapshots = MetricSnapshot.objects.filter(program=program).order_by("end")
    assert snapshots.count() == 90 and snapshots.last().cohorts is not None
    assert any(s.summary["churn_rate"] for s in snapshots)


def digest() -> list:
    """What a history made, without the random codes (coupons, referral codes) and row ids."""
    return [
        sorted(
            Order.objects.values_list(
                "external_id", "member__external_id", "placed_at", "spend_base", "points_earned", "status"
            )
        ),
        sorted(Referral.objects.values_list("referee__external_id", "status", "reason")),
        sorted(Redemption.objects.values_list("member__external_id", "points", "status", "created_at")),
        sorted(SurveyResponse.objects.values_list("member__external_id", "kind", "score", "responded_at")),
        sorted(Transaction.objects.values_list("member__external_id", "kind", "effective_at")),
    ]


def test_the_same_seed_gives_the_same_history(program):
    # Given a history played once (and rolled back)
    with transaction.atomic():
        demo_history_seed(program=program, members=6, days=150, seed=11, now=END)
        first = digest()
        transaction.set_rollback(True)
    assert not Order.objects.exists()

    # When it is played again with the same seed, then it is the same, and another seed differs
    demo_history_seed(program=program, members=6, days=150, seed=11, now=END)
    assert digest() == first and first[0]
    span, other = Span(seed=11, end=END, days=150), Span(seed=12, end=END, days=150)
    assert member_actions(member_who(20, span), span) == member_actions(member_who(20, span), span)
    assert [member_who(i, span).persona for i in range(14, 40)] != [member_who(i, other).persona for i in range(14, 40)]


def test_plans_are_read_a_window_at_a_time():
    span = Span(seed=7, end=END, days=730)
    start, end = END - timedelta(days=400), END - timedelta(days=370)
    window = actions_between(span=span, first=0, count=30, start=start, end=end)
    assert window and all(start <= a.at < end for a in window)
    assert [(a.at, a.index, a.step) for a in window] == sorted((a.at, a.index, a.step) for a in window)
    everything = [a for i in range(30) for a in member_actions(member_who(i, span), span) if start <= a.at < end]
    assert len([a for a in window if a.index >= 0]) == len(everything)


def test_every_plan_starts_with_the_enrollment_and_ends_by_the_end():
    span = Span(seed=3, end=END, days=730)
    for index in range(400):
        acts = member_actions(member_who(index, span), span)
        assert acts[0].kind == "enroll" and span.start < acts[0].at < END, index
        assert all(acts[0].at < a.at for a in acts[1:]), index  # nothing before the member exists


def test_seed_demo_adds_members_after_those_enrolled(db):
    out = StringIO()
    call_command("seed_demo", members=3, days=60, until="2026-12-01", stdout=out, stderr=StringIO())
    call_command("seed_demo", members=2, days=60, until="2026-12-01", stdout=out, stderr=StringIO())
    assert sorted(Member.objects.values_list("external_id", flat=True)) == [external_id(i) for i in range(5)]
    text = out.getvalue()
    assert "3 members added, 60 days of history" in text and "2 members added" in text and "orders" in text
    assert not Order.objects.filter(placed_at__gt=datetime(2026, 12, 1, tzinfo=UTC)).exists()


@pytest.mark.parametrize("args", [["--days", "0"], ["--members", "-1"], ["--until", "soon"]])
def test_seed_demo_refuses_bad_arguments(db, args):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("seed_demo", *args, stdout=StringIO())
    assert not Member.objects.exists()
