"""Points as payment: hold, capture, void; holds run out; rewards are claimed with points."""

from datetime import timedelta
from decimal import Decimal

import pytest

from loyalty import errors
from loyalty.models import Lot, Redemption, RedemptionStatus, Reward, RewardClaim, TransactionKind
from loyalty.selectors.members import member_balances
from loyalty.services.adjustments import points_adjust
from loyalty.services.redemptions import redemption_capture, redemption_hold, redemption_void
from loyalty.services.rewards import reward_claim
from loyalty.services.settlement import holds_expire
from tests.conftest import JUNE
from tests.factories import place_order

NOW = JUNE + timedelta(days=31)


@pytest.fixture
def rich(program, member, staff):
    """1,200 available points, still an Insider (a staff credit, not spend)."""
    points_adjust(member=member, points=1200, reason="test funds", staff_user=staff, now=JUNE)
    return member


def pts(member, now=NOW):
    return member_balances(member=member, now=now)["PTS"]


def hold(program, points=500, now=NOW, **kwargs):
    return redemption_hold(program=program, member_external_id="anna", points=points, now=now, **kwargs)


def test_hold_capture(program, rich):
    h = hold(program, 1000)
    assert (h.status, h.value.amount, h.expires_at) == ("held", Decimal("20.00"), NOW + timedelta(seconds=900))
    assert pts(rich) == {"available": 200, "pending": 0, "held": 1000}
    redemption_capture(program=program, redemption_id=h.pk, now=NOW)
    assert pts(rich) == {"available": 200, "pending": 0, "held": 0}
    # capturing twice is a no-op
    assert redemption_capture(program=program, redemption_id=h.pk, now=NOW).status == "captured"


def test_void_gives_each_lot_back_what_it_took(program, rich):
    before = dict(Lot.objects.values_list("pk", "remaining"))
    h = hold(program, 1000)
    redemption_void(program=program, redemption_id=h.pk, now=NOW)
    assert dict(Lot.objects.values_list("pk", "remaining")) == before
    assert pts(rich) == {"available": 1200, "pending": 0, "held": 0}
    assert redemption_void(program=program, redemption_id=h.pk, now=NOW).status == "voided"
    with pytest.raises(errors.HoldVoided):
        redemption_capture(program=program, redemption_id=h.pk, now=NOW)


def test_void_of_a_captured_hold_is_refused(program, rich):
    h = hold(program)
    redemption_capture(program=program, redemption_id=h.pk, now=NOW)
    with pytest.raises(errors.HoldCaptured):
        redemption_void(program=program, redemption_id=h.pk, now=NOW)


def test_an_expired_hold_cannot_be_captured_and_its_points_come_back(program, rich):
    h = hold(program, ttl_seconds=60)
    later = NOW + timedelta(seconds=61)
    with pytest.raises(errors.HoldExpired):
        redemption_capture(program=program, redemption_id=h.pk, now=later)
    assert pts(rich, later) == {"available": 1200, "pending": 0, "held": 0}  # before the job ran
    assert holds_expire(later) == 1
    assert holds_expire(later) == 0
    h.refresh_from_db()
    assert h.status == RedemptionStatus.EXPIRED
    assert pts(rich, later) == {"available": 1200, "pending": 0, "held": 0}


def test_a_spend_voids_stale_holds_first(program, rich):
    hold(program, 1000, ttl_seconds=60)
    later = NOW + timedelta(minutes=5)
    hold(program, 1000, now=later)  # only possible because the stale hold was voided first
    assert Redemption.objects.filter(status=RedemptionStatus.EXPIRED).count() == 1


@pytest.mark.parametrize("points", [499, 501, 750, 0])
def test_redemptions_go_in_steps_of_500(program, rich, points):
    with pytest.raises(errors.RedemptionStepError):
        hold(program, points)


def test_points_pay_only_for_orders_of_at_least_10_usd(program, rich):
    with pytest.raises(errors.OrderTooSmall):
        hold(program, 500, order_amount=Decimal("9.99"))
    with pytest.raises(errors.RedemptionStepError):  # 1000 points = 20 USD, more than the order
        hold(program, 1000, order_amount=Decimal("15.00"))
    assert hold(program, 500, order_amount=Decimal("9.26"), order_currency="EUR").status == "held"  # 10.00 USD


def test_the_part_paid_with_points_does_not_earn(program, rich):
    h = hold(program, 500, order_external_id="PAID-1")  # 10 USD
    order = place_order(program, rich, "50.00", placed_at=NOW, external_id="PAID-1")
    assert order.points_payment.amount == Decimal("10.00")
    assert order.points_earned == 40
    redemption_capture(program=program, redemption_id=h.pk, now=NOW)


def test_insufficient_points(program, rich):
    with pytest.raises(errors.InsufficientPoints):
        hold(program, 1500)
    assert not Redemption.objects.exists()


# --- rewards ------------------------------------------------------------------------------------
def claim(program, name, now=NOW):
    return reward_claim(program=program, reward_id=Reward.objects.get(name=name).pk, member_external_id="anna", now=now)


