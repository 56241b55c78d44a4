"""Tiers in the staff admin: the member page shows the tier status and history, staff pin a tier
with a reason and an end date (and end the pin) through the tiers service, the tier list counts the
members at each tier, the tier policy is edited on the program page, and the history, year-end
evaluations and birthday rewards are view-only."""

from datetime import UTC, date, datetime, timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from loyalty.models import Event, Member, Program
from loyalty.services.programs import program_create
from tests.conftest import JUNE
from tests.factories import place_order
from tests.loyalty.test_admin import form_data, messages_of, url
from tiers.models import (
    BirthdayGift,
    Tier,
    TierChange,
    TierChangeReason,
    TierEvaluation,
    TierPolicy,
    TierWindow,
)
from tiers.selectors import tier_progress
from tiers.services import birthday_take, tier_override_clear, tier_override_set, tier_year_end_evaluate

pytestmark = pytest.mark.usefixtures("june")

MARCH = datetime(2026, 3, 2, 12, tzinfo=UTC)
VIEW_ONLY = (TierChange, TierEvaluation, BirthdayGift)


# --- helpers ------------------------------------------------------------------------------------
def fresh(member: Member) -> Member:
    return Member.objects.select_related("program", "tier", "tier_floor", "tier_override").get(pk=member.pk)


def progress(member: Member) -> dict:
    return tier_progress(member=fresh(member), now=JUNE)


def pin_url(member: Member) -> str:
    return reverse("admin:loyalty_member_pin", args=[member.pk])


def unpin_url(member: Member) -> str:
    return reverse("admin:loyalty_member_unpin", args=[member.pk])


def pin(client, member, tier, until="2026-09-30", reason="Brand ambassador for the autumn launch"):
    data = {"tier": tier.pk, "until": until, "reason": reason}
    return client.post(pin_url(member), data, follow=True)


def overrides(member: Member):
    return TierChange.objects.filter(member=member, reason=TierChangeReason.OVERRIDE)


# --- fixtures -----------------------------------------------------------------------------------
@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture
def vib(program, member):
    """Anna crossed 350 USD in March: VIB until the end of next year."""
    place_order(program, member, "400.00", placed_at=MARCH, external_id="O-VIB")
    return fresh(member)


@pytest.fixture
def history(program, staff, tiers, member_factory):
    """A row in every tier table: a spend upgrade, a pin and its end, a year-end evaluation, a
    birthday gift."""
    anna = member_factory(external_id="anna", email="anna@example.com", birth_date=date(1990, 6, 3))
    place_order(program, anna, "400.00", placed_at=MARCH, external_id="O-VIB")
    tier_override_set(member=fresh(anna), tier=tiers["rouge"], until=date(2026, 7, 31), reason="VIP", staff_user=staff)
    tier_override_clear(member=fresh(anna), staff_user=staff, reason="Campaign cancelled")
    birthday_take(member=fresh(anna), choice="gift", now=JUNE)
    tier_year_end_evaluate(program=program, year=2026, now=datetime(2026, 1, 1, tzinfo=UTC))
    return fresh(anna)


# --- the member page ----------------------------------------------------------------------------
def test_the_member_page_shows_the_tier_status_and_the_history_newest_first(staff_client, program, vib, staff, tiers):
    place_order(program, vib, "200.00", placed_at=MARCH + timedelta(days=30))  # 600 USD: still VIB
    tier_override_set(
        member=fresh(vib), tier=tiers["rouge"], until=date(2026, 8, 31), reason="Press event host", staff_user=staff
    )
    response = staff_client.get(url(Member, "change", vib.pk))
    assert response.status_code == 200
    rows = [(c.from_tier.code, c.to_tier.code, c.reason) for c in response.context["tier_changes"]]
    assert rows == [("vib", "rouge", "override"), ("insider", "vib", "spend")]
    page = response.content.decode()
    history = page[page.index('id="member-tier-history"') :]
    for text in ("Pinned by staff", "Press event host", "Spend crossed a threshold", "Aug. 31, 2026", "Dec. 31, 2027"):
        assert text in history, text
    assert "<td>staff</td>" in history  # who pinned
    all_changes = url(TierChange, "changelist") + f"?member__id__exact={vib.pk}"
    assert all_changes in page
    assert staff_client.get(all_changes).context["cl"].result_count == 2
    # the status, read-only: earned tier and until when, carried over, the pin, the tier in effect, progress
    status = page[page.index("Tier</h2>") : page.index('id="member-tier-history"')]
    for text in (
        "Earned tier",
        url(Tier, "change", tiers["vib"].pk),
        "Dec. 31, 2027",
        "Rouge until Aug. 31, 2026",
        "Rouge until Aug. 31, 2026 (pinned by staff)",
        "Spend 400.00 USD more by 31 Dec 2026 for Rouge",
    ):
        assert text in status, text
    assert "Pin tier" in page and "End pin" in page


