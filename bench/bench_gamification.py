#!/usr/bin/env python3
"""Benchmark: badges and challenges evaluated from the events of 100,000 orders (issue 5).

    .venv/bin/python bench/bench_gamification.py [--quick] [--keep] [--orders 100000] [--active 10000]
                                                 [--sizes 10000,100000] [--concurrency 1]

The default is the issue's size: about 330,000 events per member count (430,000 with those they
raise). With `--concurrency 2` on the idle 2-core machine that is about 80 minutes for both member
counts (~27 min of worker time and ~11 min of baseline each); `--orders 2000 --active 200` keeps
the same shape in a few minutes per member count (bench/results/gamification.md).

The program is the demo one with 10 active badges (the demo's 8, "Skincare lover" and "VIB") and 5
running challenges (3 orders, 50 USD of skincare a month, 300 USD a month, 2 currencies, and an
opt-in one), windows set around today.

For each member count (10k and 100k; --quick: 1k and 5k with 300 orders of 30) the same workload is
built with COPY into `bench_gamification`: 10,000 active members (every member at 10k, every 10th at
100k) with 10 orders each over the last 90 days, their lines, and the events those orders raised
(`order.placed` and `points.earned` when placed; `order.matured` and `points.matured` after the
30-day return window), not processed yet. At 100k the other 90,000 members carry the same kind of
history, already processed (orders, lines, events, badges awarded, challenge progress), so only the
tables grow, not the work: the per-event cost must not change.

- ours: the events go through the real Celery path: the tasks `loyalty.tasks.events_process_task`
  (one per placed order, one per ten-minute maturity batch, as the services dispatch them) are put
  on Redis (db 10) and one real worker (`celery -A config worker -c 1`) started by this script
  processes them, and the events they raise in turn (badge.awarded, challenge.completed...). Timed
  from the first event processed to the moment none is left.
- baseline: the same events, in the same order, on a clone of the database, through hand-written
  SQL over one psycopg connection: per event, lock it and the member, read the definitions it can
  move, compute every value in ONE aggregate query, write awards, progress, ledger postings and
  the new events, mark it processed, commit.
Checks afterwards: awards per badge, progress and completions per challenge, and points credited
are the same in both, nothing is left unprocessed, and `manage.py ledger_verify` passes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
from _common import admin, dsn

ROOT = Path(__file__).resolve().parent.parent
PY = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
CELERY = str(Path(PY).parent / "celery")
DB, CLONE, TEMPLATE = "bench_gamification", "bench_gamification_baseline", "bench_gamification_template"
BROKER = os.environ.get("BENCH_GAMIFICATION_BROKER", "redis://127.0.0.1:6379/10")
FX = {"USD": Decimal("1"), "EUR": Decimal("1.08"), "GBP": Decimal("1.27"), "CAD": Decimal("0.73")}
CATEGORIES = ["skincare", "makeup", "fragrance", "hair", "tools"]
ACTIVE = 10_000
# Event ids: the workload's from 1, the idle members' processed history from HISTORY, and the events
# raised while processing (badge.awarded...) from RAISED on.
HISTORY, RAISED = 10_000_000, 20_000_000
PROCESSED_HERE = f"(id < {HISTORY} OR id > {RAISED})"
ORDERS_PER_MEMBER = 10

SETUP = """
import os
from datetime import datetime, timedelta
from decimal import Decimal
from loyalty.demo import demo_program_seed
from loyalty.models import Badge, Challenge, Counts, CriterionKind, Repeat
from tiers.models import Tier

now = datetime.fromisoformat(os.environ["BENCH_NOW"])
program = demo_program_seed(year=now.year)
vib = Tier.objects.get(program=program, code="vib")
Badge.objects.create(program=program, code="skincare-lover", name="Skincare lover", kind=CriterionKind.CATEGORY_SPEND,
                     category="skincare", target=Decimal(200), counts=Counts.PLACED, points=100, position=20)
Badge.objects.create(program=program, code="vib", name="VIB", kind=CriterionKind.TIER, tier=vib, target=1,
                     points=50, position=21)
start = (now - timedelta(days=100)).replace(hour=0, minute=0, second=0, microsecond=0)
end = now + timedelta(days=20)
month_start = datetime(now.year, 1, 1, tzinfo=now.tzinfo)
Challenge.objects.filter(code="spring-streak").update(
    name="Three orders", starts_at=start, ends_at=end, counts=Counts.PLACED)
Challenge.objects.filter(code="skincare-month").update(
    starts_at=month_start, ends_at=datetime(now.year + 1, 1, 1, tzinfo=now.tzinfo))
Challenge.objects.create(program=program, code="big-month", name="300 USD a month", kind=CriterionKind.SPEND,
                         target=Decimal(300), counts=Counts.PLACED, starts_at=month_start,
                         ends_at=datetime(now.year + 1, 1, 1, tzinfo=now.tzinfo), repeat=Repeat.MONTH,
                         reward_points=150)
