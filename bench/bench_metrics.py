#!/usr/bin/env python
"""Retention metrics at scale: 1,000,000 members and 10,000,000 orders (with their ledger rows,
tier history, referrals and surveys) generated with COPY into a fresh PostgreSQL database
`bench_metrics`, then

- the summary, the cohort matrix (12 months) and the RFM segment counts computed by our selectors
  (loyalty/selectors/metrics.py), timed side by side with the same metrics written as hand SQL in
  the same run, on the same server; the results are checked to agree;
- the admin dashboard page rendered from the nightly snapshots (p50 / p99 over repeated requests),
  beside the raw SQL that reads the same snapshot rows.

Targets (issue 6): within 1.5x of the hand SQL, under 60 s in total, dashboard under 300 ms.

    .venv/bin/python bench/bench_metrics.py [--quick] [--keep] [--members N] [--orders N]

Conditions: both sides run with the same session settings (the database's work_mem is raised to
64MB for this database only, for ours and the hand SQL alike); each measure is the best of
`--repeat` runs, alternating ours and hand SQL.
"""

import argparse
import json
import math
import os
import random
import statistics
import sys
import time
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DB = "bench_metrics"
URL = f"postgres://postgres@127.0.0.1:5432/{DB}"
BIG_TABLES = ("loyalty_member", "loyalty_order", "loyalty_transaction", "loyalty_entry", "loyalty_account")


def log(*args):
    print(f"[{time.strftime('%H:%M:%S')}]", *args, flush=True)


# --- database -------------------------------------------------------------------------------------
def admin_connection():
    import psycopg

    return psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres", autocommit=True)


def database_create():
    with admin_connection() as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB}")
        conn.execute(f"ALTER DATABASE {DB} SET work_mem = '64MB'")


def database_drop():
    with admin_connection() as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


def django_setup():
    os.environ["DATABASE_URL"] = URL
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()


# --- data -----------------------------------------------------------------------------------------
class Clock:
    """Fast timestamp text for COPY: seconds since an origin -> 'YYYY-MM-DD HH:MM:SS+00'."""

    def __init__(self, origin: datetime):
        self.origin = origin
        self.days: dict[int, str] = {}

    def text(self, seconds: int) -> str:
        day, rest = divmod(seconds, 86400)
        label = self.days.get(day)
        if label is None:
            label = self.days[day] = (self.origin + timedelta(days=day)).strftime("%Y-%m-%d")
        hours, rest = divmod(rest, 3600)
        return f"{label} {hours:02d}:{rest // 60:02d}:{rest % 60:02d}+00"


