from datetime import UTC, datetime
from decimal import Decimal

import pytest

from loyalty.models import EarnRule, EarnRuleKind, Order
from loyalty.services.earning import LineDraft, OrderDraft
from loyalty.services.orders import order_quote
from tests.conftest import JUNE
from tests.factories import place_order

WORKED_EXAMPLE_LINES = [
    {"sku": "SERUM-1", "category": "skincare", "quantity": 1, "unit_price": "100.00", "discount": "10.00"},
    {"sku": "LIP-1", "category": "makeup", "quantity": 1, "unit_price": "20.00"},
]


def worked_example_body(member="anna", external_id="EX-1"):
    return {
        "external_id": external_id,
        "member": member,
        "currency": "EUR",
        "lines": WORKED_EXAMPLE_LINES,
        "tax": "25.20",
        "shipping": "5.00",
        "placed_at": JUNE.isoformat(),
    }


@pytest.fixture
def vib(member, tiers):
    member.tier = tiers["vib"]
    member.save(update_fields=["tier"])
    return member


def test_worked_example_earns_148_and_the_quote_says_so(api, vib, june):
    # Given a VIB member, an EUR order: 100.00 skincare - 10.00 discount + 20.00 other, tax and shipping
    body = worked_example_body()

    # When it is quoted, then placed
    quote = api.post("/api/v1/orders/quote/", body, format="json")
    placed = api.post("/api/v1/orders/", body, format="json")

    # Then both say 148 points: floor(110.00 EUR x 1.08 = 118.80 USD x 1.25)
    assert quote.status_code == 200, quote.json()
    assert quote.json()["points"] == 148
    assert quote.json()["qualifying_base"] == {"amount": "118.80", "currency": "USD"}
    assert placed.status_code == 201, placed.json()
    order = placed.json()
    assert order["points_earned"] == 148
    assert order["status"] == "pending"
    assert order["qualifying"] == {"amount": "110.00", "currency": "EUR"}
    assert order["spend_base"] == {"amount": "118.80", "currency": "USD"}
    assert order["available_at"].startswith("2026-07-15")
    assert sum(Decimal(item["points"]) for item in order["breakdown"]) == 148
    # and the points are pending for 30 days
    balances = api.get("/api/v1/members/anna/").json()["balances"]["PTS"]
    assert balances == {"available": 0, "pending": 148, "held": 0}


def test_quote_writes_nothing(program, vib):
    draft = OrderDraft(
        external_id="Q-1",
        member="anna",
        currency="USD",
        lines=(LineDraft(sku="A", quantity=1, unit_price=Decimal("50")),),
        placed_at=JUNE,
    )
    quote = order_quote(program=program, draft=draft, now=JUNE)
    assert quote.earning.points == 62  # floor(50 x 1.25)
    assert not Order.objects.exists()


def test_tax_shipping_and_gift_cards_do_not_earn(program, member):
    lines = [
        LineDraft(sku="GC", quantity=1, unit_price=Decimal("50"), gift_card=True),
        LineDraft(sku="A", quantity=2, unit_price=Decimal("10.50"), discount=Decimal("1.00")),
    ]
    order = place_order(program, member, lines=lines, tax=Decimal("9"), shipping=Decimal("7"), placed_at=JUNE)
    assert order.qualifying.amount == Decimal("20.00")
    assert order.points_earned == 20


@pytest.mark.parametrize(
    ("currency", "price", "points"),
    [
        ("USD", "99.99", 99),
        ("EUR", "10.00", 10),
        ("GBP", "10.00", 12),
        ("CAD", "10.00", 7),
        ("PLN", "100.00", 25),
        ("JPY", "10000", 67),
    ],
)
def test_each_accepted_currency_converts_at_the_snapshot(program, member, currency, price, points):
    order = place_order(program, member, price, currency=currency, placed_at=JUNE)
    assert order.points_earned == points


def test_the_order_keeps_its_fx_snapshot_when_staff_change_the_rate(program, member):
    order = place_order(program, member, "100.00", currency="EUR", placed_at=JUNE)
    program.fx_rates.filter(currency="EUR").update(rate=Decimal("2"))
    order.refresh_from_db()
    assert order.fx_rate == Decimal("1.08")
    assert order.spend_base.amount == Decimal("108.00")


def test_spring_savings_multiplies_by_tier(program, member, tiers):
    # Given the Spring Savings Event (April 1-10): Insider 2x, VIB 3x, Rouge 4x
    april = datetime(2026, 4, 5, tzinfo=UTC)
    assert place_order(program, member, "100.00", placed_at=april).points_earned == 200
    member.tier = tiers["vib"]
    member.save()
    assert place_order(program, member, "100.00", placed_at=april).points_earned == 375  # 100 x 1.25 x 3
    # and outside it, nothing extra
    assert place_order(program, member, "100.00", placed_at=datetime(2026, 4, 11, tzinfo=UTC)).points_earned == 125


def test_skincare_bonus_in_its_window_adds_per_dollar(program, member):
    may = datetime(2026, 5, 10, tzinfo=UTC)
    lines = [
        LineDraft(sku="S", category="skincare", quantity=1, unit_price=Decimal("30")),
        LineDraft(sku="M", category="makeup", quantity=1, unit_price=Decimal("20")),
    ]
    order = place_order(program, member, lines=lines, placed_at=may)
    assert order.points_earned == 50 + 60  # base 50, +2 per skincare dollar


def test_currency_override_and_first_order_bonus_are_rules_too(program, member):
    EarnRule.objects.create(
        program=program, name="2 per dollar on GBP orders", kind=EarnRuleKind.BASE_RATE, currency="GBP", rate=2
    )
    EarnRule.objects.create(program=program, name="Welcome", kind=EarnRuleKind.FIRST_ORDER_BONUS, points=100)
    first = place_order(program, member, "10.00", currency="GBP", placed_at=JUNE)
    second = place_order(program, member, "10.00", currency="GBP", placed_at=JUNE)
    assert first.points_earned == 25 + 100  # floor(12.70 x 2) + welcome
    assert second.points_earned == 25


def test_points_are_rounded_down_once_per_order(program, member):
    lines = [LineDraft(sku=f"S{i}", quantity=1, unit_price=Decimal("0.60")) for i in range(5)]
    assert place_order(program, member, lines=lines, placed_at=JUNE).points_earned == 3  # floor(3.00), not 5 x 0
