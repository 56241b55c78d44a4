"""Badges, challenges and leaderboards, driven by events and evaluated after commit."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from loyalty.models import Badge, BadgeAward, Challenge, ChallengeProgress, Counts, CriterionKind, Event, Transaction
from loyalty.selectors.gamification import challenge_leaderboard, member_badges
from loyalty.services.events import event_record, events_process
from loyalty.services.gamification import challenge_join, challenge_recompute, challenges_close
from loyalty.services.orders import order_refund
from loyalty.services.settlement import points_mature
from tests.concurrency import race
from tests.conftest import JUNE
from tests.factories import place_order

MARCH = datetime(2026, 3, 2, 12, tzinfo=UTC)


def process(now):
    """Run the after-commit event processing (a Celery task in production) as of `now`."""
    return events_process(
        event_ids=list(Event.objects.filter(processed_at__isnull=True).values_list("pk", flat=True)), now=now
    )


def badges_of(member):
    return set(BadgeAward.objects.filter(member=member).values_list("badge__code", flat=True))


def badge(program, kind, target, **params):
    params.setdefault("counts", Counts.PLACED)
    return Badge.objects.create(
        program=program, code=f"t-{kind}", name=f"Test {kind}", kind=kind, target=Decimal(target), **params
    )


# --- badges: each kind at exactly its threshold -------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "target", "params", "steps"),
    [
        (CriterionKind.ORDER_COUNT, 2, {}, [("USD", "10"), ("USD", "10")]),
        (CriterionKind.SPEND, 100, {}, [("USD", "60"), ("USD", "40")]),
        (CriterionKind.CATEGORY_SPEND, 50, {"category": "skincare"}, [("USD", "30"), ("USD", "20")]),
        (CriterionKind.CURRENCIES, 3, {}, [("USD", "10"), ("EUR", "10"), ("EUR", "10"), ("GBP", "10")]),
    ],
)
def test_order_kinds_award_at_exactly_their_threshold(program, member, kind, target, params, steps):
    made = badge(program, kind, target, **params)
    for i, (currency, amount) in enumerate(steps):
        place_order(program, member, amount, currency=currency, category="skincare", placed_at=MARCH)
        process(MARCH)
        assert (made.code in badges_of(member)) is (i == len(steps) - 1), f"after step {i + 1}"


def test_reviewer_after_the_third_review_not_the_second(program, member):
    for n in range(1, 4):
        event_record(
            program=program, member_external_id="anna", type="review.posted", external_id=f"rev-{n}", now=MARCH
        )
        process(MARCH)
        assert ("reviewer" in badges_of(member)) is (n == 3)


def test_the_same_event_id_twice_counts_once(api, program, member, june):
    for n in (1, 2, 2, 2):
        api.post("/api/v1/events/", {"id": f"rev-{n}", "member": "anna", "type": "review.posted"}, format="json")
    process(JUNE)
    assert Event.objects.filter(type="review.posted").count() == 2
    assert "reviewer" not in badges_of(member)


def test_streak_across_a_year_boundary(program, member):
    for placed in (datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 12, 3, tzinfo=UTC)):
        place_order(program, member, "30.00", placed_at=placed)
    points_mature(datetime(2027, 1, 10, tzinfo=UTC))
    process(datetime(2027, 1, 10, tzinfo=UTC))
    assert "streak" not in badges_of(member)  # two months
    place_order(program, member, "30.00", placed_at=datetime(2027, 1, 10, tzinfo=UTC))
    points_mature(datetime(2027, 2, 10, tzinfo=UTC))
    process(datetime(2027, 2, 10, tzinfo=UTC))
    assert "streak" in badges_of(member)  # November, December, January


def test_first_order_waits_for_the_return_window_and_refunds_never_take_a_badge_back(program, member):
    order = place_order(program, member, "30.00", placed_at=JUNE)
    process(JUNE)
    assert "first-order" not in badges_of(member)  # demo badges count matured orders
    points_mature(JUNE + timedelta(days=30))
    process(JUNE + timedelta(days=30))
    assert "first-order" in badges_of(member)
    order_refund(
        program=program,
        order_external_id=order.external_id,
        refund_external_id="R",
        amount=Decimal("30.00"),
        now=JUNE + timedelta(days=40),
    )
    process(JUNE + timedelta(days=40))
    assert "first-order" in badges_of(member)


def test_referrals_and_tier_kinds(program, member, member_factory, tiers):
    reach_vib = badge(program, CriterionKind.TIER, 1, tier=tiers["vib"])
    place_order(program, member, "349.99", placed_at=MARCH)
    process(MARCH)
    assert reach_vib.code not in badges_of(member)
    place_order(program, member, "0.01", placed_at=MARCH)
    process(MARCH)
    assert reach_vib.code in badges_of(member)


def test_badge_points_are_paid_once_through_the_ledger(program, member):
    badge(program, CriterionKind.ORDER_COUNT, 1, points=50)
    place_order(program, member, "10.00", placed_at=MARCH)
    process(MARCH)
    process(MARCH)
    assert Transaction.objects.filter(kind="badge").count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_evaluation_racing_with_itself_awards_once(program, member):
    from loyalty.services.gamification import gamification_evaluate

    badge(program, CriterionKind.ORDER_COUNT, 1, points=50)
    place_order(program, member, "10.00", placed_at=MARCH)
    results = race(lambda i: gamification_evaluate(member_id=member.pk, event_type="order.placed", now=MARCH), 4)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert BadgeAward.objects.filter(badge__code="t-order_count").count() == 1
    assert Transaction.objects.filter(kind="badge").count() == 1


def test_a_criterion_that_cannot_be_met_is_refused(program):
    with pytest.raises(ValidationError, match="whole number"):
        Badge(program=program, code="x", name="x", kind=CriterionKind.ORDER_COUNT, target=Decimal("2.5")).full_clean()
    with pytest.raises(ValidationError, match="accepts 6 currencies"):
        Badge(program=program, code="x", name="x", kind=CriterionKind.CURRENCIES, target=7).full_clean()
    with pytest.raises(ValidationError, match="event type"):
        Badge(program=program, code="x", name="x", kind=CriterionKind.EVENT_COUNT, target=3).full_clean()
    with pytest.raises(ValidationError, match="fewer months"):
        Challenge(
            program=program,
            code="x",
            name="x",
            kind=CriterionKind.STREAK,
            target=3,
            reward_points=1,
            starts_at=MARCH,
            ends_at=MARCH + timedelta(days=40),
        ).full_clean()
    with pytest.raises(ValidationError, match="needs a reward"):
        Challenge(
            program=program,
            code="x",
            name="x",
            kind=CriterionKind.ORDER_COUNT,
            target=3,
            starts_at=MARCH,
            ends_at=MARCH + timedelta(days=40),
        ).full_clean()


# --- challenges ---------------------------------------------------------------------------------
def spring(member):
    return ChallengeProgress.objects.filter(challenge__code="spring-streak", member=member).first()


def test_three_orders_in_march_complete_the_spring_streak_and_february_does_not_count(program, member):
    place_order(program, member, "20.00", placed_at=datetime(2026, 2, 27, tzinfo=UTC))
    process(datetime(2026, 2, 27, tzinfo=UTC))
    for day in (3, 10):
        place_order(program, member, "20.00", placed_at=datetime(2026, 3, day, tzinfo=UTC))
    process(datetime(2026, 3, 10, tzinfo=UTC))
    assert (spring(member).value, spring(member).completed_at) == (2, None)
    place_order(program, member, "20.00", placed_at=datetime(2026, 3, 20, tzinfo=UTC))
    process(datetime(2026, 3, 20, tzinfo=UTC))
    assert spring(member).completed_at is not None
    assert Transaction.objects.filter(kind="challenge").count() == 1
    assert Event.objects.filter(type="challenge.completed").count() == 1


def test_a_refund_before_completion_lowers_progress_after_completion_the_reward_stands(program, member):
    first = place_order(program, member, "20.00", placed_at=datetime(2026, 3, 3, tzinfo=UTC))
    place_order(program, member, "20.00", placed_at=datetime(2026, 3, 4, tzinfo=UTC))
    process(datetime(2026, 3, 4, tzinfo=UTC))
    order_refund(
        program=program,
        order_external_id=first.external_id,
        refund_external_id="R",
        amount=Decimal("20.00"),
        now=datetime(2026, 3, 5, tzinfo=UTC),
    )
    process(datetime(2026, 3, 5, tzinfo=UTC))
    assert spring(member).value == 1
    for day in (6, 7):
        place_order(program, member, "20.00", placed_at=datetime(2026, 3, day, tzinfo=UTC))
    process(datetime(2026, 3, 7, tzinfo=UTC))
    assert spring(member).completed_at is not None
    last = place_order(program, member, "20.00", placed_at=datetime(2026, 3, 8, tzinfo=UTC))
    order_refund(
        program=program,
        order_external_id=last.external_id,
        refund_external_id="R2",
        amount=Decimal("20.00"),
        now=datetime(2026, 3, 9, tzinfo=UTC),
    )
    process(datetime(2026, 3, 9, tzinfo=UTC))
    assert spring(member).completed_at is not None and Transaction.objects.filter(kind="challenge").count() == 1


def test_where_opt_in_is_required_a_member_who_did_not_join_does_not_progress(program, member, member_factory):
    Challenge.objects.filter(code="spring-streak").update(opt_in=True)
    joiner = member_factory(external_id="joiner")
    challenge_join(challenge=Challenge.objects.get(code="spring-streak"), member=joiner, now=MARCH)
    for m in (member, joiner):
        for day in (3, 4, 5):
            place_order(program, m, "20.00", placed_at=datetime(2026, 3, day, tzinfo=UTC))
    process(datetime(2026, 3, 5, tzinfo=UTC))
    assert spring(member) is None
    assert spring(joiner).completed_at is not None


def test_skincare_month_repeats_monthly_and_gives_the_badge_once(program, member):
    for month in (5, 6):
        place_order(program, member, "55.00", category="skincare", placed_at=datetime(2026, month, 3, tzinfo=UTC))
        process(datetime(2026, month, 3, tzinfo=UTC))
    rows = ChallengeProgress.objects.filter(challenge__code="skincare-month", member=member)
    assert rows.count() == 2 and all(r.completed_at for r in rows)
    assert Transaction.objects.filter(kind="challenge").count() == 2  # once per period
    assert BadgeAward.objects.filter(badge__code="skincare-devotee").count() == 1


# --- leaderboards -------------------------------------------------------------------------------
def test_leaderboard_order_tie_break_masked_names_and_own_rank(program, member_factory):
    people = {
        name: member_factory(external_id=name, first_name=name.title(), last_name="Zed")
        for name in ("ann", "bob", "cy", "dee")
    }
    plan = {"ann": [3], "bob": [3, 4], "cy": [2, 3], "dee": [5]}  # bob and cy tie at 2: cy got there first
    for day in range(2, 6):
        for name, days in plan.items():
            if day in days:
                place_order(program, people[name], "20.00", placed_at=datetime(2026, 3, day, tzinfo=UTC))
        process(datetime(2026, 3, day, tzinfo=UTC))
    board = challenge_leaderboard(
        challenge=Challenge.objects.get(code="spring-streak"),
        member=people["ann"],
        now=datetime(2026, 3, 6, tzinfo=UTC),
    )
    assert [(e["rank"], e["name"], e["value"]) for e in board["entries"]] == [
        (1, "Cy Z.", 2),
        (2, "Bob Z.", 2),
        (3, "Ann Z.", 1),
        (4, "Dee Z.", 1),
    ]
    assert (board["me"]["rank"], board["me"]["name"]) == (3, "Ann Z.")


def test_leaderboard_and_member_apis(api, program, member, june):
    place_order(program, member, "60.00", category="skincare", placed_at=JUNE - timedelta(days=1))
    process(JUNE)
    challenges = api.get("/api/v1/members/anna/challenges/").json()["results"]
    skincare = next(c for c in challenges if c["code"] == "skincare-month")
    assert (skincare["value"], skincare["completed_at"] is not None) == ("60.00", True)
    board = api.get(f"/api/v1/challenges/{skincare['id']}/leaderboard/?member=anna").json()
    assert board["entries"][0]["name"] == "Anna K." and board["me"]["rank"] == 1
    page = api.get("/api/v1/members/anna/badges/?page_size=3").json()
    badges = {b["code"]: b for b in page["results"]}
    while page["next"]:  # cursor pages, newest badge first, like every list
        page = api.get(page["next"]).json()
        badges.update({b["code"]: b for b in page["results"]})
    assert len(badges) == Badge.objects.filter(program=program, active=True).count()
    assert badges["skincare-devotee"]["earned"] and not badges["regular"]["earned"]
    joined = api.post(f"/api/v1/members/anna/challenges/{skincare['id']}/join/")
    assert (joined.status_code, joined.json()["code"]) == (422, "challenge_not_opt_in")


# --- recompute and closing ----------------------------------------------------------------------
def test_recompute_after_editing_the_target_matches_live_evaluation(program, member_factory):
    twin = Challenge.objects.get(code="spring-streak")
    twin.pk, twin.code, twin.target = None, "spring-two", Decimal(2)
    twin.save()  # evaluated live with target 2 from the start
    people = [member_factory(external_id=f"p{i}") for i in range(3)]
    for i, m in enumerate(people):
        for day in range(i + 1):
            place_order(program, m, "20.00", placed_at=datetime(2026, 3, day + 2, tzinfo=UTC))
    process(datetime(2026, 3, 6, tzinfo=UTC))
    edited = Challenge.objects.get(code="spring-streak")
    edited.target = Decimal(2)
    edited.save()
    assert challenge_recompute(challenge=edited, now=datetime(2026, 3, 6, tzinfo=UTC)) == 3

    def summary(code):
        return sorted(
            (p.member.external_id, p.value, p.completed_at is not None)
            for p in ChallengeProgress.objects.filter(challenge__code=code).select_related("member")
        )

    assert summary("spring-streak") == summary("spring-two")


def test_member_badges_show_progress_to_locked_ones(program, member):
    place_order(program, member, "400.00", placed_at=MARCH)
    rows = {r["badge"].code: r for r in member_badges(member=member, now=MARCH + timedelta(days=31))}
    assert rows["big-spender"]["value"] == Decimal("400.00") and rows["big-spender"]["awarded_at"] is None


def test_challenges_close_after_their_grace_period(program):
    assert challenges_close(datetime(2026, 4, 20, tzinfo=UTC)) == 0
    assert challenges_close(datetime(2026, 5, 5, tzinfo=UTC)) == 1  # spring streak: 31 days after 1 April


def test_ambassador_after_the_third_qualified_referral_not_the_second(program, member):
    # The referrals kind at exactly its threshold: the demo's Ambassador is 3 rewarded referrals
    from loyalty.services.members import member_enroll
    from referrals.models import ReferralCode
    from referrals.services import referrals_qualify

    code = ReferralCode.objects.get(member=member).code
    for n in range(1, 4):
        friend = member_enroll(
            program=program, external_id=f"friend-{n}", email=f"f{n}@example.org", referral_code=code, now=MARCH
        )
        place_order(program, friend, "30.00", placed_at=MARCH + timedelta(days=n))
        decided_at = MARCH + timedelta(days=n + 31)
        assert referrals_qualify(decided_at) == 1
        process(decided_at)
        assert ("ambassador" in badges_of(member)) is (n == 3), f"after referral {n}"


def test_spend_in_a_window_counts_only_the_window(program, member):
    made = badge(program, CriterionKind.SPEND, 100, starts_at=MARCH, ends_at=MARCH + timedelta(days=10))
    place_order(program, member, "90.00", placed_at=MARCH - timedelta(days=1))  # before the window
    place_order(program, member, "60.00", placed_at=MARCH + timedelta(days=1))
    place_order(program, member, "60.00", placed_at=MARCH + timedelta(days=11))  # after it
    process(MARCH + timedelta(days=12))
    assert made.code not in badges_of(member)
    place_order(program, member, "40.00", placed_at=MARCH + timedelta(days=2))
    process(MARCH + timedelta(days=12))
    assert made.code in badges_of(member)


def test_a_badge_is_once_per_member_by_a_database_constraint(program, member):
    from django.db import IntegrityError, transaction

    made = badge(program, CriterionKind.ORDER_COUNT, 1)
    BadgeAward.objects.create(badge=made, member=member, awarded_at=MARCH)
    with pytest.raises(IntegrityError), transaction.atomic():
        BadgeAward.objects.create(badge=made, member=member, awarded_at=MARCH)


# --- bounded work per event ------------------------------------------------------------------------
def _queries_for_one_order(program, member, placed_at):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    place_order(program, member, "20.00", category="skincare", placed_at=placed_at)
    ids = list(Event.objects.filter(processed_at__isnull=True, type="order.placed").values_list("pk", flat=True))
    with CaptureQueriesContext(connection) as captured:
        events_process(event_ids=ids, now=placed_at)
    return len(captured)


def test_an_order_event_costs_the_same_queries_however_many_badges_and_periods_it_moves(
    program, member, member_factory
):
    # Given the demo's badges and challenges (a monthly one with several open periods)
    process(MARCH)
    before = _queries_for_one_order(program, member, MARCH)
    # When five more order badges and three more monthly challenges exist
    for n in range(5):
        Badge.objects.create(
            program=program,
            code=f"spend-{n}",
            name=f"S{n}",
            kind=CriterionKind.SPEND,
            target=Decimal(10_000 + n),
            counts=Counts.PLACED,
        )
    for n in range(3):
        Challenge.objects.create(
            program=program,
            code=f"monthly-{n}",
            name=f"M{n}",
            kind=CriterionKind.SPEND,
            target=Decimal(10_000),
            counts=Counts.PLACED,
            starts_at=MARCH - timedelta(days=70),
            ends_at=MARCH + timedelta(days=200),
            repeat="month",
            reward_points=10,
        )
    other = member_factory()
    after = _queries_for_one_order(program, other, MARCH + timedelta(hours=1))
    # Then evaluating one order event reads as much as before (no query per definition or open period):
    # only the three progress rows it writes for the new challenges' current period are added
    assert after <= before + 3, (before, after)
    assert after <= 25
