"""Property: retention + churn = 100 whenever the activity window is at least the period, over
random order histories (placed through the bulk ingestion service) and random periods."""

from datetime import date, timedelta
from decimal import Decimal
from itertools import count

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loyalty.selectors.metrics import Period, metrics_summary
from loyalty.services.earning import LineDraft, OrderDraft
from loyalty.services.ingestion import orders_place_bulk
from loyalty.services.members import member_enroll
from loyalty.services.programs import program_create
from tests.metrics.conftest import at

ORIGIN = at(2024, 1, 1)
programs = count(1)

histories = st.lists(st.lists(st.integers(min_value=0, max_value=900), min_size=1, max_size=4), min_size=1, max_size=7)


@pytest.mark.django_db
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    history=histories,
    start_day=st.integers(min_value=200, max_value=800),
    days=st.integers(min_value=1, max_value=200),
    extra=st.integers(min_value=0, max_value=200),
)
def test_retention_plus_churn_is_100_when_the_window_covers_the_period(history, start_day, days, extra):
    program = program_create(code=f"prop{next(programs)}", name="Property", activity_window_days=days + extra)
    drafts = []
    for i, order_days in enumerate(history):
        member_enroll(program=program, external_id=f"m{i}", email=f"m{i}@example.com", now=ORIGIN)
        for j, day in enumerate(sorted(order_days)):
            drafts.append(
                OrderDraft(
                    external_id=f"o{i}-{j}",
                    member=f"m{i}",
                    currency="USD",
                    lines=(LineDraft(sku="S", category="c", quantity=1, unit_price=Decimal("10.00")),),
                    placed_at=ORIGIN + timedelta(days=day, hours=j),
                )
            )
    drafts.sort(key=lambda d: d.placed_at)
    orders_place_bulk(program=program, drafts=drafts, now=ORIGIN + timedelta(days=1000))
    start = date(2024, 1, 1) + timedelta(days=start_day)
    s = metrics_summary(program=program, period=Period(start, start + timedelta(days=days), "UTC"))

    if s["customers_at_start"]:
        assert s["retention_rate"] + s["churn_rate"] == pytest.approx(100.0, abs=0.011)
        assert s["retained_customers"] + s["lost_customers"] == s["customers_at_start"]
    assert s["customers_at_end"] == s["retained_customers"] + s["new_customers"] + s["reactivated_customers"]
