"""Privacy: export a member's data as JSON, and erase it (the right to be forgotten) keeping every
amount, so the books still verify and the metrics still count the member's orders."""

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.apps import apps
from django.contrib.auth.models import Group
from django.contrib.sessions.models import Session
from django.db import models
from django.db.models import Count, Sum
from django.test import Client

from loyalty.models import (
    AuditEntry,
    Event,
    Member,
    MemberStatus,
    Order,
    PortalSession,
    Scope,
    WebhookDelivery,
)
from loyalty.selectors.metrics import Period, metrics_summary
from loyalty.services.access import api_key_create
from loyalty.services.adjustments import points_adjust
from loyalty.services.audit import Forbidden
from loyalty.services.events import event_record, events_process
from loyalty.services.metrics import survey_response_record, survey_sends_record
from loyalty.services.privacy import member_erase, member_export
from loyalty.services.settlement import points_mature
from loyalty.services.webhooks import webhook_endpoint_create
from referrals.models import Referral, ReferralCode, ReferralStatus
from referrals.services import referrals_qualify
from tests.conftest import JUNE, CheckedClient
from tests.factories import place_order
from tiers.services import tier_override_set

# Distinctive values, so that finding one anywhere means it was not erased.
PERSONAL = {
    "email": "zofia.quintessa+loyal@example.org",
    "first_name": "Zofiaqx",
    "last_name": "Quintessowna",
    "birth_date": "1987-03-14",
    "fingerprint": "pay-zed-99117",
    "device": "dev-zed-44106",
    "ip": "203.0.113.77",
    "phone": "+48 600 700 813",
}
MATURE = JUNE + timedelta(days=31)


@pytest.fixture
def privacy_api(program):
    client = CheckedClient()
    raw = api_key_create(program=program, name="dpo", scopes=[Scope.PRIVACY, Scope.MEMBERS])[1]
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def _user(django_user_model, name, group=None, **extra):
    user = django_user_model.objects.create_user(name, f"{name}@shop.example", "pw", is_staff=True, **extra)
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def zed(program, member, api, june, django_user_model, django_capture_on_commit_callbacks):
    """A member with a footprint everywhere: enrolled through the API (a stored idempotent answer)
    with anna's referral code from a known address, orders with fingerprints and metadata, a
    referral of their own, an adjustment and a tier pin naming them, a custom event, a portal
    account with a session."""
    anna_code = ReferralCode.objects.get(member=member, retired_at__isnull=True).code
    body = {
        "external_id": "zed",
        "email": PERSONAL["email"],
        "first_name": PERSONAL["first_name"],
        "last_name": PERSONAL["last_name"],
        "birth_date": PERSONAL["birth_date"],
        "locale": "pl",
        "country": "PL",
        "referral_code": anna_code,
        "payment_fingerprint": "enroll-" + PERSONAL["fingerprint"],
        "device_id": "enroll-" + PERSONAL["device"],
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            "/api/v1/members/", body, format="json", HTTP_IDEMPOTENCY_KEY="enroll-zed", REMOTE_ADDR=PERSONAL["ip"]
        )
    assert response.status_code == 201
    zed = Member.objects.select_related("program").get(external_id="zed")
    for n, amount in enumerate(["80.00", "40.00"]):
        place_order(
            program,
            zed,
            amount,
            external_id=f"zed-{n}",
            now=JUNE,
            payment_fingerprint=PERSONAL["fingerprint"],
            device_id=PERSONAL["device"],
            metadata={"phone": PERSONAL["phone"], "contact": {"email": PERSONAL["email"]}},
        )
    # zed refers a friend, who orders too; both referrals qualify once the orders matured
    from loyalty.services.members import member_enroll

    zed_code = ReferralCode.objects.get(member=zed, retired_at__isnull=True).code
    friend = member_enroll(
        program=program,
        external_id="friend",
        email="friend@example.org",
        first_name="Bea",
        last_name="Nowak",
        referral_code=zed_code,
        now=JUNE,
    )
    place_order(program, friend, "50.00", now=JUNE)
    points_mature(MATURE)
    referrals_qualify(MATURE)
    assert set(Referral.objects.values_list("status", flat=True)) == {ReferralStatus.QUALIFIED}
    manager = _user(django_user_model, "boss", "manager")
    points_adjust(member=zed, points=25, reason=f"Goodwill for {PERSONAL['first_name']}", staff_user=manager)
    tier_override_set(
        member=zed,
        tier=program.tiers.get(code="vib"),
        until=date(2026, 12, 31),
        reason=f"VIP {PERSONAL['last_name']} asked nicely",
        staff_user=manager,
    )
    event_record(
        program=program,
        member_external_id="zed",
        type="review.posted",
        properties={"text": f"Love it! {PERSONAL['first_name']}", "reply_to": PERSONAL["email"]},
        external_id="review-1",
    )
    survey_sends_record(program=program, kind="nps", member_external_ids=["zed"], survey_id="june", now=JUNE)
    survey_response_record(
        program=program,
        member_external_id="zed",
        kind="nps",
        score=10,
        comment=f"Great! Call me: {PERSONAL['phone']}, {PERSONAL['first_name']}",
        survey_id="june",
        now=JUNE,
    )
    portal_user = Member.objects.get(pk=zed.pk).user
    portal_user.set_password("a long passphrase 42")
    portal_user.save()
    browser = Client()
    assert browser.login(email=PERSONAL["email"].upper(), password="a long passphrase 42")
    assert PortalSession.objects.filter(user=portal_user).count() == 1
    return Member.objects.select_related("program", "user").get(pk=zed.pk)


