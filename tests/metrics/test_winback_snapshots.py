"""Win-back offers granted to the at-risk list or a segment (atomic, once per member, audited,
through the ledger), how many came back, and the nightly snapshot job."""

from datetime import UTC, date, datetime, timedelta

import pytest
from django.contrib.auth.models import Group

from loyalty.errors import OutOfStock
from loyalty.jobs import jobs
from loyalty.models import (
    AuditEntry,
    MetricSnapshot,
    Reward,
    RewardClaim,
    Transaction,
    TransactionKind,
    WinbackGrant,
    WinbackOffer,
)
from loyalty.selectors.members import member_balances
from loyalty.selectors.metrics import at_risk_member_ids, segment_member_ids, snapshot_series, winback_results
from loyalty.services.audit import Forbidden
from loyalty.services.metrics import (
    WinbackOfferInactive,
    metrics_snapshots_backfill,
    metrics_snapshots_run,
    winback_grant,
)
from tests.factories import place_order
from tests.metrics.conftest import at

NOW = datetime(2026, 6, 1, 9, tzinfo=UTC)


@pytest.fixture
def user_in(django_user_model):
    def make(group):
        user = django_user_model.objects.create_user(group, f"{group}@example.com", "pw", is_staff=True)
        user.groups.add(Group.objects.get(name=group))
        return django_user_model.objects.get(pk=user.pk)

    return make


@pytest.fixture
def lapsing(program, customers):
    """Three members overdue (at risk) and one on time."""
    return customers(
        [
            *[(f"late{i}", [NOW - timedelta(days=d + i) for d in (130, 100, 70)], "20.00") for i in range(3)],
            ("fine", [NOW - timedelta(days=d) for d in (90, 60, 30)], "20.00"),
        ]
    )


def test_a_manager_grants_bonus_points_to_the_at_risk_list_once(program, lapsing, user_in):
    manager = user_in("manager")
    offer = WinbackOffer.objects.create(program=program, name="We miss you", kind="points", points=300)
    ids = at_risk_member_ids(program=program, as_of=NOW)
    assert len(ids) == 3

    result = winback_grant(offer=offer, member_ids=ids, audience="at_risk", staff_user=manager, now=NOW)
    again = winback_grant(offer=offer, member_ids=ids, audience="at_risk", staff_user=manager, now=NOW)

    assert (result.granted, result.already, result.points) == (3, 0, 900)
    assert (again.granted, again.already) == (0, 3)
    assert WinbackGrant.objects.filter(offer=offer).count() == 3
    rows = Transaction.objects.filter(kind=TransactionKind.WINBACK)
    assert rows.count() == 3 and {r.created_by for r in rows} == {manager}
    late = lapsing[0]
    before = 3 * 20  # points of three 20 USD orders
    assert member_balances(member=late, now=NOW)["PTS"]["available"] == before + 300
    audit = AuditEntry.objects.filter(action="winback.grant").order_by("id")
    assert [a.after["granted"] for a in audit] == [3, 0] and audit[0].actor == manager


def test_support_may_not_grant_and_an_inactive_offer_grants_nothing(program, lapsing, user_in):
    offer = WinbackOffer.objects.create(program=program, name="Come back", kind="points", points=100)
    ids = at_risk_member_ids(program=program, as_of=NOW)
    with pytest.raises(Forbidden):
        winback_grant(offer=offer, member_ids=ids, audience="at_risk", staff_user=user_in("support"), now=NOW)
    offer.active = False
    offer.save()
    with pytest.raises(WinbackOfferInactive):
        winback_grant(offer=offer, member_ids=ids, audience="at_risk", staff_user=user_in("manager"), now=NOW)
    assert not WinbackGrant.objects.exists() and not Transaction.objects.filter(kind="winback").exists()


def test_a_reward_offer_issues_free_coupons_and_is_all_or_nothing_on_stock(program, lapsing, staff):
    sample = Reward.objects.get(program=program, name="Deluxe sample")
    sample.stock = 2
    sample.save()
    offer = WinbackOffer.objects.create(program=program, name="Free sample", kind="reward", reward=sample)
    ids = at_risk_member_ids(program=program, as_of=NOW)
    with pytest.raises(OutOfStock):
        winback_grant(offer=offer, member_ids=ids, audience="at_risk", staff_user=staff, now=NOW)
    assert not RewardClaim.objects.exists() and Reward.objects.get(pk=sample.pk).stock == 2

    result = winback_grant(offer=offer, member_ids=ids[:2], audience="at_risk", staff_user=staff, now=NOW)
    assert result.granted == 2 and Reward.objects.get(pk=sample.pk).stock == 0
    claims = RewardClaim.objects.filter(reward=sample)
    assert claims.count() == 2 and {c.points for c in claims} == {0}
    assert {g.reward_claim_id for g in WinbackGrant.objects.all()} == {c.pk for c in claims}