def indexes_drop(cursor) -> list[str]:
    """Drop the secondary indexes and constraints of the big tables (recreated after the load)."""
    recreate = []
    names = ", ".join(f"'{t}'" for t in BIG_TABLES)
    cursor.execute(
        f"SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
        f"WHERE conrelid::regclass::text IN ({names}) AND contype IN ('u', 'f', 'c')"
    )
    for table, name, definition in cursor.fetchall():
        cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        if definition.startswith("FOREIGN KEY"):
            definition += " NOT VALID"  # the generated rows are consistent by construction
        recreate.append(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
    cursor.execute(
        f"SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN ({names}) AND indexname NOT LIKE '%%_pkey'"
    )
    for name, definition in cursor.fetchall():
        cursor.execute(f'DROP INDEX IF EXISTS "{name}"')
        recreate.insert(0, definition)
    return recreate


def copy_rows(cursor, table: str, columns: list[str], rows, batch: int = 50_000) -> int:
    count = 0
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        buffer = []
        for row in rows:
            buffer.append(row)
            if len(buffer) == batch:
                copy.write("\n".join(buffer) + "\n")
                count += len(buffer)
                buffer = []
        if buffer:
            copy.write("\n".join(buffer) + "\n")
            count += len(buffer)
    return count


def load(program, *, members: int, orders: int, now: datetime, seed: int = 6) -> dict:
    """Generate and COPY the whole history; -> sizes."""
    from django.db import connection

    from loyalty.models import Account
    from tiers.models import Tier

    rng = random.Random(seed)
    years = 3
    span = years * 365 * 86400
    origin = now - timedelta(seconds=span)
    clock = Clock(origin)
    tiers = {t.code: t.pk for t in Tier.objects.filter(program=program)}
    asset = program.primary_asset
    shards = 16
    system = {
        (a.kind, a.shard): a.pk for a in Account.objects.filter(program=program, member__isnull=True, asset=asset)
    }
    pid = program.pk
    now_s = span
    pending_s = program.pending_days * 86400

    # orders per member: long-tailed, mean orders / members
    mean = orders / members
    counts = [max(1, int(rng.expovariate(1 / mean) + 0.5)) for _ in range(members)]
    scale = orders / sum(counts)
    counts = [max(1, round(c * scale)) for c in counts]

    with connection.cursor() as cursor:
        raw = cursor.cursor
        recreate = indexes_drop(raw)
        raw.execute("SET session_replication_role = replica")
        system_balance: dict[int, int] = {}
        member_rows, order_rows, txn_rows, entry_rows = [], [], [], []
        first_orders: list[int] = []
        next_order = next_txn = next_entry = 1
        next_report = 1_000_000
        sizes = {"members": members, "orders": 0, "transactions": 0, "entries": 0}

        def member_gen():
            for mid in range(1, members + 1):
                yield member_rows[mid - 1]

        # members, orders, earn / capture / expire transactions, all in memory-light streams
        started = time.perf_counter()
        next_account = max(system.values()) + 1
        account_rows = []
        for mid in range(1, members + 1):
            first = rng.randrange(0, span - 3600)
            enrolled = max(0, first - rng.randrange(0, 30 * 86400))
            life = rng.randrange(0, span - first) if rng.random() < 0.6 else span - first  # 40 % still buying
            k = counts[mid - 1]
            times = sorted([first] + [first + rng.randrange(0, max(1, life)) for _ in range(k - 1)])
            first_orders.append(first)
            tier = "insider"
            member_rows.append(
                f"{mid}\t{pid}\tm{mid}\tm{mid}@example.com\tAnna\tK\t\\N\t\t\tf\tactive\t\\N\t{{tier}}\t\\N\t"
                f"{{tier}}\t\\N\t\\N\t{clock.text(enrolled)}\t{clock.text(times[-1])}\t\\N"
            )
            pending_id, available_id, held_id = next_account, next_account + 1, next_account + 2
            next_account += 3
            pend = avail = 0
            spend_year: dict[int, float] = {}
            issued = system[("issued", mid % shards)]
            for t in times:
                oid = next_order
                next_order += 1
                amount = rng.randrange(1000, 30000) / 100
                eur = rng.random() < 0.15
                rate = Decimal("1.08") if eur else Decimal(1)
                currency = "EUR" if eur else "USD"
                base = float((Decimal(str(amount)) * rate).quantize(Decimal("0.01")))
                roll = rng.random()
                if roll < 0.03:
                    status, refunded, spend = "cancelled", amount, 0.0
                elif roll < 0.05:
                    status, refunded, spend = "refunded", amount, 0.0
                elif roll < 0.08:
                    refunded = round(amount * 0.4, 2)
                    status, spend = "partially_refunded", round(base * 0.6, 2)
                else:
                    refunded, spend = 0.0, base
                    status = "pending" if t + pending_s > now_s else "completed"
                points = int(spend)
                order_rows.append(
                    f"{oid}\t{pid}\t{mid}\to{oid}\t{status}\t{clock.text(t)}\t{rate}\t{currency}\t{amount:.2f}\t0\t0\t"
                    f"{amount:.2f}\t0\t{amount:.2f}\t{refunded:.2f}\t{refunded:.2f}\t{refunded:.2f}\tUSD\t{base:.2f}\t"
                    f"{spend:.2f}\t{points}\t{int(base) - points}\t[]\t{clock.text(t + pending_s)}\t\t\t{{}}\t"
                    f"{clock.text(t)}"
                )
                year = t // (365 * 86400)
                spend_year[year] = spend_year.get(year, 0.0) + spend
                if points:
                    tid = next_txn
                    next_txn += 1
                    txn_rows.append(f"{tid}\t{pid}\t{mid}\tearn\t{oid}\tOrder o{oid}\t{clock.text(t)}\t{clock.text(t)}")
                    matured = t + pending_s <= now_s
                    target = available_id if matured else pending_id
                    entry_rows.append(f"{next_entry}\t{tid}\t{issued}\t{-points}\t0")
                    entry_rows.append(f"{next_entry + 1}\t{tid}\t{target}\t{points}\t0")
                    next_entry += 2
                    system_balance[issued] = system_balance.get(issued, 0) - points
                    if matured:
                        avail += points
                    else:
                        pend += points
                    # now and then the member spends 500 points a week later
                    if avail >= 500 and rng.random() < 0.12 and t + 7 * 86400 < now_s:
                        tid = next_txn
                        next_txn += 1
                        redeemed = system[("redeemed", mid % shards)]
                        txn_rows.append(
                            f"{tid}\t{pid}\t{mid}\tcapture\t\\N\tRedemption\t{clock.text(t + 7 * 86400)}\t"
                            f"{clock.text(t + 7 * 86400)}"
                        )
                        entry_rows.append(f"{next_entry}\t{tid}\t{available_id}\t-500\t0")
                        entry_rows.append(f"{next_entry + 1}\t{tid}\t{redeemed}\t500\t0")
                        next_entry += 2
                        avail -= 500
                        system_balance[redeemed] = system_balance.get(redeemed, 0) + 500
            # 18 months without an order: what is left expires
            lapse = times[-1] + 548 * 86400
            if avail > 0 and lapse < now_s:
                tid = next_txn
                next_txn += 1
                expired = system[("expired", mid % shards)]
                txn_rows.append(f"{tid}\t{pid}\t{mid}\texpire\t\\N\tExpiry\t{clock.text(lapse)}\t{clock.text(lapse)}")
                entry_rows.append(f"{next_entry}\t{tid}\t{available_id}\t{-avail}\t0")
                entry_rows.append(f"{next_entry + 1}\t{tid}\t{expired}\t{avail}\t0")
                next_entry += 2
                system_balance[expired] = system_balance.get(expired, 0) + avail
                avail = 0
            best = max(spend_year.values()) if spend_year else 0
            tier = "rouge" if best >= 1000 else "vib" if best >= 350 else "insider"
            member_rows[-1] = member_rows[-1].replace("{tier}", str(tiers[tier]))
            account_rows += [
                f"{pending_id}\t{pid}\t{asset.pk}\t{mid}\tpending\t0\t{pend}\t1",
                f"{available_id}\t{pid}\t{asset.pk}\t{mid}\tavailable\t0\t{avail}\t1",
                f"{held_id}\t{pid}\t{asset.pk}\t{mid}\theld\t0\t0\t0",
            ]
            if len(order_rows) >= 200_000:
                sizes["orders"] += _flush_orders(raw, order_rows)
                sizes["transactions"] += _flush_transactions(raw, txn_rows)
                sizes["entries"] += _flush_entries(raw, entry_rows)
                order_rows.clear()
                txn_rows.clear()
                entry_rows.clear()
                if sizes["orders"] >= next_report:
                    next_report += 1_000_000
                    log(f"  {mid:,} members, {sizes['orders']:,} orders ({time.perf_counter() - started:.0f} s)")
        sizes["orders"] += _flush_orders(raw, order_rows)
        sizes["transactions"] += _flush_transactions(raw, txn_rows)
        sizes["entries"] += _flush_entries(raw, entry_rows)
        copy_rows(
            raw,
            "loyalty_member",
            [
                "id", "program_id", "external_id", "email", "first_name", "last_name", "birth_date", "locale",
                "country", "marketing_opt_in", "status", "user_id", "tier_id", "tier_override_id", "tier_floor_id",
                "tier_valid_until", "tier_override_until", "enrolled_at", "last_activity_at", "closed_at",
            ],
            member_gen(),
        )  # fmt: skip
        copy_rows(
            raw,
            "loyalty_account",
            ["id", "program_id", "asset_id", "member_id", "kind", "shard", "balance", "version"],
            iter(account_rows),
        )
        for account_id, delta in system_balance.items():
            raw.execute("UPDATE loyalty_account SET balance = balance + %s WHERE id = %s", [delta, account_id])

        # tier history: an upgrade for members above Insider; referrals; surveys
        tier_rows, referral_rows, send_rows, answer_rows = [], [], [], []
        entry_tier = tiers["insider"]
        for mid in range(1, members + 1):
            tier_id = int(member_rows[mid - 1].split("\t")[12])
            if tier_id != entry_tier:
                when = first_orders[mid - 1] + rng.randrange(0, max(1, now_s - first_orders[mid - 1]))
                tier_rows.append(f"{mid}\t{entry_tier}\t{tier_id}\tspend\t\t{clock.text(when)}")
                if rng.random() < 0.1 and when + 86400 * 200 < now_s:
                    tier_rows.append(f"{mid}\t{tier_id}\t{entry_tier}\tyear_end\t\t{clock.text(when + 86400 * 200)}")
                    tier_rows.append(f"{mid}\t{entry_tier}\t{tier_id}\tspend\t\t{clock.text(when + 86400 * 300)}")
            if mid > 10 and rng.random() < 0.05:
                referrer = rng.randrange(1, mid)
                enrolled = member_rows[mid - 1].split("\t")[17]
                referral_rows.append(
                    f"{pid}\t{referrer}\t{mid}\tCODE{referrer}\tqualified\t\t\tf\t\t\t0\t0\t{enrolled}"
                )
            if rng.random() < 0.05:
                sent = rng.randrange(now_s - 365 * 86400, now_s)
                kind = rng.choice(("nps", "csat", "ces"))
                send_id = len(send_rows) + 1
                send_rows.append(f"{send_id}\t{pid}\t{mid}\t{kind}\tq\t{clock.text(sent)}\t{clock.text(sent)}")
                if rng.random() < 0.3:
                    low, high = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}[kind]
                    answered = clock.text(min(now_s - 1, sent + rng.randrange(0, 7 * 86400)))
                    answer_rows.append(
                        f"{pid}\t{mid}\t{kind}\t{rng.randint(low, high)}\t\tq\t{send_id}\t{answered}\t{answered}"
                    )
        copy_rows(
            raw,
            "tiers_tierchange",
            ["member_id", "from_tier_id", "to_tier_id", "reason", "note", "changed_at"],
            iter(tier_rows),
        )
        copy_rows(
            raw,
            "referrals_referral",
            [
                "program_id", "referrer_id", "referee_id", "code", "status", "reason", "note", "staff_approved",
                "payment_fingerprint", "device_id", "referrer_points", "referee_points", "created_at",
            ],
            iter(referral_rows),
        )  # fmt: skip
        copy_rows(
            raw,
            "loyalty_surveysend",
            ["id", "program_id", "member_id", "kind", "survey_id", "sent_at", "created_at"],
            iter(send_rows),
        )
        copy_rows(
            raw,
            "loyalty_surveyresponse",
            [
                "program_id",
                "member_id",
                "kind",
                "score",
                "comment",
                "survey_id",
                "send_id",
                "responded_at",
                "created_at",
            ],
            iter(answer_rows),
        )
        raw.execute("SET session_replication_role = origin")
        log(f"  rows copied in {time.perf_counter() - started:.0f} s; building indexes and constraints")
        began = time.perf_counter()
        for statement in recreate:
            raw.execute(statement)
        for table in ("loyalty_member", "loyalty_order", "loyalty_transaction", "loyalty_entry", "loyalty_account"):
            raw.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT COALESCE(MAX(id), 1) FROM {table}))"
            )
        raw.execute("SELECT setval(pg_get_serial_sequence('loyalty_surveysend', 'id'), %s)", [len(send_rows) + 1])
        raw.execute("VACUUM ANALYZE")  # what autovacuum does to a live table: visibility map and statistics
        log(f"  indexes and ANALYZE in {time.perf_counter() - began:.0f} s")
        sizes.update(
            tier_changes=len(tier_rows),
            referrals=len(referral_rows),
            surveys_sent=len(send_rows),
            survey_answers=len(answer_rows),
        )
    return sizes