def test_the_member_page_shows_progress_and_no_end_pin_button_without_a_pin(staff_client, vib):
    page = staff_client.get(url(Member, "change", vib.pk)).content.decode()
    assert "Spend 0.00 USD more" not in page
    assert "Spend 600.00 USD more by 31 Dec 2026 for Rouge" in page
    assert "Pin tier" in page and "End pin" not in page


def test_a_member_with_no_tier_changes_yet(staff_client, member):
    response = staff_client.get(url(Member, "change", member.pk))
    assert response.status_code == 200 and "No tier changes yet." in response.content.decode()
    assert "Spend 350.00 USD more by 31 Dec 2026 for VIB" in response.content.decode()


def test_the_member_page_queries_stay_bounded_with_a_long_tier_history(staff_client, program, member, staff, tiers):
    def page_queries():
        with CaptureQueriesContext(connection) as queries:
            assert staff_client.get(url(Member, "change", member.pk)).status_code == 200
        return len(queries)

    place_order(program, member, "400.00", placed_at=MARCH)
    tier_override_set(member=fresh(member), tier=tiers["rouge"], until=date(2026, 12, 31), reason="x", staff_user=staff)
    page_queries()  # warm up Django's own caches (content types)
    few = page_queries()
    for n in range(15):
        tier_override_clear(member=fresh(member), staff_user=staff, reason=f"end {n}")
        tier_override_set(
            member=fresh(member), tier=tiers["rouge"], until=date(2026, 12, 31), reason=f"pin {n}", staff_user=staff
        )
    for day in range(2, 8):
        place_order(program, member, "50.00", placed_at=JUNE - timedelta(days=day))
    assert TierChange.objects.filter(member=member).count() > 30
    many = page_queries()
    assert many == few <= 16, (few, many)  # no query per tier change, and the history is cut at 20 rows


# --- pinning a tier -----------------------------------------------------------------------------
def test_the_pin_page_offers_only_the_members_programs_tiers(staff_client, program, vib):
    other = program_create(code="other", name="Other")
    Tier.objects.create(program=other, code="gold", name="Gold", rank=0, threshold=("0", "USD"))
    response = staff_client.get(pin_url(vib))
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert [label for _, label in form.fields["tier"].choices] == ["Insider (insider)", "VIB (vib)", "Rouge (rouge)"]
    page = response.content.decode()
    assert "Spend 600.00 USD more by 31 Dec 2026 for Rouge" in page and "Dec. 31, 2027" in page
    gold = Tier.objects.get(code="gold")
    response = pin(staff_client, vib, gold)
    assert "tier" in response.context["adminform"].form.errors
    assert not overrides(vib).exists()


