"""Hot paths do a bounded number of queries, whatever the member's history."""

from datetime import timedelta

import pytest

from tests.conftest import JUNE
from tests.factories import place_order

pytestmark = pytest.mark.usefixtures("june")


@pytest.fixture
def history(program, member):
    for i in range(30):
        place_order(program, member, "20.00", placed_at=JUNE - timedelta(days=60 - i), external_id=f"old-{i}")
    return member


def test_order_placement_queries_are_bounded(api, history, django_assert_max_num_queries):
    body = {
        "external_id": "Q-1",
        "member": "anna",
        "currency": "EUR",
        "lines": [{"sku": f"S{i}", "category": "skincare", "quantity": 1, "unit_price": "9.99"} for i in range(20)],
    }
    with django_assert_max_num_queries(29):
        assert api.post("/api/v1/orders/", body, format="json", HTTP_IDEMPOTENCY_KEY="q").status_code == 201


def test_member_detail_queries_are_bounded(api, history, django_assert_max_num_queries):
    with django_assert_max_num_queries(11):
        assert api.get("/api/v1/members/anna/").status_code == 200


def test_transaction_history_queries_do_not_grow_with_the_page(api, history, django_assert_max_num_queries):
    with django_assert_max_num_queries(5):
        assert len(api.get("/api/v1/members/anna/transactions/?page_size=25").json()["results"]) == 25


def test_hold_queries_are_bounded(api, history, django_assert_max_num_queries):
    # (statements, not round trips: the lock and the reads under it go in one, see test_book)
    with django_assert_max_num_queries(21):
        assert api.post("/api/v1/redemptions/", {"member": "anna", "points": 500}, format="json").status_code == 201
