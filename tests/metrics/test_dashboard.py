"""The admin retention dashboard: renders live or from snapshots (bounded queries), is for staff
roles only, links segments to their members, and grants win-back offers from the lists."""

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.contrib.staticfiles import finders
from django.urls import reverse

from loyalty.models import MetricSnapshot, WinbackGrant, WinbackOffer
from loyalty.services.metrics import metrics_snapshots_run
from tests.metrics.conftest import at

pytestmark = pytest.mark.usefixtures("june")
NOW = datetime(2026, 6, 15, 12, tzinfo=UTC)
DASHBOARD = "/admin/metrics/"


@pytest.fixture
def user_in(django_user_model):
    def make(group):
        user = django_user_model.objects.create_user(group, f"{group}@example.com", "pw", is_staff=True)
        user.groups.add(Group.objects.get(name=group))
        return django_user_model.objects.get(pk=user.pk)

    return make


@pytest.fixture
def shop(program, customers):
    return customers(
        [
            *[(f"late{i}", [NOW - timedelta(days=d + i) for d in (130, 100, 70)], "40.00") for i in range(3)],
            ("regular", [NOW - timedelta(days=d) for d in (90, 60, 30, 5)], "90.00"),
            ("newbie", [NOW - timedelta(days=3)], "25.00"),
            ("old", [at(2025, 3, 1)], "15.00"),
        ]
    )


def test_the_dashboard_shows_headlines_charts_cohorts_and_segments(client, staff, shop):
    client.force_login(staff)
    page = client.get(DASHBOARD)
    assert page.status_code == 200
    html = page.content.decode()
    cards = {c["key"]: c for c in page.context["cards"]}
    assert cards["customers_at_end"]["value"] == "5"  # "old" last ordered over a year ago
    assert cards["retention_rate"]["change"] is not None
    data = json.loads(re.search(r'id="dashboard-data" type="application/json">(.*?)</script>', html, re.S).group(1))
    assert {"series", "tierMix", "flows", "segments"} <= set(data)
    assert len(data["flows"]) == 12 and sum(s["members"] for s in data["segments"]) == 6
    champions = reverse("loyalty_metrics_segment", args=["champions"])
    assert f'href="{champions}?program=demo"' in html
    assert 'id="cohort-heatmap"' in html and "Computed now." in html
    # charts come from our own static files, never a CDN
    assert re.findall(r'<script src="([^"]+)"', html) and all(
        src.startswith(settings.STATIC_URL) or src.startswith("/" + settings.STATIC_URL)
        for src in re.findall(r'<script src="([^"]+)"', html)
        if "chart" in src or "dashboard" in src
    )
    assert finders.find("loyalty/vendor/chartjs/chart.umd.min.js")
    assert Path(finders.find("loyalty/vendor/chartjs/LICENSE.md")).read_text().startswith("The MIT License")


def test_the_dashboard_from_snapshots_is_a_handful_of_queries(client, staff, shop, django_assert_max_num_queries):
    metrics_snapshots_run(NOW)
    client.force_login(staff)
    client.get(DASHBOARD)  # sessions, permissions cached
    with django_assert_max_num_queries(12):
        page = client.get(DASHBOARD)
    assert page.context["summary"]["source"] == "snapshot" and page.context["extras_source"] == "snapshot"
    assert "From the nightly snapshot" in page.content.decode()
    assert len(page.context["charts"]["series"]) >= 8


def test_a_custom_period_and_a_bad_one(client, staff, shop):
    client.force_login(staff)
    page = client.get(DASHBOARD, {"preset": "custom", "start": "2026-05-01", "end": "2026-06-01"})
    assert page.context["summary"]["start"] == "2026-05-01" and page.context["summary"]["end"] == "2026-06-01"
    bad = client.get(DASHBOARD, {"preset": "custom", "start": "2026-06-01", "end": "2026-05-01"})
    assert bad.status_code == 200 and "The start must be before the end" in bad.content.decode()
    assert client.get(DASHBOARD, {"preset": "90"}).context["period"].days == 90