Challenge.objects.create(program=program, code="two-currencies", name="Order in two currencies",
                         kind=CriterionKind.CURRENCIES, target=Decimal(2), counts=Counts.PLACED, starts_at=start,
                         ends_at=end, reward_points=100)
Challenge.objects.create(program=program, code="autumn-club", name="Autumn club (join)", kind=CriterionKind.ORDER_COUNT,
                         target=Decimal(6), counts=Counts.PLACED, starts_at=start, ends_at=end, opt_in=True,
                         reward_points=250)
assert Badge.objects.filter(program=program, active=True).count() == 10
assert Challenge.objects.filter(program=program, active=True).count() == 5
"""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def django_env(db: str, now: datetime | None = None, broker: bool = False) -> dict:
    env = dict(os.environ)
    env.pop("CELERY_BROKER_URL", None)
    env.update(
        DATABASE_URL=dsn(db).replace("postgresql://", "postgres://"),
        DJANGO_DEBUG="0",
        SECRET_KEY="bench-gamification-not-secret",
        ALLOWED_HOSTS="127.0.0.1",
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    if now:
        env["BENCH_NOW"] = now.isoformat()
    if broker:
        env["CELERY_BROKER_URL"] = BROKER
    return env


def run(cmd: list[str], env: dict) -> str:
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


# --- data ------------------------------------------------------------------------------------------
class Ids:
    def __init__(self, conn: psycopg.Connection):
        q = conn.execute
        self.program, self.pending_days = q("SELECT id, pending_days FROM loyalty_program WHERE code='demo'").fetchone()
        self.asset = q("SELECT id FROM loyalty_asset WHERE program_id = %s", [self.program]).fetchone()[0]
        self.insider = q("SELECT id FROM tiers_tier WHERE code = 'insider'").fetchone()[0]
        self.badges = dict(q("SELECT code, id FROM loyalty_badge").fetchall())
        self.challenges = {
            code: (pk, start) for code, pk, start in q("SELECT code, id, starts_at FROM loyalty_challenge").fetchall()
        }


class Copier:
    """Buffers rows per table and COPYs them in chunks."""

    COLUMNS = {
        "loyalty_member": "id, program_id, external_id, email, first_name, last_name, locale, country, "
        "marketing_opt_in, status, tier_id, tier_floor_id, enrolled_at, last_activity_at",
        "loyalty_account": "program_id, asset_id, member_id, kind, shard, balance, version",
        "loyalty_order": "id, program_id, member_id, external_id, status, placed_at, fx_rate, currency, merchandise, "
        "shipping, tax, total, points_payment, qualifying, refunded, refunded_merchandise, refunded_qualifying, "
        "base_currency, qualifying_base, spend_base, points_earned, points_reversed, earn_breakdown, available_at, "
        "payment_fingerprint, device_id, metadata, created_at",
        "loyalty_orderline": "order_id, sku, category, quantity, currency, unit_price, discount, net, gift_card, "
        "refunded_quantity",
        "loyalty_event": "id, program_id, member_id, type, occurred_at, properties, custom, created_at, processed_at",
        "loyalty_badgeaward": "badge_id, member_id, awarded_at, value, source",
        "loyalty_challengeprogress": "challenge_id, member_id, period_start, joined_at, value, reached_at, "
        "completed_at",
    }

    def __init__(self, conn: psycopg.Connection):
        self.cur = conn.cursor()
        self.rows: dict[str, list[str]] = {t: [] for t in self.COLUMNS}

    def add(self, table: str, *values) -> None:
        self.rows[table].append("\t".join("\\N" if v is None else str(v) for v in values) + "\n")
        if len(self.rows[table]) >= 50_000:
            self.flush(table)

    def flush(self, table: str | None = None) -> None:
        for name in [table] if table else list(self.rows):
            if self.rows[name]:
                with self.cur.copy(f"COPY {name} ({self.COLUMNS[name]}) FROM STDIN") as copy:
                    copy.write("".join(self.rows[name]))
                self.rows[name].clear()


def ts(moment: datetime) -> str:
    return moment.isoformat()


def generate(conn: psycopg.Connection, ids: Ids, size: int, orders: int, now: datetime, seed: int) -> dict:
    """-> {"tasks": [[event ids]...], "events": n, "orders": n} for the workload."""
    rng = random.Random(seed)
    copier = Copier(conn)
    active_every = max(size // ACTIVE, 1)
    per_member = max(orders // min(ACTIVE, size), 1)
    order_id = event_id = 0
    background_event_id = HISTORY
    workload: list[tuple[datetime, int, str, list[str]]] = []  # (when, kind order, member, event types)
    join_every = 5
    autumn, autumn_start = ids.challenges["autumn-club"]
    skincare_month = ids.challenges["skincare-month"][0]
    month_start = datetime(now.year, now.month, 1, tzinfo=UTC)

    def order(member: int, placed: datetime) -> tuple[int, datetime, bool]:
        nonlocal order_id
        order_id += 1
        currency = rng.choices(list(FX), weights=[60, 25, 10, 5])[0]
        lines = []
        for _ in range(rng.randint(1, 3)):
            qty = rng.randint(1, 2)
            price = Decimal(rng.randint(900, 6000)) / 100
            lines.append((rng.choices(CATEGORIES, weights=[30, 25, 20, 15, 10])[0], qty, price))
        q = sum(qty * price for _, qty, price in lines)
        base = (q * FX[currency]).quantize(Decimal("0.01"))
        available = placed + timedelta(days=ids.pending_days)
        matured = available <= now
        copier.add(
            "loyalty_order",
            order_id,
            ids.program,
            member,
            f"o{order_id}",
            "completed" if matured else "pending",
            ts(placed),
            FX[currency],
            currency,
            q,
            "0.00",
            "0.00",
            q,
            "0.00",
            q,
            "0.00",
            "0.00",
            "0.00",
            "USD",
            base,
            base,
            int(base),
            0,
            "[]",
            ts(available),
            "",
            "",
            "{}",
            ts(placed),
        )
        for n, (category, qty, price) in enumerate(lines):
            copier.add(
                "loyalty_orderline", order_id, f"SKU-{n}", category, qty, currency, price, "0.00", qty * price, "f", 0
            )
        return order_id, available, matured

    def placed_at(days: int) -> datetime:
        while True:  # never within a day of a maturity boundary: both runs see the same orders matured
            moment = now - timedelta(seconds=rng.randint(3600, days * 86400))
            if not timedelta(days=ids.pending_days - 1) < now - moment < timedelta(days=ids.pending_days + 1):
                return moment

    for member in range(1, size + 1):
        active = member % active_every == 0
        enrolled = now - timedelta(days=500)
        copier.add(
            "loyalty_member",
            member,
            ids.program,
            f"m{member}",
            f"m{member}@bench.example",
            "Anna",
            "Kowalska",
            "en",
            "US",
            "f",
            "active",
            ids.insider,
            ids.insider,
            ts(enrolled),
            ts(now - timedelta(days=1)),
        )
        for kind in ("pending", "available", "held"):
            copier.add("loyalty_account", ids.program, ids.asset, member, kind, 0, 0, 0)
        if member % join_every == 0:
            copier.add("loyalty_challengeprogress", autumn, member, ts(autumn_start), ts(autumn_start), 0, None, None)
        if active:
            for _ in range(per_member):
                placed = placed_at(90)
                oid, available, matured = order(member, placed)
                workload.append((placed, 0, member, oid))
                if matured:
                    workload.append((available, 1, member, oid))
        else:  # history of an idle member, processed long ago
            for _ in range(ORDERS_PER_MEMBER):
                placed = placed_at(400)
                oid, available, matured = order(member, placed)
                for etype, when in (("order.placed", placed), ("order.matured", available)):
                    if etype == "order.placed" or matured:
                        background_event_id += 1
                        props = json.dumps({"order": f"o{oid}"})
                        copier.add(
                            "loyalty_event",
                            background_event_id,
                            ids.program,
                            member,
                            etype,
                            ts(when),
                            props,
                            "f",
                            ts(when),
                            ts(when),
                        )
            for code in ("first-order", "regular", "streak") + (("big-spender",) if member % 3 == 0 else ()):
                copier.add("loyalty_badgeaward", ids.badges[code], member, ts(now - timedelta(days=30)), 1, "criterion")
            if member % 2:
                copier.add(
                    "loyalty_challengeprogress", skincare_month, member, ts(month_start), None, 42, ts(now), None
                )
    # The workload's events, numbered in the order the services would have written them.
    workload.sort(key=lambda w: (w[0], w[1], w[3]))
    tasks: list[list[int]] = []
    batch: list[int] = []
    batch_bucket = None
    for when, kind, member, oid in workload:
        types = ("order.placed", "points.earned") if kind == 0 else ("order.matured", "points.matured")
        pair = []
        for etype in types:
            event_id += 1
            pair.append(event_id)
            props = json.dumps({"order": f"o{oid}"})
            copier.add("loyalty_event", event_id, ids.program, member, etype, ts(when), props, "f", ts(when), None)
        if kind == 0:
            tasks.append(pair)
        else:  # the maturity job runs every ten minutes and dispatches what each batch raised
            bucket = int(when.timestamp()) // 600
            if bucket != batch_bucket and batch:
                tasks.append(batch)
                batch = []
            batch_bucket = bucket
            batch += pair
    if batch:
        tasks.append(batch)
    copier.flush()
    cur = conn.cursor()
    for table in ("loyalty_member", "loyalty_order"):
        cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))")
    cur.execute(f"SELECT setval(pg_get_serial_sequence('loyalty_event', 'id'), {RAISED})")
    conn.commit()
    tasks.sort(key=lambda t: t[0])
    return {"tasks": tasks, "events": event_id, "orders": sum(1 for w in workload if w[1] == 0)}


# --- the baseline: hand-written SQL per event ----------------------------------------------------------
ORDER_EVENTS = {"order.placed", "order.matured", "order.refunded", "order.cancelled"}
ORDER_KINDS = {"order_count", "spend", "category_spend", "currencies", "streak"}
TRIGGERS = {"referrals": {"referral.qualified"}, "tier": {"tier.changed"}}


def kinds_for(event_type: str) -> list[str]:
    kinds = list(ORDER_KINDS) if event_type in ORDER_EVENTS else []
    return kinds + [k for k, types in TRIGGERS.items() if event_type in types]


def month_periods(start: datetime, end: datetime, now: datetime) -> list[tuple[datetime, datetime]]:
    periods = []
    while start < end and start <= now:
        nxt = datetime(start.year + (start.month == 12), start.month % 12 + 1, 1, tzinfo=start.tzinfo)
        periods.append((start, min(nxt, end)))
        start = min(nxt, end)
    return periods


@contextmanager
def analyzing(db: str, every: float = 60.0):
    """ANALYZE the database every minute while a side processes it: autovacuum is off on this
    server, and the tables the work fills (ledger, awards, progress) start empty, so their
    statistics would otherwise say "empty" for the whole run, as no production database does."""
    stop = threading.Event()

    def loop():
        with psycopg.connect(dsn(db), autocommit=True) as conn:
            while not stop.wait(every):
                conn.execute("ANALYZE")

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


class Baseline:
    """The same per-event work as loyalty.services.events/gamification, in raw SQL."""

    def __init__(self, conn: psycopg.Connection, ids: Ids, db: str):
        self.conn, self.ids, self.db = conn, ids, db
        self.shards = 16

    def run(self) -> int:
        done = 0
        while True:
            # a fresh connection per 1,000 events, as the worker's connections are renewed
            # (DB_CONN_MAX_AGE): plans a backend cached while the tables were empty (foreign-key
            # checks, prepared statements) would otherwise scan whole tables as they grow
            self.conn.close()
            self.conn = psycopg.connect(dsn(self.db))
            batch = [
                r[0]
                for r in self.conn.execute(
                    "SELECT id FROM loyalty_event WHERE processed_at IS NULL ORDER BY id LIMIT 1000"
                ).fetchall()
            ]
            self.conn.commit()
            if not batch:
                return done
            for event_id in batch:
                done += self.process(event_id)

    def process(self, event_id: int) -> int:
        q = self.conn.execute
        now = datetime.now(UTC)
        row = q(
            "SELECT e.id, e.member_id, e.type FROM loyalty_event e WHERE e.id = %s AND e.processed_at IS NULL "
            "FOR UPDATE SKIP LOCKED",
            [event_id],
        ).fetchone()
        if row is None:
            self.conn.rollback()
            return 0
        _, member, etype = row
        self.emitted: list[tuple[str, dict]] = []
        if member is not None:
            status, last_activity, enrolled = q(
                "SELECT status, last_activity_at, enrolled_at FROM loyalty_member WHERE id = %s FOR UPDATE", [member]
            ).fetchone()
            if status == "active":
                self.evaluate(member, etype, now, last_activity or enrolled)
        q("SELECT id, events FROM loyalty_webhookendpoint WHERE program_id = %s AND active", [self.ids.program])
        for etype2, props in self.emitted:
            q(
                "INSERT INTO loyalty_event (program_id, member_id, type, occurred_at, properties, custom, created_at) "
                "VALUES (%s, %s, %s, %s, %s, false, %s)",
                [self.ids.program, member, etype2, now, json.dumps(props), now],
            )
        q("UPDATE loyalty_event SET processed_at = %s WHERE id = %s", [now, event_id])
        self.conn.commit()
        return 1

    def evaluate(self, member: int, etype: str, now: datetime, last_activity: datetime) -> None:
        q = self.conn.execute
        kinds = kinds_for(etype)
        badges = q(
            "SELECT b.id, b.code, b.kind, b.target, b.category, b.counts, b.starts_at, b.ends_at, b.points "
            "FROM loyalty_badge b WHERE b.program_id = %s AND b.active AND (b.kind = ANY(%s) OR "
            "(b.kind = 'event_count' AND b.event_type = %s)) AND NOT EXISTS "
            "(SELECT 1 FROM loyalty_badgeaward a WHERE a.badge_id = b.id AND a.member_id = %s) "
            "ORDER BY b.position, b.id",
            [self.ids.program, kinds, etype, member],
        ).fetchall()
        challenges = q(
            "SELECT c.id, c.code, c.kind, c.target, c.category, c.counts, c.starts_at, c.ends_at, c.repeat, c.opt_in, "
            "c.reward_points, c.reward_badge_id FROM loyalty_challenge c WHERE c.program_id = %s AND c.active "
            "AND c.closed_at IS NULL AND c.starts_at <= %s AND (c.kind = ANY(%s) OR "
            "(c.kind = 'event_count' AND c.event_type = %s)) ORDER BY c.starts_at, c.id",
            [self.ids.program, now, kinds, etype],
        ).fetchall()
        if not badges and not challenges:
            return
        grace = timedelta(days=self.ids.pending_days + 1)
        upto = now + timedelta(microseconds=1)
        progress = {}
        if challenges:
            progress = {
                (c, p): (pk, joined, value, completed)
                for pk, c, p, joined, value, completed in q(
                    "SELECT id, challenge_id, period_start, joined_at, value, completed_at FROM "
                    "loyalty_challengeprogress WHERE member_id = %s AND challenge_id = ANY(%s)",
                    [member, [c[0] for c in challenges]],
                ).fetchall()
            }
        # Every value needed, as one aggregate over the member's orders.
        wanted = []  # (key, kind, category, counts, start, end)
        for b in badges:
            wanted.append((("b", b[0]), b[2], b[4], b[5], b[6], min(b[7], upto) if b[7] else upto))
        periods = {}
        for c in challenges:
            spans = [(c[6], c[7])] if c[8] == "none" else month_periods(c[6], c[7], now)
            for start, end in spans:
                if not (start <= now and now < end + grace):
                    continue
                row = progress.get((c[0], start))
                if c[9] and (row is None or row[1] is None):
                    continue
                begin = max(start, row[1]) if c[9] else start
                periods[(c[0], start)] = c
                wanted.append((("c", c[0], start), c[2], c[4], c[5], begin, min(c[7] if c[8] == "none" else end, upto)))
        values = self.values(member, wanted, now) if wanted else {}
        for b in badges:
            if values.get(("b", b[0]), Decimal(0)) >= b[3]:
                self.award(member, b[0], b[1], b[8], values[("b", b[0])], "criterion", now, last_activity)
        for (cid, start), c in periods.items():
            value = values[("c", cid, start)]
            row = progress.get((cid, start))
            if row is None and not value:
                continue
            if row is None:
                pk = q(
                    "INSERT INTO loyalty_challengeprogress (challenge_id, member_id, period_start, value, reached_at) "
                    "VALUES (%s, %s, %s, %s, %s) RETURNING id",
                    [cid, member, start, value, now],
                ).fetchone()[0]
                completed = None
            else:
                pk, _, old, completed = row
                if value != old:
                    q(
                        "UPDATE loyalty_challengeprogress SET value = %s, reached_at = %s WHERE id = %s",
                        [value, now, pk],
                    )
            if completed is None and value >= c[3]:
                txn = (
                    self.credit(member, c[10], "challenge", f"Challenge: {c[1]}", now, last_activity) if c[10] else None
                )
                q(
                    "UPDATE loyalty_challengeprogress SET completed_at = %s, transaction_id = %s WHERE id = %s",
                    [now, txn, pk],
                )
                if c[11]:
                    code, points = q("SELECT code, points FROM loyalty_badge WHERE id = %s", [c[11]]).fetchone()
                    self.award(member, c[11], code, points, value, f"challenge:{c[1]}", now, last_activity)
                self.emitted.append(("challenge.completed", {"challenge": c[1], "period_start": start.isoformat()}))

    def values(self, member: int, wanted: list, now: datetime) -> dict:
        aggs, params, streaks = [], [], []
        categories = sorted({w[2] for w in wanted if w[1] == "category_spend"})
        for key, kind, category, counts, start, end in wanted:
            cond = "o.placed_at < %s" + (" AND o.placed_at >= %s" if start else "")
            cond += " AND o.available_at <= %s" if counts == "matured" else ""
            cparams = [end] + ([start] if start else []) + ([now] if counts == "matured" else [])
            if kind == "order_count":
                aggs.append(f"COUNT(*) FILTER (WHERE {cond})")
            elif kind == "spend":
                aggs.append(f"COALESCE(SUM(o.spend_base) FILTER (WHERE {cond}), 0)")
            elif kind == "currencies":
                aggs.append(f"COUNT(DISTINCT o.currency) FILTER (WHERE {cond})")
            elif kind == "category_spend":
                n = categories.index(category)
                aggs.append(
                    f"COALESCE(SUM(l.c{n} * ((o.qualifying - o.refunded_qualifying) * o.fx_rate) / l.a) "
                    f"FILTER (WHERE {cond} AND l.a <> 0), 0)"
                )
            elif kind == "streak":
                aggs.append(
                    f"ARRAY_AGG(DISTINCT date_trunc('month', o.placed_at AT TIME ZONE 'UTC')) FILTER (WHERE {cond})"
                )
                streaks.append(key)
            else:
                aggs.append("0")
                continue
            params += cparams
        lateral = ""
        if categories:
            cats = ", ".join(
                f"SUM(CASE WHEN category = %s THEN net * (quantity - refunded_quantity) / quantity ELSE 0 END) AS c{n}"
                for n in range(len(categories))
            )
            lateral = (
                f"LEFT JOIN LATERAL (SELECT SUM(net * (quantity - refunded_quantity) / quantity) AS a, {cats} "
                "FROM loyalty_orderline WHERE order_id = o.id AND NOT gift_card) l ON true"
            )
        sql = (
            f"SELECT {', '.join(aggs)} FROM loyalty_order o {lateral} "
            "WHERE o.member_id = %s AND o.spend_base > 0 AND o.status <> 'cancelled'"
        )
        row = self.conn.execute(sql, [*params, *categories, member]).fetchone()
        out = {}
        for (key, kind, *_), value in zip(wanted, row, strict=True):
            if key in streaks:
                months = sorted({m.year * 12 + m.month - 1 for m in value or []})
                best = run = 0
                for i, m in enumerate(months):
                    run = run + 1 if i and m == months[i - 1] + 1 else 1
                    best = max(best, run)
                value = best
            out[key] = Decimal(value)
            if kind == "category_spend":  # rounded as the service rounds (Decimal.quantize: half even)
                out[key] = out[key].quantize(Decimal("0.01"))
        return out

    def award(self, member, badge, code, points, value, source, now, last_activity) -> None:
        q = self.conn.execute
        if q("SELECT 1 FROM loyalty_badgeaward WHERE badge_id = %s AND member_id = %s", [badge, member]).fetchone():
            return
        txn = self.credit(member, points, "badge", f"Badge: {code}", now, last_activity) if points else None
        q(
            "INSERT INTO loyalty_badgeaward (badge_id, member_id, awarded_at, value, source, transaction_id) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            [badge, member, now, value, source, txn],
        )
        self.emitted.append(("badge.awarded", {"badge": code, "points": points}))

    def credit(self, member, amount, kind, reference, now, last_activity) -> int:
        """A two-legged posting from the gamification system account, with its lot."""
        q = self.conn.execute
        txn = q(
            "INSERT INTO loyalty_transaction (program_id, member_id, kind, reference, memo, effective_at, created_at) "
            "VALUES (%s, %s, %s, %s, '', %s, %s) RETURNING id",
            [self.ids.program, member, kind, reference, now, now],
        ).fetchone()[0]
        expires = max(last_activity + timedelta(days=548), now + timedelta(days=548))
        q(
            "INSERT INTO loyalty_lot (member_id, asset_id, amount, remaining, state, earned_at, matures_at, "
            "expires_at, transaction_id) VALUES (%s, %s, %s, %s, 'available', %s, %s, %s, %s)",
            [member, self.ids.asset, amount, amount, now, now, expires, txn],
        )
        mine = q(
            "UPDATE loyalty_account SET balance = balance + %s, version = version + 1 "
            "WHERE member_id = %s AND asset_id = %s AND kind = 'available' RETURNING id, balance",
            [amount, member, self.ids.asset],
        ).fetchone()
        system = q(
            "UPDATE loyalty_account SET balance = balance - %s, version = version + 1 WHERE program_id = %s "
            "AND asset_id = %s AND kind = 'gamification' AND shard = %s AND member_id IS NULL RETURNING id, balance",
            [amount, self.ids.program, self.ids.asset, member % self.shards],
        ).fetchone()
        q(
            "INSERT INTO loyalty_entry (transaction_id, account_id, amount, balance_after) VALUES "
            "(%s, %s, %s, %s), (%s, %s, %s, %s)",
            [txn, system[0], -amount, system[1], txn, mine[0], amount, mine[1]],
        )
        return txn


# --- ours: the Celery worker ---------------------------------------------------------------------------
def redis_flush() -> None:
    url = BROKER.rsplit("/", 1)
    subprocess.run(["redis-cli", "-h", "127.0.0.1", "-n", url[1], "FLUSHDB"], check=True, capture_output=True)


def enqueue(tasks: list[list[int]]) -> None:
    from celery import Celery

    app = Celery("bench", broker=BROKER)
    with app.producer_or_acquire() as producer:
        for ids in tasks:
            app.send_task("loyalty.tasks.events_process_task", args=[ids], producer=producer, queue="celery")


def unprocessed(conn: psycopg.Connection) -> int:
    n = conn.execute("SELECT COUNT(*) FROM loyalty_event WHERE processed_at IS NULL").fetchone()[0]
    conn.commit()
    return n


def run_worker(tasks: list[list[int]], now: datetime, concurrency: int) -> dict:
    redis_flush()
    enqueue(tasks)
    log(f"{len(tasks):,} tasks on the queue; starting the worker")
    logfile = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)  # noqa: SIM115 (read after exit)
    worker = subprocess.Popen(
        [
            CELERY,
            "-A",
            "config",
            "worker",
            "-c",
            str(concurrency),
            "-l",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-n",
            "bench-gamification@%h",
        ],
        cwd=ROOT,
        env=django_env(DB, broker=True),
        stdout=logfile,
        stderr=subprocess.STDOUT,
    )
    started = time.time()
    try:
        with psycopg.connect(dsn(DB)) as conn:
            last, stalled = None, time.perf_counter()
            while (left := unprocessed(conn)) > 0:
                if worker.poll() is not None:
                    raise SystemExit(f"worker died:\n{Path(logfile.name).read_text()[-3000:]}")
                if left != last:
                    last, stalled = left, time.perf_counter()
                elif time.perf_counter() - stalled > 120:
                    raise SystemExit(f"stalled, {left} left:\n{Path(logfile.name).read_text()[-3000:]}")
                time.sleep(0.5)
            ended = time.time()
            first, total = conn.execute(
                f"SELECT MIN(processed_at), COUNT(*) FROM loyalty_event WHERE {PROCESSED_HERE}"
            ).fetchone()
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    # From the first event processed (the worker has booted) to none left (polled every 0.5 s).
    return {"seconds": ended - first.timestamp(), "events": total, "boot": first.timestamp() - started}


# --- checks --------------------------------------------------------------------------------------------
def outcome(db: str) -> dict:
    with psycopg.connect(dsn(db)) as conn:
        q = conn.execute
        return {
            "awards": dict(
                q(
                    "SELECT b.code, COUNT(*) FROM loyalty_badgeaward a JOIN loyalty_badge b ON b.id = a.badge_id "
                    "GROUP BY b.code ORDER BY b.code"
                ).fetchall()
            ),
            "progress": {
                code: (n, str(total), done)
                for code, n, total, done in q(
                    "SELECT c.code, COUNT(*), SUM(p.value), COUNT(p.completed_at) FROM loyalty_challengeprogress p "
                    "JOIN loyalty_challenge c ON c.id = p.challenge_id GROUP BY c.code ORDER BY c.code"
                ).fetchall()
            },
            "points": q(
                "SELECT COALESCE(SUM(amount), 0) FROM loyalty_lot WHERE transaction_id IN "
                "(SELECT id FROM loyalty_transaction WHERE kind IN ('badge', 'challenge'))"
            ).fetchone()[0],
            "unprocessed": q("SELECT COUNT(*) FROM loyalty_event WHERE processed_at IS NULL").fetchone()[0],
            "events": q(f"SELECT COUNT(*) FROM loyalty_event WHERE {PROCESSED_HERE}").fetchone()[0],
        }


# --- one size ------------------------------------------------------------------------------------------
def run_size(size: int, orders: int, now: datetime, seed: int, concurrency: int) -> dict:
    log(f"== {size:,} members, {orders:,} orders ==")
    admin(f"DROP DATABASE IF EXISTS {CLONE} WITH (FORCE)")
    admin(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    admin(f"CREATE DATABASE {DB} TEMPLATE {TEMPLATE}")
    t0 = time.perf_counter()
    with psycopg.connect(dsn(DB)) as conn:
        ids = Ids(conn)
        work = generate(conn, ids, size, orders, now, seed)
    with psycopg.connect(dsn(DB), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")
    log(
        f"generated in {time.perf_counter() - t0:.0f} s: {work['orders']:,} orders, {work['events']:,} events to "
        f"process, {len(work['tasks']):,} tasks"
    )
    admin(f"CREATE DATABASE {CLONE} TEMPLATE {DB} STRATEGY FILE_COPY")

    with psycopg.connect(dsn(CLONE)) as conn, analyzing(CLONE):
        b0 = time.perf_counter()
        baseline = Baseline(conn, Ids(conn), CLONE)
        b_events = baseline.run()
        b_seconds = time.perf_counter() - b0
        baseline.conn.close()
    log(f"baseline (raw SQL, 1 connection): {b_events:,} events in {b_seconds:.1f} s = {b_events / b_seconds:.0f}/s")

    with psycopg.connect(dsn(DB), autocommit=True) as conn:
        conn.execute("CHECKPOINT")
    load = os.getloadavg()[0]
    with analyzing(DB):
        ours = run_worker(work["tasks"], now, concurrency)
    log(
        f"ours (Celery worker, -c {concurrency}): {ours['events']:,} events in {ours['seconds']:.1f} s = "
        f"{ours['events'] / ours['seconds']:.0f}/s (worker boot {ours['boot']:.1f} s excluded)"
    )
    problems = []
    a, b = outcome(DB), outcome(CLONE)
    for key in ("awards", "progress", "points", "events"):
        if a[key] != b[key]:
            problems.append(f"{key}: ours {a[key]} != baseline {b[key]}")
    if a["unprocessed"] or b["unprocessed"]:
        problems.append(f"unprocessed left: ours {a['unprocessed']}, baseline {b['unprocessed']}")
    verify = subprocess.run(
        [PY, "manage.py", "ledger_verify"], cwd=ROOT, env=django_env(DB), capture_output=True, text=True
    )
    if verify.returncode:
        problems.append(f"ledger_verify failed: {verify.stdout[-500:]} {verify.stderr[-500:]}")
    log(f"awards {a['awards']}")
    log(f"progress {a['progress']}; points credited {a['points']:,}")
    log(f"checks: {'OK' if not problems else '; '.join(problems)}")
    return {
        "size": size,
        "orders": work["orders"],
        "workload_events": work["events"],
        "tasks": len(work["tasks"]),
        "ours_events": ours["events"],
        "ours_s": ours["seconds"],
        "base_events": b_events,
        "base_s": b_seconds,
        "load": load,
        "problems": problems,
    }


def bench_line(**row) -> str:
    return "BENCH " + json.dumps({"bench": "gamification", **row})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="1k and 5k members, 300 orders of 30 members (a minute or two)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    parser.add_argument("--sizes", help="comma-separated member counts (default 10000,100000)")
    parser.add_argument("--orders", type=int, help="orders in the workload (default 100,000)")
    parser.add_argument("--active", type=int, help="members who place the orders (default 10,000; --quick 30)")
    parser.add_argument("--concurrency", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    global ACTIVE
    ACTIVE = args.active or (30 if args.quick else ACTIVE)
    sizes = (
        [int(s) for s in args.sizes.split(",")]
        if args.sizes
        else [1000, 5000]
        if args.quick
        else [
            10_000,
            100_000,
        ]
    )
    orders = args.orders or (300 if args.quick else 100_000)
    ACTIVE = min(ACTIVE, min(sizes))
    now = datetime.now(UTC).replace(microsecond=0)
    load = os.getloadavg()
    log(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    for db in (CLONE, DB, TEMPLATE):
        admin(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    admin(f"CREATE DATABASE {TEMPLATE}")
    run([PY, "manage.py", "migrate", "-v0"], django_env(TEMPLATE))
    run([PY, "manage.py", "shell", "-c", SETUP], django_env(TEMPLATE, now))
    results = []
    try:
        for size in sizes:
            results.append(run_size(size, orders, now, args.seed, args.concurrency))
    finally:
        if not args.keep:
            for db in (CLONE, DB, TEMPLATE):
                admin(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    load = os.getloadavg()
    log(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    lines = []
    for r in results:
        per_ours, per_base = r["ours_s"] / r["ours_events"] * 1000, r["base_s"] / r["base_events"] * 1000
        note = (
            f"{r['orders']:,} orders of {min(ACTIVE, r['size']):,} active members among {r['size']:,}; "
            f"{r['workload_events']:,} events + {r['ours_events'] - r['workload_events']:,} they raised; "
            f"{r['tasks']:,} tasks; worker -c {args.concurrency}; 10 badges, 5 challenges; "
            f"load average {r['load']:.1f} on 2 cores when the worker started; "
            + ("checks OK" if not r["problems"] else "CHECKS FAILED: " + "; ".join(r["problems"]))
        )
        lines.append(
            bench_line(
                measure=f"events per second, {r['size']:,} members (Celery worker)",
                ours=round(r["ours_events"] / r["ours_s"], 1),
                baseline=round(r["base_events"] / r["base_s"], 1),
                unit="events/s",
                ratio=round((r["ours_events"] / r["ours_s"]) / (r["base_events"] / r["base_s"]), 3),
                target="reported (no absolute target in the issue)",
                ok=None if not r["problems"] else False,
                notes=note,
            )
        )
        lines.append(
            bench_line(
                measure=f"per-event cost, {r['size']:,} members",
                ours=round(per_ours, 3),
                baseline=round(per_base, 3),
                unit="ms/event",
                ratio=round(per_ours / per_base, 3),
                target="does not grow with members",
                ok=None if not r["problems"] else False,
                notes="wall time / events processed (incl. the events raised by awards)",
            )
        )
    small, big = results[0], results[-1]
    growth = (big["ours_s"] / big["ours_events"]) / (small["ours_s"] / small["ours_events"])
    base_growth = (big["base_s"] / big["base_events"]) / (small["base_s"] / small["base_events"])
    lines.append(
        bench_line(
            measure=f"per-event cost growth {small['size']:,} -> {big['size']:,} members",
            ours=round(growth, 3),
            baseline=round(base_growth, 3),
            unit="x",
            ratio=None,
            target="<= 1.25x (not growing with members; shared 2-core machine)",
            ok=growth <= 1.25 and all(not r["problems"] for r in results),
            notes=(
                "same workload at both sizes; only the tables (members, history) grow; relative to the baseline "
                f"of the same size: {growth / base_growth:.3f}x"
            ),
        )
    )
    print()
    for line in lines:
        print(line)
    return 0 if all(not r["problems"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
