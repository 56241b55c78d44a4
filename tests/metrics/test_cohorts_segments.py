"""Cohort retention on a hand-built history, RFM segments and the at-risk list."""

from datetime import UTC, date, datetime, timedelta

from loyalty.selectors.metrics import (
    at_risk_count,
    at_risk_members,
    cohort_matrix,
    cohort_period,
    segment_counts,
    segment_members,
)
from loyalty.services.orders import order_cancel
from tests.metrics.conftest import at, period


def test_cohort_matrix_of_six_members_over_four_months_matches_the_hand_computed_table(program, customers):
    # Given six members' orders from January to April 2026 (a cancelled order never counts)
    members = customers(
        [
            ("m1", [at(2026, 1, 3), at(2026, 2, 3), at(2026, 3, 3), at(2026, 4, 3)], "20.00"),
            ("m2", [at(2026, 1, 10), at(2026, 3, 10)], "20.00"),
            ("m3", [at(2026, 1, 20), at(2026, 4, 20)], "20.00"),
            ("m4", [at(2026, 2, 1), at(2026, 2, 14), at(2026, 4, 1)], "20.00"),
            ("m5", [at(2026, 2, 28), at(2026, 3, 1)], "20.00"),
            ("m6", [at(2026, 3, 31, 23)], "20.00"),
        ]
    )
    m3 = members[2]
    order_cancel(program=program, order_external_id=m3.orders.order_by("-placed_at").first().external_id)

    # When the cohorts of January to April are computed
    matrix = cohort_matrix(program=program, period=period(program, date(2026, 1, 1), date(2026, 5, 1)))

    # Then the table is the one computed by hand
    assert matrix["months"] == ["2026-01", "2026-02", "2026-03", "2026-04"]
    table = {c["cohort"]: (c["size"], c["active"], c["retention"]) for c in matrix["cohorts"]}
    assert table == {
        "2026-01": (3, [3, 1, 2, 1], [100.0, 33.33, 66.67, 33.33]),
        "2026-02": (2, [2, 1, 1, None], [100.0, 50.0, 50.0, None]),
        "2026-03": (1, [1, 0, None, None], [100.0, 0.0, None, None]),
        "2026-04": (0, [0, None, None, None], [None, None, None, None]),
    }


def test_cohorts_use_the_program_time_zone_and_exclude_earlier_customers(program, customers):
    program.timezone = "Europe/Warsaw"
    program.save()
    customers([("late", [datetime(2026, 1, 31, 23, 30, tzinfo=UTC)], "20.00")])  # 1 February in Warsaw
    customers([("old", [at(2025, 12, 1), at(2026, 2, 2)], "20.00")])  # a December 2025 customer
    matrix = cohort_matrix(program=program, period=period(program, date(2026, 1, 1), date(2026, 3, 1)))
    assert [(c["cohort"], c["size"]) for c in matrix["cohorts"]] == [("2026-01", 0), ("2026-02", 1)]


def test_cohort_periods_are_whole_months(program):
    p = cohort_period(program, date(2026, 1, 15), date(2026, 4, 2))
    assert (p.start_date, p.end_date) == (date(2026, 1, 1), date(2026, 5, 1))
    p = cohort_period(program, date(2026, 1, 1), date(2026, 4, 1))
    assert (p.start_date, p.end_date) == (date(2026, 1, 1), date(2026, 4, 1))
    p = cohort_period(program, None, None, now=at(2026, 6, 15))
    assert (p.start_date, p.end_date) == (date(2025, 7, 1), date(2026, 7, 1))


def test_rfm_segments_rank_members_and_list_them(program, customers):
    now = at(2026, 6, 1)
    recent = [now - timedelta(days=d) for d in (5, 40, 80, 120, 160, 200)]
    customers(
        [
            ("champ", recent, "300.00"),  # recent, frequent, big
            ("newbie", [now - timedelta(days=3)], "20.00"),  # one recent order
            ("faded", [now - timedelta(days=d) for d in (300, 330, 360, 390, 420, 450)], "300.00"),
            ("gone", [now - timedelta(days=700)], "10.00"),
            ("mid", [now - timedelta(days=60), now - timedelta(days=90)], "60.00"),
        ]
    )
    counts = {s["segment"]: s["members"] for s in segment_counts(program=program, as_of=now)}
    assert sum(counts.values()) == 5
    assert counts["champions"] == 1 and counts["new"] == 1 and counts["at_risk"] == 1 and counts["lost"] == 1
    listed = segment_members(program=program, as_of=now, segment="champions", after=None, limit=10)
    assert [m["member"] for m in listed] == ["champ"]
    assert listed[0]["orders"] == 6 and listed[0]["spend"] == {"amount": "1800.00", "currency": "USD"}


def test_at_risk_is_over_twice_the_usual_gap_or_the_median_gap_for_one_order_members(program, customers):
    now = at(2026, 6, 1)
    customers(
        [
            # every 30 days, last 70 days ago: 70 > 2 x 30 -> at risk
            ("late", [now - timedelta(days=d) for d in (130, 100, 70)], "20.00"),
            # every 30 days, last 50 days ago: fine
            ("fine", [now - timedelta(days=d) for d in (110, 80, 50)], "20.00"),
            # every 40 days (median of 30, 30, 40 is 30 -> one-order threshold 60 days)
            ("slow", [now - timedelta(days=d) for d in (100, 60, 20)], "20.00"),
            ("once-old", [now - timedelta(days=61)], "20.00"),  # 61 > 2 x 30 -> at risk
            ("once-new", [now - timedelta(days=59)], "20.00"),
            ("lapsed", [now - timedelta(days=400)], "20.00"),  # not active any more: not "at risk"
        ]
    )
    assert at_risk_count(program=program, as_of=now) == 2
    rows = at_risk_members(program=program, as_of=now, after=None, limit=10)
    assert [r["member"] for r in rows] == ["once-old", "late"]
    late = rows[1]
    assert (late["orders"], late["usual_gap_days"], late["days_since_last_order"]) == (3, 30.0, 70.0)
    assert rows[0]["usual_gap_days"] == 30.0
    # keyset pages
    page = at_risk_members(program=program, as_of=now, after=rows[0]["id"], limit=10)
    assert [r["member"] for r in page] == ["late"]