ORDER_COLUMNS = [
    "id", "program_id", "member_id", "external_id", "status", "placed_at", "fx_rate", "currency", "merchandise",
    "shipping", "tax", "total", "points_payment", "qualifying", "refunded", "refunded_merchandise",
    "refunded_qualifying", "base_currency", "qualifying_base", "spend_base", "points_earned", "points_reversed",
    "earn_breakdown", "available_at", "payment_fingerprint", "device_id", "metadata", "created_at",
]  # fmt: skip


def _flush_orders(cursor, rows) -> int:
    return copy_rows(cursor, "loyalty_order", ORDER_COLUMNS, iter(rows))


def _flush_transactions(cursor, rows) -> int:
    columns = ["id", "program_id", "member_id", "kind", "order_id", "reference", "effective_at", "created_at", "memo"]
    return copy_rows(cursor, "loyalty_transaction", columns, (row + "\t" for row in rows))


def _flush_entries(cursor, rows) -> int:
    return copy_rows(
        cursor, "loyalty_entry", ["id", "transaction_id", "account_id", "amount", "balance_after"], iter(rows)
    )


# --- hand-written SQL: the baseline ---------------------------------------------------------------
HAND_SUMMARY = [
    # customers
    """
    WITH m AS (
        SELECT member_id, min(placed_at) AS first_at, max(placed_at) AS last_at,
               max(placed_at) FILTER (WHERE placed_at < %(start)s) AS last_before
        FROM loyalty_order
        WHERE program_id = %(p)s AND placed_at < %(end)s AND status NOT IN ('cancelled', 'refunded')
        GROUP BY member_id)
    SELECT count(*) FILTER (WHERE last_before >= %(sw)s),
           count(*) FILTER (WHERE last_at >= %(ew)s),
           count(*) FILTER (WHERE first_at >= %(start)s),
           count(*) FILTER (WHERE last_before >= %(sw)s AND last_at >= %(ew)s),
           count(*) FILTER (WHERE last_at >= %(ew)s AND first_at < %(start)s
                            AND (last_before IS NULL OR last_before < %(sw)s)),
           avg(extract(epoch FROM last_at - first_at)) FILTER (WHERE last_at < %(ew)s)
    FROM m
    """,
    # orders in the period and the trailing year
    """
    SELECT count(*) FILTER (WHERE placed_at >= %(start)s),
           count(DISTINCT member_id) FILTER (WHERE placed_at >= %(start)s),
           sum(spend_base) FILTER (WHERE placed_at >= %(start)s),
           count(*) FILTER (WHERE placed_at >= %(year)s),
           count(DISTINCT member_id) FILTER (WHERE placed_at >= %(year)s)
    FROM loyalty_order
    WHERE program_id = %(p)s AND placed_at >= least(%(start)s, %(year)s) AND placed_at < %(end)s
      AND status NOT IN ('cancelled', 'refunded')
    """,
    """
    SELECT count(*) FROM (
        SELECT member_id FROM loyalty_order
        WHERE program_id = %(p)s AND placed_at >= %(start)s AND placed_at < %(end)s
          AND status NOT IN ('cancelled', 'refunded')
        GROUP BY member_id HAVING count(*) >= 2) repeaters
    """,
    # points flows and liability
    # (the period's transactions first: left to itself the planner walks every entry of the
    # system accounts, which look like a single row to it)
    """
    WITH t AS MATERIALIZED (
        SELECT id FROM loyalty_transaction
        WHERE program_id = %(p)s AND kind = ANY(%(flow_kinds)s)
          AND effective_at >= %(start)s AND effective_at < %(end)s),
    e AS MATERIALIZED (SELECT x.account_id, x.amount FROM t CROSS JOIN LATERAL
        (SELECT account_id, amount FROM loyalty_entry WHERE transaction_id = t.id OFFSET 0) x)
    SELECT a.kind, sum(e.amount)
    FROM e JOIN loyalty_account a ON a.id = e.account_id
    WHERE a.member_id IS NULL
      AND a.kind IN ('issued', 'referral_rewards', 'gamification', 'birthday', 'winback', 'redeemed', 'expired')
    GROUP BY a.kind
    """,
    """
    SELECT (SELECT sum(balance) FROM loyalty_account
            WHERE program_id = %(p)s AND member_id IS NOT NULL AND kind IN ('pending', 'available'))
         - (SELECT coalesce(sum(e.amount), 0)
            FROM loyalty_transaction t JOIN loyalty_entry e ON e.transaction_id = t.id
            JOIN loyalty_account a ON a.id = e.account_id
            WHERE t.program_id = %(p)s AND t.kind = ANY(%(all_kinds)s) AND t.effective_at >= %(end)s
              AND a.member_id IS NOT NULL AND a.kind IN ('pending', 'available'))
    """,
    # active members, enrolled, new, referred
    """
    SELECT (SELECT count(DISTINCT member_id) FROM loyalty_transaction
            WHERE program_id = %(p)s AND kind = ANY(%(active_kinds)s)
              AND effective_at >= %(start)s AND effective_at < %(end)s),
           (SELECT count(*) FROM loyalty_member WHERE program_id = %(p)s AND enrolled_at < %(end)s
              AND (closed_at IS NULL OR closed_at >= %(start)s)),
           (SELECT count(*) FROM loyalty_member WHERE program_id = %(p)s
              AND enrolled_at >= %(start)s AND enrolled_at < %(end)s),
           (SELECT count(*) FROM referrals_referral r JOIN loyalty_member m ON m.id = r.referee_id
            WHERE r.program_id = %(p)s AND m.enrolled_at >= %(start)s AND m.enrolled_at < %(end)s)
    """,
    # surveys
    """
    SELECT count(*) FILTER (WHERE kind = 'nps'),
           count(*) FILTER (WHERE kind = 'nps' AND score >= 9) - count(*) FILTER (WHERE kind = 'nps' AND score <= 6),
           count(*) FILTER (WHERE kind = 'csat' AND score >= 4), avg(score) FILTER (WHERE kind = 'ces')
    FROM loyalty_surveyresponse WHERE program_id = %(p)s AND responded_at >= %(start)s AND responded_at < %(end)s
    """,
    """
    SELECT count(*), count(r.id) FROM loyalty_surveysend s LEFT JOIN loyalty_surveyresponse r ON r.send_id = s.id
    WHERE s.program_id = %(p)s AND s.sent_at >= %(start)s AND s.sent_at < %(end)s
    """,
    # tier mix at the end and movements
    """
    SELECT coalesce(last.to_tier_id, %(entry)s), count(*)
    FROM loyalty_member m
    LEFT JOIN (SELECT DISTINCT ON (member_id) member_id, to_tier_id FROM tiers_tierchange
               WHERE changed_at < %(end)s AND reason NOT IN ('override', 'override_end')
               ORDER BY member_id, changed_at DESC, id DESC) last ON last.member_id = m.id
    WHERE m.program_id = %(p)s AND m.enrolled_at < %(end)s AND (m.closed_at IS NULL OR m.closed_at >= %(end)s)
    GROUP BY 1
    """,
    """
    SELECT from_tier_id, to_tier_id, count(*) FROM tiers_tierchange
    WHERE changed_at >= %(start)s AND changed_at < %(end)s AND from_tier_id IS NOT NULL
      AND reason NOT IN ('override', 'override_end')
    GROUP BY 1, 2
    """,
]