def test_pinning_through_the_admin_puts_the_tier_in_effect_and_records_who_and_why(staff_client, staff, vib, tiers):
    response = pin(staff_client, vib, tiers["rouge"], until="2026-09-30", reason="  Brand ambassador  ")
    assert response.redirect_chain == [(url(Member, "change", vib.pk), 302)]
    assert messages_of(response) == ["anna is pinned at Rouge until Sept. 30, 2026 (inclusive)."]
    now = progress(vib)
    assert (now["pinned"], now["tier"], now["valid_until"]) == (True, "rouge", date(2026, 9, 30))
    member = fresh(vib)
    assert (member.tier.code, member.tier_override.code) == ("vib", "rouge")  # the earned tier stays
    change = overrides(vib).get()
    assert (change.from_tier.code, change.to_tier.code, change.note, change.created_by, change.valid_until) == (
        "vib",
        "rouge",
        "Brand ambassador",
        staff,
        date(2026, 9, 30),
    )
    assert Event.objects.filter(member=vib, type="tier.changed", properties__reason="override").exists()
    assert LogEntry.objects.filter(object_id=str(vib.pk), change_message__startswith="Pinned tier rouge").exists()
    # shown on the member page and in the member list with the pinned filter
    page = response.content.decode()
    assert "Rouge until Sept. 30, 2026" in page and "Brand ambassador" in page and "End pin" in page
    listed = staff_client.get(url(Member, "changelist"), {"pinned": "yes"})
    assert [m.external_id for m in listed.context["cl"].result_list] == ["anna"]
    assert "Rouge until Sept. 30, 2026" in listed.content.decode()


def test_a_pin_may_end_today(staff_client, vib, tiers):
    pin(staff_client, vib, tiers["rouge"], until=JUNE.date().isoformat())
    assert progress(vib)["pinned"] is True


@pytest.mark.parametrize(
    "until, reason, error",
    [
        ("2026-09-30", "", "reason"),
        ("2026-09-30", "   ", "reason"),
        ("", "Ambassador", "until"),
        ("30/09/2026 or so", "Ambassador", "until"),
        ("2026-06-14", "Ambassador", "Nothing was changed: The end date is in the past."),
    ],
)
def test_a_pin_without_reason_or_with_a_past_date_is_refused_and_changes_nothing(
    staff_client, vib, tiers, until, reason, error
):
    before = (Event.objects.count(), LogEntry.objects.count())
    response = pin(staff_client, vib, tiers["rouge"], until=until, reason=reason)
    assert response.status_code == 200 and not response.redirect_chain
    if error.startswith("Nothing"):
        assert messages_of(response) == [error]
    else:
        assert error in response.context["adminform"].form.errors
    assert "Please correct the error" in response.content.decode() or messages_of(response)
    member = fresh(vib)
    assert (member.tier_override, member.tier_override_until) == (None, None)
    assert not overrides(vib).exists()
    assert progress(vib)["pinned"] is False
    assert (Event.objects.count(), LogEntry.objects.count()) == before


def test_ending_a_pin_returns_the_earned_tier(staff_client, staff, vib, tiers):
    tier_override_set(member=fresh(vib), tier=tiers["rouge"], until=date(2026, 9, 30), reason="VIP", staff_user=staff)
    confirm = staff_client.get(unpin_url(vib))
    assert confirm.status_code == 200 and "Rouge until Sept. 30, 2026" in confirm.content.decode()
    assert fresh(vib).tier_override is not None  # asking is not doing
    response = staff_client.post(unpin_url(vib), {"reason": "Campaign cancelled"}, follow=True)
    assert response.redirect_chain == [(url(Member, "change", vib.pk), 302)]
    assert messages_of(response) == ["The pin of anna at Rouge has ended; the earned tier VIB is in effect."]
    now = progress(vib)
    assert (now["pinned"], now["tier"]) == (False, "vib")
    end = TierChange.objects.get(member=vib, reason=TierChangeReason.OVERRIDE_END)
    assert (end.from_tier.code, end.to_tier.code, end.note, end.created_by) == (
        "rouge",
        "vib",
        "Campaign cancelled",
        staff,
    )
    assert "End pin" not in response.content.decode()
    # nothing left to end
    again = staff_client.post(unpin_url(vib), {"reason": ""}, follow=True)
    assert messages_of(again) == ["anna has no pinned tier."]
    assert TierChange.objects.filter(member=vib, reason=TierChangeReason.OVERRIDE_END).count() == 1