def test_staff_roles_see_it_others_do_not(client, shop, user_in, django_user_model):
    assert client.get(DASHBOARD).status_code == 302  # to the login page
    client.force_login(user_in("support"))
    assert client.get(DASHBOARD).status_code == 200
    at_risk = client.get(reverse("loyalty_metrics_at_risk"))
    assert at_risk.status_code == 200 and not at_risk.context["can_grant"]
    nobody = django_user_model.objects.create_user("clerk", "clerk@example.com", "pw", is_staff=True)
    client.force_login(nobody)
    assert client.get(DASHBOARD).status_code == 403
    assert client.get(reverse("loyalty_metrics_at_risk")).status_code == 403


def test_the_admin_home_links_the_dashboard(client, staff):
    client.force_login(staff)
    assert reverse("loyalty_metrics_dashboard") in client.get(reverse("admin:index")).content.decode()


def test_a_segment_lists_its_members_with_links(client, staff, shop):
    client.force_login(staff)
    page = client.get(reverse("loyalty_metrics_segment", args=["new"]))
    assert page.status_code == 200
    assert [r["member"] for r in page.context["rows"]] == ["newbie"]
    newbie = shop[4]
    assert reverse("admin:loyalty_member_change", args=[newbie.pk]) in page.content.decode()
    assert client.get(reverse("loyalty_metrics_segment", args=["best"])).status_code == 404


def test_a_manager_grants_an_offer_to_the_at_risk_list_in_one_action(client, program, shop, user_in):
    offer = WinbackOffer.objects.create(program=program, name="We miss you", kind="points", points=250)
    client.force_login(user_in("manager"))
    url = reverse("loyalty_metrics_at_risk")
    page = client.get(url)
    assert sorted(r["member"] for r in page.context["rows"]) == ["late0", "late1", "late2"]

    done = client.post(url, {"program": "demo", "offer": offer.pk, "scope": "all"}, follow=True)
    again = client.post(url, {"program": "demo", "offer": offer.pk, "scope": "all"}, follow=True)

    assert "We miss you granted to 3 members." in [str(m) for m in done.context["messages"]]
    assert "granted to 0 members; 3 already had it" in " ".join(str(m) for m in again.context["messages"])
    assert WinbackGrant.objects.filter(offer=offer).count() == 3
    dashboard = client.get(DASHBOARD)
    [row] = dashboard.context["winback"]
    assert (row["granted"], row["came_back"]) == (3, 0)


def test_only_the_ticked_members_and_nobody_without_the_permission(client, program, shop, user_in):
    offer = WinbackOffer.objects.create(program=program, name="Come back", kind="points", points=100)
    url = reverse("loyalty_metrics_at_risk")
    late0 = shop[0]
    client.force_login(user_in("support"))
    assert client.post(url, {"offer": offer.pk, "scope": "all"}).status_code == 403
    client.force_login(user_in("manager"))
    none_ticked = client.post(url, {"offer": offer.pk, "scope": "selected"})
    assert "Tick the members" in none_ticked.content.decode()
    client.post(url, {"offer": offer.pk, "scope": "selected", "members": [late0.pk]})
    assert list(WinbackGrant.objects.values_list("member_id", flat=True)) == [late0.pk]
    assert not MetricSnapshot.objects.exists()


def test_an_empty_program_renders_every_part(client, staff, program):
    client.force_login(staff)
    page = client.get(DASHBOARD)
    assert page.status_code == 200
    assert {c["value"] for c in page.context["cards"] if c["key"] in ("retention_rate", "nps", "clv")} == {"–"}
    assert page.context["at_risk"] == 0 and all(s["members"] == 0 for s in page.context["segments"])
    assert client.get(reverse("loyalty_metrics_at_risk")).status_code == 200
    assert client.get(reverse("loyalty_metrics_segment", args=["lost"])).status_code == 200


def test_the_static_files_collect_with_the_production_manifest_storage(tmp_path, settings):
    # Chart.js names its source map: the manifest storage of production (DJANGO_DEBUG=0) must find it.
    from django.core.management import call_command

    settings.STATIC_ROOT = tmp_path
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
    }
    call_command("collectstatic", "--noinput", verbosity=0)
    manifest = json.loads((tmp_path / "staticfiles.json").read_text())["paths"]
    assert "loyalty/vendor/chartjs/chart.umd.min.js" in manifest and "loyalty/dashboard/dashboard.js" in manifest
