"""Retention metrics, computed in the database (definitions and choices: docs/metrics.md).

Every metric is a set-based SQL statement (aggregates, window functions, CTEs) over orders, the
ledger, tier history, referrals and surveys; nothing loops over members in Python. The summary is
a fixed number of statements whatever the number of members. The SQL is the same on PostgreSQL and
SQLite except for three small fragments (epoch seconds, month of a time in the program's zone),
written per vendor below, so both give the same numbers.

Conventions:
- a period is `[start, end)` of dates in the program's time zone;
- a *qualifying order* is an order that is neither cancelled nor fully refunded; its revenue is its
  qualifying spend in the base currency net of refunds (`Order.spend_base`), so refunds lower
  revenue and AOV, and EUR and USD orders count at the FX rate snapshotted on the order;
- a member is an *active customer* at time t with a qualifying order in `[t - window, t)`, where the
  window is the program's `activity_window_days`.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from django.db import connection
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from loyalty import errors
from loyalty.dates import start_of_day
from loyalty.models import MetricSnapshot, Program, TransactionKind
from loyalty.money import money_dict, money_round

QUALIFYING = "status NOT IN ('cancelled', 'refunded')"
YEAR_SECONDS = Decimal("31557600")  # 365.25 days
DEFAULT_DAYS = 30
MAX_PERIOD_DAYS = 3660
MAX_COHORT_MONTHS = 36
WINBACK_DAYS = 60

# Points leave these system accounts when members earn (and come back to `issued` on clawbacks).
EARN_SOURCES = ("issued", "referral_rewards", "gamification", "birthday", "winback")
FLOW_ACCOUNTS = (*EARN_SOURCES, "redeemed", "expired")
# Transactions that move points between a member and a system account other than staff
# adjustments and imported opening balances (mature, hold and void stay inside the member).
FLOW_KINDS = tuple(
    k
    for k in TransactionKind.values
    if k not in (TransactionKind.MATURE, TransactionKind.HOLD, TransactionKind.VOID, "adjust", "import")
)
EARN_KINDS = tuple(k for k in FLOW_KINDS if k not in ("clawback", "expire", "capture", "claim"))
REDEEM_KINDS = ("capture", "claim")

SEGMENTS = {
    "champions": "Champions",
    "loyal": "Loyal",
    "potential": "Potential",
    "new": "New",
    "at_risk": "At risk",
    "hibernating": "Hibernating",
    "lost": "Lost",
}
SEGMENT_HELP = {
    "champions": "Ordered recently, often, and spent the most",
    "loyal": "Order regularly and spend well",
    "potential": "Recent customers with room to grow",
    "new": "One order, recently",
    "at_risk": "Used to order often and spend well, not lately",
    "hibernating": "Not lately, and not much",
    "lost": "Longest since their last order, and little",
}


# --- errors (problem+json codes) ---------------------------------------------------------------
class InvalidDate(errors.InvalidInput):
    code, title = "invalid_date", "Dates are YYYY-MM-DD"


class InvalidPeriod(errors.InvalidInput):
    code, title = "invalid_period", "The period's start must be before its end"


class PeriodTooLong(errors.InvalidInput):
    code, title = "period_too_long", "The period is too long"


class UnknownSegment(errors.InvalidInput):
    code, title = "unknown_segment", "No such RFM segment"


class InvalidCursor(errors.InvalidInput):
    code, title = "invalid_cursor", "This cursor is not valid; start again without it"


# --- periods --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Period:
    """`[start, end)` as dates in the program's zone and as the instants they begin."""

    start_date: date
    end_date: date
    tz: str

    @property
    def start(self) -> datetime:
        return start_of_day(self.start_date, self.tz)

    @property
    def end(self) -> datetime:
        return start_of_day(self.end_date, self.tz)

    @property
    def days(self) -> int:
        return (self.end_date - self.start_date).days

    def previous(self) -> Period:
        """The period of the same length just before this one (for "change vs previous")."""
        return Period(self.start_date - timedelta(days=self.days), self.start_date, self.tz)


def today(program: Program, now: datetime | None = None) -> date:
    return (now or timezone.now()).astimezone(ZoneInfo(program.timezone)).date()


def period_default(program: Program, *, now: datetime | None = None, days: int = DEFAULT_DAYS) -> Period:
    """The last `days` whole days: `[today - days, today)`."""
    end = today(program, now)
    return Period(end - timedelta(days=days), end, program.timezone)


def parse_date(value: str, field: str) -> date:
    try:
        day = date.fromisoformat(value.strip())
        if not 1970 <= day.year <= 9000:
            raise ValueError(day)
        return day
    except (ValueError, AttributeError):
        raise InvalidDate(
            f"{field}={value!r} is not a date (YYYY-MM-DD)",
            errors=[{"field": field, "message": "expected YYYY-MM-DD", "code": "invalid_date"}],
        )


def period_parse(
    program: Program, start: str | None, end: str | None, *, now: datetime | None = None, max_days=MAX_PERIOD_DAYS
) -> Period:
    """`?start=&end=` -> a Period (both or neither; neither is the last 30 days)."""
    if not start and not end:
        return period_default(program, now=now)
    if not start or not end:
        missing = "start" if not start else "end"
        raise InvalidPeriod(
            "Give both start and end (YYYY-MM-DD), or neither for the last 30 days",
            errors=[{"field": missing, "message": "required with the other", "code": "invalid_period"}],
        )
    period = Period(parse_date(start, "start"), parse_date(end, "end"), program.timezone)
    if period.start_date >= period.end_date:
        raise InvalidPeriod(
            f"start ({period.start_date}) must be before end ({period.end_date}); end is exclusive",
            errors=[{"field": "end", "message": "must be after start", "code": "invalid_period"}],
        )
    if period.days > max_days:
        raise PeriodTooLong(
            f"At most {max_days} days ({period.days} asked)",
            errors=[{"field": "end", "message": f"at most {max_days} days after start", "code": "period_too_long"}],
        )
    return period


