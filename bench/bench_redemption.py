#!/usr/bin/env python
"""Hot-member redemption (issue 8, build item 4): hold + capture through the real HTTP API on ONE
member at 16 connections, side by side in the same run with a raw conditional UPDATE of one balance
row at 16 clients (pgbench), and with the same endpoints spread over random members.

Rows:
- `hot member`: redemptions/s (a hold and its capture, two requests) vs raw conditional debits/s
  (`UPDATE ... SET balance = balance - 500 WHERE id = 1 AND balance >= 500`). Target ratio >= 0.5.
- `hot vs spread`: the hot member's redemptions/s vs the same endpoints over random members.
  Target >= 0.8.
- `zero overdraft`: ledger_verify clean, no balance ever negative (every entry's balance after, every
  bucket now), and on the hot member what was debited equals what was captured plus what is held.

    .venv/bin/python bench/bench_redemption.py [--quick] [--keep] [--duration S]
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Stack, args_parse, fmt, log, machine_note, mean, result, results_print

NAME = "redemption"
FUND_HOT = 1_000_000_000
FUND_SPREAD = 10_000_000

RAW_SCHEMA = """
DROP TABLE IF EXISTS raw_hot;
CREATE TABLE raw_hot (id bigint PRIMARY KEY, balance bigint NOT NULL CHECK (balance >= 0));
INSERT INTO raw_hot VALUES (1, 1000000000000);
"""
RAW_DEBIT = "UPDATE raw_hot SET balance = balance - 500 WHERE id = 1 AND balance >= 500;\n"


def main() -> int:
    args = args_parse(__doc__.splitlines()[0])
    members = 500 if args.quick else 2_000
    stack = Stack(NAME, args)
    rows = []
    try:
        log(f"[{NAME}] machine: {machine_note()}")
        stack.create()
        stack.members_seed(members)
        stack.balances_seed(["b0000001"], FUND_HOT)
        stack.balances_seed([f"b{i:07d}" for i in range(2, members + 1)], FUND_SPREAD)
        stack.psql(RAW_SCHEMA)
        key = stack.api_key()
        conns = args.connections

        log(f"[{NAME}] raw conditional debit of one row (pgbench, {conns} clients, {args.duration:.0f} s)")
        raw1 = stack.pgbench(RAW_DEBIT, duration=args.duration, clients=conns)
        log(f"  raw: {fmt(raw1)}")

        base = stack.gunicorn_start()
        log(f"[{NAME}] {stack.server_note}; warm-up on the spread members")
        stack.wrk("redeem.lua", base, duration=3, connections=conns, script_args=(key, "warm", 2, members))
        log(f"[{NAME}] hold + capture on ONE member (wrk, {conns} connections)")
        hot = stack.wrk("redeem.lua", base, duration=args.duration, connections=conns, script_args=(key, "hot", 1, 1))
        hot_rps = hot["extra"]["captured"] / hot["seconds"]
        log(f"  hot: {hot_rps:.0f} redemptions/s ({fmt(hot)} requests) statuses {hot['statuses']}")
        log(f"[{NAME}] hold + capture spread over {members - 1} members")
        spread = stack.wrk(
            "redeem.lua", base, duration=args.duration, connections=conns, script_args=(key, "spread", 2, members)
        )
        spread_rps = spread["extra"]["captured"] / spread["seconds"]
        log(f"  spread: {spread_rps:.0f} redemptions/s ({fmt(spread)} requests) statuses {spread['statuses']}")
        stack.gunicorn_stop()

        raw2 = stack.pgbench(RAW_DEBIT, duration=args.duration, clients=conns)
        log(f"  raw again: {fmt(raw2)}")
        raw_rps = mean([raw1["rps"], raw2["rps"]])

        log(f"[{NAME}] checks: ledger_verify, no negative balance, debited == captured + held")
        verified = _verify(stack)
        min_after = int(
            stack.psql(
                "SELECT coalesce(min(e.balance_after), 0) FROM loyalty_entry e "
                "JOIN loyalty_account a ON a.id = e.account_id "
                "WHERE a.member_id IS NOT NULL"
            )
        )
        min_now = int(stack.psql("SELECT coalesce(min(balance), 0) FROM loyalty_account WHERE member_id IS NOT NULL"))
        available, held = map(
            int,
            stack.psql(
                "SELECT sum(balance) FILTER (WHERE kind = 'available'), sum(balance) FILTER (WHERE kind = 'held') "
                "FROM loyalty_account a JOIN loyalty_member m ON m.id = a.member_id WHERE m.external_id = 'b0000001'"
            ).split("|"),
        )
        captured, still_held = map(
            int,
            stack.psql(
                "SELECT coalesce(sum(points) FILTER (WHERE r.status = 'captured'), 0), "
                "coalesce(sum(points) FILTER (WHERE r.status = 'held'), 0) "
                "FROM loyalty_redemption r JOIN loyalty_member m ON m.id = r.member_id WHERE m.external_id = 'b0000001'"
            ).split("|"),
        )
        debited = FUND_HOT - available
        consistent = debited == captured + still_held and held == still_held
        log(
            f"  ledger_verify {'clean' if verified else 'FAILED'}; min balance after {min_after}, "
            f"min bucket now {min_now}; "
            f"hot member: debited {debited} = captured {captured} + held {still_held}: {consistent}"
        )
        requests_ok = all(s in ("200", "201") for s in list(hot["statuses"]) + list(spread["statuses"]))
        common = f"{stack.server_note}, {conns} conns, {args.duration:.0f}s, {members} members; {machine_note()}"
        rows.append(
            result(
                NAME,
                "hot member hold+capture vs raw conditional UPDATE",
                ours=hot_rps,
                baseline=raw_rps,
                unit="redemptions/s",
                target="ratio >= 0.5",
                ok=bool(requests_ok and hot_rps / raw_rps >= 0.5),
                notes=(
                    f"request p50 {hot['p50']:.1f} ms p99 {hot['p99']:.1f} ms ({hot['rps']:.0f} requests/s); raw p50 "
                    f"{raw1['p50']:.2f}/{raw2['p50']:.2f} ms p99 {raw1['p99']:.2f}/{raw2['p99']:.2f} ms "
                    f"({raw1['rps']:.0f}/{raw2['rps']:.0f}/s before/after); statuses {hot['statuses']}; {common}"
                ),
            )
        )
        rows.append(
            result(
                NAME,
                "hot member vs spread over random members",
                ours=hot_rps,
                baseline=spread_rps,
                unit="redemptions/s",
                target="ratio >= 0.8",
                ok=bool(requests_ok and hot_rps / spread_rps >= 0.8),
                notes=(
                    f"spread request p50 {spread['p50']:.1f} ms p99 {spread['p99']:.1f} ms; statuses "
                    f"{spread['statuses']}; {common}"
                ),
            )
        )
        rows.append(
            result(
                NAME,
                "zero overdraft (hot member)",
                ours=min(min_after, min_now),
                baseline=None,
                unit="min balance",
                target="ledger_verify clean, never negative, debited == captured + held",
                ok=bool(verified and min_after >= 0 and min_now >= 0 and consistent),
                notes=f"debited {debited}, captured {captured}, held {still_held}; ledger_verify "
                f"{'clean' if verified else 'FAILED'}",
            )
        )
    finally:
        stack.close()
    results_print(rows)
    return 0


def _verify(stack: Stack) -> bool:
    try:
        stack.manage("ledger_verify")
        return True
    except subprocess.CalledProcessError:
        return False


if __name__ == "__main__":
    sys.exit(main())
