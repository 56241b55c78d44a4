"""Spend-based tiers, Sephora-like: Insider 0, VIB 350, Rouge 1,000 USD in a calendar year."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from loyalty.models import Event, RewardClaim
from loyalty.selectors.members import member_balances, member_get
from loyalty.services.orders import order_cancel, order_refund
from tests.factories import place_order
from tiers.models import DowngradePolicy, TierChange, TierChangeReason, TierEvaluation, TierPolicy, TierWindow
from tiers.selectors import tier_progress, tier_status
from tiers.services import (
    BirthdayNotNow,
    BirthdayPointsNotForTier,
    BirthdayTaken,
    birthday_take,
    tier_override_set,
    tier_overrides_end,
    tiers_window_lapse,
    tiers_year_end,
)

MARCH = datetime(2026, 3, 2, 12, tzinfo=UTC)


def fresh(member):
    return member_get(program=member.program, external_id=member.external_id)


@pytest.mark.parametrize(
    ("amount", "tier"), [("349.99", "insider"), ("350.00", "vib"), ("999.99", "vib"), ("1000.00", "rouge")]
)
def test_thresholds_to_the_cent(program, member, amount, tier):
    place_order(program, member, amount, placed_at=MARCH)
    assert fresh(member).tier.code == tier


def test_a_eur_and_a_pln_order_together_cross_350_usd_at_the_snapshot_rates(program, member):
    place_order(program, member, "200.00", currency="EUR", placed_at=MARCH)  # 216.00 USD
    assert fresh(member).tier.code == "insider"
    place_order(program, member, "535.96", currency="PLN", placed_at=MARCH)  # 133.99 USD: 349.99 in all
    assert fresh(member).tier.code == "insider"
    place_order(program, member, "0.04", currency="PLN", placed_at=MARCH)  # 0.01 USD: 350.00
    member = fresh(member)
    assert (member.tier.code, member.tier_valid_until) == ("vib", date(2027, 12, 31))
    change = TierChange.objects.get()
    assert (change.from_tier.code, change.to_tier.code, change.reason) == ("insider", "vib", TierChangeReason.SPEND)
    assert Event.objects.filter(type="tier.changed", properties__to="vib").exists()


def test_the_multiplier_applies_from_the_next_order_and_the_quote_knows(api, program, member, june):
    crossing = place_order(program, member, "400.00", placed_at=MARCH)
    assert crossing.points_earned == 400  # earned as an Insider
    body = {
        "external_id": "N",
        "member": "anna",
        "currency": "USD",
        "lines": [{"sku": "A", "quantity": 1, "unit_price": "100.00"}],
    }
    assert api.post("/api/v1/orders/quote/", body, format="json").json()["points"] == 125
    assert api.post("/api/v1/orders/", body, format="json").json()["points_earned"] == 125


def test_a_refund_below_vib_in_the_same_year_drops_the_tier(program, member):
    order = place_order(program, member, "400.00", placed_at=MARCH)
    order_refund(
        program=program,
        order_external_id=order.external_id,
        refund_external_id="R1",
        amount=Decimal("40.00"),
        now=MARCH + timedelta(days=1),
    )
    assert fresh(member).tier.code == "vib"  # 360 left: still VIB
    order_refund(
        program=program,
        order_external_id=order.external_id,
        refund_external_id="R2",
        amount=Decimal("20.00"),
        now=MARCH + timedelta(days=2),
    )
    member = fresh(member)
    assert (member.tier.code, member.tier_valid_until) == ("insider", None)  # 340 left
    assert TierChange.objects.filter(reason=TierChangeReason.REFUND).count() == 1


def test_a_refund_never_drops_below_the_tier_carried_over(program, member, tiers):
    # Given a member carried over as VIB into 2026 who reaches Rouge in 2026
    member.tier = member.tier_floor = tiers["vib"]
    member.tier_valid_until = date(2026, 12, 31)
    member.save()
    order = place_order(program, member, "1000.00", placed_at=MARCH)
    assert fresh(member).tier.code == "rouge"
    # When the order is cancelled, then they fall back to VIB, not to Insider
    order_cancel(program=program, order_external_id=order.external_id, now=MARCH + timedelta(days=3))
    member = fresh(member)
    assert (member.tier.code, member.tier_valid_until) == ("vib", date(2026, 12, 31))


# --- year-end -----------------------------------------------------------------------------------
EXPECTED = {  # (tier at the end of 2026, spend in 2026) -> tier for 2027
    DowngradePolicy.TO_EARNED: {
        ("rouge", 0): "insider",
        ("rouge", 400): "vib",
        ("rouge", 1200): "rouge",
        ("vib", 0): "insider",
        ("vib", 400): "vib",
        ("vib", 1200): "rouge",
        ("insider", 0): "insider",
        ("insider", 400): "vib",
        ("insider", 1200): "rouge",
    },
    DowngradePolicy.ONE_DOWN: {
        ("rouge", 0): "vib",
        ("rouge", 400): "vib",
        ("rouge", 1200): "rouge",
        ("vib", 0): "insider",
        ("vib", 400): "vib",
        ("vib", 1200): "rouge",
        ("insider", 0): "insider",
        ("insider", 400): "vib",
        ("insider", 1200): "rouge",
    },
}


@pytest.mark.parametrize("policy", list(DowngradePolicy))
def test_year_end_evaluation_with_each_downgrade_policy(program, tiers, member_factory, policy):
    TierPolicy.objects.filter(program=program).update(downgrade_policy=policy)
    members = {}
    for was, spent in EXPECTED[policy]:
        # Given a member whose status (earned in 2025) runs to 31 Dec 2026, and their 2026 spend
        m = member_factory(external_id=f"{was}-{spent}")
        if was != "insider":
            m.tier = m.tier_floor = tiers[was]
            m.tier_valid_until = date(2026, 12, 31)
            m.save()
        if spent:
            place_order(program, m, str(spent), placed_at=datetime(2026, 5, 20, tzinfo=UTC))
        members[(was, spent)] = m
    jan_2 = datetime(2027, 1, 2, tzinfo=UTC)
    read_before = {key: tier_status(fresh(m), jan_2).tier.code for key, m in members.items()}

    # When the job runs on 1 January (twice)
    tiers_year_end(datetime(2027, 1, 1, 0, 10, tzinfo=UTC))
    history = TierChange.objects.count()
    assert tiers_year_end(datetime(2027, 1, 1, 6, 10, tzinfo=UTC)) == 0

    # Then each member has the expected tier; the second run changed nothing
    after = {key: fresh(m).tier.code for key, m in members.items()}
    assert after == EXPECTED[policy]
    assert read_before == after  # what a read showed before the job is what the job posted
    assert TierChange.objects.count() == history
    assert TierEvaluation.objects.get(program=program, year=2027)
    assert all(fresh(m).tier_valid_until in (None, date(2027, 12, 31)) for m in members.values())


def test_an_order_in_january_before_the_job_ran_earns_at_the_re_evaluated_tier(program, member, tiers):
    member.tier = member.tier_floor = tiers["rouge"]
    member.tier_valid_until = date(2026, 12, 31)
    member.save()
    order = place_order(program, member, "100.00", placed_at=datetime(2027, 1, 3, tzinfo=UTC))
    assert order.points_earned == 100  # Insider now: no spend in 2026
    assert fresh(member).tier.code == "insider"
    assert tiers_year_end(datetime(2027, 1, 4, tzinfo=UTC)) == 0  # already posted for this member


# --- other windows ------------------------------------------------------------------------------
def test_rolling_12_months_drops_an_order_out_on_the_right_day(program, member):
    TierPolicy.objects.filter(program=program).update(window=TierWindow.ROLLING_12_MONTHS)
    place_order(program, member, "400.00", placed_at=datetime(2026, 3, 10, 15, tzinfo=UTC))
    member = fresh(member)
    assert (member.tier.code, member.tier_valid_until) == ("vib", date(2027, 3, 9))
    assert tiers_window_lapse(datetime(2027, 3, 9, 23, tzinfo=UTC)) == 0
    assert fresh(member).tier.code == "vib"
    assert tier_status(fresh(member), datetime(2027, 3, 10, 0, 1, tzinfo=UTC)).tier.code == "insider"  # read
    assert tiers_window_lapse(datetime(2027, 3, 10, 0, 20, tzinfo=UTC)) == 1
    assert fresh(member).tier.code == "insider"
    assert TierChange.objects.filter(reason=TierChangeReason.WINDOW).count() == 1


def test_lifetime_never_drops(program, member):
    TierPolicy.objects.filter(program=program).update(window=TierWindow.LIFETIME)
    place_order(program, member, "200.00", placed_at=datetime(2020, 3, 10, tzinfo=UTC))
    place_order(program, member, "200.00", placed_at=datetime(2023, 3, 10, tzinfo=UTC))
    member = fresh(member)
    assert (member.tier.code, member.tier_valid_until) == ("vib", None)
    tiers_window_lapse(datetime(2030, 1, 1, tzinfo=UTC))
    tiers_year_end(datetime(2030, 1, 1, tzinfo=UTC))
    assert fresh(member).tier.code == "vib"


# --- staff pins ---------------------------------------------------------------------------------
def test_a_pin_beats_the_computed_tier_until_its_end_then_the_computed_tier_returns(program, member, tiers, staff):
    tier_override_set(
        member=member,
        tier=tiers["rouge"],
        until=date(2026, 3, 31),
        reason="VIP event guest",
        staff_user=staff,
        now=MARCH,
    )
    assert place_order(program, member, "100.00", placed_at=MARCH).points_earned == 150  # Rouge x1.5
    progress = tier_progress(member=fresh(member), now=MARCH)
    assert (progress["tier"], progress["pinned"], progress["valid_until"]) == ("rouge", True, date(2026, 3, 31))
    april = datetime(2026, 4, 5, tzinfo=UTC)  # Spring Savings: Insider 2x
    assert place_order(program, member, "100.00", placed_at=april).points_earned == 200  # Insider, Spring 2x
    assert fresh(member).tier_override is None  # the order posted the pin's end
    pin, end = TierChange.objects.order_by("changed_at")
    assert (pin.reason, pin.note, pin.created_by) == (TierChangeReason.OVERRIDE, "VIP event guest", staff)
    assert (end.reason, end.to_tier.code) == (TierChangeReason.OVERRIDE_END, "insider")


def test_the_job_ends_pins_past_their_date(program, member, tiers, staff):
    tier_override_set(
        member=member, tier=tiers["vib"], until=date(2026, 3, 31), reason="x", staff_user=staff, now=MARCH
    )
    assert tier_overrides_end(datetime(2026, 3, 31, 23, tzinfo=UTC)) == 0
    assert tier_overrides_end(datetime(2026, 4, 1, 1, tzinfo=UTC)) == 1
    assert fresh(member).tier_override is None


# --- progress, API, birthday --------------------------------------------------------------------
def test_progress_says_how_much_more_by_when(program, member):
    place_order(program, member, "230.00", placed_at=MARCH)
    progress = tier_progress(member=fresh(member), now=MARCH)
    assert progress["spend_needed"] == {"amount": "120.00", "currency": "USD"}
    assert progress["message"] == "Spend 120.00 USD more by 31 Dec 2026 for VIB"


def test_tiers_api_and_member_tier(api, program, member, june):
    body = api.get("/api/v1/tiers/").json()
    assert [(t["code"], t["threshold"]["amount"], t["earn_multiplier"]) for t in body["tiers"]] == [
        ("insider", "0.00", "1.000"),
        ("vib", "350.00", "1.250"),
        ("rouge", "1000.00", "1.500"),
    ]
    assert body["tiers"][1]["promotions"][0]["multiplier"] == "3.000"
    detail = api.get("/api/v1/members/anna/").json()
    assert detail["tier"]["code"] == "insider" and detail["tier_progress"]["next_tier"] == "vib"


def test_birthday_gift_or_points_once_a_year(api, program, member, member_factory, tiers, june):
    member.birth_date = date(1990, 6, 2)
    member.save()
    assert (
        api.post("/api/v1/members/anna/birthday/", {"choice": "points"}, format="json").json()["code"]
        == "birthday_points_not_for_tier"
    )
    gift = api.post("/api/v1/members/anna/birthday/", {"choice": "gift"}, format="json")
    assert gift.status_code == 201 and gift.json()["coupon_code"].startswith("BDAY-")
    assert RewardClaim.objects.filter(member=member, points=0).count() == 1
    again = api.post("/api/v1/members/anna/birthday/", {"choice": "gift"}, format="json")
    assert (again.status_code, again.json()["code"]) == (409, "birthday_taken")

    vib = member_factory(external_id="vib", birth_date=date(1991, 6, 30))
    vib.tier = tiers["vib"]
    vib.save()
    taken = birthday_take(member=vib, choice="points", now=datetime(2026, 6, 15, tzinfo=UTC))
    assert taken.points == 250
    assert member_balances(member=vib, now=datetime(2026, 6, 15, tzinfo=UTC))["PTS"]["available"] == 250
    with pytest.raises(BirthdayTaken):
        birthday_take(member=vib, choice="gift", now=datetime(2026, 6, 16, tzinfo=UTC))
    with pytest.raises(BirthdayNotNow):
        birthday_take(member=vib, choice="gift", now=datetime(2027, 7, 1, tzinfo=UTC))
    with pytest.raises(BirthdayPointsNotForTier):
        birthday_take(member=member, choice="points", now=datetime(2027, 6, 1, tzinfo=UTC))


def test_birthday_month_is_announced_once_a_year(program, member):
    from tiers.services import birthdays_announce

    member.birth_date = date(1990, 6, 20)
    member.save()
    assert birthdays_announce(datetime(2026, 6, 1, tzinfo=UTC)) == 1
    assert birthdays_announce(datetime(2026, 6, 2, tzinfo=UTC)) == 0
    assert birthdays_announce(datetime(2026, 7, 1, tzinfo=UTC)) == 0


def test_the_crossing_uses_each_orders_snapshot_not_todays_rate(program, member):
    place_order(program, member, "200.00", currency="EUR", placed_at=MARCH)  # 216.00 USD at 1.08
    program.fx_rates.filter(currency="EUR").update(rate=Decimal("0.50"))  # staff change the rate later
    place_order(program, member, "536.00", currency="PLN", placed_at=MARCH)  # 134.00 USD: 350.00 in all
    assert fresh(member).tier.code == "vib"


def test_rouge_may_take_the_250_points_and_next_year_again(program, member_factory, tiers):
    rouge = member_factory(external_id="rouge", birth_date=date(1985, 6, 10))
    rouge.tier = tiers["rouge"]
    rouge.save()
    assert birthday_take(member=rouge, choice="points", now=datetime(2026, 6, 15, tzinfo=UTC)).points == 250
    with pytest.raises(BirthdayTaken):
        birthday_take(member=rouge, choice="points", now=datetime(2026, 6, 30, tzinfo=UTC))
    rouge.tier_valid_until = date(2027, 12, 31)  # still Rouge in 2027
    rouge.save()
    assert birthday_take(member=rouge, choice="gift", now=datetime(2027, 6, 1, tzinfo=UTC)).coupon_code