# --- SQL plumbing ---------------------------------------------------------------------------------
def _postgres() -> bool:
    return connection.vendor == "postgresql"


def _epoch(column: str) -> str:
    """Whole seconds since 1970 (exact integers on both databases)."""
    if _postgres():
        return f"CAST(FLOOR(EXTRACT(EPOCH FROM {column})) AS BIGINT)"
    return f"CAST(strftime('%%s', {column}) AS INTEGER)"


def _month(column: str) -> str:
    """The month of a time in the program's zone (param `tz`), as a value to group by: a truncated
    timestamp on PostgreSQL (cheap), year * 12 + month - 1 on SQLite; `_month_index` reads both."""
    if _postgres():
        return f"date_trunc('month', {column} AT TIME ZONE %(tz)s)"
    return (
        f"(django_datetime_extract('year', {column}, %(tz)s, %(conn_tz)s) * 12"
        f" + django_datetime_extract('month', {column}, %(tz)s, %(conn_tz)s) - 1)"
    )


def _month_index(value) -> int:
    if isinstance(value, date):  # datetime too
        return value.year * 12 + value.month - 1
    return int(value)


def _entries_of_t() -> str:
    """`t` (transactions) joined to their entries `e`. On PostgreSQL a lateral lookup per transaction
    (OFFSET 0 keeps it one): the planner would otherwise merge-join the whole entry table."""
    if _postgres():
        return (
            "t CROSS JOIN LATERAL (SELECT account_id, amount FROM loyalty_entry WHERE transaction_id = t.id OFFSET 0) e"
        )
    return "t JOIN loyalty_entry e ON e.transaction_id = t.id"


def _in(values) -> str:
    """A literal IN list of our own constants (never user input)."""
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


def _params(program: Program, **values) -> dict:
    out = {"program": program.pk, "tz": program.timezone, "conn_tz": getattr(connection, "timezone_name", "UTC")}
    for name, value in values.items():
        if isinstance(value, datetime):
            value = connection.ops.adapt_datetimefield_value(value)
        out[name] = value
    return out


def _rows(sql: str, params: dict) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _one(sql: str, params: dict) -> tuple:
    return _rows(sql, params)[0]


def _int(value) -> int:
    return int(value or 0)


def _decimal(value) -> Decimal:
    if value is None:
        return Decimal(0)
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _aware(value) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value if value is None or timezone.is_aware(value) else value.replace(tzinfo=UTC)
    parsed = parse_datetime(value)
    return parsed if timezone.is_aware(parsed) else parsed.replace(tzinfo=UTC)


