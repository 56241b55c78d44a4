"""Referral codes with two-sided rewards and fraud checks (demo: 500 / 250 points, first order of
at least 25 USD once matured, at most 10 rewarded referrals per referrer a month)."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from loyalty.models import Transaction, TransactionKind
from loyalty.selectors.members import member_balances
from loyalty.services.members import member_enroll
from loyalty.services.orders import order_cancel, order_refund
from referrals.models import Referral, ReferralCode, ReferralStatus, RejectionReason
from referrals.services import (
    InvalidReferralCode,
    email_normalize,
    referral_approve,
    referral_code_regenerate,
    referral_hold,
    referral_reject,
    referrals_qualify,
)
from tests.concurrency import race
from tests.conftest import JUNE
from tests.factories import place_order

MATURE = JUNE + timedelta(days=31)


def code_of(member):
    return ReferralCode.objects.get(member=member, retired_at__isnull=True).code


def enroll(program, referrer, external_id="friend", email=None, **context):
    return member_enroll(
        program=program,
        external_id=external_id,
        email=email or f"{external_id}@example.org",
        first_name="Bea",
        last_name="Nowak",
        referral_code=code_of(referrer).lower(),
        referral_context=context,
        now=JUNE - timedelta(days=1),
    )


def pts(member, now=MATURE):
    return member_balances(member=member, now=now)["PTS"]["available"]


def test_happy_path_end_to_end_rewards_both_sides_once(api, program, member, june):
    # Given a friend who enrolls through the API with anna's code and orders 30 USD
    body = {
        "external_id": "friend",
        "email": "bea@example.org",
        "first_name": "Bea",
        "last_name": "Nowak",
        "referral_code": code_of(member).lower(),
    }
    assert api.post("/api/v1/members/", body, format="json").status_code == 201
    order = {
        "external_id": "F-1",
        "member": "friend",
        "currency": "USD",
        "lines": [{"sku": "A", "quantity": 1, "unit_price": "30.00"}],
    }
    assert api.post("/api/v1/orders/", order, format="json").status_code == 201
    assert Referral.objects.get().status == ReferralStatus.PENDING

    # When the periodic jobs run 31 days later, twice
    as_of = (JUNE + timedelta(days=31)).isoformat()
    call_command("run_periodic_jobs", "--as-of", as_of, stdout=StringIO())
    call_command("run_periodic_jobs", "--as-of", as_of, stdout=StringIO())

    # Then both sides were rewarded, once
    referral = Referral.objects.get()
    assert (referral.status, referral.referrer_points, referral.referee_points) == ("qualified", 500, 250)
    assert Transaction.objects.filter(kind=TransactionKind.REFERRAL).count() == 2
    assert pts(member) == 500
    assert pts(referral.referee) == 30 + 250
    listed = api.get("/api/v1/members/anna/referrals/").json()["results"]
    assert listed == [
        {
            "referee": "Bea N.",
            "status": "qualified",
            "reason": "",
            "reward_points": 500,
            "created_at": listed[0]["created_at"],
            "decided_at": listed[0]["decided_at"],
        }
    ]


def test_nothing_before_the_return_window_ends(program, member):
    friend = enroll(program, member)
    place_order(program, friend, "30.00", placed_at=JUNE)
    assert referrals_qualify(JUNE + timedelta(days=29)) == 0
    assert Referral.objects.get().status == ReferralStatus.PENDING


def test_the_first_order_of_at_least_the_minimum_counts(program, member):
    # Decision (README): a smaller first order does not spoil the referral; the first order of at
    # least 25 USD is the one that must mature.
    friend = enroll(program, member)
    place_order(program, friend, "20.00", placed_at=JUNE)
    place_order(program, friend, "40.00", placed_at=JUNE + timedelta(days=5), external_id="second")
    assert referrals_qualify(JUNE + timedelta(days=31)) == 0  # the 20 USD order is not it
    assert referrals_qualify(JUNE + timedelta(days=36)) == 1
    referral = Referral.objects.get()
    assert (referral.status, referral.order.external_id) == ("qualified", "second")


def test_a_first_order_refunded_below_the_minimum_is_rejected(program, member):
    friend = enroll(program, member)
    order = place_order(program, friend, "30.00", placed_at=JUNE)
    order_refund(
        program=program,
        order_external_id=order.external_id,
        refund_external_id="R",
        amount=Decimal("10.00"),
        now=JUNE + timedelta(days=3),
    )
    referrals_qualify(MATURE)
    assert (Referral.objects.get().status, Referral.objects.get().reason) == ("rejected", "first_order_refunded")


def test_a_first_order_cancelled_before_maturing_is_rejected(program, member):
    friend = enroll(program, member)
    order = place_order(program, friend, "30.00", placed_at=JUNE)
    order_cancel(program=program, order_external_id=order.external_id, now=JUNE + timedelta(days=3))
    referrals_qualify(MATURE)
    assert Referral.objects.get().reason == RejectionReason.FIRST_ORDER_CANCELLED


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("John.Smith+x@gmail.com", "johnsmith@gmail.com", True),
        ("JOHN.SMITH@googlemail.com", "johnsmith@gmail.com", True),
        ("john+shop@outlook.com", "John@Outlook.com", True),
        ("john.smith@example.com", "johnsmith@example.com", False),
        ("john+x@example.com", "john@example.com", False),
    ],
)
def test_email_normalization(a, b, same):
    assert (email_normalize(a) == email_normalize(b)) is same


def test_self_referral_by_email_is_rejected_at_enrollment(program, member_factory):
    john = member_factory(external_id="john", email="John.Smith+x@gmail.com")
    enroll(program, john, external_id="john2", email="johnsmith@gmail.com")
    assert Referral.objects.get().reason == RejectionReason.SELF_EMAIL


def test_self_referral_by_payment_or_device(program, member):
    place_order(
        program, member, "50.00", placed_at=JUNE - timedelta(days=60), payment_fingerprint="card-1", device_id="dev-1"
    )
    by_card = enroll(program, member, external_id="f1")
    place_order(program, by_card, "30.00", placed_at=JUNE, payment_fingerprint="card-1")
    enroll(program, member, external_id="f2", device_id="dev-1")  # the device is known at enrollment
    referrals_qualify(MATURE)
    reasons = dict(Referral.objects.values_list("referee__external_id", "reason"))
    assert reasons == {"f1": "self_referral_payment", "f2": "self_referral_device"}


def test_an_existing_customer_is_not_a_referral(program, member, member_factory):
    old_customer = member_factory(external_id="old")
    place_order(program, old_customer, "60.00", placed_at=JUNE - timedelta(days=90), payment_fingerprint="card-9")
    newcomer = enroll(program, member, external_id="new")
    place_order(program, newcomer, "30.00", placed_at=JUNE, payment_fingerprint="card-9")
    referrals_qualify(MATURE)
    assert Referral.objects.get().reason == RejectionReason.EXISTING_CUSTOMER


def test_a_closed_referrers_code_is_not_valid_and_pending_referrals_are_rejected(program, member):
    friend = enroll(program, member)
    place_order(program, friend, "30.00", placed_at=JUNE)
    type(member).objects.filter(pk=member.pk).update(status="closed")
    referrals_qualify(MATURE)
    assert Referral.objects.get().reason == RejectionReason.REFERRER_CLOSED
    with pytest.raises(InvalidReferralCode):
        enroll(program, member, external_id="late")


def test_the_11th_referral_of_a_month_is_recorded_not_rewarded(program, member):
    for i in range(11):
        friend = enroll(program, member, external_id=f"f{i}")
        place_order(program, friend, "30.00", placed_at=JUNE + timedelta(minutes=i))
    assert referrals_qualify(MATURE + timedelta(hours=1)) == 11
    statuses = list(Referral.objects.order_by("referee__external_id").values_list("status", "reason"))
    assert statuses.count(("qualified", "")) == 10
    assert statuses.count(("rejected", "over_cap")) == 1
    assert pts(member, MATURE + timedelta(hours=1)) == 10 * 500


def test_staff_hold_approve_and_reject(program, member, staff):
    friend = enroll(program, member, external_id="held")
    place_order(program, friend, "30.00", placed_at=JUNE)
    held = referral_hold(referral=Referral.objects.get(), staff_user=staff, note="checking")
    assert referrals_qualify(MATURE) == 0 and held.status == "held"
    approved = referral_approve(referral=held, staff_user=staff, note="real friend", now=MATURE)
    assert (approved.status, approved.referee_points) == ("qualified", 250)

    other = enroll(program, member, external_id="nope")
    rejected = referral_reject(referral=other.referral, staff_user=staff, note="bought list of e-mails")
    assert (rejected.status, rejected.reason, rejected.decided_by) == ("rejected", "staff", staff)


def test_a_regenerated_code_retires_the_old_one(program, member):
    old = code_of(member)
    new = referral_code_regenerate(member=member).code
    assert new != old
    with pytest.raises(InvalidReferralCode):
        member_enroll(program=program, external_id="x", email="x@example.org", referral_code=old)


# --- API and brute force --------------------------------------------------------------------------
def test_code_lookup_shows_only_a_first_name(api, member):
    body = api.get(f"/api/v1/referrals/{code_of(member).lower()}/").json()
    assert body == {
        "code": code_of(member).lower(),
        "valid": True,
        "referrer_first_name": "Anna",
        "referee_points": 250,
    }
    assert api.get("/api/v1/referrals/NOPE2345/").json()["valid"] is False


def test_code_lookups_are_rate_limited(api, member, settings):
    for _ in range(30):
        assert api.get("/api/v1/referrals/ZZZZZZZZ/").status_code == 200
    limited = api.get("/api/v1/referrals/ZZZZZZZZ/")
    assert limited.status_code == 429 and limited["Content-Type"] == "application/problem+json"
    assert limited.json()["code"] == "rate_limited" and int(limited["Retry-After"]) > 0


def test_enrollments_with_wrong_codes_are_rate_limited(api, member):
    for i in range(10):
        wrong = api.post(
            "/api/v1/members/", {"external_id": f"g{i}", "email": f"g{i}@x.org", "referral_code": "BAD"}, format="json"
        )
        assert (wrong.status_code, wrong.json()["code"]) == (422, "invalid_referral_code")
    limited = api.post(
        "/api/v1/members/", {"external_id": "g", "email": "g@x.org", "referral_code": code_of(member)}, format="json"
    )
    assert limited.status_code == 429
    # enrolling without a code is still fine
    assert api.post("/api/v1/members/", {"external_id": "g", "email": "g@x.org"}, format="json").status_code == 201


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_qualification_job_running_twice_at_once_rewards_once(program, member):
    for i in range(5):
        place_order(program, enroll(program, member, external_id=f"c{i}"), "30.00", placed_at=JUNE)
    results = race(lambda i: referrals_qualify(MATURE), 2)
    assert all(isinstance(r, int) for r in results), results
    assert Transaction.objects.filter(kind=TransactionKind.REFERRAL).count() == 10
    assert pts(member) == 5 * 500


def test_referral_rate_inputs(program, member):
    enroll(program, member)
    assert Referral.objects.filter(program=program, created_at__gte=datetime(2026, 6, 1, tzinfo=UTC)).count() == 1


def test_dots_in_an_example_com_address_are_another_person(program, member_factory):
    john = member_factory(external_id="john", email="john.smith@example.com")
    enroll(program, john, external_id="other-john", email="johnsmith@example.com")
    assert (Referral.objects.get().status, Referral.objects.get().reason) == ("pending", "")


def test_the_cap_counts_in_the_order_referrals_are_decided(program, member):
    for i in range(11):
        friend = enroll(program, member, external_id=f"f{i:02d}")
        place_order(program, friend, "30.00", placed_at=JUNE + timedelta(minutes=i))
    for i in range(11):  # decided one by one as each first order matures
        referrals_qualify(MATURE + timedelta(minutes=i))
    last = Referral.objects.get(referee__external_id="f10")
    assert (last.status, last.reason, last.referrer_points) == ("rejected", "over_cap", 0)
    assert Referral.objects.filter(status="qualified").count() == 10
    # a new month, a new cap
    friend = enroll(program, member, external_id="july")
    place_order(program, friend, "30.00", placed_at=JUNE + timedelta(days=20))
    assert referrals_qualify(JUNE + timedelta(days=51)) == 1
    assert Referral.objects.get(referee__external_id="july").status == "qualified"
