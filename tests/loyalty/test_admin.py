"""The staff admin: every page renders, members are found, adjustments go through the ledger,
ledger rows are view-only, API keys show their secret once, the member page has bounded queries."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from loyalty.models import (
    Account,
    ApiKey,
    AuditEntry,
    Badge,
    BadgeAward,
    Challenge,
    ChallengeProgress,
    EarnRule,
    Entry,
    Event,
    FxRate,
    Lot,
    LotMovement,
    Member,
    MetricSnapshot,
    Order,
    Program,
    Redemption,
    Reward,
    RewardClaim,
    SurveyResponse,
    SurveySend,
    Transaction,
    TransactionKind,
    WebhookDelivery,
    WebhookEndpoint,
    WinbackGrant,
    WinbackOffer,
    hash_secret,
)
from loyalty.selectors.members import member_balances
from loyalty.selectors.metrics import Period
from loyalty.services.events import events_process
from loyalty.services.members import member_enroll, member_update
from loyalty.services.metrics import metrics_snapshot_take, survey_response_record, survey_sends_record, winback_grant
from loyalty.services.orders import order_refund
from loyalty.services.redemptions import redemption_hold
from loyalty.services.rewards import reward_claim
from loyalty.services.webhooks import webhook_endpoint_create
from referrals.models import Referral, ReferralCode
from tests.conftest import JUNE, CheckedClient
from tests.factories import MemberFactory, place_order
from tiers.models import BirthdayGift, Tier, TierChange, TierEvaluation
from tiers.services import birthday_take, tier_year_end_evaluate

pytestmark = pytest.mark.usefixtures("june")

LEDGER = (Account, Transaction, Entry, Lot, LotMovement)
METRICS = (WinbackGrant, SurveySend, SurveyResponse, MetricSnapshot)
VIEW_ONLY = (
    *LEDGER,
    Order,
    Redemption,
    RewardClaim,
    Event,
    ReferralCode,
    Referral,
    TierChange,
    TierEvaluation,
    BirthdayGift,
    AuditEntry,
    BadgeAward,
    ChallengeProgress,
    WebhookDelivery,
    *METRICS,
)
ADDABLE = {Program, EarnRule, Reward, ApiKey, Tier, Badge, Challenge, WebhookEndpoint, WinbackOffer}


# --- helpers ------------------------------------------------------------------------------------
def url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def available(member: Member, code: str = "PTS") -> int:
    return member_balances(member=member, now=JUNE)[code]["available"]


class FormParser(HTMLParser):
    """What a browser would submit from one <form>: inputs, checked boxes, selected options,
    text areas; disabled controls and unclicked buttons are left out."""

    def __init__(self, form_id: str):
        super().__init__()
        self.form_id, self.inside, self.data = form_id, False, []
        self._select, self._textarea = None, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.inside = a.get("id") == self.form_id
        if not self.inside or "disabled" in a:
            return
        if tag == "input" and a.get("name") and a.get("type", "text") not in ("submit", "button", "file"):
            if a.get("type") in ("checkbox", "radio") and "checked" not in a:
                return
            self.data.append((a["name"], a.get("value", "on" if a.get("type") == "checkbox" else "")))
        elif tag == "select":
            self._select = a.get("name")
        elif tag == "option" and self._select and "selected" in a:
            self.data.append((self._select, a.get("value", "")))
        elif tag == "textarea":
            self._textarea = a.get("name")
            self.data.append((self._textarea, ""))

    def handle_data(self, data):
        if self._textarea:
            name, text = self.data.pop()
            self.data.append((name, text + data))

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "select":
            self._select = None
        elif tag == "textarea" and self._textarea:
            name, text = self.data.pop()
            self.data.append((name, text.removeprefix("\r\n").removeprefix("\n")))  # Django's newline after <textarea>
            self._textarea = None


def form_data(response, form_id: str) -> dict:
    """The form as the page offers it: {name: value}, a list for a name given several times."""
    parser = FormParser(form_id)
    parser.feed(response.content.decode())
    names = [name for name, _ in parser.data]
    data: dict = {}
    for name, value in parser.data:
        if names.count(name) > 1:
            data.setdefault(name, []).append(value)
        else:
            data[name] = value
    return data


# --- fixtures -----------------------------------------------------------------------------------
@pytest.fixture
def superuser(db, django_user_model):
    return django_user_model.objects.create_superuser("boss", "boss@example.com", "pw")


@pytest.fixture
def staff_client(client, superuser):
    client.force_login(superuser)
    return client


@pytest.fixture
def busy(program, member, api_key, superuser):
    """A member with something in every table: matured and pending points, a refund, a hold, a
    claimed reward, events, an API key, a referral code and a friend it referred, a badge and a
    challenge completed, a webhook endpoint and its deliveries, a survey answered, a win-back grant
    and a metrics snapshot."""
    webhook_endpoint_create(program=program, url="https://shop.example.com/hooks", events=["points.earned"])
    old = place_order(program, member, "1200.00", placed_at=JUNE - timedelta(days=60), external_id="O-OLD")
    order_refund(
        program=program,
        order_external_id=old.external_id,
        refund_external_id="R-1",
        amount=Decimal("20.00"),
        now=JUNE - timedelta(days=59),
    )
    place_order(program, member, "80.00", category="skincare", placed_at=JUNE - timedelta(days=1), external_id="O-NEW")
    redemption_hold(program=program, member_external_id=member.external_id, points=500, now=JUNE)
    sample = Reward.objects.get(program=program, name="Deluxe sample")
    reward_claim(program=program, reward_id=sample.pk, member_external_id=member.external_id, now=JUNE)
    member = member_update(member=member, birth_date=date(1990, 6, 3))
    birthday_take(member=member, choice="gift", now=JUNE)
    tier_year_end_evaluate(program=program, year=2026, now=datetime(2026, 1, 1, tzinfo=UTC))
    code = ReferralCode.objects.get(member=member).code
    member_enroll(program=program, external_id="friend", email="friend@example.org", referral_code=code, now=JUNE)
    events_process(event_ids=list(Event.objects.values_list("pk", flat=True)), now=JUNE)
    assert BadgeAward.objects.exists() and ChallengeProgress.objects.exists() and WebhookDelivery.objects.exists()
    survey_sends_record(program=program, kind="nps", member_external_ids=["anna"], survey_id="june", now=JUNE)
    survey_response_record(program=program, member_external_id="anna", kind="nps", score=9, survey_id="june", now=JUNE)
    offer = WinbackOffer.objects.create(program=program, name="We miss you", kind="points", points=100)
    lapsed = MemberFactory(program=program, external_id="bruno", email="bruno@example.com", now=JUNE)
    winback_grant(offer=offer, member_ids=[lapsed.pk], audience="at_risk", staff_user=superuser, now=JUNE)
    metrics_snapshot_take(program=program, period=Period(date(2026, 5, 16), date(2026, 6, 15), "UTC"), now=JUNE)
    return member


# --- every page ---------------------------------------------------------------------------------
def test_every_registered_model_has_working_pages_with_data(staff_client, busy):
    ours = {m: a for m, a in admin.site._registry.items() if m._meta.app_label in {"loyalty", "tiers", "referrals"}}
    assert set(VIEW_ONLY) | ADDABLE | {Member} == set(ours)
    for model, model_admin in ours.items():
        changelist = staff_client.get(url(model, "changelist"))
        assert changelist.status_code == 200, model
        assert changelist.context["cl"].result_count > 0, f"{model.__name__}: no rows listed"
        if model_admin.search_fields:
            assert staff_client.get(url(model, "changelist"), {"q": "anna"}).status_code == 200, model
        for obj in model._default_manager.all()[:3]:
            assert staff_client.get(url(model, "change", obj.pk)).status_code == 200, (model, obj.pk)
        add = staff_client.get(url(model, "add"))
        assert add.status_code == (200 if model in ADDABLE else 403), model


def test_every_list_filter_choice_renders(staff_client, busy):
    for model in (Account, Transaction, Lot, Order, Redemption, Event, ApiKey, EarnRule, ReferralCode, Member):
        changelist = staff_client.get(url(model, "changelist"))
        for spec in changelist.context["cl"].filter_specs:
            for choice in spec.choices(changelist.context["cl"]):
                query = choice["query_string"]
                assert staff_client.get(url(model, "changelist") + query).status_code == 200, (model, query)


def test_money_and_points_display_nicely(staff_client, busy):
    orders = staff_client.get(url(Order, "changelist")).content.decode()
    assert "$1,200.00" in orders and "$80.00" in orders
    member_page = staff_client.get(url(Member, "change", busy.pk)).content.decode()
    assert "$80.00" in member_page


# --- members ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "term, found",
    [
        ("anna@example.com", {"anna"}),
        ("ANNA@Example.COM", {"anna"}),
        ("  Anna@ ", {"anna"}),
        ("anna", {"anna"}),
        ("bob-42", {"bob-42"}),
        ("BOB.SMITH@example.com", {"bob-42"}),
        ("nobody@example.com", set()),
    ],
)
def test_member_search_by_email_any_case_or_external_id(staff_client, member, member_factory, term, found):
    member_factory(external_id="bob-42", email="Bob.Smith@Example.com")
    response = staff_client.get(url(Member, "changelist"), {"q": term})
    assert response.status_code == 200
    assert {m.external_id for m in response.context["cl"].result_list} == found


def test_member_list_shows_the_columns_staff_need(staff_client, member):
    page = staff_client.get(url(Member, "changelist")).content.decode()
    for text in ("anna", "anna@example.com", "Anna Kowalska", "Insider", "Active"):
        assert text in page


def test_member_page_shows_balances_ledger_orders_and_redemptions(staff_client, busy):
    response = staff_client.get(url(Member, "change", busy.pk))
    assert response.status_code == 200
    page = response.content.decode()
    [pts] = response.context["balances"]
    # 1200 earned, 20 clawed back by the refund, 500 held, 100 spent on the sample; the 1,200 USD order
    # made the member Rouge, so the 80 USD order after it earns 120 points, pending
    assert (pts["code"], pts["available"], pts["pending"], pts["held"]) == (
        "PTS",
        "780",
        "120",
        "500",
    )  # 580 + 200 for the Skincare month
    assert [r["row"].pk for r in response.context["transactions"]] == list(
        Transaction.objects.filter(member=busy).order_by("-id").values_list("pk", flat=True)
    )
    assert "O-OLD" in page and "O-NEW" in page and "Adjust points" in page
    assert url(Transaction, "changelist") + f"?member__id__exact={busy.pk}" in page
    # the link to the member's full ledger lists only their transactions
    listed = staff_client.get(url(Transaction, "changelist"), {"member__id__exact": busy.pk})
    assert {t.member_id for t in listed.context["cl"].result_list} == {busy.pk}


def test_member_page_queries_are_bounded(staff_client, program, member, django_assert_max_num_queries):
    def page_queries():
        with CaptureQueriesContext(connection) as queries:
            assert staff_client.get(url(Member, "change", member.pk)).status_code == 200
        return len(queries)

    place_order(program, member, "600.00", placed_at=JUNE - timedelta(days=40))
    page_queries()  # warm up Django's own caches (content types)
    few = page_queries()
    for day in range(2, 12):
        place_order(program, member, "50.00", placed_at=JUNE - timedelta(days=day))
    redemption_hold(program=program, member_external_id="anna", points=500, now=JUNE)
    many = page_queries()
    assert many == few, (few, many)  # no query per order, lot, transaction or entry
    with django_assert_max_num_queries(16):  # 15, and one for the referral chain
        staff_client.get(url(Member, "change", member.pk))


def test_personal_data_is_editable_and_tier_is_not(staff_client, member, tiers):
    page = staff_client.get(url(Member, "change", member.pk))
    data = form_data(page, "member_form")
    assert "tier" not in data and "external_id" not in data
    data.update(first_name="Ania", email="Ania.K@example.com", tier=str(tiers["rouge"].pk), external_id="hacked")
    response = staff_client.post(url(Member, "change", member.pk), data)
    assert response.status_code == 302
    member.refresh_from_db()
    assert (member.first_name, member.email, member.tier.code, member.external_id) == (
        "Ania",
        "Ania.K@example.com",
        "insider",
        "anna",
    )


def test_an_email_taken_by_another_member_is_refused_on_the_field(staff_client, member, member_factory):
    member_factory(external_id="bob", email="bob@example.com")
    data = form_data(staff_client.get(url(Member, "change", member.pk)), "member_form")
    data["email"] = "BOB@example.com"
    response = staff_client.post(url(Member, "change", member.pk), data)
    assert response.status_code == 200
    assert "email" in response.context["adminform"].form.errors
    member.refresh_from_db()
    assert member.email == "anna@example.com"


def test_members_are_never_added_or_deleted_in_admin(staff_client, member):
    assert staff_client.get(url(Member, "add")).status_code == 403
    assert staff_client.post(url(Member, "delete", member.pk), {"post": "yes"}).status_code == 403
    assert Member.objects.filter(pk=member.pk).exists()


# --- adjustments --------------------------------------------------------------------------------
def adjust(client, member, points, reason="Goodwill: parcel arrived late", **extra):
    data = {"asset": member.program.primary_asset.pk, "points": points, "reason": reason, **extra}
    return client.post(reverse("admin:loyalty_member_adjust", args=[member.pk]), data, follow=True)


def test_the_adjust_page_shows_balances_and_the_form(staff_client, program, member):
    response = staff_client.get(reverse("admin:loyalty_member_adjust", args=[member.pk]))
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form["asset"].value() == program.primary_asset.pk
    assert response.context["balances"][0]["available"] == "0"


def test_adjustment_credit_and_debit_go_through_the_ledger(staff_client, superuser, member):
    response = adjust(staff_client, member, 250)
    assert response.redirect_chain == [(url(Member, "change", member.pk), 302)]
    assert "New available balance: 250 PTS" in messages_of(response)[0]
    assert available(member) == 250
    credit = Transaction.objects.get(member=member, kind=TransactionKind.ADJUST)
    assert (credit.memo, credit.created_by) == ("Goodwill: parcel arrived late", superuser)
    assert sorted(credit.entries.values_list("amount", flat=True)) == [-250, 250]

    response = adjust(staff_client, member, -100, reason="Duplicate goodwill credit")
    assert "New available balance: 150 PTS" in messages_of(response)[0]
    assert available(member) == 150
    debit = Transaction.objects.filter(member=member, kind=TransactionKind.ADJUST).latest("id")
    assert (debit.memo, debit.created_by) == ("Duplicate goodwill credit", superuser)
    # the admin history records who adjusted what
    history = staff_client.get(url(Member, "history", member.pk)).content.decode()
    assert f"Adjusted -100 PTS (transaction #{debit.pk})" in history


def test_a_debit_beyond_the_balance_shows_the_error_and_posts_nothing(staff_client, member):
    adjust(staff_client, member, 100)
    before = (Transaction.objects.count(), Entry.objects.count(), Event.objects.count())
    response = adjust(staff_client, member, -101)
    assert response.status_code == 200 and not response.redirect_chain
    [message] = messages_of(response)
    assert message.startswith("Nothing was posted:") and "100 available" in message
    assert (Transaction.objects.count(), Entry.objects.count(), Event.objects.count()) == before
    assert available(member) == 100


@pytest.mark.parametrize(
    "points, reason, field",
    [(10, "", "reason"), (10, "   ", "reason"), (0, "Zero", "points"), ("ten", "Words", "points")],
)
def test_an_adjustment_without_reason_or_points_is_refused(staff_client, member, points, reason, field):
    response = adjust(staff_client, member, points, reason=reason)
    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert not Transaction.objects.filter(kind=TransactionKind.ADJUST).exists()


def test_staff_who_may_only_view_members_cannot_adjust(client, django_user_model, member):
    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_member"))
    client.force_login(viewer)
    page = client.get(url(Member, "change", member.pk))
    assert page.status_code == 200 and "Adjust points" not in page.content.decode()
    assert adjust(client, member, 100).status_code == 403
    assert not Transaction.objects.filter(kind=TransactionKind.ADJUST).exists()


def test_a_closed_member_is_read_only_and_not_adjusted(staff_client, member):
    Member.objects.filter(pk=member.pk).update(status="closed")
    page = staff_client.get(url(Member, "change", member.pk))
    assert page.status_code == 200 and "Adjust points" not in page.content.decode()
    assert "email" not in page.context["adminform"].form.fields
    response = adjust(staff_client, member, 100)
    assert "The member's account is closed" in messages_of(response)[0]
    assert not Transaction.objects.filter(kind=TransactionKind.ADJUST).exists()


# --- the ledger and everything checkout wrote are view-only ---------------------------------------
def test_ledger_and_checkout_rows_cannot_be_added_changed_or_deleted(staff_client, busy):
    counts = {model: model._default_manager.count() for model in VIEW_ONLY}
    for model in VIEW_ONLY:
        obj = model._default_manager.first()
        change = staff_client.get(url(model, "change", obj.pk))
        assert change.status_code == 200 and not change.context["has_change_permission"], model
        assert staff_client.post(url(model, "change", obj.pk), {}).status_code == 403, model
        assert staff_client.get(url(model, "delete", obj.pk)).status_code == 403, model
        assert staff_client.post(url(model, "delete", obj.pk), {"post": "yes"}).status_code == 403, model
        assert staff_client.post(url(model, "add"), {}).status_code == 403, model
        changelist = staff_client.get(url(model, "changelist"))
        assert b"delete_selected" not in changelist.content, model
        bulk = {"action": "delete_selected", "_selected_action": [obj.pk], "post": "yes"}
        staff_client.post(url(model, "changelist"), bulk)
    assert counts == {model: model._default_manager.count() for model in VIEW_ONLY}


def test_a_transaction_page_shows_its_entries(staff_client, busy):
    earn = Transaction.objects.filter(member=busy, kind=TransactionKind.EARN).first()
    page = staff_client.get(url(Transaction, "change", earn.pk)).content.decode()
    for entry in earn.entries.all():
        assert str(entry.account) in page
    assert "+1,200 PTS" in page


def test_transactions_are_found_by_member_order_or_reference(staff_client, busy):
    def found(**params):
        response = staff_client.get(url(Transaction, "changelist"), params)
        return sorted(t.kind for t in response.context["cl"].result_list)

    assert found(q="anna") == sorted(Transaction.objects.filter(member=busy).values_list("kind", flat=True))
    assert found(q="O-NEW") == ["earn"]
    assert found(q="Deluxe sample") == ["claim"]
    assert found(kind="clawback") == ["clawback"]
    assert found(q="O-OLD", kind="mature") == ["mature"]


def test_system_accounts_are_listed(staff_client, busy):
    response = staff_client.get(url(Account, "changelist"), {"owner": "system", "kind": "issued"})
    rows = response.context["cl"].result_list
    assert rows and all(a.member_id is None and a.kind == "issued" for a in rows)


# --- orders -------------------------------------------------------------------------------------
def test_an_order_page_shows_lines_refunds_and_its_ledger(staff_client, busy):
    order = Order.objects.get(external_id="O-OLD")
    response = staff_client.get(url(Order, "change", order.pk))
    page = response.content.decode()
    assert "SKU-1" in page and "R-1" in page and "$20.00" in page
    assert f"?order__id__exact={order.pk}" in page
    found = staff_client.get(url(Order, "changelist"), {"q": "O-OLD"}).context["cl"].result_list
    assert [o.external_id for o in found] == ["O-OLD"]


# --- program configuration ----------------------------------------------------------------------
def test_a_program_added_in_admin_gets_its_point_currency_and_base_currency(staff_client):
    data = {
        "code": "shoes",
        "name": "Shoe Club",
        "base_currency": "EUR",
        "timezone": "Europe/Warsaw",
        "point_code": "STARS",
        "point_name": "Stars",
        "unit_value": "0.05",
        "pending_days": "14",
        "expiry_policy": "none",
        "expiry_months": "18",
        "refund_policy": "within_balance",
        "activity_window_days": "365",
        "acquisition_cost_0": "",
        "acquisition_cost_1": "EUR",
    }
    refused = staff_client.post(url(Program, "add"), {**data, "timezone": "Mars/Olympus"})
    assert refused.status_code == 200 and "timezone" in refused.context["adminform"].form.errors
    response = staff_client.post(url(Program, "add"), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    program = Program.objects.get(code="shoes")
    assert (program.primary_asset.code, program.primary_asset.unit_value) == ("STARS", Decimal("0.05"))
    assert list(program.fx_rates.values_list("currency", "rate")) == [("EUR", Decimal(1))]
    assert Account.objects.filter(program=program, member__isnull=True).exists()
    assert staff_client.get(url(Program, "change", program.pk)).status_code == 200


def test_program_page_edits_fx_rates_assets_and_earn_rules(staff_client, program):
    page = staff_client.get(url(Program, "change", program.pk))
    data = form_data(page, "program_form")
    fx = {data[f"fx_rates-{i}-id"]: i for i in range(int(data["fx_rates-TOTAL_FORMS"]))}
    eur = fx[str(FxRate.objects.get(program=program, currency="EUR").pk)]
    data[f"fx_rates-{eur}-rate"] = "1.10"
    data["assets-0-redeem_min"] = "1000"
    data["pending_days"] = "14"
    skincare = next(i for i in range(int(data["earn_rules-TOTAL_FORMS"])) if data[f"earn_rules-{i}-category"])
    data.pop(f"earn_rules-{skincare}-active")
    new_rule = int(data["earn_rules-TOTAL_FORMS"])
    data["earn_rules-TOTAL_FORMS"] = str(new_rule + 1)
    data |= {f"earn_rules-{new_rule}-{k}": v for k, v in {"name": "Welcome", "kind": "first_order_bonus"}.items()}
    data |= {f"earn_rules-{new_rule}-{k}": v for k, v in {"rate": "0", "multiplier": "1", "points": "50"}.items()}
    data |= {f"earn_rules-{new_rule}-active": "on"}
    data["assets-TOTAL_FORMS"] = "2"
    bonus = {"code": "BONUS", "name": "Bonus points", "kind": "points", "unit_value": "0.01"}
    data |= {f"assets-1-{k}": v for k, v in {**bonus, "redeem_min": "1", "redeem_step": "1"}.items()}
    data["assets-1-redeem_min_order"] = "0"
    response = staff_client.post(url(Program, "change", program.pk), data)
    assert response.status_code == 302
    assert FxRate.objects.get(program=program, currency="EUR").rate == Decimal("1.10")
    assert program.assets.get(code="PTS").redeem_min == 1000
    assert not EarnRule.objects.get(program=program, category="skincare").active
    assert EarnRule.objects.get(program=program, name="Welcome").points == 50
    # a new point currency gets its system accounts at once
    assert Account.objects.filter(asset__code="BONUS", member__isnull=True, kind="issued").exists()
    program.refresh_from_db()
    assert program.pending_days == 14


@pytest.mark.parametrize(
    "change, message",
    [
        ({"assets-0-redeem_min": "750"}, "multiple of the step"),
        ({"earn_rules-0-rate": "0"}, "A base rate needs a rate above zero."),
        ({"fx_rates-BASE-DELETE": "on"}, "The base currency USD must stay accepted"),
        ({"fx_rates-BASE-rate": "2"}, "The base currency USD must stay accepted"),
    ],
)
def test_program_page_refuses_broken_configuration(staff_client, program, change, message):
    data = form_data(staff_client.get(url(Program, "change", program.pk)), "program_form")
    base = next(
        i
        for i in range(int(data["fx_rates-TOTAL_FORMS"]))
        if data[f"fx_rates-{i}-id"] == str(FxRate.objects.get(program=program, currency="USD").pk)
    )
    assert data["earn_rules-0-kind"] == "base_rate"
    data.update({name.replace("BASE", str(base)): value for name, value in change.items()})
    response = staff_client.post(url(Program, "change", program.pk), data)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert FxRate.objects.get(program=program, currency="USD").rate == 1


def test_an_earn_rule_may_only_use_its_own_programs_tiers(staff_client, program, tiers):
    from loyalty.services.programs import program_create

    other = program_create(code="other", name="Other")
    foreign = Tier.objects.create(program=other, code="gold", name="Gold", rank=0, threshold=("0", "USD"))
    data = {"program": program.pk, "name": "Gold promo", "kind": "promotion", "active": "on", "multiplier": "2"}
    data |= {"rate": "0", "points": "0", "tier": foreign.pk}
    response = staff_client.post(url(EarnRule, "add"), data)
    assert response.status_code == 200 and "belongs to another program" in response.content.decode()
    response = staff_client.post(url(EarnRule, "add"), {**data, "tier": tiers["vib"].pk})
    assert response.status_code == 302
    assert EarnRule.objects.get(name="Gold promo").tier == tiers["vib"]


def test_reward_stock_and_active_are_edited_from_the_list(staff_client, program):
    page = staff_client.get(url(Reward, "changelist"))
    data = form_data(page, "changelist-form")
    rows = {data[f"form-{i}-id"]: i for i in range(int(data["form-TOTAL_FORMS"]))}
    sample = Reward.objects.get(program=program, name="Deluxe sample")
    data[f"form-{rows[str(sample.pk)]}-stock"] = "7"
    data.pop(f"form-{rows[str(sample.pk)]}-active")
    response = staff_client.post(url(Reward, "changelist"), {**data, "_save": "Save"})
    assert response.status_code == 302
    sample.refresh_from_db()
    assert (sample.stock, sample.active) == (7, False)


def test_tiers_are_listed_by_rank_and_editable(staff_client, program, tiers):
    listed = staff_client.get(url(Tier, "changelist"), {"program__id__exact": program.pk})
    assert [t.code for t in listed.context["cl"].result_list] == ["insider", "vib", "rouge"]
    vib = tiers["vib"]
    data = form_data(staff_client.get(url(Tier, "change", vib.pk)), "tier_form")
    data.update({"threshold_0": "400.00", "earn_multiplier": "1.3"})
    assert staff_client.post(url(Tier, "change", vib.pk), data).status_code == 302
    vib.refresh_from_db()
    assert (vib.threshold.amount, vib.earn_multiplier) == (Decimal("400.00"), Decimal("1.3"))
    response = staff_client.post(url(Tier, "change", vib.pk), {**data, "threshold_1": "EUR"})
    assert response.status_code == 200 and "base currency (USD)" in response.content.decode()


def test_referral_codes_are_found_in_any_case(staff_client, member):
    code = ReferralCode.objects.get(member=member).code
    found = staff_client.get(url(ReferralCode, "changelist"), {"q": code.lower()}).context["cl"].result_list
    assert [c.code for c in found] == [code]


# --- API keys -----------------------------------------------------------------------------------
def test_an_api_key_is_created_through_the_service_and_shown_once(staff_client, program, member):
    response = staff_client.post(url(ApiKey, "add"), {"program": program.pk, "name": "POS", "scopes": ["members"]})
    assert response.status_code == 200
    raw = response.context["raw_key"]
    key = ApiKey.objects.get(name="POS")
    assert raw.startswith(f"lk_{key.prefix}_") and raw in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    assert key.hashed == hash_secret(raw) and raw not in {key.name, key.prefix, key.hashed}
    assert key.scopes == ["members"]
    # afterwards only the prefix is shown
    for page in (url(ApiKey, "change", key.pk), url(ApiKey, "changelist")):
        content = staff_client.get(page).content.decode()
        assert key.prefix in content and raw not in content
    # and the key works
    api = CheckedClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.get("/api/v1/members/anna/").status_code == 200


def test_an_api_key_needs_a_name_and_known_scopes(staff_client, program):
    for data in ({"program": program.pk, "name": "", "scopes": ["members"]}, {"program": program.pk, "name": "x"}):
        assert staff_client.post(url(ApiKey, "add"), data).status_code == 200
    response = staff_client.post(url(ApiKey, "add"), {"program": program.pk, "name": "x", "scopes": ["root"]})
    assert response.status_code == 200 and "scopes" in response.context["adminform"].form.errors
    assert not ApiKey.objects.filter(program=program).exists()


def test_an_api_key_is_renamed_but_never_edited_or_deleted(staff_client, program, api_key):
    key = ApiKey.objects.get(program=program)
    before = (key.prefix, key.hashed, key.scopes)
    data = {"name": "checkout v2", "prefix": "hacked", "hashed": "0" * 64, "scopes": ["metrics"]}
    assert staff_client.post(url(ApiKey, "change", key.pk), data).status_code == 302
    key.refresh_from_db()
    assert key.name == "checkout v2" and (key.prefix, key.hashed, key.scopes) == before
    assert staff_client.post(url(ApiKey, "delete", key.pk), {"post": "yes"}).status_code == 403


def test_revoking_an_api_key_asks_first_then_refuses_the_key(staff_client, program, member, api_key):
    key = ApiKey.objects.get(program=program)
    action = {"action": "revoke", "_selected_action": [key.pk]}
    confirm = staff_client.post(url(ApiKey, "changelist"), action)
    assert confirm.status_code == 200 and "Yes, revoke" in confirm.content.decode()
    key.refresh_from_db()
    assert key.revoked_at is None
    response = staff_client.post(url(ApiKey, "changelist"), {**action, "post": "yes"}, follow=True)
    assert "Revoked 1 API key" in messages_of(response)[0]
    key.refresh_from_db()
    assert key.revoked_at is not None
    api = CheckedClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    assert api.get("/api/v1/members/anna/").status_code == 401
