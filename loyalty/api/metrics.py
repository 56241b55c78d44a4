"""Retention metrics (scope `metrics`) and surveys (scope `surveys`). Every metrics endpoint also
answers `?format=csv` for export. Definitions: docs/metrics.md."""

import csv
import io
import json
from datetime import datetime

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import renderers, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from loyalty import errors
from loyalty.api.fields import MoneyField
from loyalty.api.idempotency import idempotent
from loyalty.api.permissions import request_program
from loyalty.api.schema import IDEMPOTENCY_KEY, problems
from loyalty.dates import start_of_day
from loyalty.models import Scope, SurveyKind
from loyalty.selectors import metrics as m
from loyalty.services.metrics import MAX_SURVEY_BATCH, survey_response_record, survey_sends_record

PAGE_SIZE, MAX_PAGE_SIZE = 50, 200


class CsvRenderer(renderers.BaseRenderer):
    """`?format=csv`: the views answer CSV themselves; errors stay problem+json."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return json.dumps(data).encode() if data is not None else b""


def csv_response(filename: str, header: list[str], rows) -> HttpResponse:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def wants_csv(request) -> bool:
    return request.query_params.get("format") == "csv"


def _cell(value):
    if isinstance(value, dict) and "amount" in value:
        return value["amount"]
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    return value


# --- parameters -------------------------------------------------------------------------------------
START = OpenApiParameter("start", OpenApiTypes.DATE, description="First day (YYYY-MM-DD, program time zone)")
END = OpenApiParameter(
    "end", OpenApiTypes.DATE, description="Day after the last (exclusive). Default: the last 30 days"
)
AS_OF = OpenApiParameter("as_of", OpenApiTypes.DATE, description="Computed as of the start of this day (default today)")
CURSOR = OpenApiParameter("cursor", str, description="The `next` cursor of the previous page")
PAGE = OpenApiParameter("page_size", int, description=f"1 to {MAX_PAGE_SIZE} (default {PAGE_SIZE})")
SEGMENT = OpenApiParameter("segment", str, enum=list(m.SEGMENTS), description="List the members of this segment")
CSV = {(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="CSV export (?format=csv)")}


def page_size(request) -> int:
    raw = request.query_params.get("page_size")
    if raw is None:
        return PAGE_SIZE
    try:
        size = int(raw)
    except ValueError:
        size = 0
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise errors.InvalidInput(
            f"page_size is 1 to {MAX_PAGE_SIZE}",
            errors=[{"field": "page_size", "message": f"1 to {MAX_PAGE_SIZE}", "code": "invalid"}],
        )
    return size


def as_of(request, program) -> datetime:
    raw = request.query_params.get("as_of")
    day = m.parse_date(raw, "as_of") if raw else m.today(program)
    return start_of_day(day, program.timezone)


def next_cursor(rows: list[dict], size: int) -> str | None:
    return m.cursor_encode(rows[-1]["id"]) if len(rows) == size else None


# --- output shapes ----------------------------------------------------------------------------------
class LiabilityOut(serializers.Serializer):
    currency = serializers.CharField()
    points = serializers.IntegerField()
    value = MoneyField(read_only=True)


class PointsByCurrencyOut(serializers.Serializer):
    currency = serializers.CharField()
    earned = serializers.IntegerField()
    redeemed = serializers.IntegerField()
    expired = serializers.IntegerField()


class TierMixOut(serializers.Serializer):
    tier = serializers.CharField()
    name = serializers.CharField()
    members = serializers.IntegerField()
    share = serializers.FloatField(allow_null=True)


class TierMoveOut(serializers.Serializer):
    from_ = serializers.CharField()
    to = serializers.CharField()
    members = serializers.IntegerField()
    direction = serializers.ChoiceField(choices=["up", "down"])

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields


class TierMovementsOut(serializers.Serializer):
    upgrades = serializers.IntegerField()
    downgrades = serializers.IntegerField()
    moves = TierMoveOut(many=True)


def _pct(help_text: str):
    return serializers.FloatField(allow_null=True, help_text=f"{help_text} (percent; null: nothing to divide by)")


class SummaryOut(serializers.Serializer):
    program = serializers.CharField()
    start = serializers.DateField()
    end = serializers.DateField(help_text="Exclusive")
    currency = serializers.CharField(help_text="The program's base currency: every money value is in it")
    activity_window_days = serializers.IntegerField()
    source = serializers.ChoiceField(choices=["live", "snapshot"], help_text="Computed now, or the nightly snapshot")
    computed_at = serializers.DateTimeField()
    customers_ever = serializers.IntegerField(help_text="Members with a qualifying order before the end")
    customers_at_start = serializers.IntegerField(help_text="S: active customers at the start")
    customers_at_end = serializers.IntegerField(help_text="E: active customers at the end")
    new_customers = serializers.IntegerField(help_text="N: first qualifying order inside the period")
    reactivated_customers = serializers.IntegerField(help_text="Lapsed at the start, ordered again in the period")
    retained_customers = serializers.IntegerField()
    lost_customers = serializers.IntegerField()
    retention_rate = _pct("(E - N - reactivated) / S")
    churn_rate = _pct("Active at the start and not at the end, / S")
    orders = serializers.IntegerField()
    buyers = serializers.IntegerField()
    revenue = MoneyField(read_only=True, help_text="Qualifying spend net of refunds, base currency")
    repeat_purchase_rate = _pct("Buyers with 2+ orders / buyers")
    average_order_value = MoneyField(read_only=True, allow_null=True)
    purchase_frequency = serializers.FloatField(allow_null=True, help_text="Orders per buyer in the period")
    purchase_frequency_per_year = serializers.FloatField(allow_null=True, help_text="Orders per buyer, last 365 days")
    average_lifespan_years = serializers.FloatField(allow_null=True)
    clv = MoneyField(read_only=True, allow_null=True)
    points_earned = serializers.IntegerField(help_text="Main point currency, net of clawbacks")
    points_redeemed = serializers.IntegerField()
    points_expired = serializers.IntegerField()
    redemption_rate = _pct("Redeemed / earned")
    breakage = _pct("Expired / earned")
    points_by_currency = PointsByCurrencyOut(many=True)
    points_liability = LiabilityOut(many=True)
    members = serializers.IntegerField(help_text="Enrolled members during the period")
    active_member_count = serializers.IntegerField()
    active_members = _pct("Members who earned or redeemed / members")
    new_members = serializers.IntegerField()
    referred_members = serializers.IntegerField()
    referral_rate = _pct("New members who joined with a referral code / new members")
    nps = serializers.FloatField(allow_null=True, help_text="-100 to 100")
    nps_responses = serializers.IntegerField()
    csat = _pct("Answers 4-5 / answers")
    csat_responses = serializers.IntegerField()
    ces = serializers.FloatField(allow_null=True, help_text="Mean answer, 1-7")
    ces_responses = serializers.IntegerField()
    surveys_sent = serializers.IntegerField()
    surveys_answered = serializers.IntegerField()
    survey_response_rate = _pct("Surveys sent in the period that were answered / sent")
    tier_mix = TierMixOut(many=True)
    tier_movements = TierMovementsOut()


class CohortOut(serializers.Serializer):
    cohort = serializers.CharField(help_text="YYYY-MM of the first order")
    size = serializers.IntegerField()
    active = serializers.ListField(child=serializers.IntegerField(allow_null=True))
    retention = serializers.ListField(child=serializers.FloatField(allow_null=True))


class CohortsOut(serializers.Serializer):
    program = serializers.CharField()
    start = serializers.DateField()
    end = serializers.DateField()
    source = serializers.ChoiceField(choices=["live", "snapshot"])
    months = serializers.ListField(child=serializers.CharField())
    cohorts = CohortOut(many=True)
    computed_at = serializers.DateTimeField()


class SegmentOut(serializers.Serializer):
    segment = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    members = serializers.IntegerField()
    share = serializers.FloatField(allow_null=True)


class SegmentMemberOut(serializers.Serializer):
    member = serializers.CharField()
    email = serializers.CharField()
    name = serializers.CharField()
    last_order_at = serializers.DateTimeField()
    orders = serializers.IntegerField()
    spend = MoneyField(read_only=True)
    rfm = serializers.CharField(help_text="Recency, frequency, monetary scores, 1-5 each")


class SegmentsOut(serializers.Serializer):
    as_of = serializers.DateTimeField()
    source = serializers.ChoiceField(choices=["live", "snapshot"])
    segments = SegmentOut(many=True, required=False, help_text="Without ?segment=")
    segment = serializers.CharField(required=False, help_text="With ?segment=")
    next = serializers.CharField(allow_null=True, required=False)
    results = SegmentMemberOut(many=True, required=False)


class AtRiskMemberOut(serializers.Serializer):
    member = serializers.CharField()
    email = serializers.CharField()
    name = serializers.CharField()
    last_order_at = serializers.DateTimeField()
    orders = serializers.IntegerField()
    usual_gap_days = serializers.FloatField()
    days_since_last_order = serializers.FloatField()


class AtRiskOut(serializers.Serializer):
    as_of = serializers.DateTimeField()
    next = serializers.CharField(allow_null=True)
    results = AtRiskMemberOut(many=True)


# --- metrics views ----------------------------------------------------------------------------------
class InvalidFormat(errors.InvalidInput):
    code, title = "invalid_format", "format is json or csv"


class MetricsApi(APIView):
    scope = Scope.METRICS
    renderer_classes = [renderers.JSONRenderer, CsvRenderer]

    def perform_content_negotiation(self, request, force=False):
        if not force and request.query_params.get("format") not in (None, "json", "csv"):
            raise InvalidFormat(
                "?format= is json (the default) or csv",
                errors=[{"field": "format", "message": "json or csv", "code": "invalid_format"}],
            )
        return super().perform_content_negotiation(request, force)


class SummaryApi(MetricsApi):
    @extend_schema(
        operation_id="metrics_summary",
        parameters=[START, END],
        responses={(200, "application/json"): SummaryOut, **CSV, **problems(400)},
        summary="Every scalar metric of a period (the nightly snapshot when there is one)",
    )
    def get(self, request):
        program = request_program(request)
        period = m.period_parse(program, request.query_params.get("start"), request.query_params.get("end"))
        snapshot = m.snapshot_get(program=program, period=period)
        summary = snapshot.summary if snapshot else m.metrics_summary(program=program, period=period)
        if wants_csv(request):
            return csv_response(
                f"summary-{period.start_date}-{period.end_date}.csv", ["metric", "value"], _flatten(summary)
            )
        return Response(summary)


def _flatten(summary: dict) -> list[tuple[str, object]]:
    rows = []
    for key, value in summary.items():
        if key == "tier_mix":
            rows += [(f"tier_mix.{t['tier']}", t["members"]) for t in value]
        elif key == "tier_movements":
            rows += [("tier_movements.upgrades", value["upgrades"]), ("tier_movements.downgrades", value["downgrades"])]
        elif key == "points_liability":
            for row in value:
                rows += [
                    (f"points_liability.{row['currency']}", row["points"]),
                    (f"points_liability.{row['currency']}.value", row["value"]["amount"]),
                ]
        elif key == "points_by_currency":
            continue
        else:
            rows.append((key, _cell(value)))
    return rows


class CohortsApi(MetricsApi):
    @extend_schema(
        operation_id="metrics_cohorts",
        parameters=[START, END],
        responses={(200, "application/json"): CohortsOut, **CSV, **problems(400)},
        summary="Cohort retention: month of first order x months after (whole months)",
    )
    def get(self, request):
        program = request_program(request)
        start, end = request.query_params.get("start"), request.query_params.get("end")
        if start or end:
            asked = m.period_parse(program, start, end)
            period = m.cohort_period(program, asked.start_date, asked.end_date)
        else:
            period = m.cohort_period(program, None, None)
        latest = m.snapshot_latest(program=program)
        cached = latest.cohorts if latest and latest.cohorts else None
        if cached and (cached["start"], cached["end"]) == (period.start_date.isoformat(), period.end_date.isoformat()):
            matrix = {**cached, "source": "snapshot"}
        else:
            matrix = {**m.cohort_matrix(program=program, period=period), "source": "live"}
        if wants_csv(request):
            width = len(matrix["months"])
            return csv_response(
                f"cohorts-{period.start_date}-{period.end_date}.csv",
                ["cohort", "size", *[f"month_{k}" for k in range(width)]],
                [[c["cohort"], c["size"], *[_cell(v) for v in c["retention"]]] for c in matrix["cohorts"]],
            )
        return Response(matrix)


class SegmentsApi(MetricsApi):
    @extend_schema(
        operation_id="metrics_segments",
        parameters=[AS_OF, SEGMENT, CURSOR, PAGE],
        responses={(200, "application/json"): SegmentsOut, **CSV, **problems(400)},
        summary="RFM segment counts; with ?segment= the members in it (cursor pages)",
    )
    def get(self, request):
        program = request_program(request)
        when = as_of(request, program)
        segment = request.query_params.get("segment")
        if segment is None:
            latest = m.snapshot_latest(program=program)
            if latest and latest.segments and latest.end == when.date() and not request.query_params.get("as_of"):
                counts, source = latest.segments, "snapshot"
            else:
                counts, source = m.segment_counts(program=program, as_of=when), "live"
            if wants_csv(request):
                return csv_response(
                    f"segments-{when.date()}.csv",
                    ["segment", "name", "members", "share"],
                    [[s["segment"], s["name"], s["members"], _cell(s["share"])] for s in counts],
                )
            return Response({"as_of": when, "source": source, "segments": counts})
        if wants_csv(request):
            rows = m.segment_members(program=program, as_of=when, segment=segment, after=None, limit=None)
            return csv_response(
                f"segment-{segment}-{when.date()}.csv",
                ["member", "email", "name", "last_order_at", "orders", "spend", "rfm"],
                [
                    [_cell(r[k]) for k in ("member", "email", "name", "last_order_at", "orders", "spend", "rfm")]
                    for r in rows
                ],
            )
        size = page_size(request)
        after = m.cursor_decode(request.query_params.get("cursor"))
        rows = m.segment_members(program=program, as_of=when, segment=segment, after=after, limit=size)
        return Response(
            {
                "as_of": when,
                "source": "live",
                "segment": segment,
                "next": next_cursor(rows, size),
                "results": SegmentMemberOut(rows, many=True).data,
            }
        )


class AtRiskApi(MetricsApi):
    @extend_schema(
        operation_id="metrics_at_risk",
        parameters=[AS_OF, CURSOR, PAGE],
        responses={(200, "application/json"): AtRiskOut, **CSV, **problems(400)},
        summary="Active members overdue: over twice their usual gap since their last order",
    )
    def get(self, request):
        program = request_program(request)
        when = as_of(request, program)
        fields = ("member", "email", "name", "last_order_at", "orders", "usual_gap_days", "days_since_last_order")
        if wants_csv(request):
            rows = m.at_risk_members(program=program, as_of=when, after=None, limit=None)
            return csv_response(
                f"at-risk-{when.date()}.csv", list(fields), [[_cell(r[k]) for k in fields] for r in rows]
            )
        size = page_size(request)
        after = m.cursor_decode(request.query_params.get("cursor"))
        rows = m.at_risk_members(program=program, as_of=when, after=after, limit=size)
        return Response(
            {"as_of": when, "next": next_cursor(rows, size), "results": AtRiskMemberOut(rows, many=True).data}
        )


# --- surveys ----------------------------------------------------------------------------------------
class SurveyResponseIn(serializers.Serializer):
    member = serializers.CharField(max_length=128)
    kind = serializers.ChoiceField(choices=SurveyKind.choices)
    score = serializers.IntegerField(help_text="nps 0-10, csat 1-5, ces 1-7", min_value=-32768, max_value=32767)
    comment = serializers.CharField(max_length=4000, required=False, allow_blank=True, default="")
    survey_id = serializers.CharField(max_length=128, required=False, allow_blank=True, default="")
    responded_at = serializers.DateTimeField(required=False)


class SurveyResponseOut(serializers.Serializer):
    id = serializers.IntegerField()
    member = serializers.CharField(source="member.external_id")
    kind = serializers.CharField()
    score = serializers.IntegerField()
    comment = serializers.CharField()
    survey_id = serializers.CharField()
    answers_survey_sent = serializers.BooleanField(help_text="It answers a survey recorded as sent")
    responded_at = serializers.DateTimeField()


class SurveyResponseApi(APIView):
    scope = Scope.SURVEYS

    @extend_schema(
        operation_id="surveys_respond",
        request=SurveyResponseIn,
        responses={201: SurveyResponseOut, **problems(400, 404, 409, 422)},
        parameters=[IDEMPOTENCY_KEY],
        summary="Record a survey answer (NPS, CSAT or CES)",
    )
    @idempotent
    def post(self, request):
        data = SurveyResponseIn(data=request.data)
        data.is_valid(raise_exception=True)
        d = data.validated_data
        answer = survey_response_record(
            program=request_program(request),
            member_external_id=d["member"],
            kind=d["kind"],
            score=d["score"],
            comment=d["comment"],
            survey_id=d["survey_id"],
            responded_at=d.get("responded_at"),
        )
        answer.answers_survey_sent = answer.send_id is not None
        return Response(SurveyResponseOut(answer).data, status=status.HTTP_201_CREATED)


class SurveySendIn(serializers.Serializer):
    kind = serializers.ChoiceField(choices=SurveyKind.choices)
    members = serializers.ListField(
        child=serializers.CharField(max_length=128), min_length=1, max_length=MAX_SURVEY_BATCH
    )
    survey_id = serializers.CharField(max_length=128, required=False, allow_blank=True, default="")
    sent_at = serializers.DateTimeField(required=False)


class SurveySendOut(serializers.Serializer):
    recorded = serializers.IntegerField()
    already = serializers.IntegerField(help_text="Already recorded as sent this survey")
    unknown = serializers.ListField(child=serializers.CharField(), help_text="No such member: not recorded")


class SurveySendApi(APIView):
    scope = Scope.SURVEYS

    @extend_schema(
        operation_id="surveys_sent",
        request=SurveySendIn,
        responses={201: SurveySendOut, **problems(400)},
        parameters=[IDEMPOTENCY_KEY],
        summary="Record a survey sent to members (the response rate's denominator)",
    )
    @idempotent
    def post(self, request):
        data = SurveySendIn(data=request.data)
        data.is_valid(raise_exception=True)
        d = data.validated_data
        result = survey_sends_record(
            program=request_program(request),
            kind=d["kind"],
            member_external_ids=d["members"],
            survey_id=d["survey_id"],
            sent_at=d.get("sent_at"),
        )
        return Response(SurveySendOut(result).data, status=status.HTTP_201_CREATED)