def test_claim_spends_points_and_issues_a_unique_coupon(program, rich):
    first, second = claim(program, "Deluxe sample"), claim(program, "Deluxe sample")
    assert first.coupon_code.startswith("SAMPLE-") and first.coupon_code != second.coupon_code
    assert first.transaction.kind == TransactionKind.CLAIM
    assert pts(rich)["available"] == 1000
    assert Reward.objects.get(name="Deluxe sample").stock == 998


def test_rouge_reward_needs_rouge_and_once_a_month(program, rich, tiers):
    with pytest.raises(errors.TierRequired):
        claim(program, "Rouge Reward: $100 off")
    rich.tier = tiers["rouge"]
    rich.save()
    place_order(program, rich, "3000.00", placed_at=JUNE)
    claim(program, "Rouge Reward: $100 off")
    with pytest.raises(errors.ClaimLimitReached):
        claim(program, "Rouge Reward: $100 off")
    assert claim(program, "Rouge Reward: $100 off", now=NOW + timedelta(days=31)).points == 2500


def test_out_of_stock_and_insufficient_points_change_nothing(program, rich):
    Reward.objects.filter(name="Deluxe sample").update(stock=0)
    with pytest.raises(errors.OutOfStock):
        claim(program, "Deluxe sample")
    Reward.objects.filter(name="Deluxe sample").update(stock=5, cost=5000)
    with pytest.raises(errors.InsufficientPoints):
        claim(program, "Deluxe sample")
    assert Reward.objects.get(name="Deluxe sample").stock == 5
    assert not RewardClaim.objects.exists()


def test_a_hold_that_runs_out_after_its_lots_expired_gives_nothing_back(program, member, staff):
    # Found by the property test: fixed expiry, points held, the hold and the points both run out
    from loyalty.models import ExpiryPolicy

    program.expiry_policy, program.expiry_months = ExpiryPolicy.FIXED, 1
    program.save()
    points_adjust(member=member, points=500, reason="gift", staff_user=staff, now=JUNE)  # expires 1 Aug
    hold(program, 500, now=JUNE)
    later = JUNE + timedelta(days=400)
    assert pts(member, later) == {"available": 0, "pending": 0, "held": 0}  # the read, before any job
    holds_expire(later)
    assert pts(member, later) == {"available": 0, "pending": 0, "held": 0}  # the books agree


def test_voiding_a_hold_whose_lot_expired_meanwhile_expires_those_points(program, member, staff):
    # Given a lot expiring on 1 August, 500 of its 1,000 points held ten minutes before it expires
    from loyalty.models import ExpiryPolicy
    from loyalty.services.settlement import points_expire

    program.expiry_policy, program.expiry_months = ExpiryPolicy.FIXED, 1
    program.save()
    points_adjust(member=member, points=1000, reason="gift", staff_user=staff, now=JUNE)
    lot = Lot.objects.get(member=member)
    before = lot.expires_at - timedelta(minutes=10)
    redemption = hold(program, 500, now=before, ttl_seconds=3600)

    # When the expiry job takes the other 500, then the hold is voided
    points_expire(lot.expires_at + timedelta(minutes=1))
    redemption_void(program=program, redemption_id=redemption.pk, now=lot.expires_at + timedelta(minutes=5))

    # Then the 500 held come back only to expire: nothing is left, the lot is expired, the books agree
    later = lot.expires_at + timedelta(hours=2)
    assert pts(member, later) == {"available": 0, "pending": 0, "held": 0}
    lot.refresh_from_db()
    assert (lot.state, lot.remaining) == ("expired", 0)
    holds_expire(later)  # and the jobs have nothing left to trip on


def test_voiding_a_hold_into_an_overdrawn_balance_pays_the_debt_first(program, member):
    # Given policy `unlimited`: 600 points matured, 500 of them held, the order then cancelled
    from loyalty.models import RefundPolicy
    from loyalty.services.orders import order_cancel

    program.refund_policy = RefundPolicy.UNLIMITED
    program.save()
    order = place_order(program, member, "600.00", now=JUNE)
    assert order.points_earned == 600
    redemption = hold(program, 500, now=NOW)
    order_cancel(program=program, order_external_id=order.external_id, now=NOW)
    assert pts(member) == {"available": -500, "pending": 0, "held": 500}

    # When the hold is voided, then its points pay the debt: nothing left in the balance or the lots
    redemption_void(program=program, redemption_id=redemption.pk, now=NOW)
    assert pts(member) == {"available": 0, "pending": 0, "held": 0}
    assert sum(Lot.objects.filter(member=member).values_list("remaining", flat=True)) == 0


def test_activity_while_a_lot_was_wholly_held_pushes_back_its_expiry_on_void(program, member, staff):
    # Given the demo's inactivity policy: every point of the only lot held
    points_adjust(member=member, points=500, reason="gift", staff_user=staff, now=JUNE)
    lot = Lot.objects.get(member=member)
    redemption = hold(program, 500, now=NOW)

    # When the member orders again a year later and then the hold is voided
    later = lot.expires_at - timedelta(days=10)
    place_order(program, member, "5.00", now=later)
    redemption_void(program=program, redemption_id=redemption.pk, now=later)

    # Then the returned points expire with the rest, from the last activity, not on the old date
    lot.refresh_from_db()
    member.refresh_from_db()
    assert lot.expires_at > later + timedelta(days=300)
    assert pts(member, lot.expires_at - timedelta(days=1))["available"] >= 500