def _text_fields(model):
    kinds = (models.CharField, models.TextField, models.JSONField, models.GenericIPAddressField)
    return [f.attname for f in model._meta.concrete_fields if isinstance(f, kinds)]


def find_everywhere(values: list[str]) -> list[str]:
    """Every (model, field, value) where any of the values appears, in any case, in any table."""
    found = []
    lowered = [v.lower() for v in values]
    for model in apps.get_models():
        fields = _text_fields(model)
        if not fields:
            continue
        for row in model._default_manager.values_list("pk", *fields):
            for name, value in zip(fields, row[1:], strict=True):
                if value in (None, "", {}, []):
                    continue
                text = (value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)).lower()
                found += [f"{model._meta.label}#{row[0]}.{name}: {v}" for v in lowered if v in text]
    return found


def test_export_holds_everything_about_the_member_and_nothing_about_others(zed, program, privacy_api):
    # When the member's data is exported through the API
    response = privacy_api.get("/api/v1/members/zed/export/")

    # Then it is all there: profile, orders with their fingerprints, ledger, lots, referrals, ...
    assert response.status_code == 200
    data = response.json()
    assert data["profile"]["email"] == PERSONAL["email"]
    assert data["profile"]["birth_date"] == PERSONAL["birth_date"]
    assert [o["external_id"] for o in data["orders"]] == ["zed-0", "zed-1"]
    assert data["orders"][0]["payment_fingerprint"] == PERSONAL["fingerprint"]
    assert data["orders"][0]["total"] == {"amount": "80.00", "currency": "USD"}
    assert {t["kind"] for t in data["ledger"]} >= {"earn", "mature", "referral", "adjust"}
    assert sum(lot["amount"] for lot in data["lots"]) == 80 + 40 + 250 + 500 + 25
    assert data["balances"]["PTS"]["available"] == 80 + 40 + 250 + 500 + 25
    assert data["referred_by"]["friend"] == "Anna K." and data["referred_by"]["ip_address"] == PERSONAL["ip"]
    assert data["referrals"] == [
        {
            "friend": "Bea N.",
            "status": "qualified",
            "reason": "",
            "points": 500,
            "created_at": JUNE.isoformat(),
            "decided_at": MATURE.isoformat(),
        }
    ]
    assert [c["to"] for c in data["tier_history"]][-1] == "vib"
    assert any(e["type"] == "review.posted" for e in data["events"])
    assert [c["code"] for c in data["referral_codes"]]
    assert "friend@example.org" not in json.dumps(data)  # the friend's own data is not the member's
    # and the export was audited
    assert AuditEntry.objects.filter(action="member.export", object_id=str(zed.pk)).count() == 1


def test_export_reads_a_bounded_number_of_queries(zed, django_assert_max_num_queries):
    with django_assert_max_num_queries(25):
        member_export(member=zed)


