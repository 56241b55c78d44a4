"""Event processing: a member's events are evaluated together, events no definition counts take no
lock, and a simulation can defer processing to its own clock."""

from datetime import UTC, datetime
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from loyalty.models import BadgeAward, ChallengeProgress, Event
from loyalty.services import gamification
from loyalty.services.events import event_record, events_deferred, events_process
from loyalty.services.rewards import reward_claim
from tests.conftest import JUNE
from tests.factories import place_order

LATER = datetime(2026, 8, 1, tzinfo=UTC)


def unprocessed() -> list[int]:
    return list(Event.objects.filter(processed_at__isnull=True).order_by("pk").values_list("pk", flat=True))


def test_a_members_events_are_evaluated_once_together(program, member_factory, tiers):
    # Given two members' checkouts: each writes order.placed, points.earned and (the second) tier.changed
    anna, ben = member_factory(external_id="anna"), member_factory(external_id="ben")
    place_order(program, anna, "50.00", now=JUNE)
    place_order(program, ben, "400.00", now=JUNE)
    ids = unprocessed()
    assert len(ids) >= 7  # two enrollments, two orders with their points, Ben's upgrade

    # When they are processed, then both members are evaluated once, together, under one lock
    with mock.patch.object(gamification, "members_lock", wraps=gamification.members_lock) as lock:
        assert events_process(event_ids=ids, now=LATER) == len(ids)
    lock.assert_called_once()
    assert set(lock.call_args.kwargs["member_ids"]) == {anna.pk, ben.pk}
    # ... which gives what one evaluation per event would: the First Order badge (counted once matured)
    assert set(BadgeAward.objects.values_list("member_id", flat=True)) == {anna.pk, ben.pk}
    assert not set(ids) & set(unprocessed())  # (the badge.awarded events are new ones)
    assert events_process(event_ids=ids, now=LATER) == 0  # once only


def test_events_no_definition_counts_take_no_lock(program, member, django_assert_max_num_queries):
    # Given a reward claimed (an event no badge or challenge counts)
    place_order(program, member, "600.00", now=JUNE)
    events_process(event_ids=unprocessed(), now=LATER)
    sample = program.rewards.get(name="Deluxe sample")
    reward_claim(program=program, reward_id=sample.pk, member_external_id="anna", now=LATER)
    claimed = Event.objects.get(type="reward.claimed").pk

    # When it is processed, then nothing is evaluated: the member is not even locked
    with (
        mock.patch.object(gamification, "members_lock", wraps=gamification.members_lock) as lock,
        django_assert_max_num_queries(8),
    ):
        assert events_process(event_ids=[claimed], now=LATER) == 1
    lock.assert_not_called()

    # ... while a custom event a badge counts (Reviewer: review.posted) is evaluated
    event_record(program=program, member_external_id="anna", type="review.posted", now=LATER)
    with mock.patch.object(gamification, "members_lock", wraps=gamification.members_lock) as lock:
        events_process(event_ids=unprocessed(), now=LATER)
    lock.assert_called_once()


def test_deferred_events_wait_for_whoever_deferred_them(program, member, django_capture_on_commit_callbacks):
    # Given events committed while deferred: nothing processes them after commit
    with events_deferred(), django_capture_on_commit_callbacks(execute=True):
        place_order(program, member, "100.00", now=JUNE)
    deferred = unprocessed()
    assert deferred

    # When the simulation processes them as of its own clock, they are processed then
    assert events_process(event_ids=deferred, now=LATER) == len(deferred)
    assert set(Event.objects.filter(pk__in=deferred).values_list("processed_at", flat=True)) == {LATER}

    # ... and outside the block, events go to the worker after commit as before
    with django_capture_on_commit_callbacks(execute=True):
        order = place_order(program, member, "100.00", now=JUNE)
    written = Event.objects.filter(properties__order=order.external_id)
    assert written.count() == 2 and not written.filter(processed_at__isnull=True).exists()


