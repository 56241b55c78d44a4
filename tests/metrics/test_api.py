"""The metrics and survey API: scopes, problem+json for bad periods, CSV export, snapshots, bounded
queries (every response is checked against the OpenAPI schema by CheckedClient)."""

import csv
import io
from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from loyalty.models import SurveyResponse
from loyalty.selectors.metrics import Period
from loyalty.services.access import api_key_create
from loyalty.services.metrics import metrics_snapshot_take
from tests.conftest import CheckedClient
from tests.metrics.conftest import at

NOW = datetime(2026, 6, 15, 12, tzinfo=UTC)
pytestmark = pytest.mark.usefixtures("june")


def client_with(program, *scopes) -> CheckedClient:
    client = CheckedClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(program=program, name='m', scopes=list(scopes))[1]}")
    return client


def rows(response) -> list[list[str]]:
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(response.content.decode())))


@pytest.fixture
def history(program, customers):
    return customers(
        [
            ("a", [at(2026, 1, 5), at(2026, 3, 5), at(2026, 5, 20)], "50.00"),
            ("b", [at(2025, 9, 1)], "30.00"),
            ("c", [at(2026, 5, 25)], "80.00"),
        ]
    )


def test_summary_needs_the_metrics_scope_or_staff(program, history, client, staff):
    assert client_with(program, "metrics").get("/api/v1/metrics/summary/").status_code == 200
    denied = client_with(program, "orders").get("/api/v1/metrics/summary/")
    assert denied.status_code == 403 and denied.json()["code"] == "missing_scope"
    assert CheckedClient().get("/api/v1/metrics/summary/").status_code == 401
    client.force_login(staff)
    assert client.get("/api/v1/metrics/summary/").status_code == 200


def test_summary_of_a_period(api, program, history):
    body = api.get("/api/v1/metrics/summary/?start=2026-05-01&end=2026-06-01").json()
    assert (body["start"], body["end"], body["source"], body["currency"]) == ("2026-05-01", "2026-06-01", "live", "USD")
    assert (body["customers_at_start"], body["customers_at_end"], body["new_customers"]) == (2, 3, 1)
    assert body["average_order_value"] == {"amount": "65.00", "currency": "USD"}


@pytest.mark.parametrize(
    ("query", "code", "field"),
    [
        ("start=2026-05-01&end=2026-05-01", "invalid_period", "end"),
        ("start=2026-06-01&end=2026-05-01", "invalid_period", "end"),
        ("start=2026-05-01", "invalid_period", "end"),
        ("end=2026-05-01", "invalid_period", "start"),
        ("start=2026-13-01&end=2026-05-01", "invalid_date", "start"),
        ("start=yesterday&end=2026-05-01", "invalid_date", "start"),
        ("start=2026-05-01&end=0001-01-01", "invalid_date", "end"),
        ("start=2000-01-01&end=2026-05-01", "period_too_long", "end"),
    ],
)
def test_bad_periods_are_problems_with_stable_codes(api, program, query, code, field):
    for path in ("/api/v1/metrics/summary/", "/api/v1/metrics/cohorts/"):
        for extra in ("", "&format=csv"):
            response = api.get(f"{path}?{query}{extra}")
            assert response.status_code == 400, (path, query)
            assert response["Content-Type"] == "application/problem+json"
            body = response.json()
            assert (body["code"], body["errors"][0]["field"]) == (code, field)