def test_staff_who_may_only_view_members_cannot_pin_or_end_a_pin(client, django_user_model, staff, vib, tiers):
    tier_override_set(member=fresh(vib), tier=tiers["rouge"], until=date(2026, 9, 30), reason="VIP", staff_user=staff)
    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_member"))
    client.force_login(viewer)
    page = client.get(url(Member, "change", vib.pk)).content.decode()
    assert "Pin tier" not in page and "End pin" not in page
    assert client.get(pin_url(vib)).status_code == 403
    assert pin(client, vib, tiers["insider"]).status_code == 403
    assert client.post(unpin_url(vib), {"reason": "no"}).status_code == 403
    assert fresh(vib).tier_override.code == "rouge" and overrides(vib).count() == 1


def test_a_closed_member_is_not_pinned(staff_client, vib, tiers):
    Member.objects.filter(pk=vib.pk).update(status="closed")
    assert "Pin tier" not in staff_client.get(url(Member, "change", vib.pk)).content.decode()
    response = pin(staff_client, vib, tiers["rouge"])
    assert "The member's account is closed" in messages_of(response)[0]
    assert not overrides(vib).exists()


def test_the_pinned_filter_counts_only_pins_in_effect_today(staff_client, staff, program, member_factory, tiers):
    live, lapsed, never = (member_factory(external_id=name) for name in ("live", "lapsed", "never"))
    tier_override_set(member=fresh(live), tier=tiers["vib"], until=date(2026, 6, 30), reason="x", staff_user=staff)
    tier_override_set(
        member=fresh(lapsed),
        tier=tiers["vib"],
        until=date(2026, 6, 14),  # yesterday: the daily job has not cleared it yet
        reason="x",
        staff_user=staff,
        now=datetime(2026, 6, 1, tzinfo=UTC),
    )

    def listed(**params):
        response = staff_client.get(url(Member, "changelist"), params)
        assert response.status_code == 200
        return {m.external_id for m in response.context["cl"].result_list}

    assert listed(pinned="yes") == {"live"}
    assert listed(pinned="no") == {"lapsed", "never"}
    assert listed() == {"live", "lapsed", "never"}
    assert (
        "VIB until June 14, 2026 (ended; the earned tier is in effect)"
        in staff_client.get(url(Member, "changelist")).content.decode()
    )


# --- tiers and members per tier -----------------------------------------------------------------
def test_the_tier_list_counts_members_by_earned_tier_and_links_to_them(
    staff_client, staff, program, member, member_factory, tiers
):
    bob, carl, dora = (member_factory(external_id=name) for name in ("bob", "carl", "dora"))
    place_order(program, bob, "400.00", placed_at=MARCH)
    place_order(program, carl, "500.00", placed_at=MARCH)
    place_order(program, dora, "1000.00", placed_at=MARCH)
    # a pin does not move a member to another tier's count: it is not the earned tier
    tier_override_set(member=fresh(member), tier=tiers["vib"], until=date(2026, 9, 30), reason="x", staff_user=staff)
    response = staff_client.get(url(Tier, "changelist"), {"program__id__exact": program.pk})
    assert response.status_code == 200
    assert {t.code: t.member_count for t in response.context["cl"].result_list} == {
        "insider": 1,
        "vib": 2,
        "rouge": 1,
    }
    page = response.content.decode()
    link = url(Member, "changelist") + f"?tier__id__exact={tiers['vib'].pk}"
    assert f'<a href="{link}">2</a>' in page
    at_vib = staff_client.get(link)
    assert {m.external_id for m in at_vib.context["cl"].result_list} == {"bob", "carl"}
    # the columns staff asked for, and sorting by the count works
    for text in ("Beauty Rewards", "vib", "VIB", "$350.00", "1.250", "250"):
        assert text in page, text
    by_members = staff_client.get(url(Tier, "changelist"), {"o": "-8.2"})
    assert [t.code for t in by_members.context["cl"].result_list][0] == "vib"


def test_the_tier_list_counts_zero_for_an_empty_tier_in_one_query(staff_client, program):
    with CaptureQueriesContext(connection) as queries:
        response = staff_client.get(url(Tier, "changelist"))
    assert {t.code: t.member_count for t in response.context["cl"].result_list} == {
        "insider": 0,
        "vib": 0,
        "rouge": 0,
    }
    assert sum("loyalty_member" in q["sql"] for q in queries.captured_queries) == 1


