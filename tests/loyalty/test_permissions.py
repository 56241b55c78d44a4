"""Staff roles: support adjusts within the program's limit and changes no rule; managers do all.
Enforced by the services (so every door obeys), and audited."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import Group

from loyalty.models import AuditEntry, Transaction
from loyalty.services.access import api_key_create, api_key_revoke
from loyalty.services.adjustments import points_adjust
from loyalty.services.audit import AdjustmentOverLimit, Forbidden
from tests.conftest import JUNE
from tiers.services import tier_override_set


@pytest.fixture
def user_in(django_user_model):
    def make(group):
        user = django_user_model.objects.create_user(group, f"{group}@example.com", "pw", is_staff=True)
        user.groups.add(Group.objects.get(name=group))
        return django_user_model.objects.get(pk=user.pk)  # fresh permission cache

    return make


def test_support_adjusts_up_to_the_limit_and_no_further(program, member, user_in):
    support = user_in("support")
    points_adjust(member=member, points=1000, reason="goodwill", staff_user=support, now=JUNE)
    with pytest.raises(AdjustmentOverLimit):
        points_adjust(member=member, points=1001, reason="too generous", staff_user=support, now=JUNE)
    with pytest.raises(AdjustmentOverLimit):
        points_adjust(member=member, points=-1001, reason="too harsh", staff_user=support, now=JUNE)
    assert Transaction.objects.filter(kind="adjust").count() == 1
    entry = AuditEntry.objects.get(action="points.adjust")
    assert (entry.actor, entry.reason, entry.before, entry.after) == (
        support,
        "goodwill",
        {"available": 0},
        {"available": 1000},
    )


def test_managers_adjust_beyond_the_limit_and_pin_tiers(program, member, tiers, user_in):
    manager = user_in("manager")
    points_adjust(member=member, points=5000, reason="migration", staff_user=manager, now=JUNE)
    tier_override_set(
        member=member,
        tier=tiers["vib"],
        until=JUNE.date().replace(month=12),
        reason="VIP",
        staff_user=manager,
        now=JUNE,
    )
    assert AuditEntry.objects.filter(action__in=["points.adjust", "tier.pin"]).count() == 2


def test_support_cannot_pin_tiers_nor_change_program_rules(program, member, tiers, user_in):
    support = user_in("support")
    with pytest.raises(Forbidden):
        tier_override_set(
            member=member,
            tier=tiers["vib"],
            until=JUNE.date().replace(month=12),
            reason="x",
            staff_user=support,
            now=JUNE,
        )
    for perm in ("tiers.change_tier", "loyalty.change_earnrule", "loyalty.change_reward", "loyalty.change_program"):
        assert not support.has_perm(perm)
    manager = user_in("manager")
    assert all(manager.has_perm(p) for p in ("tiers.change_tier", "loyalty.change_earnrule", "loyalty.change_program"))
    assert not manager.has_perm("loyalty.change_transaction")  # the ledger is nobody's to edit


def test_someone_without_a_role_can_do_nothing(program, member, django_user_model):
    clerk = django_user_model.objects.create_user("clerk", "c@example.com", "pw", is_staff=True)
    with pytest.raises(Forbidden):
        points_adjust(member=member, points=1, reason="x", staff_user=clerk, now=JUNE)


def test_api_key_creation_and_revocation_are_audited(program, staff):
    key, _ = api_key_create(program=program, name="pos", actor=staff)
    api_key_revoke(key=key, actor=staff)
    assert list(AuditEntry.objects.order_by("id").values_list("action", "actor__username")) == [
        ("apikey.create", "staff"),
        ("apikey.revoke", "staff"),
    ]
    assert Decimal(program.staff_adjust_limit) == 1000