HAND_COHORTS = """
WITH firsts AS (
    SELECT member_id, min(placed_at) AS first_at FROM loyalty_order
    WHERE program_id = %(p)s AND placed_at < %(end)s AND status NOT IN ('cancelled', 'refunded')
    GROUP BY member_id HAVING min(placed_at) >= %(start)s
), months AS (
    SELECT DISTINCT o.member_id, date_trunc('month', o.placed_at AT TIME ZONE %(tz)s) AS month
    FROM loyalty_order o JOIN firsts f USING (member_id)
    WHERE o.program_id = %(p)s AND o.placed_at >= %(start)s AND o.placed_at < %(end)s
      AND o.status NOT IN ('cancelled', 'refunded')
)
SELECT date_trunc('month', f.first_at AT TIME ZONE %(tz)s) AS cohort,
       (extract(year FROM age(m.month, date_trunc('month', f.first_at AT TIME ZONE %(tz)s))) * 12
        + extract(month FROM age(m.month, date_trunc('month', f.first_at AT TIME ZONE %(tz)s))))::int AS k,
       count(*)
FROM firsts f JOIN months m USING (member_id)
GROUP BY 1, 2
"""

HAND_SEGMENTS = """
WITH s AS (
    SELECT member_id, max(placed_at) AS last_at, count(*) AS orders, round(sum(spend_base) * 100)::bigint AS cents
    FROM loyalty_order
    WHERE program_id = %(p)s AND placed_at < %(as_of)s AND status NOT IN ('cancelled', 'refunded')
    GROUP BY member_id
), scored AS (
    SELECT orders,
           1 + 5 * (rank() OVER (ORDER BY last_at) - 1) / count(*) OVER () AS r,
           1 + 5 * (rank() OVER (ORDER BY orders) - 1) / count(*) OVER () AS f,
           1 + 5 * (rank() OVER (ORDER BY cents) - 1) / count(*) OVER () AS m
    FROM s
)
SELECT CASE WHEN orders = 1 AND r >= 4 THEN 'new'
            WHEN r >= 4 AND f + m >= 8 THEN 'champions'
            WHEN r >= 3 AND f + m >= 6 THEN 'loyal'
            WHEN r >= 3 THEN 'potential'
            WHEN f + m >= 6 THEN 'at_risk'
            WHEN r = 2 THEN 'hibernating'
            ELSE 'lost' END, count(*)
FROM scored GROUP BY 1
"""


