"""Lots: pending until the return window ends, spent soonest-expiring first, expiring by policy.
Correctness never waits for a job: reads and spends see what time has made true."""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command

from loyalty.errors import InsufficientPoints
from loyalty.models import Event, ExpiryPolicy, Lot, LotState, Order, OrderStatus, Transaction, TransactionKind
from loyalty.selectors.members import member_balances, member_expiring
from loyalty.services.adjustments import points_adjust
from loyalty.services.redemptions import redemption_hold
from loyalty.services.settlement import points_expire, points_mature
from tests.conftest import JUNE
from tests.factories import place_order

JULY_20 = datetime(2026, 7, 20, tzinfo=UTC)


def pts(member, now):
    return member_balances(member=member, now=now)["PTS"]


def test_points_are_pending_for_the_window_then_available(program, member):
    order = place_order(program, member, "100.00", placed_at=JUNE)
    assert pts(member, JUNE + timedelta(days=29)) == {"available": 0, "pending": 100, "held": 0}
    assert pts(member, JUNE + timedelta(days=30)) == {"available": 100, "pending": 0, "held": 0}
    # The job only makes the books show it; running it twice posts once
    assert points_mature(JUNE + timedelta(days=31)) == 1
    assert points_mature(JUNE + timedelta(days=31)) == 0
    assert Transaction.objects.filter(kind=TransactionKind.MATURE).count() == 1
    order.refresh_from_db()
    assert order.status == OrderStatus.COMPLETED
    assert pts(member, JUNE + timedelta(days=31)) == {"available": 100, "pending": 0, "held": 0}


def test_an_order_that_earned_nothing_completes_when_its_window_closes(program, member):
    order = place_order(program, member, "0.50", placed_at=JUNE)
    assert order.points_earned == 0 and not Lot.objects.exists()
    matured = Event.objects.filter(type="order.matured")
    points_mature(JUNE + timedelta(days=29))
    assert Order.objects.get().status == OrderStatus.PENDING and not matured.exists()
    points_mature(JUNE + timedelta(days=30))
    points_mature(JUNE + timedelta(days=31))  # a second run completes nothing twice
    assert Order.objects.get().status == OrderStatus.COMPLETED
    assert [(e.member_id, e.properties, e.occurred_at) for e in matured] == [
        (member.pk, {"order": order.external_id, "points": 0}, JUNE + timedelta(days=30))
    ]


def test_matured_points_are_spendable_before_the_job_runs(program, member):
    place_order(program, member, "600.00", placed_at=JUNE)
    hold = redemption_hold(program=program, member_external_id="anna", points=500, now=JULY_20)
    assert hold.status == "held"
    assert pts(member, JULY_20) == {"available": 100, "pending": 0, "held": 500}


def test_pending_points_cannot_be_spent(program, member):
    place_order(program, member, "600.00", placed_at=JUNE)
    with pytest.raises(InsufficientPoints):
        redemption_hold(program=program, member_external_id="anna", points=500, now=JUNE + timedelta(days=1))


def test_fixed_expiry_is_n_months_after_earning_at_the_end_of_that_month(program, member):
    program.expiry_policy, program.expiry_months = ExpiryPolicy.FIXED, 12
    program.save()
    place_order(program, member, "100.00", placed_at=JUNE)
    lot = Lot.objects.get()
    assert lot.expires_at == datetime(2027, 7, 1, tzinfo=UTC)  # end of June 2027
    assert member_expiring(member=member, now=JULY_20)["PTS"] == {"points": 100, "expires_at": lot.expires_at}
    assert pts(member, datetime(2027, 6, 30, 23, tzinfo=UTC))["available"] == 100
    assert pts(member, datetime(2027, 7, 1, tzinfo=UTC))["available"] == 0  # expired before any job ran
    assert points_expire(datetime(2027, 7, 2, tzinfo=UTC)) == 1
    assert points_expire(datetime(2027, 7, 2, tzinfo=UTC)) == 0
    lot.refresh_from_db()
    assert (lot.state, lot.remaining) == (LotState.EXPIRED, 0)


