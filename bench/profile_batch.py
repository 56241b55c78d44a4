#!/usr/bin/env python
"""CPU cost of POST /api/v1/orders/batch/ measured in-process, independent of the machine's load.

The batch view runs through DRF's APIClient (middleware, parsing, the idempotency record, the view,
rendering) on its own PostgreSQL database, with the same 1,000-order bodies as bench_api.py. Wall
time is not what it reports: the web process's CPU (`time.process_time`) and the database
backend's CPU (`/proc/<backend pid>/stat`) per order, and the statements per batch.

    .venv/bin/python bench/profile_batch.py [--batches 3] [--profile] [--top 40] [--sample]
    .venv/bin/python bench/profile_batch.py --golden DIR   # a deterministic scenario's answers and rows

The database `bench_profile_batch` is cloned from a template (`bench_profile_batch_tpl`: the demo
program and 50,000 members, built once, ~1 min) for every run; `--rebuild` builds the template
again. `--golden` freezes the clock and writes the answers of a varied scenario (currencies, gift
cards, discounts, promotions, tier crossings, a pinned tier, a closed member, bad rows, duplicates,
replays) and the rows it wrote, to compare two versions of the code with `diff -r`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, Stack, log
from bench_api import order_body  # the same bodies the batch benchmark sends

MEMBERS = 50_000
TABLES = {  # table -> ORDER BY (the rows a batch writes)
    "loyalty_order": "id",
    "loyalty_orderline": "id",
    "loyalty_transaction": "id",
    "loyalty_entry": "id",
    "loyalty_lot": "id",
    "loyalty_lotmovement": "id",
    "loyalty_event": "id",
    "loyalty_idempotencyrecord": "id",
    "tiers_tierchange": "id",
}


def databases(rebuild: bool) -> Stack:
    args = argparse.Namespace(keep=True, workers=1, threads=1)
    tpl = Stack("profile_batch_tpl", args)
    exists = tpl.psql(f"SELECT 1 FROM pg_database WHERE datname = '{tpl.db}'", db="postgres")
    if rebuild or not exists:
        log(f"building {tpl.db} (demo program, {MEMBERS:,} members)")
        tpl.create()
        tpl.members_seed(MEMBERS)
    work = Stack("profile_batch", args)
    work.drop()
    work.psql(f'CREATE DATABASE "{work.db}" TEMPLATE "{tpl.db}"', db="postgres")
    return work


def django_setup(stack: Stack) -> None:
    env = dict(stack.env)
    env["ALLOWED_HOSTS"] = "testserver"
    env["CELERY_BROKER_URL"] = "memory://localhost/"  # tasks queued in memory: nobody else's Redis
    for name in ("REDIS_URL",):
        env.pop(name, None)
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def backend_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def client_make():
    from rest_framework.test import APIClient

    from loyalty.models import Program
    from loyalty.services.access import api_key_create

    program = Program.objects.get(code="demo")
    _, key = api_key_create(program=program, name=f"profile-{time.time_ns()}")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def post(client, body: bytes, key: str):
    return client.generic(
        "POST", "/api/v1/orders/batch/", body, content_type="application/json", HTTP_IDEMPOTENCY_KEY=key
    )


def measure(args) -> None:
    import cProfile
    import pstats

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = client_make()
    rng = random.Random(11)
    bodies = [
        json.dumps(
            {"orders": [order_body(f"batch-{b}-{i}", f"b{rng.randint(1, MEMBERS):07d}") for i in range(args.size)]}
        ).encode()
        for b in range(args.batches + 1)
    ]
    response = post(client, bodies[0], "warm-up")  # imports, caches, the connection
    assert response.status_code == 200, response.content[:500]
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    profiler = cProfile.Profile() if args.profile else None
    sampler = None
    if args.sample:
        from pyinstrument import Profiler  # pip install pyinstrument (profiling only)

        sampler = Profiler(interval=0.0005)
    cpu = db = 0.0
    queries = []
    for b, body in enumerate(bodies[1:], 1):
        db0, cpu0 = backend_cpu(pid), time.process_time()
        with CaptureQueriesContext(connection) as captured:
            if profiler:
                profiler.enable()
            if sampler:
                sampler.start()
            response = post(client, body, f"batch-{b}")
            if sampler:
                sampler.stop()
            if profiler:
                profiler.disable()
        cpu += time.process_time() - cpu0
        db += backend_cpu(pid) - db0
        out = json.loads(response.content)
        assert response.status_code == 200 and out["created"] == args.size, response.content[:500]
        queries.append(len(captured))
    orders = args.batches * args.size
    log(
        f"{args.batches} batches of {args.size}: web process CPU {cpu * 1000 / orders:.3f} ms/order "
        f"({cpu:.2f} s), database backend CPU {db * 1000 / orders:.3f} ms/order ({db:.2f} s), "
        f"statements per batch {queries}"
    )
    if args.show_queries:
        for q in captured.captured_queries:
            log(f"  {q['time']}s {q['sql'][:160]}")
    if sampler:
        print(sampler.output_text(unicode=False, color=False, show_all=False, time="percent_of_total"))
    if profiler:
        stats = pstats.Stats(profiler)
        stats.sort_stats("tottime").print_stats(args.top)
        stats.sort_stats("cumulative").print_stats(args.top)
        if args.dump:
            stats.dump_stats(args.dump)


def _prices(rng: random.Random, *, cents: bool):
    def price(lo: int, hi: int) -> str:
        return f"{rng.randint(lo, hi)}.{rng.randint(0, 99):02d}" if cents else str(rng.randint(lo, hi))

    return price


def golden(args) -> None:
    """A scenario whose answers and rows are the same on every run of the same code."""
    from datetime import UTC, datetime

    import time_machine
    from django.db import connection

    from loyalty.models import Member, MemberStatus, Program
    from tiers.models import Tier

    out = Path(args.golden)
    out.mkdir(parents=True, exist_ok=True)
    now = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
    with time_machine.travel(now, tick=False):
        program = Program.objects.get(code="demo")
        tiers = {t.code: t for t in Tier.objects.filter(program=program)}
        Member.objects.filter(external_id="b0000003").update(tier=tiers["vib"])
        Member.objects.filter(external_id="b0000004").update(tier=tiers["rouge"], tier_floor=tiers["vib"])
        Member.objects.filter(external_id="b0000005").update(
            tier_override=tiers["rouge"], tier_override_until=datetime(2026, 12, 31).date()
        )
        Member.objects.filter(external_id="b0000006").update(status=MemberStatus.CLOSED)
        client = client_make()
        rng = random.Random(5)
        currencies = ["USD", "EUR", "GBP", "CAD", "PLN", "JPY"]
        orders = []
        for i in range(300):
            currency = currencies[i % len(currencies)]
            price = _prices(rng, cents=currency != "JPY")
            lines = []
            for _ in range(rng.randint(1, 4)):
                line = {
                    "sku": rng.choice(["SERUM-1", "LIP-7", "GIFT-50", "MASK-3"]),
                    "quantity": rng.randint(1, 3),
                    "unit_price": price(1, 400),
                }
                if rng.random() < 0.6:
                    line["category"] = rng.choice(["skincare", "makeup", "fragrance", ""])
                if rng.random() < 0.3:
                    line["discount"] = (
                        {"amount": price(0, 1), "currency": currency} if rng.random() < 0.5 else price(0, 1)
                    )
                if line["sku"] == "GIFT-50":
                    line["gift_card"] = True
                if rng.random() < 0.1:
                    line["unit_price"] = {"amount": line["unit_price"], "currency": currency}
                lines.append(line)
            body = {
                "external_id": f"g-{i}",
                "member": f"b{rng.randint(1, 12):07d}",
                "currency": currency if rng.random() < 0.9 else currency.lower(),
                "lines": lines,
            }
            if rng.random() < 0.7:
                body["tax"] = price(0, 30)
            if rng.random() < 0.5:
                body["shipping"] = price(0, 10)
            if rng.random() < 0.5:
                month = rng.choice([1, 4, 4, 5, 5, 6])
                body["placed_at"] = datetime(
                    2026, month, rng.randint(1, 14), rng.randint(0, 23), tzinfo=UTC
                ).isoformat()
            if rng.random() < 0.2:
                body["payment_fingerprint"] = f"fp-{rng.randint(1, 5)}"
                body["device_id"] = f"dev-{rng.randint(1, 5)}"
            if rng.random() < 0.2:
                body["metadata"] = {"channel": rng.choice(["web", "app"]), "n": i}
            orders.append(body)
        bad = [  # every kind of bad row the validation knows
            {"external_id": "bad-1"},
            {
                "external_id": "bad/2",
                "member": "b0000001",
                "currency": "USD",
                "lines": [{"sku": "A", "quantity": 1, "unit_price": "1"}],
            },
            {
                "external_id": "quote",
                "member": "b0000001",
                "currency": "USD",
                "lines": [{"sku": "A", "quantity": 1, "unit_price": "1"}],
            },
            {
                "external_id": "bad-4",
                "member": "b0000001",
                "currency": "XXX",
                "lines": [{"sku": "A", "quantity": 1, "unit_price": "1"}],
            },
            {"external_id": "bad-5", "member": "b0000001", "currency": "USD", "lines": []},
            {
                "external_id": "bad-6",
                "member": "b0000001",
                "currency": "USD",
                "lines": [{"sku": "A", "quantity": 0, "unit_price": "-1"}],
            },
            {
                "external_id": "bad-7",
                "member": "b0000001",
                "currency": "USD",
                "lines": [{"sku": "A", "quantity": 1, "unit_price": "1.001"}],
            },
            {
                "external_id": "bad-8",
                "member": "b0000001",
                "currency": "JPY",
                "lines": [{"sku": "A", "quantity": 1, "unit_price": "1.5"}],
            },
            {
                "external_id": "bad-9",
                "member": "b0000001",
                "currency": "USD",
                "lines": [{"sku": "A", "quantity": 1, "unit_price": {"amount": "1", "currency": "EUR"}}],
            },
            {
                "external_id": "bad-10",
                "member": "b0000001",
                "currency": "USD",
                "lines": [{"sku": "A", "quantity": 1, "unit_price": "5", "discount": "6"}],
            },
            {
                "external_id": "bad-11",
                "member": "b0000001",
                "currency": "USD",
                "placed_at": "2027-01-01T00:00:00Z",
                "lines": [{"sku": "A", "quantity": 1, "unit_price": "5"}],
            },
            {
                "external_id": "bad-12",
                "member": "b0000001",
                "currency": "USD",
                "placed_at": "yesterday",
                "lines": [{"sku": "A", "quantity": 1, "unit_price": "5"}],
            },
            {
                "external_id": "bad-13",
                "member": "nobody",
                "currency": "USD",
                "lines": [{"sku": "A", "quantity": 1, "unit_price": "5"}],
            },
            {
                "external_id": "bad-14",
                "member": "b0000006",
                "currency": "USD",
                "lines": [{"sku": "A", "quantity": 1, "unit_price": "5"}],
            },
            {
                "external_id": "g-1",
                "member": "b0000001",
                "currency": "USD",
                "lines": [{"sku": "A", "quantity": 1, "unit_price": "5"}],
            },
            {
                "external_id": "bad-16",
                "member": "b0000001",
                "currency": "USD",
                "lines": [{"sku": "A", "quantity": 1, "unit_price": "1e20"}],
            },
            {
                "external_id": "bad-17",
                "member": "b0000001",
                "currency": "USD",
                "metadata": [1],
                "lines": [{"sku": "A", "quantity": 1, "unit_price": "5"}],
            },
            {
                "external_id": "bad-18",
                "member": "b0000001",
                "currency": "USD",
                "metadata": {"a": {"b": {"c": {"d": {"e": 1}}}}},
                "lines": [{"sku": "A", "quantity": 1, "unit_price": "5"}],
            },
            {
                "external_id": "bad-19",
                "member": "b0000001",
                "currency": "USD",
                "lines": [{"sku": "A", "quantity": 1, "unit_price": "5", "gift_card": "maybe"}],
            },
            {
                "external_id": 20,
                "member": 7,
                "currency": "USD",
                "lines": [{"sku": "", "quantity": "x", "unit_price": True}],
            },
            {"external_id": "bad-21", "member": "b0000001", "currency": "USD", "lines": "nope"},
            {
                "external_id": "bad-22",
                "member": "b0000001",
                "currency": "USD",
                "lines": [{"sku": "A" * 65, "quantity": 1, "unit_price": "NaN"}],
            },
            {
                "external_id": "bad-23",
                "member": "b0000001",
                "currency": "USD",
                "tax": "1.234",
                "shipping": {"amount": "x"},
                "lines": [{"sku": "A", "quantity": 1, "unit_price": "5"}],
            },
            {
                "external_id": "bad-24",
                "member": "b0000001",
                "currency": "JPY",
                "lines": [{"sku": "A", "quantity": 1, "unit_price": "999999999999"}] * 3,
            },
            {
                "external_id": "ok-26",
                "member": "b0000002",
                "currency": "EUR",
                "unknown_field": 1,
                "lines": [{"sku": "A", "quantity": 1, "unit_price": 5}],
            },
            {
                "external_id": "ok-27",
                "member": "b0000002",
                "currency": "EUR",
                "lines": [{"sku": "A", "quantity": 1, "unit_price": 5.5, "category": None}],
            },
        ]
        first = orders[:150] + bad
        second = orders[100:]  # 50 already placed, 150 new
        answers = []
        for key, batch in (("g1", first), ("g2", second), ("g1", first)):  # the last a replay
            response = post(client, json.dumps({"orders": batch}).encode(), key)
            answers.append(f"{response.status_code} {dict(response.headers).get('Idempotent-Replayed')}\n")
            answers.append(response.content.decode() + "\n")
        not_object = post(client, json.dumps({"orders": [orders[0], "not an object"]}).encode(), "g4")
        answers.append(f"{not_object.status_code}\n{not_object.content.decode()}\n")
        too_many = post(client, json.dumps({"orders": orders[:1] * 1001}).encode(), "g3")
        answers.append(f"{too_many.status_code}\n{too_many.content.decode()}\n")
        (out / "answers.txt").write_text("".join(answers))
        with connection.cursor() as cursor:
            for table, order in TABLES.items():
                cursor.execute(f"SELECT * FROM {table} ORDER BY {order}")
                names = [c.name for c in cursor.description]
                rows = cursor.fetchall()
                (out / f"{table}.txt").write_text(
                    "\n".join(json.dumps(dict(zip(names, row, strict=True)), default=str) for row in rows) + "\n"
                )
            cursor.execute(
                "SELECT id, external_id, tier_id, tier_valid_until, tier_floor_id, last_activity_at, status "
                "FROM loyalty_member WHERE last_activity_at IS NOT NULL OR id <= 20 ORDER BY id"
            )
            (out / "loyalty_member.txt").write_text("\n".join(json.dumps(r, default=str) for r in cursor.fetchall()))
            cursor.execute(
                "SELECT id, member_id, kind, shard, balance, version FROM loyalty_account "
                "WHERE balance <> 0 OR version <> 0 ORDER BY id"
            )
            (out / "loyalty_account.txt").write_text("\n".join(json.dumps(r, default=str) for r in cursor.fetchall()))
    log(f"golden scenario written to {out}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--profile", action="store_true", help="cProfile the measured batches")
    parser.add_argument("--sample", action="store_true", help="sample the measured batches (pyinstrument)")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--dump", help="write the cProfile stats to this file")
    parser.add_argument("--show-queries", action="store_true", help="print the last batch's statements")
    parser.add_argument("--golden", help="write the golden scenario's answers and rows to this directory")
    parser.add_argument("--rebuild", action="store_true", help="build the template database again")
    parser.add_argument("--keep", action="store_true", help="keep the database bench_profile_batch afterwards")
    args = parser.parse_args()
    stack = databases(args.rebuild)
    try:
        django_setup(stack)
        if args.golden:
            golden(args)
        else:
            measure(args)
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            stack.drop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