def percent(part, whole) -> float | None:
    """part / whole as a percentage with two decimals (half up); None when whole is 0."""
    if not whole:
        return None
    return float((Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def ratio(part, whole, places: str = "0.01") -> float | None:
    if not whole:
        return None
    return float((Decimal(part) / Decimal(whole)).quantize(Decimal(places), rounding=ROUND_HALF_UP))


# --- customers: S, E, N, retention, churn, lifespan ------------------------------------------------
_CUSTOMERS = """
WITH per_member AS (
    SELECT o.member_id,
           MIN(o.placed_at) AS first_at,
           MAX(o.placed_at) AS last_at,
           MAX(CASE WHEN o.placed_at < %(start)s THEN o.placed_at END) AS last_before_start
    FROM loyalty_order o
    WHERE o.program_id = %(program)s AND o.placed_at < %(end)s AND o.{qualifying}
    GROUP BY o.member_id
), flags AS (
    SELECT first_at, last_at,
           CASE WHEN last_before_start >= %(start_window)s THEN 1 ELSE 0 END AS at_start,
           CASE WHEN last_at >= %(end_window)s THEN 1 ELSE 0 END AS at_end,
           CASE WHEN first_at >= %(start)s THEN 1 ELSE 0 END AS is_new
    FROM per_member
)
SELECT COUNT(*),
       SUM(at_start),
       SUM(at_end),
       SUM(is_new),
       SUM(at_start * at_end),
       SUM(CASE WHEN at_end = 1 AND at_start = 0 AND is_new = 0 THEN 1 ELSE 0 END),
       SUM(CASE WHEN is_new = 1 AND at_end = 0 THEN 1 ELSE 0 END),
       SUM(1 - at_end),
       SUM(CASE WHEN at_end = 0 THEN {last} - {first} ELSE 0 END)
FROM flags
"""


def customers(program: Program, period: Period) -> dict:
    window = timedelta(days=program.activity_window_days)
    sql = _CUSTOMERS.format(qualifying=QUALIFYING, last=_epoch("last_at"), first=_epoch("first_at"))
    row = _one(
        sql,
        _params(
            program,
            start=period.start,
            end=period.end,
            start_window=period.start - window,
            end_window=period.end - window,
        ),
    )
    ever, s, e, n, retained, reactivated, new_lapsed, churned, churned_seconds = (_int(v) for v in row)
    lost = s - retained
    return {
        "customers_ever": ever,
        "customers_at_start": s,
        "customers_at_end": e,
        "new_customers": n,
        "reactivated_customers": reactivated,
        "retained_customers": retained,
        "lost_customers": lost,
        # (E - N) / S, with the customers who lapsed and came back counted apart (see docs/metrics.md):
        # with a window at least the period this is exactly kept / S, so retention + churn = 100.
        "retention_rate": percent(e - n - reactivated, s),
        "churn_rate": percent(lost, s),
        "_new_lapsed": new_lapsed,
        "_churned": churned,
        "_churned_seconds": churned_seconds,
    }


# --- orders: AOV, frequency, repeat rate ----------------------------------------------------------
_ORDERS = """
WITH per_member AS (
    SELECT o.member_id,
           SUM(CASE WHEN o.placed_at >= %(start)s THEN 1 ELSE 0 END) AS orders,
           SUM(CASE WHEN o.placed_at >= %(start)s THEN o.spend_base ELSE 0 END) AS revenue,
           SUM(CASE WHEN o.placed_at >= %(year_start)s THEN 1 ELSE 0 END) AS year_orders
    FROM loyalty_order o
    WHERE o.program_id = %(program)s AND o.placed_at >= %(since)s AND o.placed_at < %(end)s AND o.{qualifying}
    GROUP BY o.member_id
)
SELECT SUM(CASE WHEN orders > 0 THEN 1 ELSE 0 END),
       SUM(orders),
       SUM(revenue),
       SUM(CASE WHEN orders >= 2 THEN 1 ELSE 0 END),
       SUM(CASE WHEN year_orders > 0 THEN 1 ELSE 0 END),
       SUM(year_orders)
FROM per_member
"""


def orders(program: Program, period: Period) -> dict:
    year_start = period.end - timedelta(days=365)
    row = _one(
        _ORDERS.format(qualifying=QUALIFYING),
        _params(
            program, start=period.start, end=period.end, year_start=year_start, since=min(period.start, year_start)
        ),
    )
    buyers, count, revenue, repeaters, year_buyers, year_orders = row
    buyers, count, repeaters, year_buyers, year_orders = map(_int, (buyers, count, repeaters, year_buyers, year_orders))
    revenue = money_round(_decimal(revenue), program.base_currency)
    return {
        "orders": count,
        "buyers": buyers,
        "revenue": revenue,
        "repeat_purchase_rate": percent(repeaters, buyers),
        "average_order_value": money_round(revenue / count, program.base_currency) if count else None,
        "purchase_frequency": ratio(count, buyers),
        "purchase_frequency_per_year": ratio(year_orders, year_buyers),
        "_aov": revenue / count if count else None,
        "_frequency_per_year": Decimal(year_orders) / year_buyers if year_buyers else None,
    }


# --- points: earned, redeemed, expired, liability -------------------------------------------------
# The period's transactions first, then their entries, then the system accounts among them
# (MATERIALIZED fixes that join order: left to itself the planner may walk every entry of the
# system accounts, which look like a handful of rows to it).
_FLOWS = """
WITH t AS MATERIALIZED (
    SELECT id FROM loyalty_transaction
    WHERE program_id = %(program)s AND kind IN {kinds} AND effective_at >= %(start)s AND effective_at < %(end)s
), e AS MATERIALIZED (
    SELECT e.account_id, e.amount FROM {entries_of_t}
)
SELECT a.asset_id, a.kind, SUM(e.amount)
FROM e
JOIN loyalty_account a ON a.id = e.account_id
WHERE a.member_id IS NULL AND a.kind IN {accounts}
GROUP BY a.asset_id, a.kind
"""

_LIABILITY = """
SELECT asset_id, SUM(points) FROM (
    SELECT a.asset_id, SUM(a.balance) AS points
    FROM loyalty_account a
    WHERE a.program_id = %(program)s AND a.member_id IS NOT NULL AND a.kind IN ('pending', 'available')
    GROUP BY a.asset_id
    UNION ALL
    SELECT a.asset_id, -SUM(e.amount) AS points
    FROM loyalty_transaction t
    JOIN loyalty_entry e ON e.transaction_id = t.id
    JOIN loyalty_account a ON a.id = e.account_id
    WHERE t.program_id = %(program)s AND t.kind IN {kinds} AND t.effective_at >= %(end)s
      AND a.member_id IS NOT NULL AND a.kind IN ('pending', 'available')
    GROUP BY a.asset_id
) balances
GROUP BY asset_id
"""


def _assets(program: Program) -> dict[int, object]:
    return {a.pk: a for a in program.assets.filter(kind="points").order_by("-is_primary", "code")}


def points(program: Program, period: Period, assets: dict | None = None) -> dict:
    assets = assets if assets is not None else _assets(program)
    flows = {pk: dict.fromkeys(("earned", "redeemed", "expired"), 0) for pk in assets}
    sql = _FLOWS.format(kinds=_in(FLOW_KINDS), accounts=_in(FLOW_ACCOUNTS), entries_of_t=_entries_of_t())
    for asset_id, kind, amount in _rows(sql, _params(program, start=period.start, end=period.end)):
        if asset_id not in flows:
            continue
        key = "earned" if kind in EARN_SOURCES else kind
        flows[asset_id][key] += -_int(amount) if kind in EARN_SOURCES else _int(amount)
    liability = dict.fromkeys(assets, 0)
    all_kinds = _in(TransactionKind.values)
    for asset_id, amount in _rows(_LIABILITY.format(kinds=all_kinds), _params(program, end=period.end)):
        if asset_id in liability:
            liability[asset_id] += _int(amount)
    primary = next(iter(assets), None)
    main = flows.get(primary, dict.fromkeys(("earned", "redeemed", "expired"), 0))
    return {
        "points_earned": main["earned"],
        "points_redeemed": main["redeemed"],
        "points_expired": main["expired"],
        "redemption_rate": percent(main["redeemed"], main["earned"]) if main["earned"] > 0 else None,
        "breakage": percent(main["expired"], main["earned"]) if main["earned"] > 0 else None,
        "points_by_currency": [{"currency": assets[pk].code, **flows[pk]} for pk in assets],
        "points_liability": [
            {
                "currency": assets[pk].code,
                "points": liability[pk],
                "value": money_dict(
                    money_round(liability[pk] * assets[pk].unit_value, program.base_currency), program.base_currency
                ),
            }
            for pk in assets
        ],
    }


# --- members: active share, referral rate -------------------------------------------------------
_MEMBERS = """
SELECT
    (SELECT COUNT(*) FROM (
        SELECT DISTINCT t.member_id FROM loyalty_transaction t
        WHERE t.program_id = %(program)s AND t.kind IN {kinds} AND t.member_id IS NOT NULL
          AND t.effective_at >= %(start)s AND t.effective_at < %(end)s
    ) active),
    (SELECT COUNT(*) FROM loyalty_member m
     WHERE m.program_id = %(program)s AND m.enrolled_at < %(end)s
       AND (m.closed_at IS NULL OR m.closed_at >= %(start)s)),
    (SELECT COUNT(*) FROM loyalty_member m
     WHERE m.program_id = %(program)s AND m.enrolled_at >= %(start)s AND m.enrolled_at < %(end)s),
    (SELECT COUNT(*) FROM referrals_referral r JOIN loyalty_member m ON m.id = r.referee_id
     WHERE r.program_id = %(program)s AND m.enrolled_at >= %(start)s AND m.enrolled_at < %(end)s)
"""


def members(program: Program, period: Period) -> dict:
    sql = _MEMBERS.format(kinds=_in((*EARN_KINDS, *REDEEM_KINDS)))
    active, enrolled, new, referred = map(_int, _one(sql, _params(program, start=period.start, end=period.end)))
    return {
        "members": enrolled,
        "active_member_count": active,
        "active_members": percent(active, enrolled),
        "new_members": new,
        "referred_members": referred,
        "referral_rate": percent(referred, new),
    }


# --- surveys: NPS, CSAT, CES, response rate --------------------------------------------------------
_SURVEYS = """
SELECT
    (SELECT COUNT(*) FROM loyalty_surveysend s
     WHERE s.program_id = %(program)s AND s.sent_at >= %(start)s AND s.sent_at < %(end)s),
    (SELECT COUNT(*) FROM loyalty_surveysend s JOIN loyalty_surveyresponse r ON r.send_id = s.id
     WHERE s.program_id = %(program)s AND s.sent_at >= %(start)s AND s.sent_at < %(end)s),
    SUM(CASE WHEN kind = 'nps' THEN 1 ELSE 0 END),
    SUM(CASE WHEN kind = 'nps' AND score >= 9 THEN 1 ELSE 0 END),
    SUM(CASE WHEN kind = 'nps' AND score <= 6 THEN 1 ELSE 0 END),
    SUM(CASE WHEN kind = 'csat' THEN 1 ELSE 0 END),
    SUM(CASE WHEN kind = 'csat' AND score >= 4 THEN 1 ELSE 0 END),
    SUM(CASE WHEN kind = 'ces' THEN 1 ELSE 0 END),
    SUM(CASE WHEN kind = 'ces' THEN score ELSE 0 END)
FROM loyalty_surveyresponse
WHERE program_id = %(program)s AND responded_at >= %(start)s AND responded_at < %(end)s
"""


def surveys(program: Program, period: Period) -> dict:
    row = _one(_SURVEYS, _params(program, start=period.start, end=period.end))
    sent, answered, nps_n, promoters, detractors, csat_n, satisfied, ces_n, ces_sum = map(_int, row)
    nps = None
    if nps_n:
        nps = float(((Decimal(promoters) - Decimal(detractors)) * 100 / nps_n).quantize(Decimal("0.01"), ROUND_HALF_UP))
    return {
        "nps": nps,
        "nps_responses": nps_n,
        "csat": percent(satisfied, csat_n),
        "csat_responses": csat_n,
        "ces": ratio(ces_sum, ces_n),
        "ces_responses": ces_n,
        "surveys_sent": sent,
        "surveys_answered": answered,
        "survey_response_rate": percent(answered, sent),
    }


# --- tiers: mix at the end, movements in the period -----------------------------------------------
_TIER_MIX = """
WITH changes AS (
    SELECT c.member_id, c.to_tier_id,
           ROW_NUMBER() OVER (PARTITION BY c.member_id ORDER BY c.changed_at DESC, c.id DESC) AS rn
    FROM tiers_tierchange c
    JOIN tiers_tier t ON t.id = c.to_tier_id
    WHERE t.program_id = %(program)s AND c.changed_at < %(end)s AND c.reason NOT IN ('override', 'override_end')
)
SELECT COALESCE(c.to_tier_id, %(entry)s), COUNT(*)
FROM loyalty_member m
LEFT JOIN changes c ON c.member_id = m.id AND c.rn = 1
WHERE m.program_id = %(program)s AND m.enrolled_at < %(end)s AND (m.closed_at IS NULL OR m.closed_at >= %(end)s)
GROUP BY COALESCE(c.to_tier_id, %(entry)s)
"""

_TIER_MOVES = """
SELECT c.from_tier_id, c.to_tier_id, COUNT(*)
FROM tiers_tierchange c
JOIN tiers_tier t ON t.id = c.to_tier_id
WHERE t.program_id = %(program)s AND c.from_tier_id IS NOT NULL
  AND c.changed_at >= %(start)s AND c.changed_at < %(end)s AND c.reason NOT IN ('override', 'override_end')
GROUP BY c.from_tier_id, c.to_tier_id
"""


def tiers(program: Program, period: Period) -> dict:
    ranked = list(program.tiers.order_by("rank"))
    if not ranked:
        return {"tier_mix": [], "tier_movements": {"upgrades": 0, "downgrades": 0, "moves": []}}
    by_id = {t.pk: t for t in ranked}
    counts = dict(_rows(_TIER_MIX, _params(program, end=period.end, entry=ranked[0].pk)))
    total = sum(counts.values())
    mix = [
        {
            "tier": t.code,
            "name": t.name,
            "members": _int(counts.get(t.pk)),
            "share": percent(counts.get(t.pk, 0), total),
        }
        for t in ranked
    ]
    moves, up, down = [], 0, 0
    for from_id, to_id, count in _rows(_TIER_MOVES, _params(program, start=period.start, end=period.end)):
        a, b = by_id.get(from_id), by_id.get(to_id)
        if a is None or b is None or a == b:
            continue
        count = _int(count)
        up += count if b.rank > a.rank else 0
        down += count if b.rank < a.rank else 0
        moves.append({"from": a.code, "to": b.code, "members": count, "direction": "up" if b.rank > a.rank else "down"})
    rank = {t.code: t.rank for t in ranked}
    moves.sort(key=lambda m: (rank[m["from"]], rank[m["to"]]))
    return {"tier_mix": mix, "tier_movements": {"upgrades": up, "downgrades": down, "moves": moves}}


# --- the summary --------------------------------------------------------------------------------
def metrics_summary(*, program: Program, period: Period, now: datetime | None = None) -> dict:
    """Every scalar metric of docs/metrics.md for the period, JSON-ready (money as {amount, currency},
    rates as percentages with two decimals, null where a rate has nothing to divide by)."""
    now = now or timezone.now()
    cust = customers(program, period)
    ords = orders(program, period)
    # Mean lifespan of the customers who have churned by the end. (The definitions' fallback, 1 /
    # annual churn, only matters when nobody has churned, and then annual churn is 0 too: null.)
    lifespan = None
    if cust["_churned"]:
        lifespan = Decimal(cust["_churned_seconds"]) / cust["_churned"] / YEAR_SECONDS
    clv = None
    if ords["_aov"] is not None and ords["_frequency_per_year"] is not None and lifespan is not None:
        value = ords["_aov"] * ords["_frequency_per_year"] * lifespan
        if program.acquisition_cost is not None:
            value -= program.acquisition_cost.amount
        clv = money_round(value, program.base_currency)
    base = program.base_currency
    summary = {
        "program": program.code,
        "start": period.start_date.isoformat(),
        "end": period.end_date.isoformat(),
        "currency": base,
        "activity_window_days": program.activity_window_days,
        "source": "live",
        "computed_at": now.isoformat(),
        **{k: v for k, v in cust.items() if not k.startswith("_")},
        "orders": ords["orders"],
        "buyers": ords["buyers"],
        "revenue": money_dict(ords["revenue"], base),
        "repeat_purchase_rate": ords["repeat_purchase_rate"],
        "average_order_value": money_dict(ords["average_order_value"], base) if ords["orders"] else None,
        "purchase_frequency": ords["purchase_frequency"],
        "purchase_frequency_per_year": ords["purchase_frequency_per_year"],
        "average_lifespan_years": float(lifespan.quantize(Decimal("0.01"), ROUND_HALF_UP)) if lifespan else None,
        "clv": money_dict(clv, base) if clv is not None else None,
        **points(program, period),
        **members(program, period),
        **surveys(program, period),
        **tiers(program, period),
    }
    return summary


# --- cohorts --------------------------------------------------------------------------------------
_COHORTS = """
WITH firsts AS (
    SELECT o.member_id, MIN(o.placed_at) AS first_at
    FROM loyalty_order o
    WHERE o.program_id = %(program)s AND o.placed_at < %(end)s AND o.{qualifying}
    GROUP BY o.member_id
    HAVING MIN(o.placed_at) >= %(start)s
), activity AS (
    SELECT DISTINCT o.member_id, {month_order} AS m
    FROM loyalty_order o
    JOIN firsts f ON f.member_id = o.member_id
    WHERE o.program_id = %(program)s AND o.placed_at >= %(start)s AND o.placed_at < %(end)s AND o.{qualifying}
), cohort AS (
    SELECT member_id, {month_first} AS cm FROM firsts
)
SELECT c.cm, a.m, COUNT(*)
FROM cohort c JOIN activity a ON a.member_id = c.member_id
GROUP BY c.cm, a.m
"""


def _month_label(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def cohort_period(program: Program, start: date | None, end: date | None, *, now=None) -> Period:
    """Whole months: from the first of `start`'s month to the end of the month before `end`
    (exclusive; the month containing end - 1 day). Default: the 12 months to this one."""
    if start is None:
        last = today(program, now)
        first = date(last.year - (1 if last.month < 12 else 0), (last.month % 12) + 1, 1)
        first = date(first.year, first.month, 1)
        start, end = first, _next_month(date(last.year, last.month, 1))
    first = date(start.year, start.month, 1)
    last_day = end - timedelta(days=1)
    end = _next_month(date(last_day.year, last_day.month, 1))
    return Period(first, end, program.timezone)


def months_to(program: Program, end: date, count: int) -> Period:
    """The `count` whole months that end with the month containing `end - 1 day`."""
    last = end - timedelta(days=1)
    index = last.year * 12 + last.month - 1 - (count - 1)
    return cohort_period(program, date(index // 12, index % 12 + 1, 1), end)


def _next_month(day: date) -> date:
    return date(day.year + (day.month == 12), day.month % 12 + 1, 1)


def cohort_matrix(*, program: Program, period: Period, now: datetime | None = None) -> dict:
    """Cohort = month of a member's first qualifying order; cell (cohort, k) = share of the cohort
    with a qualifying order in month cohort + k. Cells after the period's last month are null."""
    first = period.start_date.year * 12 + period.start_date.month - 1
    last = (period.end_date - timedelta(days=1)).year * 12 + (period.end_date - timedelta(days=1)).month - 1
    if last - first + 1 > MAX_COHORT_MONTHS:
        raise PeriodTooLong(
            f"At most {MAX_COHORT_MONTHS} months of cohorts",
            errors=[{"field": "end", "message": f"at most {MAX_COHORT_MONTHS} months", "code": "period_too_long"}],
        )
    sql = _COHORTS.format(qualifying=QUALIFYING, month_order=_month("o.placed_at"), month_first=_month("first_at"))
    cells: dict[tuple[int, int], int] = {}
    for cm, month, count in _rows(sql, _params(program, start=period.start, end=period.end)):
        cohort = _month_index(cm)
        cells[(cohort, _month_index(month) - cohort)] = _int(count)
    width = last - first + 1
    cohorts = []
    for cm in range(first, last + 1):
        size = cells.get((cm, 0), 0)
        horizon = last - cm  # the last k that has happened
        active = [cells.get((cm, k), 0) if k <= horizon else None for k in range(width)]
        cohorts.append(
            {
                "cohort": _month_label(cm),
                "size": size,
                "active": active,
                "retention": [percent(a, size) if a is not None and size else None for a in active],
            }
        )
    return {
        "program": program.code,
        "start": period.start_date.isoformat(),
        "end": period.end_date.isoformat(),
        "months": [_month_label(m) for m in range(first, last + 1)],
        "cohorts": cohorts,
        "computed_at": (now or timezone.now()).isoformat(),
    }


# --- RFM segments ---------------------------------------------------------------------------------
_RFM = """
WITH stats AS (
    SELECT o.member_id, MAX(o.placed_at) AS last_at, COUNT(*) AS orders,
           CAST(ROUND(SUM(o.spend_base) * 100, 0) AS BIGINT) AS spend_cents
    FROM loyalty_order o
    WHERE o.program_id = %(program)s AND o.placed_at < %(as_of)s AND o.{qualifying}
    GROUP BY o.member_id
), ranked AS (
    SELECT member_id, last_at, orders, spend_cents,
           RANK() OVER (ORDER BY last_at) AS r_rank,
           RANK() OVER (ORDER BY orders) AS f_rank,
           RANK() OVER (ORDER BY spend_cents) AS m_rank,
           COUNT(*) OVER () AS n
    FROM stats
), scored AS (
    SELECT member_id, last_at, orders, spend_cents,
           1 + (5 * (r_rank - 1)) / n AS r,
           1 + (5 * (f_rank - 1)) / n AS f,
           1 + (5 * (m_rank - 1)) / n AS m
    FROM ranked
), segmented AS (
    SELECT member_id, last_at, orders, spend_cents, r, f, m,
           CASE
               WHEN orders = 1 AND r >= 4 THEN 'new'
               WHEN r >= 4 AND f + m >= 8 THEN 'champions'
               WHEN r >= 3 AND f + m >= 6 THEN 'loyal'
               WHEN r >= 3 THEN 'potential'
               WHEN f + m >= 6 THEN 'at_risk'
               WHEN r = 2 THEN 'hibernating'
               ELSE 'lost'
           END AS segment
    FROM scored
)
"""


def segment_counts(*, program: Program, as_of: datetime) -> list[dict]:
    """RFM: recency, frequency and monetary scores 1-5 from each member's rank among the program's
    customers (ties share the lower score), mapped to seven segments."""
    sql = _RFM.format(qualifying=QUALIFYING) + "SELECT segment, COUNT(*) FROM segmented GROUP BY segment"
    counts = dict(_rows(sql, _params(program, as_of=as_of)))
    total = sum(_int(v) for v in counts.values())
    return [
        {
            "segment": key,
            "name": name,
            "description": SEGMENT_HELP[key],
            "members": _int(counts.get(key)),
            "share": percent(counts.get(key, 0), total),
        }
        for key, name in SEGMENTS.items()
    ]


def segment_members(
    *, program: Program, as_of: datetime, segment: str, after: int | None, limit: int | None
) -> list[dict]:
    """The members of a segment, newest member first, `limit` from after the member id `after`."""
    if segment not in SEGMENTS:
        raise UnknownSegment(
            f"{segment!r} is not a segment; one of {', '.join(SEGMENTS)}",
            errors=[{"field": "segment", "message": "unknown segment", "code": "unknown_segment"}],
        )
    sql = _RFM.format(qualifying=QUALIFYING) + (
        "SELECT s.member_id, m.external_id, m.email, m.first_name, m.last_name, s.last_at, s.orders, "
        "s.spend_cents, s.r, s.f, s.m "
        "FROM segmented s JOIN loyalty_member m ON m.id = s.member_id "
        "WHERE s.segment = %(segment)s" + (" AND s.member_id < %(after)s" if after is not None else "") + " "
        "ORDER BY s.member_id DESC" + (" LIMIT %(limit)s" if limit is not None else "")
    )
    rows = _rows(sql, _params(program, as_of=as_of, segment=segment, after=after, limit=limit))
    return [
        {
            "id": pk,
            "member": external_id,
            "email": email,
            "name": " ".join(p for p in (first, last_name) if p),
            "last_order_at": _aware(last_at),
            "orders": _int(count),
            "spend": money_dict(Decimal(_int(cents)) / 100, program.base_currency),
            "rfm": f"{_int(r)}{_int(f)}{_int(m)}",
        }
        for pk, external_id, email, first, last_name, last_at, count, cents, r, f, m in rows
    ]


def segment_member_ids(*, program: Program, as_of: datetime, segment: str) -> list[int]:
    sql = _RFM.format(qualifying=QUALIFYING) + "SELECT member_id FROM segmented WHERE segment = %(segment)s"
    return [row[0] for row in _rows(sql, _params(program, as_of=as_of, segment=segment))]


# --- at risk --------------------------------------------------------------------------------------
_AT_RISK = """
WITH stats AS (
    SELECT o.member_id, COUNT(*) AS orders, MAX(o.placed_at) AS last_at,
           MAX({epoch}) - MIN({epoch}) AS span,
           MAX({epoch}) AS last_s
    FROM loyalty_order o
    WHERE o.program_id = %(program)s AND o.placed_at < %(as_of)s AND o.{qualifying}
    GROUP BY o.member_id
), gaps AS (
    SELECT span / (orders - 1) AS gap,
           ROW_NUMBER() OVER (ORDER BY span / (orders - 1)) AS rn,
           COUNT(*) OVER () AS n
    FROM stats WHERE orders >= 2
), median AS (
    SELECT COALESCE(SUM(gap), 0) AS middles, COUNT(*) AS k FROM gaps WHERE rn = (n + 1) / 2 OR rn = (n + 2) / 2
), at_risk AS (
    SELECT s.member_id, s.orders, s.last_at, s.last_s,
           CASE WHEN s.orders >= 2 THEN s.span / (s.orders - 1) ELSE md.middles / md.k END AS usual_gap
    FROM stats s CROSS JOIN median md
    JOIN loyalty_member mm ON mm.id = s.member_id
    WHERE mm.status = 'active' AND s.last_at >= %(active_since)s
      AND ((s.orders >= 2 AND (%(as_of_s)s - s.last_s) * (s.orders - 1) > 2 * s.span)
        OR (s.orders = 1 AND md.k > 0 AND (%(as_of_s)s - s.last_s) * md.k > 2 * md.middles))
)
"""


def _at_risk_sql(program: Program, as_of: datetime) -> tuple[str, dict]:
    sql = _AT_RISK.format(qualifying=QUALIFYING, epoch=_epoch("o.placed_at"))
    params = _params(
        program,
        as_of=as_of,
        as_of_s=int(as_of.timestamp()),
        active_since=as_of - timedelta(days=program.activity_window_days),
    )
    return sql, params


def at_risk_count(*, program: Program, as_of: datetime) -> int:
    sql, params = _at_risk_sql(program, as_of)
    return _int(_one(sql + "SELECT COUNT(*) FROM at_risk", params)[0])


def at_risk_members(*, program: Program, as_of: datetime, after: int | None, limit: int | None) -> list[dict]:
    """Active members whose time since their last order is over twice their usual gap between
    orders (the program's median gap for one-order members). Newest member first."""
    sql, params = _at_risk_sql(program, as_of)
    sql += (
        "SELECT r.member_id, m.external_id, m.email, m.first_name, m.last_name, r.last_at, r.orders, r.usual_gap, "
        "%(as_of_s)s - r.last_s FROM at_risk r JOIN loyalty_member m ON m.id = r.member_id"
        + (" WHERE r.member_id < %(after)s" if after is not None else "")
        + " ORDER BY r.member_id DESC"
        + (" LIMIT %(limit)s" if limit is not None else "")
    )
    rows = _rows(sql, {**params, "after": after, "limit": limit})
    day = Decimal(86400)
    return [
        {
            "id": pk,
            "member": external_id,
            "email": email,
            "name": " ".join(p for p in (first, last_name) if p),
            "last_order_at": _aware(last_at),
            "orders": _int(count),
            "usual_gap_days": float((Decimal(_int(gap)) / day).quantize(Decimal("0.1"), ROUND_HALF_UP)),
            "days_since_last_order": float((Decimal(_int(since)) / day).quantize(Decimal("0.1"), ROUND_HALF_UP)),
        }
        for pk, external_id, email, first, last_name, last_at, count, gap, since in rows
    ]


def at_risk_member_ids(*, program: Program, as_of: datetime) -> list[int]:
    sql, params = _at_risk_sql(program, as_of)
    return [row[0] for row in _rows(sql + "SELECT member_id FROM at_risk", params)]


# --- win-back results -----------------------------------------------------------------------------
_WINBACK = """
SELECT g.offer_id, COUNT(*),
       SUM(CASE WHEN EXISTS (
           SELECT 1 FROM loyalty_order o
           WHERE o.member_id = g.member_id AND o.placed_at > g.granted_at AND o.{qualifying}
             AND {order_s} <= {grant_s} + %(window)s
       ) THEN 1 ELSE 0 END),
       SUM(CASE WHEN {grant_s} + %(window)s > %(now_s)s THEN 1 ELSE 0 END),
       MIN(g.granted_at), MAX(g.granted_at)
FROM loyalty_winbackgrant g
WHERE g.program_id = %(program)s
GROUP BY g.offer_id
"""


def winback_results(*, program: Program, now: datetime) -> list[dict]:
    """Per offer: members granted, how many came back (a qualifying order within 60 days of the
    grant), and how many grants are still inside their 60 days."""
    from loyalty.models import WinbackOffer

    sql = _WINBACK.format(qualifying=QUALIFYING, order_s=_epoch("o.placed_at"), grant_s=_epoch("g.granted_at"))
    rows = {r[0]: r for r in _rows(sql, _params(program, window=WINBACK_DAYS * 86400, now_s=int(now.timestamp())))}
    offers = WinbackOffer.objects.filter(program=program).select_related("reward", "asset").order_by("-id")
    out = []
    for offer in offers:
        _, granted, back, open_, first, last = rows.get(offer.pk, (offer.pk, 0, 0, 0, None, None))
        granted, back, open_ = _int(granted), _int(back), _int(open_)
        out.append(
            {
                "offer": offer,
                "granted": granted,
                "came_back": back,
                "came_back_rate": percent(back, granted),
                "still_open": open_,
                "first_granted_at": _aware(first),
                "last_granted_at": _aware(last),
            }
        )
    return out


# --- points by month (the dashboard's flow chart) ------------------------------------------------
_FLOWS_BY_MONTH = """
WITH t AS MATERIALIZED (
    SELECT id, effective_at FROM loyalty_transaction
    WHERE program_id = %(program)s AND kind IN {kinds} AND effective_at >= %(start)s AND effective_at < %(end)s
), e AS MATERIALIZED (
    SELECT t.effective_at, e.account_id, e.amount FROM {entries_of_t}
)
SELECT {month}, a.kind, SUM(e.amount)
FROM e
JOIN loyalty_account a ON a.id = e.account_id
WHERE a.member_id IS NULL AND a.asset_id = %(asset)s AND a.kind IN {accounts}
GROUP BY {month}, a.kind
"""


def points_by_month(*, program: Program, period: Period) -> list[dict]:
    """Points earned, redeemed and expired per month of the (whole-month) period, main currency."""
    asset = next(iter(_assets(program).values()), None)
    first = period.start_date.year * 12 + period.start_date.month - 1
    last_day = period.end_date - timedelta(days=1)
    last = last_day.year * 12 + last_day.month - 1
    months = {m: {"month": _month_label(m), "earned": 0, "redeemed": 0, "expired": 0} for m in range(first, last + 1)}
    if asset is None:
        return list(months.values())
    sql = _FLOWS_BY_MONTH.format(
        month=_month("e.effective_at"), kinds=_in(FLOW_KINDS), accounts=_in(FLOW_ACCOUNTS), entries_of_t=_entries_of_t()
    )
    for month, kind, amount in _rows(sql, _params(program, start=period.start, end=period.end, asset=asset.pk)):
        row = months.get(_month_index(month))
        if row is None:
            continue
        if kind in EARN_SOURCES:
            row["earned"] -= _int(amount)
        else:
            row[kind] += _int(amount)
    return list(months.values())


# --- snapshots ------------------------------------------------------------------------------------
def snapshot_get(*, program: Program, period: Period) -> MetricSnapshot | None:
    return MetricSnapshot.objects.filter(program=program, start=period.start_date, end=period.end_date).first()


def snapshot_latest(*, program: Program) -> MetricSnapshot | None:
    """The newest full nightly snapshot (with cohorts and segments)."""
    return MetricSnapshot.objects.filter(program=program, cohorts__isnull=False).order_by("-end", "-id").first()


def snapshot_series(*, program: Program, until: date, days: int = 180, length: int = DEFAULT_DAYS) -> list[dict]:
    """The trailing-`length`-day snapshots ending in the `days` before `until` (oldest first):
    the retention and churn time series of the dashboard."""
    rows = (
        MetricSnapshot.objects.filter(program=program, end__lte=until, end__gt=until - timedelta(days=days))
        .order_by("end")
        .values_list("start", "end", "summary")
    )
    return [
        {
            "end": end.isoformat(),
            "retention_rate": summary.get("retention_rate"),
            "churn_rate": summary.get("churn_rate"),
            "customers_at_end": summary.get("customers_at_end"),
            "active_members": summary.get("active_members"),
        }
        for start, end, summary in rows
        if (end - start).days == length
    ]


# --- cursors (opaque, keyset on the member id) ----------------------------------------------------
def cursor_encode(member_id: int) -> str:
    return base64.urlsafe_b64encode(f"m:{member_id}".encode()).decode().rstrip("=")


def cursor_decode(cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, value = raw.partition(":")
        if prefix != "m":
            raise ValueError(raw)
        return int(value)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidCursor(
            "This cursor is not valid; start again without it",
            errors=[{"field": "cursor", "message": "not a cursor we gave out", "code": "invalid_cursor"}],
        )