def test_inactivity_expiry_moves_with_every_order_and_redemption(program, member):
    # Demo policy: all points expire after 18 months without an order or a redemption
    place_order(program, member, "600.00", placed_at=JUNE)
    assert Lot.objects.get().expires_at == datetime(2027, 12, 15, 12, tzinfo=UTC)
    later = datetime(2027, 3, 1, tzinfo=UTC)
    place_order(program, member, "50.00", placed_at=later)
    assert set(Lot.objects.values_list("expires_at", flat=True)) == {datetime(2028, 9, 1, tzinfo=UTC)}
    redemption_hold(program=program, member_external_id="anna", points=500, now=datetime(2027, 6, 1, tzinfo=UTC))
    # a hold is not a redemption until captured: nothing moves yet
    assert set(Lot.objects.values_list("expires_at", flat=True)) == {datetime(2028, 9, 1, tzinfo=UTC)}


def test_expired_lots_are_never_revived_by_new_activity(program, member):
    place_order(program, member, "100.00", placed_at=JUNE)
    lapse = datetime(2027, 12, 15, 12, tzinfo=UTC)
    # 18 months later, a new order arrives before the expiry job has run
    place_order(program, member, "10.00", placed_at=lapse + timedelta(days=3))
    assert pts(member, lapse + timedelta(days=3))["pending"] == 10
    assert pts(member, lapse + timedelta(days=3))["available"] == 0
    call_command("run_periodic_jobs", "--as-of", (lapse + timedelta(days=4)).isoformat(), stdout=StringIO())
    assert Transaction.objects.filter(kind=TransactionKind.EXPIRE).count() == 1


def test_spending_takes_the_soonest_expiring_lots_first(program, member, staff):
    program.expiry_policy, program.expiry_months = ExpiryPolicy.FIXED, 12
    program.save()
    place_order(program, member, "300.00", placed_at=datetime(2026, 3, 10, tzinfo=UTC))  # expires 2027-04-01
    place_order(program, member, "300.00", placed_at=datetime(2026, 1, 10, tzinfo=UTC))  # expires 2027-02-01
    points_adjust(member=member, points=-400, reason="test", staff_user=staff, now=JULY_20)
    left = dict(Lot.objects.values_list("expires_at", "remaining"))
    assert left == {datetime(2027, 2, 1, tzinfo=UTC): 0, datetime(2027, 4, 1, tzinfo=UTC): 200}


def test_a_spend_across_lots_with_and_without_an_expiry_writes_both(program, member, staff):
    # A points credit under `none` never expires; spent together with lots that do, each lot keeps its own
    program.expiry_policy, program.expiry_months = ExpiryPolicy.FIXED, 12
    program.save()
    place_order(program, member, "300.00", placed_at=datetime(2026, 3, 10, tzinfo=UTC))  # expires 2027-04-01
    program.expiry_policy = ExpiryPolicy.NONE
    program.save()
    place_order(program, member, "300.00", placed_at=datetime(2026, 1, 10, tzinfo=UTC))  # never expires
    points_adjust(member=member, points=-450, reason="test", staff_user=staff, now=JULY_20)
    left = dict(Lot.objects.values_list("expires_at", "remaining"))
    assert left == {datetime(2027, 4, 1, tzinfo=UTC): 0, None: 150}


def test_staff_credit_is_available_at_once_and_debit_never_overdraws(program, member, staff):
    points_adjust(member=member, points=250, reason="Goodwill: late parcel", staff_user=staff, now=JUNE)
    assert pts(member, JUNE)["available"] == 250
    with pytest.raises(InsufficientPoints):
        points_adjust(member=member, points=-251, reason="oops", staff_user=staff, now=JUNE)
    txn = Transaction.objects.get(kind=TransactionKind.ADJUST)
    assert (txn.memo, txn.created_by) == ("Goodwill: late parcel", staff)


def test_order_status_reads_completed_once_matured_even_before_the_job(api, program, member, june):
    place_order(program, member, "100.00", placed_at=JUNE - timedelta(days=31), external_id="OLD")
    assert Order.objects.get().status == OrderStatus.PENDING
    assert api.get("/api/v1/orders/OLD/").json()["status"] == "completed"