def hand_params(program, period, cohort_period):
    from loyalty.models import TransactionKind
    from loyalty.selectors.metrics import EARN_KINDS, FLOW_KINDS, REDEEM_KINDS

    window = timedelta(days=program.activity_window_days)
    return {
        "p": program.pk,
        "start": period.start,
        "end": period.end,
        "sw": period.start - window,
        "ew": period.end - window,
        "year": period.end - timedelta(days=365),
        "flow_kinds": list(FLOW_KINDS),
        "all_kinds": list(TransactionKind.values),
        "active_kinds": list(EARN_KINDS + REDEEM_KINDS),
        "entry": program.tiers.order_by("rank").first().pk,
        "tz": program.timezone,
        "cstart": cohort_period.start,
        "cend": cohort_period.end,
        "as_of": period.end,
    }


def hand_run(conn, sql_list, params) -> list:
    out = []
    with conn.cursor() as cursor:
        for sql in sql_list:
            cursor.execute(sql, params)
            out.append(cursor.fetchall())
    return out


# --- timing ---------------------------------------------------------------------------------------
def best_of(repeat: int, ours, hand) -> tuple[float, float, object, object]:
    t_ours, t_hand, r_ours, r_hand = [], [], None, None
    for _ in range(repeat):
        began = time.perf_counter()
        r_ours = ours()
        t_ours.append(time.perf_counter() - began)
        began = time.perf_counter()
        r_hand = hand()
        t_hand.append(time.perf_counter() - began)
    return min(t_ours), min(t_hand), r_ours, r_hand


