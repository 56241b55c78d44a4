"""Badges and challenges in the staff admin: edited with their criteria (one that cannot be met is
refused with a message), audited; awards and progress listed; recompute after an edit."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group

from loyalty.models import AuditEntry, Badge, BadgeAward, Challenge, ChallengeProgress, Event
from loyalty.services.events import events_process
from tests.factories import place_order
from tests.loyalty.test_admin import form_data, messages_of, url

pytestmark = pytest.mark.usefixtures("june")


@pytest.fixture
def manager_client(client, django_user_model):
    user = django_user_model.objects.create_user("manager", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="manager"))
    client.force_login(user)
    return client


def badge_data(program, **overrides):
    return {
        "program": program.pk,
        "code": "big-basket",
        "name": "Big basket",
        "kind": "order_count",
        "target": "3",
        "counts": "placed",
        "points": "0",
        "active": "on",
        "position": "0",
    } | overrides


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"target": "2.5"}, "target", "whole number"),
        ({"target": "0"}, "target", "above zero"),
        ({"kind": "currencies", "target": "7"}, "target", "accepts 6 currencies"),
        ({"kind": "event_count"}, "event_type", "event type"),
        ({"kind": "category_spend", "target": "50"}, "category", "category"),
        ({"kind": "tier", "target": "1"}, "tier", "Choose the tier"),
    ],
)
def test_a_badge_that_cannot_be_met_is_refused_with_a_message(manager_client, program, overrides, field, message):
    response = manager_client.post(url(Badge, "add"), badge_data(program, **overrides))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert message in " ".join(errors.get(field, [])), errors
    assert not Badge.objects.filter(code="big-basket").exists() and not AuditEntry.objects.exists()


def test_a_badge_is_added_and_edited_in_the_admin_and_audited(manager_client, program):
    assert manager_client.post(url(Badge, "add"), badge_data(program)).status_code == 302
    badge = Badge.objects.get(code="big-basket")
    data = form_data(manager_client.get(url(Badge, "change", badge.pk)), "badge_form")
    assert manager_client.post(url(Badge, "change", badge.pk), data | {"target": "4"}).status_code == 302
    assert [(e.action, e.after["target"]) for e in AuditEntry.objects.order_by("id")] == [
        ("badge.create", "3.00"),
        ("badge.change", "4.00"),
    ]


def test_a_challenge_that_cannot_be_met_is_refused(manager_client, program):
    data = {
        "program": program.pk,
        "code": "streaky",
        "name": "Streaky",
        "starts_at_0": "2026-03-01",
        "starts_at_1": "00:00:00",
        "ends_at_0": "2026-04-01",
        "ends_at_1": "00:00:00",
        "repeat": "none",
        "kind": "streak",
        "target": "3",
        "counts": "placed",
        "reward_points": "100",
        "leaderboard_size": "10",
        "active": "on",
    }
    response = manager_client.post(url(Challenge, "add"), data)
    assert response.status_code == 200
    assert "cannot be met" in " ".join(response.context["adminform"].form.errors["target"])
    no_reward = manager_client.post(url(Challenge, "add"), data | {"kind": "order_count", "reward_points": "0"})
    assert "needs a reward" in " ".join(no_reward.context["adminform"].form.errors["reward_points"])
    assert not Challenge.objects.filter(code="streaky").exists()


def test_awards_and_progress_are_listed_and_a_target_edit_is_recomputed(manager_client, program, member):
    for day in (3, 4):
        place_order(program, member, "20.00", placed_at=datetime(2026, 3, day, tzinfo=UTC))
    events_process(event_ids=list(Event.objects.values_list("pk", flat=True)), now=datetime(2026, 3, 4, tzinfo=UTC))
    spring = Challenge.objects.get(code="spring-streak")
    progress = ChallengeProgress.objects.get(challenge=spring, member=member)
    assert (progress.value, progress.completed_at) == (2, None)
    listed = manager_client.get(url(ChallengeProgress, "changelist"), {"challenge__id__exact": spring.pk})
    assert [p.member for p in listed.context["cl"].result_list] == [member]
    assert manager_client.post(url(ChallengeProgress, "change", progress.pk), {"value": "3"}).status_code == 403

    # staff lower the target to 2 (the challenge is still running), then recompute
    Challenge.objects.filter(pk=spring.pk).update(target=Decimal(2))
    import time_machine

    with time_machine.travel(datetime(2026, 3, 5, tzinfo=UTC), tick=False):
        done = manager_client.post(
            url(Challenge, "changelist"), {"action": "recompute", "_selected_action": [spring.pk]}, follow=True
        )
    assert "progress of 1 members recomputed" in messages_of(done)[0]
    assert ChallengeProgress.objects.get(pk=progress.pk).completed_at is not None
    awards = manager_client.get(url(BadgeAward, "changelist"))
    assert awards.status_code == 200


def test_support_sees_badges_but_changes_nothing(client, django_user_model, program):
    user = django_user_model.objects.create_user("support", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="support"))
    client.force_login(user)
    badge = Badge.objects.filter(program=program).first()
    assert client.get(url(Badge, "change", badge.pk)).status_code == 200
    assert client.post(url(Badge, "change", badge.pk), badge_data(program, code=badge.code)).status_code == 403
    assert client.post(url(Badge, "add"), badge_data(program)).status_code == 403
    assert not AuditEntry.objects.exists()
