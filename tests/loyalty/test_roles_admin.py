"""Staff roles at the admin door, and the program rules every door saves through the config service:
`support` adjusts within the program's limit and changes no rule (the admin refuses, and so does
the service); a `manager`'s rule changes are written to the audit log with before and after."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import Group

from loyalty.models import AuditEntry, EarnRule, FxRate, Program, Reward, Transaction, TransactionKind
from loyalty.services.audit import Forbidden
from loyalty.services.config import config_delete, config_save
from tests.loyalty.test_admin import form_data, messages_of, url
from tiers.models import Tier

pytestmark = pytest.mark.usefixtures("june")


@pytest.fixture
def user_in(django_user_model):
    def make(group):
        user = django_user_model.objects.create_user(group, f"{group}@example.com", "pw", is_staff=True)
        user.groups.add(Group.objects.get(name=group))
        return django_user_model.objects.get(pk=user.pk)

    return make


@pytest.fixture
def support_client(client, user_in):
    client.force_login(user_in("support"))
    return client


@pytest.fixture
def manager(user_in):
    return user_in("manager")


def adjust(client, member, points, reason="Goodwill"):
    return client.post(
        url_adjust(member),
        {"asset": member.program.primary_asset.pk, "points": points, "reason": reason},
        follow=True,
    )


def url_adjust(member):
    from django.urls import reverse

    return reverse("admin:loyalty_member_adjust", args=[member.pk])


# --- support in the admin -----------------------------------------------------------------------
def test_support_adjusts_in_the_admin_up_to_the_limit_and_no_further(support_client, member):
    page = support_client.get(url_change(member))
    assert "Adjust points" in page.content.decode() and "Pin tier" not in page.content.decode()
    assert adjust(support_client, member, 1000).redirect_chain  # posted, back to the member page
    refused = adjust(support_client, member, 1001, reason="Too generous")
    assert not refused.redirect_chain
    assert "Nothing was posted" in messages_of(refused)[0] and "over your limit of 1000" in messages_of(refused)[0]
    assert list(Transaction.objects.filter(kind=TransactionKind.ADJUST).values_list("memo", flat=True)) == ["Goodwill"]


def url_change(member):
    from loyalty.models import Member

    return url(Member, "change", member.pk)


def test_support_cannot_change_a_tier_rule_in_the_admin(support_client, tiers):
    vib = tiers["vib"]
    page = support_client.get(url(Tier, "change", vib.pk))
    assert page.status_code == 200 and not page.context["has_change_permission"]  # the read-only view
    data = {"program": vib.program_id, "code": "vib", "name": "VIB", "rank": 1, "threshold_0": "1.00"}
    data |= {"threshold_1": "USD", "earn_multiplier": "9", "birthday_points": 0}
    assert support_client.post(url(Tier, "change", vib.pk), data).status_code == 403
    assert support_client.post(url(Tier, "add"), data | {"code": "gold", "rank": 7}).status_code == 403
    assert support_client.post(url(Tier, "delete", vib.pk), {"post": "yes"}).status_code == 403
    vib.refresh_from_db()
    assert (vib.threshold.amount, vib.earn_multiplier) == (Decimal("350.00"), Decimal("1.25"))
    assert not AuditEntry.objects.exists()


@pytest.mark.parametrize("model", [Program, EarnRule, Reward])
def test_support_cannot_change_other_program_rules_in_the_admin(support_client, program, model):
    row = model.objects.filter(**({} if model is Program else {"program": program})).first()
    assert support_client.post(url(model, "change", row.pk), {}).status_code == 403
    assert support_client.post(url(model, "add"), {}).status_code == 403


# --- and in the service ---------------------------------------------------------------------------
def test_support_cannot_change_a_tier_rule_through_the_service(user_in, tiers):
    support = user_in("support")
    vib = tiers["vib"]
    vib.earn_multiplier = Decimal("9")
    with pytest.raises(Forbidden):
        config_save(obj=vib, staff_user=support, changed=["earn_multiplier"])
    with pytest.raises(Forbidden):
        config_save(obj=Tier(program=vib.program, code="gold", name="Gold", rank=7, threshold=1), staff_user=support)
    with pytest.raises(Forbidden):
        config_delete(obj=tiers["rouge"], staff_user=support)
    with pytest.raises(Forbidden):
        config_save(obj=vib, staff_user=None, changed=["earn_multiplier"])
    assert Tier.objects.get(pk=vib.pk).earn_multiplier == Decimal("1.25")
    assert Tier.objects.filter(program=vib.program).count() == 3 and not AuditEntry.objects.exists()


# --- a manager's rule changes are audited -----------------------------------------------------------
def test_a_managers_tier_change_in_the_admin_is_audited_with_before_and_after(client, manager, tiers):
    client.force_login(manager)
    vib = tiers["vib"]
    data = form_data(client.get(url(Tier, "change", vib.pk)), "tier_form")
    data.update({"threshold_0": "400.00", "earn_multiplier": "1.3"})
    assert client.post(url(Tier, "change", vib.pk), data).status_code == 302
    entry = AuditEntry.objects.get()
    assert (entry.actor, entry.action, entry.object_id, entry.program) == (
        manager,
        "tier.change",
        str(vib.pk),
        vib.program,
    )
    assert entry.before == {"threshold": "350.00 USD", "earn_multiplier": "1.250"}
    assert entry.after == {"threshold": "400.00 USD", "earn_multiplier": "1.300"}


def test_reward_stock_edited_from_the_list_is_audited(client, manager, program):
    client.force_login(manager)
    page = client.get(url(Reward, "changelist"))
    data = form_data(page, "changelist-form")
    rows = {data[f"form-{i}-id"]: i for i in range(int(data["form-TOTAL_FORMS"]))}
    sample = Reward.objects.get(program=program, name="Deluxe sample")
    data[f"form-{rows[str(sample.pk)]}-stock"] = "7"
    assert client.post(url(Reward, "changelist"), {**data, "_save": "Save"}).status_code == 302
    entry = AuditEntry.objects.get(action="reward.change")
    assert (entry.object_repr, entry.before, entry.after) == ("Deluxe sample", {"stock": 1000}, {"stock": 7})


def test_a_stock_edit_does_not_overwrite_claims_made_meanwhile(manager, program):
    # staff opened the reward when 1,000 were left; a claim took one before they saved a new name
    stale = Reward.objects.get(program=program, name="Deluxe sample")
    Reward.objects.filter(pk=stale.pk).update(stock=999)
    stale.name = "Deluxe sample (new)"
    config_save(obj=stale, staff_user=manager, changed=["name"])
    assert Reward.objects.get(pk=stale.pk).stock == 999


def test_program_fx_rates_and_earn_rules_changed_on_the_program_page_are_audited(client, manager, program):
    client.force_login(manager)
    page = client.get(url(Program, "change", program.pk))
    data = form_data(page, "program_form")
    fx = {data[f"fx_rates-{i}-id"]: i for i in range(int(data["fx_rates-TOTAL_FORMS"]))}
    eur = fx[str(FxRate.objects.get(program=program, currency="EUR").pk)]
    data[f"fx_rates-{eur}-rate"] = "1.10"
    data["pending_days"] = "14"
    response = client.post(url(Program, "change", program.pk), data)
    assert response.status_code == 302, response.context["errors"] if response.context else response
    assert FxRate.objects.get(program=program, currency="EUR").rate == Decimal("1.10")
    actions = dict(AuditEntry.objects.values_list("action", "after"))
    assert actions["program.change"] == {"pending_days": 14}
    assert actions["fxrate.change"] == {"rate": "1.10000000"}


def test_deleting_an_earn_rule_keeps_what_it_was_in_the_audit_log(client, manager, program):
    client.force_login(manager)
    rule = EarnRule.objects.filter(program=program, kind="promotion").first()
    assert client.post(url(EarnRule, "delete", rule.pk), {"post": "yes"}).status_code == 302
    entry = AuditEntry.objects.get(action="earnrule.delete")
    assert entry.before["name"] == rule.name and entry.after is None
    assert not EarnRule.objects.filter(pk=rule.pk).exists()


def test_the_audit_log_is_read_only_in_the_admin(client, manager, tiers):
    config_save(obj=tiers["vib"], staff_user=manager, changed=["name"])
    entry = AuditEntry.objects.get()
    client.force_login(manager)
    assert client.get(url(AuditEntry, "changelist")).status_code == 200
    assert "tier.change" in client.get(url(AuditEntry, "change", entry.pk)).content.decode()
    assert client.post(url(AuditEntry, "change", entry.pk), {"reason": "x"}).status_code == 403
    assert client.post(url(AuditEntry, "delete", entry.pk), {"post": "yes"}).status_code == 403
    assert AuditEntry.objects.count() == 1