def test_every_endpoint_exports_csv(api, program, history):
    summary = dict(rows(api.get("/api/v1/metrics/summary/?start=2026-05-01&end=2026-06-01&format=csv"))[1:])
    assert summary["customers_at_end"] == "3" and summary["average_order_value"] == "65.00"
    assert summary["tier_mix.insider"] == "3"
    cohorts = rows(api.get("/api/v1/metrics/cohorts/?start=2026-01-01&end=2026-06-01&format=csv"))
    assert cohorts[0] == ["cohort", "size", "month_0", "month_1", "month_2", "month_3", "month_4"]
    assert cohorts[1] == ["2026-01", "1", "100.0", "0.0", "100.0", "0.0", "100.0"]
    segments = rows(api.get("/api/v1/metrics/segments/?format=csv"))
    assert segments[0] == ["segment", "name", "members", "share"] and len(segments) == 8
    members = rows(api.get("/api/v1/metrics/segments/?segment=lost&format=csv"))
    assert members[0][:2] == ["member", "email"]
    at_risk = rows(api.get("/api/v1/metrics/at-risk/?format=csv"))
    assert at_risk[0][0] == "member"


def test_summary_reads_the_snapshot_when_there_is_one(api, program, history):
    period = Period(date(2026, 5, 16), date(2026, 6, 15), program.timezone)
    metrics_snapshot_take(program=program, period=period, now=NOW)
    body = api.get("/api/v1/metrics/summary/").json()  # the default: the last 30 days
    assert (body["start"], body["end"], body["source"]) == ("2026-05-16", "2026-06-15", "snapshot")
    cohorts = api.get("/api/v1/metrics/cohorts/").json()
    assert cohorts["source"] == "snapshot" and cohorts["months"][-1] == "2026-06"
    segments = api.get("/api/v1/metrics/segments/").json()
    assert segments["source"] == "snapshot"
    other = api.get("/api/v1/metrics/summary/?start=2026-05-01&end=2026-06-01").json()
    assert other["source"] == "live"


def test_summary_queries_are_bounded_and_do_not_grow_with_members(api, program, customers):
    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert api.get("/api/v1/metrics/summary/?start=2026-05-01&end=2026-06-01").status_code == 200
        return len(queries)

    customers([(f"x{i}", [at(2026, 5, 2) + timedelta(hours=i)], "20.00") for i in range(3)])
    count()  # the first request of a key also records when the key was last used
    small = count()
    customers([(f"y{i}", [at(2025, 12, 2) + timedelta(hours=i), at(2026, 5, 9)], "20.00") for i in range(60)])
    big = count()
    assert small == big <= 20


def test_segment_members_page_with_a_cursor(api, program, customers):
    # recency is a rank: with 13 customers the 5 most recent score 4 or 5
    customers([(f"old{i}", [NOW - timedelta(days=200 + i)], "20.00") for i in range(8)])
    customers([(f"n{i}", [NOW - timedelta(days=2, hours=i)], "20.00") for i in range(5)])
    first = api.get("/api/v1/metrics/segments/?segment=new&page_size=3").json()
    assert [r["member"] for r in first["results"]] == ["n4", "n3", "n2"] and first["next"]
    second = api.get(f"/api/v1/metrics/segments/?segment=new&page_size=3&cursor={first['next']}").json()
    assert [r["member"] for r in second["results"]] == ["n1", "n0"] and second["next"] is None
    for query, code in (("segment=best", "unknown_segment"), ("segment=new&cursor=xyz", "invalid_cursor")):
        response = api.get(f"/api/v1/metrics/segments/?{query}")
        assert (response.status_code, response.json()["code"]) == (400, code)
    assert api.get("/api/v1/metrics/segments/?segment=new&page_size=0").status_code == 400


def test_at_risk_lists_overdue_members(api, program, customers):
    customers([("late", [NOW - timedelta(days=d) for d in (130, 100, 70)], "20.00")])
    body = api.get("/api/v1/metrics/at-risk/").json()
    assert [(r["member"], r["usual_gap_days"]) for r in body["results"]] == [("late", 30.0)]
    assert api.get("/api/v1/metrics/at-risk/?as_of=2026-03-01").json()["results"] == []


