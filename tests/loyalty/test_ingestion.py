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


@pytest.mark.parametrize("copy", [False, True], ids=["as-is", "every-insert-by-copy"])
def test_bulk_gives_exactly_what_one_by_one_gives(program, member_factory, staff, monkeypatch, copy):
    if copy:  # rows_insert takes its COPY path (PostgreSQL) for lists of any length
        monkeypatch.setattr("loyalty.services.rows.MIN_ROWS", 1)
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


# --- the batch's lean paths give what the serializers give ------------------------------------------
PLAIN = {
    "external_id": "L-1",
    "member": "anna",
    "currency": "USD",
    "lines": [
        {"sku": "SERUM-1", "category": "skincare", "quantity": 1, "unit_price": "42.00", "discount": "2.00"},
        {"sku": "LIP-7", "category": "makeup", "quantity": 2, "unit_price": "18.50"},
    ],
    "tax": "6.20",
    "shipping": "4.99",
}
ORDER_VARIANTS = {  # field -> values to put there (or MISSING to leave it out)
    "external_id": [
        "x",
        " x",
        "x ",
        "a/b",
        "quote",
        "batch",
        "",
        " ",
        7,
        7.5,
        True,
        None,
        "é",
        "x\x00",
        "\ud800",
        "x" * 128,
        "x" * 129,
    ],
    "member": ["m", " m", "", 5, None, "m\t", "ü", "m" * 129],
    "currency": ["EUR", "eur", " EUR", "XXX", "US", "JPY", 1, None, "CHF"],
    "lines": [[], "x", None, {}, [1], [{"sku": "A", "quantity": 1, "unit_price": "1"}] * 501],
    "shipping": [
        "0",
        "0.00",
        "-1",
        "1.005",
        "1e2",
        "NaN",
        "Infinity",
        "-0",
        3,
        3.5,
        True,
        None,
        "",
        "x",
        {"amount": "1", "currency": "USD"},
        {"amount": "1", "currency": "usd"},
        {"amount": "1", "currency": "EUR"},
        {"amount": "1", "currency": ""},
        {"amount": "1"},
        {"currency": "USD"},
        {"amount": "1", "currency": "XXX"},
        "999999999999",
        "999999999999.01",
        " 1",
        "1_000",
    ],
    "tax": ["1.50", {"amount": 2}, None, "1.001"],
    "placed_at": [
        "2026-06-01T10:00:00Z",
        "2026-06-01T10:00:00+02:00",
        "2026-06-01T10:00:00",
        "2026-06-01",
        "2099-01-01T00:00:00Z",
        "yesterday",
        None,
        "",
        12,
    ],
    "payment_fingerprint": ["", "fp", " ", " fp", None, "x" * 129],
    "device_id": ["", "d", None, 3],
    "metadata": [
        {},
        {"a": 1},
        [],
        None,
        "x",
        {"a": {"b": {"c": {"d": 1}}}},
        {"a": {"b": {"c": {"d": {"e": 1}}}}},
        {"a": "x" * 5000},
        {"a": "\x00"},
        {1: 2},
    ],
    "unknown": ["ignored"],
}
LINE_VARIANTS = {
    "sku": ["A", " A", "", None, 5, "x" * 64, "x" * 65, "ß"],
    "category": ["", " ", "makeup", None, 3, "x" * 65],
    "quantity": [1, 100_000, 100_001, 0, -1, "2", 2.0, True, None],
    "unit_price": [
        "0",
        "0.01",
        "1",
        1,
        1.5,
        "1.5",
        "-1",
        "1.001",
        {"amount": "3", "currency": "USD"},
        {"amount": "3", "currency": "EUR"},
        None,
        "abc",
        "1e20",
    ],
    "discount": ["0", "100", "42.00", "42.01", {"amount": "1"}, None, "-1"],
    "gift_card": [True, False, "true", 1, 0, None],
    "unknown": [1],
}
MISSING = object()


