"""The summary's customer metrics from real order histories: the worked examples of
docs/metrics.md, CRR + churn = 100, the empty program, currencies, refunds."""

from datetime import date, timedelta
from decimal import Decimal

import pytest

from loyalty.models import Program
from loyalty.selectors.metrics import metrics_summary
from loyalty.services.orders import order_refund
from tests.metrics.conftest import at, period

MAY = (date(2026, 5, 1), date(2026, 6, 1))


def test_worked_example_s100_n50_e125_gives_75_percent_and_25_lost_is_25_percent(program, customers):
    # Given 100 customers active on 1 May 2026 (an order in the year before), 25 of whom last
    # ordered in May 2025 (so they lapse during May 2026), and 50 whose first order is in May 2026
    customers([(f"kept-{i}", [at(2025, 9, 1) + timedelta(hours=i)], "40.00") for i in range(75)])
    customers([(f"lost-{i}", [at(2025, 5, 10) + timedelta(hours=i)], "40.00") for i in range(25)])
    customers([(f"new-{i}", [at(2026, 5, 3) + timedelta(hours=i)], "40.00") for i in range(50)])

    # When the summary of May 2026 is computed
    s = metrics_summary(program=program, period=period(program, *MAY))

    # Then S = 100, N = 50, E = 125 and the retention rate is 75 %; 25 of 100 lost is 25 % churn
    assert (s["customers_at_start"], s["new_customers"], s["customers_at_end"]) == (100, 50, 125)
    assert s["retention_rate"] == 75.0
    assert (s["lost_customers"], s["churn_rate"]) == (25, 25.0)


def test_two_hundred_customers_fifty_lost_is_25_percent_churn(program, customers):
    customers([(f"stay-{i}", [at(2025, 8, 1) + timedelta(hours=i), at(2026, 5, 20)], "25.00") for i in range(150)])
    customers([(f"gone-{i}", [at(2025, 5, 2) + timedelta(hours=i)], "25.00") for i in range(50)])

    s = metrics_summary(program=program, period=period(program, *MAY))

    assert s["customers_at_start"] == 200
    assert (s["lost_customers"], s["churn_rate"], s["retention_rate"]) == (50, 25.0, 75.0)
    assert s["repeat_purchase_rate"] == 0.0  # one order each in May
    assert (s["orders"], s["buyers"], s["purchase_frequency"]) == (150, 150, 1.0)


def test_retention_plus_churn_is_100_with_a_window_at_least_the_period(program, customers):
    # A mixed history: kept, lost, new (some lapsing again within a long period), and lapsed
    # customers who came back (reactivated: neither retained nor new).
    customers(
        [
            ("a", [at(2025, 3, 1), at(2025, 11, 1), at(2026, 2, 1)], "10.00"),
            ("b", [at(2025, 6, 1)], "10.00"),
            ("c", [at(2024, 1, 5), at(2026, 1, 10)], "10.00"),  # lapsed in 2025, back in January 2026
            ("d", [at(2026, 1, 15), at(2026, 3, 1)], "10.00"),
            ("e", [at(2025, 12, 24)], "10.00"),
            ("f", [at(2025, 4, 1), at(2025, 4, 2)], "10.00"),
        ]
    )
    for window in (90, 181, 365, 400):
        program.activity_window_days = window
        for start, end in ((date(2026, 1, 1), date(2026, 3, 31)), (date(2025, 10, 1), date(2026, 1, 1))):
            if (end - start).days > window:
                continue
            s = metrics_summary(program=program, period=period(program, start, end))
            if s["customers_at_start"]:
                assert s["retention_rate"] + s["churn_rate"] == pytest.approx(100.0), (window, start, s)
    program.activity_window_days = 181
    s = metrics_summary(program=program, period=period(program, date(2026, 1, 1), date(2026, 3, 31)))
    assert s["reactivated_customers"] == 1  # c
    assert s["new_customers"] == 1  # d


def test_an_empty_program_returns_every_metric_without_error(db):
    program = Program.objects.create(code="empty", name="Empty", base_currency="EUR")
    s = metrics_summary(program=program, period=period(program, *MAY))
    for name in (
        "customers_at_start", "customers_at_end", "new_customers", "retention_rate", "churn_rate",
        "repeat_purchase_rate", "average_order_value", "purchase_frequency", "average_lifespan_years", "clv",
        "redemption_rate", "breakage", "points_liability", "active_members", "referral_rate", "nps", "csat",
        "ces", "survey_response_rate", "tier_mix", "tier_movements",
    ):  # fmt: skip
        assert name in s, name
    assert s["customers_at_start"] == s["customers_at_end"] == s["new_customers"] == 0
    assert s["retention_rate"] is None and s["average_order_value"] is None and s["nps"] is None
    assert s["revenue"] == {"amount": "0.00", "currency": "EUR"}
    assert s["points_liability"] == [] and s["tier_mix"] == []