# --- surveys ---------------------------------------------------------------------------------------
def test_survey_answers_give_nps_csat_ces_and_the_response_rate(api, program, member_factory):
    for i in range(10):
        member_factory(external_id=f"s{i}")
    sent = api.post(
        "/api/v1/surveys/sends/",
        {"kind": "nps", "survey_id": "june-nps", "members": [f"s{i}" for i in range(10)] + ["nobody"]},
        format="json",
    )
    assert sent.status_code == 201 and sent.json() == {"recorded": 10, "already": 0, "unknown": ["nobody"]}
    again = api.post(
        "/api/v1/surveys/sends/", {"kind": "nps", "survey_id": "june-nps", "members": ["s1"]}, format="json"
    )
    assert again.json() == {"recorded": 0, "already": 1, "unknown": []}
    for i, score in enumerate([10, 9, 9, 8, 7, 3]):  # 3 promoters, 1 detractor of 6: NPS 33.33
        answer = api.post(
            "/api/v1/surveys/responses/",
            {"member": f"s{i}", "kind": "nps", "score": score, "survey_id": "june-nps"},
            format="json",
        )
        assert answer.status_code == 201 and answer.json()["answers_survey_sent"] is True
    for i, score in enumerate([5, 4, 2, 1]):  # CSAT: 2 of 4 satisfied
        api.post("/api/v1/surveys/responses/", {"member": f"s{i}", "kind": "csat", "score": score}, format="json")
    for i, score in enumerate([2, 3, 7]):  # CES mean 4
        api.post("/api/v1/surveys/responses/", {"member": f"s{i}", "kind": "ces", "score": score}, format="json")

    body = api.get("/api/v1/metrics/summary/?start=2026-06-01&end=2026-07-01").json()
    assert (body["nps"], body["nps_responses"]) == (33.33, 6)
    assert (body["csat"], body["ces"]) == (50.0, 4.0)
    assert (body["surveys_sent"], body["surveys_answered"], body["survey_response_rate"]) == (10, 6, 60.0)


@pytest.mark.parametrize(
    ("kind", "score"), [("nps", 11), ("nps", -1), ("csat", 0), ("csat", 6), ("ces", 0), ("ces", 8)]
)
def test_scores_are_validated_per_kind(api, member, kind, score):
    response = api.post("/api/v1/surveys/responses/", {"member": "anna", "kind": kind, "score": score}, format="json")
    assert response.status_code == 400
    assert (response.json()["code"], response.json()["errors"][0]["field"]) == ("score_out_of_range", "score")
    assert not SurveyResponse.objects.exists()


def test_survey_answers_are_idempotent_and_answer_a_survey_once(api, member):
    body = {"member": "anna", "kind": "nps", "score": 9, "survey_id": "q2"}
    api.post("/api/v1/surveys/sends/", {"kind": "nps", "survey_id": "q2", "members": ["anna"]}, format="json")
    first = api.post("/api/v1/surveys/responses/", body, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    replay = api.post("/api/v1/surveys/responses/", body, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert first.status_code == replay.status_code == 201 and replay["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()
    twice = api.post("/api/v1/surveys/responses/", {**body, "score": 3}, format="json")
    assert (twice.status_code, twice.json()["code"]) == (409, "survey_already_answered")
    unknown = api.post("/api/v1/surveys/responses/", {**body, "member": "nobody"}, format="json")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "member_not_found")
    assert SurveyResponse.objects.count() == 1


def test_survey_endpoints_need_the_surveys_scope(program, member):
    metrics_only = client_with(program, "metrics")
    body = {"member": "anna", "kind": "nps", "score": 9}
    assert metrics_only.post("/api/v1/surveys/responses/", body, format="json").status_code == 403
    assert client_with(program, "surveys").post("/api/v1/surveys/responses/", body, format="json").status_code == 201


def test_an_unknown_format_is_a_problem(api, program):
    response = api.get("/api/v1/metrics/summary/?format=xml")
    assert (response.status_code, response.json()["code"]) == (400, "invalid_format")