def bench_line(measure, ours, baseline, unit, target, ok, notes):
    ratio = round(ours / baseline, 3) if baseline else None
    row = {
        "bench": "metrics",
        "measure": measure,
        "ours": round(ours, 4),
        "baseline": round(baseline, 4) if baseline is not None else None,
        "unit": unit,
        "ratio": ratio,
        "target": target,
        "ok": ok,
        "notes": notes,
    }
    return "BENCH " + json.dumps(row)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 members, 100,000 orders")
    parser.add_argument("--keep", action="store_true", help=f"keep the database {DB}")
    parser.add_argument("--members", type=int)
    parser.add_argument("--orders", type=int)
    parser.add_argument("--repeat", type=int)
    parser.add_argument("--dashboard-requests", type=int, default=50)
    args = parser.parse_args()
    members = args.members or (10_000 if args.quick else 1_000_000)
    orders = args.orders or (100_000 if args.quick else 10_000_000)
    repeat = args.repeat or (3 if args.quick else 2)

    log(f"database {DB}: create and migrate")
    database_create()
    lines = []
    try:
        django_setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        import psycopg
        from django.contrib.auth import get_user_model
        from django.test import Client
        from django.utils import timezone

        from loyalty.demo import demo_program_seed
        from loyalty.models import MetricSnapshot
        from loyalty.selectors import metrics as m
        from loyalty.services.metrics import metrics_snapshot_take

        now = timezone.now().replace(microsecond=0)
        program = demo_program_seed(year=now.year)
        log(f"generating {members:,} members and ~{orders:,} orders with COPY")
        began = time.perf_counter()
        sizes = load(program, members=members, orders=orders, now=now)
        load_seconds = time.perf_counter() - began
        log(f"loaded in {load_seconds:.0f} s: {sizes}")

        period = m.period_default(program, now=now)
        cohorts = m.months_to(program, period.end_date, 12)
        params = hand_params(program, period, cohorts)
        conn = psycopg.connect(URL, autocommit=True)

        log("timing: summary (ours vs hand SQL)")
        t_ours, t_hand, ours_summary, hand_summary = best_of(
            repeat,
            lambda: m.metrics_summary(program=program, period=period, now=now),
            lambda: hand_run(conn, HAND_SUMMARY, params),
        )
        agree = _summary_agrees(ours_summary, hand_summary)
        lines.append(
            bench_line(
                "summary",
                t_ours,
                t_hand,
                "s",
                "<= 1.5x hand SQL",
                t_ours <= 1.5 * t_hand and agree,
                f"best of {repeat}; {sizes['members']:,} members, {sizes['orders']:,} orders; "
                f"period {period.start_date}..{period.end_date}; results agree: {agree}",
            )
        )
        log(f"  ours {t_ours:.2f} s, hand {t_hand:.2f} s, agree {agree}")

        log("timing: cohorts (12 months)")
        cohort_params = {**params, "start": cohorts.start, "end": cohorts.end}
        c_ours, c_hand, ours_cohorts, hand_cohorts = best_of(
            repeat,
            lambda: m.cohort_matrix(program=program, period=cohorts, now=now),
            lambda: hand_run(conn, [HAND_COHORTS], cohort_params),
        )
        agree_c = sum(c["size"] for c in ours_cohorts["cohorts"]) == sum(
            n for _, k, n in hand_cohorts[0] if k == 0
        ) and sum(sum(a or 0 for a in c["active"]) for c in ours_cohorts["cohorts"]) == sum(
            n for _, _, n in hand_cohorts[0]
        )
        lines.append(
            bench_line(
                "cohorts",
                c_ours,
                c_hand,
                "s",
                "<= 1.5x hand SQL",
                c_ours <= 1.5 * c_hand and agree_c,
                f"best of {repeat}; 12 monthly cohorts; results agree: {agree_c}",
            )
        )
        log(f"  ours {c_ours:.2f} s, hand {c_hand:.2f} s, agree {agree_c}")

        log("timing: RFM segments")
        s_ours, s_hand, ours_segments, hand_segments = best_of(
            repeat,
            lambda: m.segment_counts(program=program, as_of=period.end),
            lambda: hand_run(conn, [HAND_SEGMENTS], params),
        )
        agree_s = {s["segment"]: s["members"] for s in ours_segments if s["members"]} == dict(hand_segments[0])
        lines.append(
            bench_line(
                "segments",
                s_ours,
                s_hand,
                "s",
                "<= 1.5x hand SQL",
                s_ours <= 1.5 * s_hand and agree_s,
                f"best of {repeat}; results agree: {agree_s}",
            )
        )
        log(f"  ours {s_ours:.2f} s, hand {s_hand:.2f} s, agree {agree_s}")
        total, total_hand = t_ours + c_ours + s_ours, t_hand + c_hand + s_hand
        lines.append(
            bench_line(
                "summary+cohorts+segments",
                total,
                total_hand,
                "s",
                "< 60 s total",
                total < 60,
                "sum of the three best times above",
            )
        )

        log("snapshots: the nightly full one and the previous period (timed), then a year of series rows")
        began = time.perf_counter()
        full = metrics_snapshot_take(program=program, period=period, now=now)
        metrics_snapshot_take(program=program, period=period.previous(), full=False, now=now)
        snapshot_seconds = time.perf_counter() - began
        MetricSnapshot.objects.bulk_create(
            MetricSnapshot(
                program=program,
                start=period.start_date - timedelta(days=d),
                end=period.end_date - timedelta(days=d),
                summary=full.summary,
                computed_at=now,
            )
            for d in range(1, 366)
            if d != period.days
        )
        log(f"  {snapshot_seconds:.1f} s")

        user = get_user_model().objects.create_superuser("bench", "bench@example.com", "pw")
        client = Client()
        client.force_login(user)
        assert client.get("/admin/metrics/").status_code == 200
        timings = []
        for _ in range(args.dashboard_requests):
            began = time.perf_counter()
            response = client.get("/admin/metrics/")
            timings.append((time.perf_counter() - began) * 1000)
            assert response.status_code == 200 and b"From the nightly snapshot" in response.content
        raw = []
        for _ in range(args.dashboard_requests):
            began = time.perf_counter()
            with conn.cursor() as cursor:
                cursor.execute(
                    "SELECT summary, cohorts, segments, flows, at_risk FROM loyalty_metricsnapshot "
                    'WHERE program_id = %s AND cohorts IS NOT NULL ORDER BY "end" DESC LIMIT 1',
                    [program.pk],
                )
                cursor.fetchall()
                cursor.execute(
                    'SELECT summary FROM loyalty_metricsnapshot WHERE program_id = %s AND start = %s AND "end" = %s',
                    [program.pk, period.previous().start_date, period.previous().end_date],
                )
                cursor.fetchall()
                cursor.execute(
                    'SELECT start, "end", summary FROM loyalty_metricsnapshot WHERE program_id = %s '
                    'AND "end" <= %s AND "end" > %s ORDER BY "end"',
                    [program.pk, period.end_date, period.end_date - timedelta(days=365)],
                )
                cursor.fetchall()
            raw.append((time.perf_counter() - began) * 1000)
        p50 = statistics.median(timings)
        p99 = sorted(timings)[max(0, math.ceil(len(timings) * 0.99) - 1)]
        lines.append(
            bench_line(
                "dashboard_from_snapshots_p50",
                p50,
                statistics.median(raw),
                "ms",
                "< 300 ms",
                p50 < 300,
                f"p99 {p99:.1f} ms over {len(timings)} requests (Django test client, in process); baseline: the "
                f"3 snapshot reads as raw SQL; full nightly snapshot took {snapshot_seconds:.1f} s",
            )
        )
        lines.append(
            bench_line(
                "load_with_copy",
                load_seconds,
                None,
                "s",
                "informational",
                None,
                json.dumps(sizes),
            )
        )
        conn.close()
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            database_drop()
    print()
    for line in lines:
        print(line)
    return 0


