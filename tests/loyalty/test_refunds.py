"""Refunds claw points back pro rata: pending first, then available, as the policy allows."""

from datetime import timedelta
from decimal import Decimal

import pytest

from loyalty import errors
from loyalty.models import OrderLine, OrderStatus, RefundPolicy
from loyalty.selectors.members import member_balances
from loyalty.services.earning import LineDraft
from loyalty.services.orders import RefundLine, order_cancel, order_refund
from loyalty.services.redemptions import redemption_capture, redemption_hold
from tests.conftest import JUNE
from tests.factories import place_order

LATER = JUNE + timedelta(days=40)


def pts(member, now=LATER):
    return member_balances(member=member, now=now)["PTS"]


def refund(program, order, rid="R1", now=JUNE + timedelta(days=1), **kwargs):
    return order_refund(program=program, order_external_id=order.external_id, refund_external_id=rid, now=now, **kwargs)


def test_partial_refund_by_amount_claws_back_pro_rata_from_pending(program, member):
    order = place_order(program, member, "200.00", placed_at=JUNE)
    r = refund(program, order, amount=Decimal("50.00"))
    assert (r.points_due, r.points_reversed, r.points_unrecovered) == (50, 50, 0)
    order.refresh_from_db()
    assert order.status == OrderStatus.PARTIALLY_REFUNDED
    assert order.spend_base.amount == Decimal("150.00")
    assert pts(member, JUNE + timedelta(days=1)) == {"available": 0, "pending": 150, "held": 0}


def test_several_refunds_add_up_to_the_whole_order_exactly(program, member):
    order = place_order(program, member, "99.99", placed_at=JUNE)  # 99 points
    total = sum(refund(program, order, rid=f"R{i}", amount=Decimal("33.33")).points_reversed for i in range(3))
    assert total == 99
    order.refresh_from_db()
    assert (order.status, order.spend_base.amount, order.points_reversed) == (OrderStatus.REFUNDED, 0, 99)


def test_refund_by_lines(program, member):
    lines = [
        LineDraft(sku="A", quantity=2, unit_price=Decimal("30")),
        LineDraft(sku="B", quantity=1, unit_price=Decimal("40")),
    ]
    order = place_order(program, member, lines=lines, placed_at=JUNE)
    r = refund(program, order, lines=[RefundLine(sku="A", quantity=1)])
    assert (r.amount.amount, r.points_reversed) == (Decimal("30.00"), 30)
    with pytest.raises(errors.RefundExceedsOrder):
        refund(program, order, rid="R2", lines=[RefundLine(sku="A", quantity=2)])
    with pytest.raises(errors.InvalidInput):
        refund(program, order, rid="R3", lines=[RefundLine(sku="Z", quantity=1)])


def test_refund_never_beyond_what_was_paid(program, member):
    order = place_order(program, member, "100.00", placed_at=JUNE, tax=Decimal("8"), shipping=Decimal("5"))
    refund(program, order, amount=Decimal("110.00"))  # merchandise and part of tax/shipping
    with pytest.raises(errors.RefundExceedsOrder):
        refund(program, order, rid="R2", amount=Decimal("3.01"))
    refund(program, order, rid="R3", amount=Decimal("3.00"))
    order.refresh_from_db()
    assert order.refunded.amount == order.total.amount == Decimal("113.00")


def test_refund_ids_are_unique_per_order(program, member):
    order = place_order(program, member, "100.00", placed_at=JUNE)
    refund(program, order, amount=Decimal("10"))
    with pytest.raises(errors.RefundExists):
        refund(program, order, amount=Decimal("10"))


def _spent_after_maturing(program, member, amount="600.00"):
    """An order that matured and whose points were then spent down (500 of 600)."""
    order = place_order(program, member, amount, placed_at=JUNE)
    hold = redemption_hold(
        program=program, member_external_id=member.external_id, points=500, now=JUNE + timedelta(days=31)
    )
    redemption_capture(program=program, redemption_id=hold.pk, now=JUNE + timedelta(days=31))
    return order


def test_within_balance_claws_what_it_can_and_records_the_rest(program, member):
    order = _spent_after_maturing(program, member)
    r = refund(program, order, amount=Decimal("600.00"), now=LATER)
    assert (r.points_due, r.points_reversed, r.points_unrecovered) == (600, 100, 500)
    assert pts(member) == {"available": 0, "pending": 0, "held": 0}


def test_pending_is_clawed_before_available(program, member):
    old = place_order(program, member, "100.00", placed_at=JUNE)
    new = place_order(program, member, "50.00", placed_at=LATER - timedelta(days=1))
    # refunding the matured order takes the other order's pending points first
    r = refund(program, old, amount=Decimal("100.00"), now=LATER)
    assert r.points_reversed == 100
    assert pts(member) == {"available": 50, "pending": 0, "held": 0}
    assert new.pk


def test_only_pending_policy_never_touches_available(program, member):
    program.refund_policy = RefundPolicy.ONLY_PENDING
    program.save()
    order = place_order(program, member, "100.00", placed_at=JUNE)
    r = refund(program, order, amount=Decimal("100.00"), now=LATER)
    assert (r.points_reversed, r.points_unrecovered) == (0, 100)
    assert pts(member)["available"] == 100