def test_the_tier_validations_still_hold(staff_client, program, tiers):
    data = form_data(staff_client.get(url(Tier, "change", tiers["vib"].pk)), "tier_form")
    response = staff_client.post(url(Tier, "change", tiers["vib"].pk), {**data, "threshold_1": "EUR"})
    assert response.status_code == 200 and "base currency (USD)" in response.content.decode()


# --- the tier policy on the program page ----------------------------------------------------------
def test_the_tier_policy_is_edited_on_the_program_page(staff_client, program):
    page = staff_client.get(url(Program, "change", program.pk))
    data = form_data(page, "program_form")
    assert data["tier_policy-0-window"] == TierWindow.CALENDAR_YEAR
    data |= {"tier_policy-0-window": TierWindow.ROLLING_12_MONTHS, "tier_policy-0-downgrade_policy": "one_down"}
    assert staff_client.post(url(Program, "change", program.pk), data).status_code == 302
    policy = TierPolicy.objects.get(program=program)
    assert (policy.window, policy.downgrade_policy) == ("rolling_12_months", "one_down")


def test_a_program_without_a_tier_policy_gets_one_only_when_staff_change_it(staff_client):
    program = program_create(code="shoes", name="Shoe Club")
    data = form_data(staff_client.get(url(Program, "change", program.pk)), "program_form")
    assert staff_client.post(url(Program, "change", program.pk), data).status_code == 302
    assert not TierPolicy.objects.filter(program=program).exists()  # the defaults apply
    data["tier_policy-0-window"] = TierWindow.LIFETIME
    assert staff_client.post(url(Program, "change", program.pk), data).status_code == 302
    assert TierPolicy.objects.get(program=program).window == TierWindow.LIFETIME


# --- history, evaluations and birthday rewards are view-only -------------------------------------
def test_tier_history_evaluations_and_birthday_gifts_have_working_pages(staff_client, history):
    for model in VIEW_ONLY:
        changelist = staff_client.get(url(model, "changelist"))
        assert changelist.status_code == 200 and changelist.context["cl"].result_count > 0, model
        assert staff_client.get(url(model, "changelist"), {"q": "anna"}).status_code == 200, model
        for spec in changelist.context["cl"].filter_specs:
            for choice in spec.choices(changelist.context["cl"]):
                filtered = staff_client.get(url(model, "changelist") + choice["query_string"])
                assert filtered.status_code == 200, (model, choice["query_string"])
        for obj in model._default_manager.all():
            assert staff_client.get(url(model, "change", obj.pk)).status_code == 200, (model, obj.pk)
    found = staff_client.get(url(TierChange, "changelist"), {"q": "anna"}).context["cl"].result_list
    assert [c.reason for c in found] == ["override_end", "override", "spend"]  # newest first
    assert "Campaign cancelled" in staff_client.get(url(TierChange, "changelist")).content.decode()


def test_tier_history_evaluations_and_birthday_gifts_refuse_every_write(staff_client, history):
    counts = {model: model._default_manager.count() for model in VIEW_ONLY}
    for model in VIEW_ONLY:
        obj = model._default_manager.first()
        change = staff_client.get(url(model, "change", obj.pk))
        assert change.status_code == 200 and not change.context["has_change_permission"], model
        assert staff_client.post(url(model, "change", obj.pk), {}).status_code == 403, model
        assert staff_client.get(url(model, "add")).status_code == 403, model
        assert staff_client.post(url(model, "add"), {}).status_code == 403, model
        assert staff_client.post(url(model, "delete", obj.pk), {"post": "yes"}).status_code == 403, model
        changelist = staff_client.get(url(model, "changelist"))
        assert b"delete_selected" not in changelist.content, model
        staff_client.post(
            url(model, "changelist"), {"action": "delete_selected", "_selected_action": [obj.pk], "post": "yes"}
        )
    assert counts == {model: model._default_manager.count() for model in VIEW_ONLY}