def test_erase_leaves_no_personal_value_in_any_table_and_keeps_every_amount(
    zed, program, privacy_api, django_capture_on_commit_callbacks
):
    # Given the member's values are found before (the scan works) and what the books hold
    values = list(PERSONAL.values())
    assert find_everywhere(values)
    orders_before = list(
        Order.objects.filter(member=zed).order_by("pk").values_list("pk", "total", "spend_base", "points_earned")
    )
    program_orders = Order.objects.filter(program=program).aggregate(n=Count("id"), revenue=Sum("spend_base"))
    ordering_members = Order.objects.filter(program=program).values("member").distinct().count()
    balances_before = member_export(member=zed)["balances"]
    year = Period(date(2026, 1, 1), date(2027, 1, 1), "UTC")
    summary_before = metrics_summary(program=program, period=year, now=JUNE)
    session_keys = list(PortalSession.objects.filter(user=zed.user).values_list("session_key", flat=True))
    endpoint = webhook_endpoint_create(program=program, url="http://127.0.0.1:9/hook", events=["member.erased"])

    # When it is erased through the API
    response = privacy_api.post(
        "/api/v1/members/zed/erase/", {"reason": "GDPR request #7"}, format="json", HTTP_IDEMPOTENCY_KEY="erase-zed"
    )

    # Then no personal value is left anywhere
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "closed"
    assert find_everywhere(values) == []
    zed.refresh_from_db()
    assert (zed.email, zed.first_name, zed.last_name, zed.birth_date) == (
        f"erased-{zed.pk}@erased.invalid",
        "",
        "",
        None,
    )
    assert (zed.locale, zed.country, zed.marketing_opt_in, zed.status) == ("", "", False, MemberStatus.CLOSED)
    # the referral code is retired, the portal account closed and signed out
    assert not ReferralCode.objects.filter(member=zed, retired_at__isnull=True).exists()
    assert not zed.user.is_active and not zed.user.has_usable_password()
    assert not Session.objects.filter(session_key__in=session_keys).exists()
    assert not PortalSession.objects.filter(user=zed.user).exists()
    # amounts are kept: the same orders, totals and balances (ledger_verify runs after every test)
    assert list(
        Order.objects.filter(member=zed).order_by("pk").values_list("pk", "total", "spend_base", "points_earned")
    ) == (orders_before)
    assert member_export(member=zed)["balances"] == balances_before
    # metrics still count the member's orders (and survey score)
    summary_after = metrics_summary(program=program, period=year, now=JUNE)
    mix_before, mix_after = summary_before.pop("tier_mix"), summary_after.pop("tier_mix")
    assert summary_after == summary_before
    # a closed account is no longer a member of any tier
    assert sum(t["members"] for t in mix_after) == sum(t["members"] for t in mix_before) - 1
    assert summary_before["nps"] == 100.0 and summary_before["orders"] == 3
    assert Order.objects.filter(program=program).aggregate(n=Count("id"), revenue=Sum("spend_base")) == program_orders
    assert Order.objects.filter(program=program).values("member").distinct().count() == ordering_members
    assert program_orders["revenue"] == Decimal("170.00")
    # audited, and the shop is told by the member.erased webhook
    audit = AuditEntry.objects.get(action="member.erase")
    assert (audit.object_id, audit.reason, audit.after) == (str(zed.pk), "GDPR request #7", {"status": "closed"})
    erased = Event.objects.get(type="member.erased")
    assert erased.member_id == zed.pk and erased.properties["external_id"] == "zed"
    events_process(event_ids=[erased.pk], now=JUNE)
    assert WebhookDelivery.objects.filter(endpoint=endpoint, event=erased).count() == 1

    # When it is erased again (a retry without the key): nothing more happens
    again = privacy_api.post("/api/v1/members/zed/erase/", {}, format="json")
    assert again.status_code == 200
    assert AuditEntry.objects.filter(action="member.erase").count() == 1
    assert Event.objects.filter(type="member.erased").count() == 1
    # and the closed member can no longer sign in
    assert not Client().login(email=PERSONAL["email"], password="a long passphrase 42")


def test_privacy_endpoints_need_the_privacy_scope(program, member, api):
    # The default key has every scope but privacy
    response = api.get("/api/v1/members/anna/export/")
    assert response.status_code == 403 and response.json()["code"] == "missing_scope"
    response = api.post("/api/v1/members/anna/erase/", {}, format="json")
    assert response.status_code == 403
    assert Member.objects.get(pk=member.pk).status == MemberStatus.ACTIVE


def test_unknown_member_is_404_problem(privacy_api):
    response = privacy_api.post("/api/v1/members/nobody/erase/", {}, format="json")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "member_not_found"


