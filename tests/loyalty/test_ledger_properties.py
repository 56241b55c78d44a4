"""Property: any sequence of order, refund, cancel, hold, capture, void, claim, adjust, maturation
and expiry (each job on its own, or all together after a wait) keeps every transaction at zero sum
and every cached balance equal to its entries; and what a read shows before the jobs run is
exactly what the books show after they run."""

from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loyalty.errors import LoyaltyError
from loyalty.models import Account, ExpiryPolicy, Redemption, RefundPolicy, Reward
from loyalty.selectors.ledger import ledger_problems
from loyalty.selectors.members import member_balances
from loyalty.services.adjustments import points_adjust
from loyalty.services.members import member_enroll
from loyalty.services.orders import order_cancel, order_refund
from loyalty.services.redemptions import redemption_capture, redemption_hold, redemption_void
from loyalty.services.rewards import reward_claim
from loyalty.services.settlement import holds_expire, points_expire, points_mature
from tests.conftest import JUNE
from tests.factories import place_order

MEMBERS = 2
operation = st.one_of(
    st.tuples(
        st.just("order"), st.integers(0, MEMBERS - 1), st.integers(1, 200_000), st.sampled_from(["USD", "EUR", "JPY"])
    ),
    st.tuples(st.just("refund"), st.integers(0, 20), st.integers(1, 100)),
    st.tuples(st.just("cancel"), st.integers(0, 20)),
    st.tuples(st.just("hold"), st.integers(0, MEMBERS - 1), st.integers(1, 4)),
    st.tuples(st.just("capture"), st.integers(0, 20)),
    st.tuples(st.just("void"), st.integers(0, 20)),
    st.tuples(st.just("claim"), st.integers(0, MEMBERS - 1)),
    st.tuples(st.just("adjust"), st.integers(0, MEMBERS - 1), st.integers(-800, 800).filter(bool)),
    st.tuples(st.just("wait"), st.integers(0, 45), st.booleans()),
    st.tuples(st.just("mature")),  # each job on its own, as of the current time
    st.tuples(st.just("expire")),
    st.tuples(st.just("expire_holds")),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(
    ops=st.lists(operation, min_size=1, max_size=25),
    expiry=st.sampled_from([(ExpiryPolicy.FIXED, 1), (ExpiryPolicy.INACTIVITY, 1), (ExpiryPolicy.NONE, 1)]),
    refund_policy=st.sampled_from(list(RefundPolicy)),
)
def test_any_sequence_keeps_the_books_verified(program, staff, ops, expiry, refund_policy):
    with transaction.atomic():
        program.expiry_policy, program.expiry_months = expiry
        program.refund_policy = refund_policy
        program.save()
        Reward.objects.filter(program=program).update(stock=None)
        members = [
            member_enroll(program=program, external_id=f"p{i}", email=f"p{i}@example.com", now=JUNE)
            for i in range(MEMBERS)
        ]
        run(program, staff, members, ops)
        transaction.set_rollback(True)


def run(program, staff, members, ops):
    now = JUNE
    orders, holds = [], []
    sample = Reward.objects.get(program=program, name="Deluxe sample")
    for n, op in enumerate(ops):
        kind, *args = op
        try:
            if kind == "order":
                member, cents, currency = members[args[0]], args[1], args[2]
                amount = Decimal(cents) / (1 if currency == "JPY" else 100)
                orders.append(
                    place_order(program, member, amount, currency=currency, placed_at=now, external_id=f"o{n}")
                )
            elif kind == "refund" and orders:
                order = orders[args[0] % len(orders)]
                order.refresh_from_db()
                amount = (order.merchandise.amount * args[1] / 100).quantize(
                    Decimal("1") if str(order.currency) == "JPY" else Decimal("0.01")
                )
                order_refund(
                    program=program,
                    order_external_id=order.external_id,
                    refund_external_id=f"r{n}",
                    amount=max(amount, Decimal("1")),
                    now=now,
                )
            elif kind == "cancel" and orders:
                order_cancel(program=program, order_external_id=orders[args[0] % len(orders)].external_id, now=now)
            elif kind == "hold":
                holds.append(
                    redemption_hold(
                        program=program,
                        member_external_id=members[args[0]].external_id,
                        points=500 * args[1],
                        ttl_seconds=3600,
                        now=now,
                    )
                )
            elif kind == "capture" and holds:
                redemption_capture(program=program, redemption_id=holds[args[0] % len(holds)].pk, now=now)
            elif kind == "void" and holds:
                redemption_void(program=program, redemption_id=holds[args[0] % len(holds)].pk, now=now)
            elif kind == "claim":
                reward_claim(
                    program=program, reward_id=sample.pk, member_external_id=members[args[0]].external_id, now=now
                )
            elif kind == "adjust":
                points_adjust(member=members[args[0]], points=args[1], reason="property", staff_user=staff, now=now)
            elif kind == "mature":
                points_mature(now)
            elif kind == "expire":
                points_expire(now)
            elif kind == "expire_holds":
                holds_expire(now)
            elif kind == "wait":
                now += timedelta(days=args[0], hours=1)
                if args[1]:
                    jobs_agree_with_reads(members, now)
        except LoyaltyError:
            pass  # refused by a rule: must change nothing, which the checks below prove
        problems = ledger_problems()
        assert not problems, f"after {op}: {problems}"
    jobs_agree_with_reads(members, now + timedelta(days=400))


def jobs_agree_with_reads(members, now):
    """What reads show as of `now` is exactly what the books show once the jobs have run."""
    before = {m.pk: member_balances(member=m, now=now)["PTS"] for m in members}
    points_mature(now), points_expire(now), holds_expire(now)
    for member in members:
        books = {a.kind: a.balance for a in Account.objects.filter(member=member)}
        assert books == before[member.pk], (now, books, before[member.pk])
        assert books["pending"] >= 0 and books["held"] >= 0
        assert books["held"] == sum(
            Redemption.objects.filter(member=member, status="held").values_list("points", flat=True)
        )