def test_an_order_maturing_moves_only_what_counts_matured_orders(program):
    from loyalty.models import Badge, Challenge
    from loyalty.rules.criteria import KINDS

    def moved(definitions, event_type):
        return [d for d in definitions if KINDS[d.kind].triggered_by(d, event_type)]

    # The demo's badges count matured orders, its challenges placed ones: a maturity moves the badges only
    badges, challenges = list(Badge.objects.filter(program=program)), list(Challenge.objects.filter(program=program))
    assert {b.counts for b in moved(badges, "order.matured")} == {"matured"}
    assert not moved(challenges, "order.matured")
    assert len(moved(challenges, "order.placed")) == 2


def test_a_batch_of_members_costs_the_same_queries_as_one(program, member_factory):
    # Given checkouts of 1 and of 6 members, processed as of the day they were placed
    def checkouts(n: int, prefix: str) -> list[int]:
        before = set(unprocessed())
        for i in range(n):
            place_order(program, member_factory(external_id=f"{prefix}{i}"), "120.00", now=JUNE)
        return [pk for pk in unprocessed() if pk not in before]

    one, six = checkouts(1, "solo"), checkouts(6, "crowd")

    # When each batch is processed, then six members take no more queries than one
    with CaptureQueriesContext(connection) as for_one:
        assert events_process(event_ids=one, now=JUNE) == len(one)
    with CaptureQueriesContext(connection) as for_six:
        assert events_process(event_ids=six, now=JUNE) == len(six)
    assert len(for_six) <= len(for_one)
    assert ChallengeProgress.objects.filter(member__external_id__startswith="crowd").count() == 6 * len(
        ChallengeProgress.objects.filter(member__external_id__startswith="solo")
    )


def test_one_members_failing_events_hold_back_nobody_else(program, member_factory, monkeypatch):
    # Given four members' checkouts processed two members to a transaction, the second member failing
    from loyalty.services import events

    monkeypatch.setattr(events, "CHUNK", 2)
    members = [member_factory(external_id=f"m{i}") for i in range(4)]
    for m in members:
        place_order(program, m, "50.00", now=JUNE)
    ids = unprocessed()
    real = gamification.gamification_evaluate_members

    def evaluate(plan, *, now):
        if members[1].pk in plan:
            raise RuntimeError("boom")
        return real(plan, now=now)

    # When they are processed, then the error is raised, but only the failing member's events wait:
    # its chunk's other member is retried alone, the next chunk goes on
    with (
        mock.patch.object(gamification, "gamification_evaluate_members", side_effect=evaluate),
        pytest.raises(RuntimeError, match="boom"),
    ):
        events_process(event_ids=ids, now=LATER)
    waiting = set(Event.objects.filter(pk__in=ids, processed_at__isnull=True).values_list("member_id", flat=True))
    assert waiting == {members[1].pk}
    assert set(BadgeAward.objects.values_list("member_id", flat=True)) == {m.pk for m in members} - {members[1].pk}

    # ... and are processed once it works again
    events_process(event_ids=ids, now=LATER)
    assert not Event.objects.filter(pk__in=ids, processed_at__isnull=True).exists()
    assert BadgeAward.objects.filter(member=members[1]).exists()


def test_a_badge_edited_is_evaluated_as_edited_at_once(program, member_factory):
    from loyalty.models import Badge

    # Given a worker that has read the definitions (one member's events processed)
    anna, ben = member_factory(external_id="anna"), member_factory(external_id="ben")
    place_order(program, anna, "50.00", now=JUNE)
    events_process(event_ids=unprocessed(), now=LATER)
    assert BadgeAward.objects.filter(member=anna, badge__code="first-order").exists()

    # When staff raise First Order's target to two orders
    first = Badge.objects.get(program=program, code="first-order")
    first.target = 2
    first.save()

    # Then the next member's single order no longer earns it: the new target applies at once
    place_order(program, ben, "50.00", now=JUNE)
    events_process(event_ids=unprocessed(), now=LATER)
    assert not BadgeAward.objects.filter(member=ben, badge__code="first-order").exists()
