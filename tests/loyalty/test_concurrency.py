"""Races on real PostgreSQL transactions: no double spend, no double earn, under any interleaving."""

from collections import Counter
from datetime import timedelta

import pytest

from loyalty.models import Order, Redemption, RedemptionStatus, Transaction, TransactionKind
from loyalty.selectors.members import member_balances
from loyalty.services.access import api_key_create
from loyalty.services.settlement import points_mature
from tests.concurrency import race
from tests.conftest import JUNE, CheckedClient
from tests.factories import place_order
from tests.openapi import schema

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def client_for(program):
    schema()  # build the schema once, before threads share it
    client = CheckedClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(program=program, name='race')[1]}")
    return client


def test_20_concurrent_holds_against_points_for_3_give_exactly_3(program, member):
    # Given 1,500 available points: enough for three holds of 500
    place_order(program, member, "1500.00", placed_at=JUNE - timedelta(days=40))
    clients = [client_for(program) for _ in range(20)]

    # When 20 holds arrive at once
    responses = race(
        lambda i: clients[i].post("/api/v1/redemptions/", {"member": "anna", "points": 500}, format="json"), 20
    )

    # Then exactly 3 are held, 17 refused, and no balance is negative
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 3, 422: 17}, statuses
    assert {r.json()["code"] for r in responses if r.status_code == 422} == {"insufficient_points"}
    assert Redemption.objects.filter(status=RedemptionStatus.HELD).count() == 3
    from django.utils import timezone

    assert member_balances(member=member, now=timezone.now())["PTS"] == {"available": 0, "pending": 0, "held": 1500}


def test_the_same_order_posted_10_times_at_once_with_one_key_earns_once(program, member):
    clients = [client_for(program) for _ in range(10)]
    body = {
        "external_id": "RACE-1",
        "member": "anna",
        "currency": "USD",
        "lines": [{"sku": "A", "quantity": 1, "unit_price": "100.00"}],
    }

    responses = race(
        lambda i: clients[i].post("/api/v1/orders/", body, format="json", HTTP_IDEMPOTENCY_KEY="race-key"), 10
    )

    assert [r.status_code for r in responses] == [201] * 10
    assert len({r.content for r in responses}) == 1  # every retry got the first answer
    assert sum(r.get("Idempotent-Replayed") == "true" for r in responses) == 9
    assert Order.objects.count() == 1
    assert Transaction.objects.filter(kind=TransactionKind.EARN).count() == 1


def test_the_same_hold_posted_10_times_at_once_with_one_key_holds_once(program, member):
    # Given 1,500 available points, and a checkout that retries its hold 10 times at once
    place_order(program, member, "1500.00", placed_at=JUNE - timedelta(days=40))
    clients = [client_for(program) for _ in range(10)]
    body = {"member": "anna", "points": 500, "order_external_id": "C-1"}

    # When the 10 copies race (each runs until it finds the first one's answer under the key)
    responses = race(
        lambda i: clients[i].post("/api/v1/redemptions/", body, format="json", HTTP_IDEMPOTENCY_KEY="hold-key"), 10
    )

    # Then one hold is made and every copy answers with it
    assert [r.status_code for r in responses] == [201] * 10
    assert len({r.content for r in responses}) == 1
    assert sum(r.get("Idempotent-Replayed") == "true" for r in responses) == 9
    assert Redemption.objects.count() == 1
    from django.utils import timezone

    assert member_balances(member=member, now=timezone.now())["PTS"] == {"available": 1000, "pending": 0, "held": 500}


def test_a_refused_request_raced_with_one_key_is_refused_once_and_replayed(program, member):
    # Given 400 points: not enough for a hold of 500
    place_order(program, member, "400.00", placed_at=JUNE - timedelta(days=40))
    clients = [client_for(program) for _ in range(8)]
    body = {"member": "anna", "points": 500}

    responses = race(
        lambda i: clients[i].post("/api/v1/redemptions/", body, format="json", HTTP_IDEMPOTENCY_KEY="no-key"), 8
    )

    assert [r.status_code for r in responses] == [422] * 8
    assert len({r.content for r in responses}) == 1
    assert sum(r.get("Idempotent-Replayed") == "true" for r in responses) == 7
    assert not Redemption.objects.exists()


def test_the_same_order_posted_10_times_at_once_without_a_key_earns_once(program, member):
    clients = [client_for(program) for _ in range(10)]
    body = {
        "external_id": "RACE-2",
        "member": "anna",
        "currency": "USD",
        "lines": [{"sku": "A", "quantity": 1, "unit_price": "100.00"}],
    }

    responses = race(lambda i: clients[i].post("/api/v1/orders/", body, format="json"), 10)

    assert Counter(r.status_code for r in responses) == {201: 1, 409: 9}
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"order_exists"}
    assert Transaction.objects.filter(kind=TransactionKind.EARN).count() == 1


def test_orders_for_many_members_at_once_do_not_deadlock_on_system_accounts(program, member_factory):
    members = [member_factory(external_id=f"m{i}") for i in range(16)]
    clients = [client_for(program) for _ in range(16)]

    def two_orders(i):
        for n in range(2):
            body = {
                "external_id": f"P-{i}-{n}",
                "member": members[i].external_id,
                "currency": "EUR",
                "lines": [{"sku": "A", "quantity": 1, "unit_price": "10.00"}],
            }
            assert clients[i].post("/api/v1/orders/", body, format="json").status_code == 201
        return True

    assert race(two_orders, 16) == [True] * 16
    assert Order.objects.count() == 32


def test_maturation_job_running_twice_at_once_posts_once(program, member_factory):
    for i in range(30):
        place_order(program, member_factory(external_id=f"j{i}"), "10.00", placed_at=JUNE)
    results = race(lambda i: points_mature(JUNE + timedelta(days=31)), 2)
    assert all(isinstance(r, int) for r in results), results
    assert Transaction.objects.filter(kind=TransactionKind.MATURE).count() == 30