def lean_cases():
    import copy

    yield PLAIN
    for field, values in ORDER_VARIANTS.items():
        for value in [*values, MISSING]:
            body = copy.deepcopy(PLAIN)
            body.pop(field, None) if value is MISSING else body.__setitem__(field, value)
            yield body
    for field, values in LINE_VARIANTS.items():
        for value in [*values, MISSING]:
            body = copy.deepcopy(PLAIN)
            line = body["lines"][0]
            line.pop(field, None) if value is MISSING else line.__setitem__(field, value)
            yield body
    yield {
        **PLAIN,
        "currency": "JPY",
        "tax": "6",
        "shipping": "5",
        "lines": [{"sku": "A", "quantity": 1, "unit_price": "300"}],
    }
    yield {**PLAIN, "currency": "JPY", "lines": [{"sku": "A", "quantity": 1, "unit_price": "300"}]}  # 6.20 JPY
    yield ["not", "an", "object"]
    yield "x"
    yield None


def serializer_answer(serializer, body):
    from rest_framework.exceptions import ValidationError

    from loyalty.errors import LoyaltyError

    try:
        return repr(serializer.run_validation(body)["draft"])
    except ValidationError as exc:
        return ("invalid", repr(exc.detail))
    except LoyaltyError as exc:
        return (exc.code, exc.message)


def test_the_lean_validation_gives_what_the_serializer_gives():
    from loyalty.api.orders import OrderIn, OrderLean, orders_validate

    serializer = OrderIn()
    lean = OrderLean(serializer)
    cases = list(lean_cases())
    read = 0
    for body in cases:
        draft = lean.draft(body)
        if draft is not None:  # what it decides, it decides as the serializer does
            assert repr(draft) == serializer_answer(serializer, body), body
            read += 1
    assert lean.draft(PLAIN) is not None  # the shape every checkout sends takes the lean path
    assert read >= 50  # the equivalence above is exercised on many bodies
    # and the batch's validation answers every body as the serializer alone would
    for body, (draft, exc) in zip(cases, orders_validate(cases), strict=True):
        got = repr(draft) if exc is None else serializer_answer(serializer, body)
        assert got == serializer_answer(serializer, body), body


def test_a_batch_shows_a_new_order_as_get_order_shows_it(api, program, member, staff):
    points_adjust(member=member, points=1000, reason="funds", staff_user=staff, now=JUNE)
    redemption_hold(program=program, member_external_id="anna", points=500, order_external_id="N-3", ttl_seconds=3600)
    lines = [
        {"sku": "SERUM-1", "category": "skincare", "quantity": 3, "unit_price": "42.10", "discount": "2.05"},
        {"sku": "GIFT", "quantity": 1, "unit_price": {"amount": "50", "currency": "EUR"}, "gift_card": True},
        {"sku": "LIP-7", "category": "makeup", "quantity": 2, "unit_price": 18},
    ]
    orders = [
        {"external_id": "N-1", "member": "anna", "currency": "EUR", "lines": lines, "tax": "6.20", "shipping": "4.99"},
        {
            "external_id": "N-2",
            "member": "anna",
            "currency": "JPY",
            "lines": [{"sku": "A", "quantity": 1, "unit_price": "3000"}],
            "placed_at": "2026-01-02T03:04:05.678901+01:00",
            "metadata": {"channel": "app"},
        },
        {
            "external_id": "N-3",
            "member": "anna",
            "currency": "USD",
            "lines": [{"sku": "B", "quantity": 1, "unit_price": "400"}],
        },
        {
            "external_id": "N-4",
            "member": "anna",
            "currency": "gbp",
            "lines": [{"sku": "C", "quantity": 1, "unit_price": 9.99}],
        },
    ]
    batch = api.post("/api/v1/orders/batch/", {"orders": orders}, format="json").json()
    assert [r["status"] for r in batch["results"]] == ["created"] * 4
    for result in batch["results"]:
        assert result["order"] == api.get(f"/api/v1/orders/{result['external_id']}/").json(), result["external_id"]
    assert {r["order"]["status"] for r in batch["results"]} == {"pending", "completed"}
    assert batch["results"][2]["order"]["points_payment"] == {"amount": "10.00", "currency": "USD"}

    again = api.post("/api/v1/orders/batch/", {"orders": orders}, format="json").json()  # shown by OrderOut
    assert [r["status"] for r in again["results"]] == ["exists"] * 4
    assert [r["order"] for r in again["results"]] == [r["order"] for r in batch["results"]]