def test_bad_input_is_400_and_erases_nothing(member, privacy_api):
    response = privacy_api.post("/api/v1/members/anna/erase/", {"reason": "x" * 501}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "validation_error"
    assert Member.objects.get(pk=member.pk).status == MemberStatus.ACTIVE


def test_staff_need_the_erase_permission(member, django_user_model):
    support = _user(django_user_model, "sue", "support")
    with pytest.raises(Forbidden):
        member_erase(member=member, actor=support)
    assert Member.objects.get(pk=member.pk).status == MemberStatus.ACTIVE
    manager = _user(django_user_model, "max", "manager")
    assert member_erase(member=member, actor=manager).status == MemberStatus.CLOSED


def test_staff_session_on_the_api_needs_the_permission(member, django_user_model):
    client = CheckedClient()
    client.force_login(_user(django_user_model, "sue", "support"))
    response = client.post("/api/v1/members/anna/erase/?program=demo", {}, format="json")
    assert response.status_code == 403 and response.json()["code"] == "forbidden"
    client.force_login(_user(django_user_model, "max", "manager"))
    assert client.get("/api/v1/members/anna/export/?program=demo").status_code == 200


def test_admin_erase_and_export(member, django_user_model):
    # A support user sees no privacy tools and may not open them
    client = Client()
    client.force_login(_user(django_user_model, "sue", "support"))
    page = client.get(f"/admin/loyalty/member/{member.pk}/change/")
    assert page.status_code == 200 and b"Erase personal data" not in page.content
    assert client.get(f"/admin/loyalty/member/{member.pk}/erase/").status_code == 403
    assert client.get(f"/admin/loyalty/member/{member.pk}/export/").status_code == 403

    # A manager downloads the data, and an erase without the confirmation changes nothing
    client.force_login(_user(django_user_model, "max", "manager"))
    page = client.get(f"/admin/loyalty/member/{member.pk}/change/")
    assert b"Erase personal data" in page.content and b"Export data (JSON)" in page.content
    export = client.get(f"/admin/loyalty/member/{member.pk}/export/")
    assert export.status_code == 200 and json.loads(export.content)["profile"]["email"] == "anna@example.com"
    refused = client.post(f"/admin/loyalty/member/{member.pk}/erase/", {"reason": "asked"})
    assert refused.status_code == 200 and b"This field is required" in refused.content
    assert Member.objects.get(pk=member.pk).status == MemberStatus.ACTIVE

    # With it, the member is erased
    done = client.post(f"/admin/loyalty/member/{member.pk}/erase/", {"reason": "asked", "confirm": "on"})
    assert done.status_code == 302
    erased = Member.objects.get(pk=member.pk)
    assert erased.status == MemberStatus.CLOSED and erased.email.endswith("@erased.invalid")
    assert AuditEntry.objects.get(action="member.erase").actor.username == "max"


def test_every_relation_of_a_member_is_in_the_export():
    """A new model that points at Member must be added to the export (and looked at for erasure)."""
    covered = {
        "loyalty.Account": "balances",
        "loyalty.Transaction": "ledger",
        "loyalty.Lot": "lots",
        "loyalty.Order": "orders",
        "loyalty.Redemption": "redemptions",
        "loyalty.RewardClaim": "reward_claims",
        "loyalty.Event": "events",
        "loyalty.BadgeAward": "badges",
        "loyalty.ChallengeProgress": "challenges",
        "loyalty.OpeningBalance": "ledger",
        "tiers.TierChange": "tier_history",
        "tiers.BirthdayGift": "birthday_gifts",
        "referrals.ReferralCode": "referral_codes",
        "referrals.Referral": "referrals",
        "loyalty.SurveySend": "surveys",
        "loyalty.SurveyResponse": "surveys",
        "loyalty.WinbackGrant": "winback_offers",
    }
    related = {
        rel.related_model._meta.label
        for rel in Member._meta.related_objects
        if rel.related_model is not Member and rel.related_model._meta.label != "auth.User"
    }
    assert related <= set(covered), f"not in the export: {sorted(related - set(covered))}"


@pytest.mark.parametrize("when", [datetime(2026, 6, 15, tzinfo=UTC)])
def test_erase_of_a_member_without_history(program, member_factory, when):
    plain = member_factory(external_id="plain", email="plain@example.com", now=when)
    erased = member_erase(member=plain, now=when)
    assert erased.status == MemberStatus.CLOSED and erased.closed_at == when
    assert find_everywhere(["plain@example.com"]) == []