def test_the_dashboard_counts_who_came_back_within_60_days(program, lapsing, staff):
    offer = WinbackOffer.objects.create(program=program, name="We miss you", kind="points", points=300)
    ids = at_risk_member_ids(program=program, as_of=NOW)
    winback_grant(offer=offer, member_ids=ids, audience="at_risk", staff_user=staff, now=NOW)
    late0, late1, _late2 = lapsing[:3]
    place_order(program, late0, "40.00", placed_at=NOW + timedelta(days=10))  # back in time
    place_order(program, late1, "40.00", placed_at=NOW + timedelta(days=75))  # too late

    [row] = winback_results(program=program, now=NOW + timedelta(days=90))
    assert (row["offer"], row["granted"], row["came_back"], row["came_back_rate"], row["still_open"]) == (
        offer,
        3,
        1,
        33.33,
        0,
    )
    [early] = winback_results(program=program, now=NOW + timedelta(days=20))
    assert early["still_open"] == 3


def test_a_segment_can_be_targeted(program, customers, staff):
    customers([(f"old{i}", [NOW - timedelta(days=300 + i)], "20.00") for i in range(8)])
    customers([(f"n{i}", [NOW - timedelta(days=2, hours=i)], "20.00") for i in range(5)])
    offer = WinbackOffer.objects.create(program=program, name="Second order bonus", kind="points", points=50)
    ids = segment_member_ids(program=program, as_of=NOW, segment="new")
    result = winback_grant(offer=offer, member_ids=ids, audience="segment:new", staff_user=staff, now=NOW)
    assert result.granted == 5
    assert set(WinbackGrant.objects.values_list("audience", flat=True)) == {"segment:new"}


# --- snapshots -------------------------------------------------------------------------------------
def test_the_nightly_job_is_registered_and_idempotent(program, customers):
    customers([("a", [at(2026, 5, 20), at(2026, 5, 28)], "50.00")])
    assert "metrics_snapshot" in jobs()
    done = metrics_snapshots_run(NOW)
    # the last 30 days (full), the 30 before them, and the last week's daily series
    assert done == 9
    assert metrics_snapshots_run(NOW) == 0
    full = MetricSnapshot.objects.get(program=program, start=date(2026, 5, 2), end=date(2026, 6, 1))
    assert full.summary["source"] == "snapshot" and full.summary["orders"] == 2
    assert full.cohorts["months"][-1] == "2026-05" and len(full.cohorts["months"]) == 12
    assert {s["segment"] for s in full.segments} >= {"champions", "lost"} and full.at_risk == 0
    assert full.flows[-1] == {"month": "2026-05", "earned": 100, "redeemed": 0, "expired": 0}
    series = snapshot_series(program=program, until=date(2026, 6, 1))
    expected = ["2026-05-02"] + [f"2026-05-{d:02d}" for d in range(25, 32)] + ["2026-06-01"]
    assert [s["end"] for s in series] == expected  # the previous period is a point of the series too


def test_backfill_fills_the_time_series(program, customers):
    customers([("a", [at(2026, 5, 20)], "50.00")])
    assert metrics_snapshots_backfill(program=program, days=5, now=NOW) == 5
    assert MetricSnapshot.objects.filter(program=program, cohorts__isnull=False).count() == 1
    assert len(snapshot_series(program=program, until=date(2026, 6, 1))) == 5


def test_the_backfill_command(program, customers):
    from io import StringIO

    from django.core.management import call_command

    customers([("a", [at(2026, 5, 20)], "50.00")])
    out = StringIO()
    call_command("metrics_snapshot", "--program", "demo", "--days", "3", stdout=out)
    assert "demo: 3 snapshot(s) computed" in out.getvalue()
    call_command("metrics_snapshot", "--days", "3", stdout=out)
    assert "demo: 1 snapshot(s) computed" in out.getvalue()  # only today's full one again


def test_a_grant_is_a_webhook_event_for_the_email_tool(program, lapsing, staff):
    from loyalty.models import Event, WebhookDelivery
    from loyalty.services.events import events_process
    from loyalty.services.webhooks import webhook_endpoint_create

    webhook_endpoint_create(program=program, url="https://mail.example.com/hooks", events=["winback.granted"])
    offer = WinbackOffer.objects.create(program=program, name="We miss you", kind="points", points=300)
    winback_grant(offer=offer, member_ids=at_risk_member_ids(program=program, as_of=NOW), audience="at_risk",
                  staff_user=staff, now=NOW)  # fmt: skip
    events_process(event_ids=list(Event.objects.filter(type="winback.granted").values_list("pk", flat=True)), now=NOW)
    deliveries = WebhookDelivery.objects.filter(event__type="winback.granted")
    assert deliveries.count() == 3
    assert {d.event.properties["points"] for d in deliveries} == {300}