def test_eur_and_usd_orders_agree_once_converted(program, customers, django_db_blocker):
    # 100.00 EUR at the demo's 1.08 is 108.00 USD
    customers([("eur", [at(2026, 5, 5), at(2026, 5, 9)], "100.00")], currency="EUR")
    eur = metrics_summary(program=program, period=period(program, *MAY))
    customers([("usd", [at(2026, 5, 5, 13), at(2026, 5, 9, 13)], "108.00")], currency="USD")
    both = metrics_summary(program=program, period=period(program, *MAY))

    assert eur["average_order_value"] == {"amount": "108.00", "currency": "USD"}
    assert both["average_order_value"] == eur["average_order_value"]
    assert both["revenue"] == {"amount": "432.00", "currency": "USD"}
    assert both["purchase_frequency"] == eur["purchase_frequency"] == 2.0
    assert both["points_earned"] == 2 * eur["points_earned"]


def test_refunds_lower_revenue_and_average_order_value(program, customers):
    [member] = customers([("r", [at(2026, 5, 5), at(2026, 5, 6)], "100.00")])
    before = metrics_summary(program=program, period=period(program, *MAY))
    order = member.orders.order_by("placed_at").first()
    order_refund(
        program=program,
        order_external_id=order.external_id,
        refund_external_id="R1",
        amount=Decimal("40.00"),
        now=at(2026, 5, 7),
    )
    after = metrics_summary(program=program, period=period(program, *MAY))

    assert before["revenue"]["amount"] == "200.00" and before["average_order_value"]["amount"] == "100.00"
    assert after["revenue"]["amount"] == "160.00" and after["average_order_value"]["amount"] == "80.00"
    assert after["orders"] == 2


def test_clv_worked_example_aov_50_four_a_year_three_years_is_600(program, customers):
    from datetime import UTC, datetime

    from djmoney.money import Money

    # Given a churned customer whose first and last orders are three years apart (365.25-day years)
    first = datetime(2021, 6, 1, tzinfo=UTC)
    customers([("gone", [first, first + timedelta(days=3 * 365.25)], "50.00")])
    # and a customer ordering 50 USD four times in the year to the end of May 2026
    customers([("buyer", [at(2025, 7, 1), at(2025, 10, 1), at(2026, 1, 5), at(2026, 5, 5)], "50.00")])

    s = metrics_summary(program=program, period=period(program, *MAY))

    assert s["average_order_value"]["amount"] == "50.00" and s["purchase_frequency_per_year"] == 4.0
    assert s["average_lifespan_years"] == 3.0
    assert s["clv"] == {"amount": "600.00", "currency": "USD"}
    program.acquisition_cost = Money("100.00", "USD")
    program.save()
    assert metrics_summary(program=program, period=period(program, *MAY))["clv"]["amount"] == "500.00"


def test_points_referrals_and_tiers_in_the_summary(program, customers, member_factory):
    from loyalty.models import Transaction, TransactionKind
    from loyalty.services.members import member_enroll
    from referrals.models import ReferralCode

    # Given a customer who earns 1,200 points (Rouge at the 1,000 USD crossing) and a referred member
    [big] = customers([("big", [at(2026, 5, 3)], "1200.00")])
    code = ReferralCode.objects.get(member=big, retired_at__isnull=True).code
    member_enroll(program=program, external_id="friend", email="f@example.com", referral_code=code, now=at(2026, 5, 10))
    member_enroll(program=program, external_id="alone", email="a@example.com", now=at(2026, 5, 11))

    s = metrics_summary(program=program, period=period(program, *MAY))

    earned = Transaction.objects.filter(kind=TransactionKind.EARN).count()
    assert earned == 1 and s["points_earned"] == 1200 and s["points_redeemed"] == 0
    assert s["redemption_rate"] == 0.0 and s["breakage"] == 0.0
    assert s["points_liability"] == [
        {"currency": "PTS", "points": 1200, "value": {"amount": "24.00", "currency": "USD"}}
    ]  # 2 cents a point
    assert (s["new_members"], s["referred_members"], s["referral_rate"]) == (2, 1, 50.0)
    assert s["tier_movements"]["upgrades"] == 1
    mix = {t["tier"]: t["members"] for t in s["tier_mix"]}
    assert mix == {"insider": 2, "vib": 0, "rouge": 1}
    assert (s["active_member_count"], s["members"]) == (1, 3)
