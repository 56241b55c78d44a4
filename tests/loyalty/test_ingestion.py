"""Bulk ingestion: the batch endpoint and service give exactly what one-by-one placement gives."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from loyalty.models import EarnRule, EarnRuleKind, Order, Transaction
from loyalty.selectors.members import member_balances
from loyalty.services.adjustments import points_adjust
from loyalty.services.earning import LineDraft, OrderDraft
from loyalty.services.ingestion import orders_place_bulk
from loyalty.services.orders import order_place
from loyalty.services.redemptions import redemption_hold
from tests.conftest import JUNE
from tiers.models import TierChange

PLAN = [  # member, amount, currency, days after JUNE (negative: earlier)
    (0, "300.00", "USD", 0),
    (0, "60.00", "EUR", 1),
    (0, "200.00", "USD", 2),  # crosses VIB on its 2nd order
    (0, "700.00", "GBP", 3),
    (0, "10.00", "USD", 4),  # then Rouge: the next order earns x1.5
    (1, "20.00", "PLN", -400),
    (1, "30.00", "JPY", 0),  # an order from an earlier year: no tier spend now
    (2, "12.34", "CAD", 0),
    (2, "45.60", "USD", 0),
]


def drafts_for(prefix, plan):
    return [
        OrderDraft(
            external_id=f"{prefix}-{n}",
            member=f"{prefix}{m}",
            currency=cur,
            lines=(
                LineDraft(
                    sku="A",
                    category="skincare",
                    quantity=1,
                    unit_price=Decimal(amount) if cur != "JPY" else Decimal(3000),
                ),
            ),
            placed_at=JUNE + timedelta(days=days),
        )
        for n, (m, amount, cur, days) in enumerate(plan)
    ]


def test_bulk_gives_exactly_what_one_by_one_gives(program, member_factory, staff):
    EarnRule.objects.create(program=program, name="Welcome", kind=EarnRuleKind.FIRST_ORDER_BONUS, points=100)
    for prefix in ("one", "bulk"):
        for m in range(3):
            member_factory(external_id=f"{prefix}{m}")
        points_adjust(
            member=program.members.get(external_id=f"{prefix}2"), points=500, reason="funds", staff_user=staff, now=JUNE
        )
        redemption_hold(
            program=program,
            member_external_id=f"{prefix}2",
            points=500,
            order_external_id=f"{prefix}-8",
            ttl_seconds=7 * 86400,
            now=JUNE,
        )  # 10 USD of order 8 paid with points (still held when the orders come)
    now = JUNE + timedelta(days=5)
    for draft in drafts_for("one", PLAN):
        order_place(program=program, draft=draft, now=now)
    results = orders_place_bulk(program=program, drafts=drafts_for("bulk", PLAN), now=now)

    assert [r.status for r in results] == ["created"] * len(PLAN)
    one = {o.external_id.split("-")[1]: o for o in Order.objects.filter(external_id__startswith="one-")}
    bulk = {o.external_id.split("-")[1]: o for o in Order.objects.filter(external_id__startswith="bulk-")}
    for n in one:
        assert (one[n].points_earned, one[n].qualifying_base, one[n].points_payment) == (
            bulk[n].points_earned,
            bulk[n].qualifying_base,
            bulk[n].points_payment,
        ), n
    assert one["4"].points_earned == 15  # earned as Rouge
    for m in range(3):
        a, b = program.members.get(external_id=f"one{m}"), program.members.get(external_id=f"bulk{m}")
        assert (a.tier.code, a.tier_valid_until, a.last_activity_at) == (
            b.tier.code,
            b.tier_valid_until,
            b.last_activity_at,
        )
        assert member_balances(member=a, now=now) == member_balances(member=b, now=now)
    history = [
        (c.from_tier.code, c.to_tier.code)
        for c in TierChange.objects.filter(member__external_id="bulk0").order_by("id")
    ]
    assert history == [("insider", "vib"), ("vib", "rouge")]


def test_bad_rows_get_their_own_answer_and_the_others_go_in(api, program, member, june):
    body = {
        "orders": [
            {
                "external_id": "B-1",
                "member": "anna",
                "currency": "USD",
                "lines": [{"sku": "A", "quantity": 1, "unit_price": "10"}],
            },
            {
                "external_id": "B-2",
                "member": "ghost",
                "currency": "USD",
                "lines": [{"sku": "A", "quantity": 1, "unit_price": "10"}],
            },
            {
                "external_id": "B-3",
                "member": "anna",
                "currency": "CHF",
                "lines": [{"sku": "A", "quantity": 1, "unit_price": "10"}],
            },
            {
                "external_id": "B-4",
                "member": "anna",
                "currency": "XYZ",
                "lines": [{"sku": "A", "quantity": 1, "unit_price": "10"}],
            },
            {
                "external_id": "B-1",
                "member": "anna",
                "currency": "USD",
                "lines": [{"sku": "A", "quantity": 1, "unit_price": "10"}],
            },
            {
                "external_id": "B-6",
                "member": "anna",
                "currency": "USD",
                "lines": [{"sku": "A", "quantity": 0, "unit_price": "10"}],
            },
            {
                "external_id": "B-7",
                "member": "anna",
                "currency": "EUR",
                "lines": [{"sku": "A", "quantity": 2, "unit_price": "5"}],
            },
        ]
    }
    response = api.post("/api/v1/orders/batch/", body, format="json")
    assert response.status_code == 200
    got = response.json()
    assert (got["created"], got["exists"], got["rejected"]) == (2, 0, 5)
    codes = [r["problem"]["code"] if r["problem"] else r["status"] for r in got["results"]]
    assert codes == [
        "created",
        "member_not_found",
        "currency_not_accepted",
        "unknown_currency",
        "order_exists",
        "validation_error",
        "created",
    ]
    assert got["results"][5]["problem"]["errors"][0]["field"] == "lines[0].quantity"
    assert got["results"][6]["order"]["points_earned"] == 10

    again = api.post("/api/v1/orders/batch/", body, format="json").json()  # idempotent per order
    assert (again["created"], again["exists"]) == (0, 3)  # B-1 (twice) and B-7
    assert Order.objects.count() == 2 and Transaction.objects.filter(kind="earn").count() == 2


def test_more_than_1000_orders_is_refused(api, member):
    order = {
        "external_id": "x",
        "member": "anna",
        "currency": "USD",
        "lines": [{"sku": "A", "quantity": 1, "unit_price": "1"}],
    }
    response = api.post("/api/v1/orders/batch/", {"orders": [order] * 1001}, format="json")
    assert (response.status_code, response.json()["code"]) == (400, "validation_error")


def test_a_batch_does_a_bounded_number_of_queries(program, member_factory, django_assert_max_num_queries):
    for m in range(50):
        member_factory(external_id=f"q{m}")
    drafts = [
        OrderDraft(
            external_id=f"Q-{n}",
            member=f"q{n % 50}",
            currency="USD",
            lines=(LineDraft(sku="A", quantity=1, unit_price=Decimal("20")),),
            placed_at=datetime(2026, 6, 1, tzinfo=UTC) + timedelta(minutes=n),
        )
        for n in range(200)
    ]
    # a few dozen: one read per kind of data, one bulk insert per table (SQLite splits them by its variable
    # limit), and at most one update per system-account shard touched (16)
    with django_assert_max_num_queries(60):
        results = orders_place_bulk(program=program, drafts=drafts, now=datetime(2026, 6, 2, tzinfo=UTC))
    assert {r.status for r in results} == {"created"}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_same_batch_twice_at_once_places_each_order_once(program, member_factory):
    from tests.concurrency import race

    for m in range(5):
        member_factory(external_id=f"r{m}")
    drafts = [
        OrderDraft(
            external_id=f"R-{n}",
            member=f"r{n % 5}",
            currency="USD",
            lines=(LineDraft(sku="A", quantity=1, unit_price=Decimal("20")),),
            placed_at=JUNE,
        )
        for n in range(20)
    ]
    results = race(lambda i: orders_place_bulk(program=program, drafts=drafts, now=JUNE), 2)
    assert all(isinstance(r, list) for r in results), results
    assert Order.objects.count() == 20 and Transaction.objects.filter(kind="earn").count() == 20