def test_unlimited_policy_overdraws_and_the_next_points_pay_the_debt(program, member):
    program.refund_policy = RefundPolicy.UNLIMITED
    program.save()
    order = _spent_after_maturing(program, member)
    r = refund(program, order, amount=Decimal("600.00"), now=LATER)
    assert (r.points_reversed, r.points_unrecovered) == (600, 0)
    assert pts(member)["available"] == -500
    place_order(program, member, "800.00", placed_at=LATER)
    assert pts(member, LATER + timedelta(days=31)) == {"available": 300, "pending": 0, "held": 0}
    with pytest.raises(errors.InsufficientPoints):
        redemption_hold(program=program, member_external_id="anna", points=500, now=LATER + timedelta(days=31))


def test_cancel_reverses_everything_left_and_twice_is_once(program, member):
    order = place_order(program, member, "100.00", placed_at=JUNE)
    refund(program, order, amount=Decimal("40.00"))
    first = order_cancel(program=program, order_external_id=order.external_id, now=JUNE + timedelta(days=2))
    again = order_cancel(program=program, order_external_id=order.external_id, now=JUNE + timedelta(days=3))
    assert first.pk == again.pk
    order.refresh_from_db()
    assert (order.status, order.points_reversed, order.spend_base.amount) == (OrderStatus.CANCELLED, 100, 0)
    assert pts(member) == {"available": 0, "pending": 0, "held": 0}
    with pytest.raises(errors.OrderCancelled):
        refund(program, order, rid="R9", amount=Decimal("1"))


def test_refund_of_an_unknown_order(program):
    with pytest.raises(errors.OrderNotFound):
        order_refund(program=program, order_external_id="nope", refund_external_id="R", amount=Decimal("1"))


def test_refund_by_lines_when_the_order_has_the_same_sku_on_two_lines(program, member):
    # Given one SKU on two lines at two prices (a discounted unit and a full-price one)
    lines = [
        LineDraft(sku="A", quantity=1, unit_price=Decimal("10")),
        LineDraft(sku="A", quantity=2, unit_price=Decimal("20")),
        LineDraft(sku="B", quantity=1, unit_price=Decimal("50")),
    ]
    order = place_order(program, member, lines=lines, placed_at=JUNE)
    assert order.points_earned == 100

    # When two units of A come back (asked in two entries), then the first line's unit and one of
    # the second's are refunded: 30.00 of merchandise, 30 points, nothing else touched
    r = refund(program, order, lines=[RefundLine(sku="A", quantity=1), RefundLine(sku="A", quantity=1)])
    assert (r.merchandise.amount, r.points_due, r.spend_reversed_base.amount) == (
        Decimal("30.00"),
        30,
        Decimal("30.00"),
    )
    assert list(OrderLine.objects.filter(order=order).order_by("id").values_list("refunded_quantity", flat=True)) == [
        1,
        1,
        0,
    ]
    # And only one unit of A is left to refund
    with pytest.raises(errors.RefundExceedsOrder):
        refund(program, order, rid="R2", lines=[RefundLine(sku="A", quantity=2)])
    last = refund(program, order, rid="R3", lines=[RefundLine(sku="A", quantity=1), RefundLine(sku="B", quantity=1)])
    assert last.points_due == 70
    order.refresh_from_db()
    assert (order.status, order.points_reversed, order.spend_base.amount) == (OrderStatus.REFUNDED, 100, 0)


@pytest.mark.parametrize("quantity, price, discount", [(6, "1.67", "0.02"), (3, "3.34", "0.02")])
def test_a_lines_refunds_one_unit_at_a_time_add_up_to_its_net_exactly(program, member, quantity, price, discount):
    # Given one line of N units whose net (10.00) does not split into whole cents per unit
    line = LineDraft(
        sku="S", category="makeup", quantity=quantity, unit_price=Decimal(price), discount=Decimal(discount)
    )
    order = place_order(program, member, placed_at=JUNE, lines=[line])
    assert order.merchandise.amount == Decimal("10.00")

    # When every unit is refunded one refund at a time, then the last unit can be refunded too
    refunds = [refund(program, order, rid=f"R{i}", lines=[RefundLine(sku="S", quantity=1)]) for i in range(quantity)]

    # ... and together they are the whole order: its money, its points, its status
    order.refresh_from_db()
    assert sum(r.amount.amount for r in refunds) == Decimal("10.00")
    assert sum(r.points_reversed for r in refunds) == order.points_earned
    assert order.status == OrderStatus.REFUNDED
    assert order.spend_base.amount == 0


def test_a_hold_that_ran_out_does_not_lower_what_the_order_earns(program, member, staff):
    # Given a hold for order O-1 whose time ran out (it will be voided, not captured)
    from loyalty.services.adjustments import points_adjust

    points_adjust(member=member, points=1000, reason="funds", staff_user=staff, now=JUNE)
    redemption_hold(
        program=program,
        member_external_id=member.external_id,
        points=500,
        order_external_id="O-1",
        ttl_seconds=60,
        now=JUNE,
    )

    # When the order is placed after that, then it earns on all of its merchandise
    order = place_order(program, member, "100.00", external_id="O-1", now=JUNE + timedelta(minutes=5))
    assert order.points_earned == 100
