"""Win-back grants and survey answers under real concurrency (PostgreSQL row locks)."""

from datetime import UTC, datetime, timedelta

import pytest

from loyalty.models import SurveyResponse, Transaction, TransactionKind, WinbackGrant, WinbackOffer
from loyalty.services.metrics import survey_response_record, survey_sends_record, winback_grant
from tests.concurrency import race
from tests.factories import place_order

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
NOW = datetime(2026, 6, 1, 9, tzinfo=UTC)


def test_the_same_offer_granted_8_times_at_once_gives_each_member_once(program, member_factory, staff):
    members = [member_factory(external_id=f"w{i}") for i in range(5)]
    for m in members:
        place_order(program, m, "20.00", placed_at=NOW - timedelta(days=90))
    offer = WinbackOffer.objects.create(program=program, name="We miss you", kind="points", points=200)
    ids = [m.pk for m in members]

    results = race(lambda i: winback_grant(offer=offer, member_ids=ids, audience="at_risk", staff_user=staff), 8)

    assert not [r for r in results if isinstance(r, Exception)], results
    assert sum(r.granted for r in results) == 5
    assert WinbackGrant.objects.count() == 5 and Transaction.objects.filter(kind=TransactionKind.WINBACK).count() == 5


def test_a_survey_answered_6_times_at_once_is_answered_once(program, member):
    survey_sends_record(program=program, kind="nps", member_external_ids=["anna"], survey_id="s1", now=NOW)

    results = race(
        lambda i: survey_response_record(
            program=program, member_external_id="anna", kind="nps", score=i + 3, survey_id="s1", now=NOW
        ),
        6,
    )

    assert sum(1 for r in results if isinstance(r, SurveyResponse)) == 1
    assert {type(r).__name__ for r in results if not isinstance(r, SurveyResponse)} == {"SurveyAlreadyAnswered"}
    assert SurveyResponse.objects.count() == 1