def _summary_agrees(ours: dict, hand: list) -> bool:
    customers, orders, repeaters, flows, liability, members, _surveys, _sends, _mix, _moves = hand
    s, e, n, retained, reactivated, _lifespan = customers[0]
    count, buyers, revenue, _y, _yb = orders[0]
    flow = dict(flows)
    earned = -sum(int(flow.get(k, 0)) for k in ("issued", "referral_rewards", "gamification", "birthday", "winback"))
    checks = [
        (ours["customers_at_start"], s),
        (ours["customers_at_end"], e),
        (ours["new_customers"], n),
        (ours["retained_customers"], retained),
        (ours["reactivated_customers"], reactivated),
        (ours["orders"], count),
        (ours["buyers"], buyers),
        (Decimal(ours["revenue"]["amount"]), Decimal(revenue or 0).quantize(Decimal("0.01"))),
        (ours["points_earned"], earned),
        (ours["points_redeemed"], int(flow.get("redeemed", 0))),
        (ours["points_liability"][0]["points"], int(liability[0][0] or 0)),
        (ours["active_member_count"], members[0][0]),
        (ours["referred_members"], members[0][3]),
    ]
    bad = [(i, a, b) for i, (a, b) in enumerate(checks) if a != b]
    if bad:
        log(f"  DISAGREE: {bad}")
    return not bad


if __name__ == "__main__":
    sys.exit(main())
