#!/usr/bin/env python
"""Peak memory (max RSS) of `manage.py import_orders` on a large JSON-lines file (issue 8, build
item 4): it must stay flat as the file grows and under 300 MB.

The import runs twice in fresh processes: on the first tenth of the orders, then on the whole file
(the first tenth is answered `exists` the second time, the rest is imported), each under a wrapper
that reads the child's ru_maxrss; RSS is also sampled from /proc while it runs. The baseline, in the
same run, is the peak RSS of the same Django process doing nothing (`manage.py check`): the floor
the import starts from.

    .venv/bin/python bench/bench_import.py [--quick] [--keep] [--orders N]
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PY, ROOT, Stack, args_parse, log, machine_note, result, results_print

NAME = "import"
LIMIT_MB = 300

WRAPPER = """
import resource, subprocess, sys
code = subprocess.call(sys.argv[1:])
print("MAXRSS_KB", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""


def orders_file(path: Path, count: int, members: int) -> None:
    rng = random.Random(5)
    currencies = ["USD"] * 6 + ["EUR", "EUR", "GBP", "CAD"]
    with path.open("w") as out:
        for i in range(count):
            currency = rng.choice(currencies)
            order = {
                "external_id": f"hist-{i:08d}",
                "member": f"b{rng.randint(1, members):07d}",
                "currency": currency,
                "placed_at": f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:00:00+00:00",
                "lines": [
                    {"sku": f"SKU-{rng.randint(1, 400)}", "category": "skincare", "quantity": 1, "unit_price": "24.90"},
                    {"sku": f"SKU-{rng.randint(1, 400)}", "category": "makeup", "quantity": 2, "unit_price": "12.50"},
                ],
                "tax": "4.10",
            }
            out.write(json.dumps(order, separators=(",", ":")) + "\n")


def measured(stack: Stack, argv: list[str]) -> dict:
    """Run `manage.py argv` under the wrapper; -> peak RSS (MB), RSS samples, seconds, output."""
    cmd = [PY, "-c", WRAPPER, PY, "manage.py", *argv]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=stack.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    samples: list[float] = []

    def sample():
        while proc.poll() is None:
            try:
                children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
                for child in children:
                    for line in Path(f"/proc/{child}/status").read_text().splitlines():
                        if line.startswith("VmRSS:"):
                            samples.append(int(line.split()[1]) / 1024)
            except (FileNotFoundError, ProcessLookupError, ValueError):
                pass
            time.sleep(1.0)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    sampler.join(timeout=2)
    seconds = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"{argv} failed:\n{out[-2000:]}\n{err[-2000:]}")
    peak = int(next(line.split()[1] for line in err.splitlines() if line.startswith("MAXRSS_KB"))) / 1024
    return {"peak": peak, "samples": samples, "seconds": seconds, "out": out.strip().splitlines()[-1:]}


def trajectory(samples: list[float]) -> str:
    if not samples:
        return "-"
    picks = [samples[min(len(samples) - 1, int(len(samples) * f))] for f in (0.1, 0.25, 0.5, 0.75, 0.99)]
    return "/".join(f"{x:.0f}" for x in picks)


def main() -> int:
    args = args_parse(__doc__.splitlines()[0], orders={"type": int, "help": "orders in the file (default 1,000,000)"})
    total = args.orders or (20_000 if args.quick else 1_000_000)
    members = 2_000 if args.quick else 50_000
    first = total // 10
    stack = Stack(NAME, args)
    rows = []
    try:
        log(f"[{NAME}] machine: {machine_note()}")
        stack.create()
        stack.members_seed(members)
        big, small = stack.tmp / "orders.jsonl", stack.tmp / "orders_first_tenth.jsonl"
        t0 = time.perf_counter()
        orders_file(big, total, members)
        with big.open() as src, small.open("w") as dst:
            for _ in range(first):
                dst.write(src.readline())
        log(
            f"[{NAME}] wrote {total:,} orders ({big.stat().st_size / 2**20:.0f} MB) in {time.perf_counter() - t0:.0f} s"
        )

        floor = measured(stack, ["check"])
        log(f"[{NAME}] baseline: manage.py check peaks at {floor['peak']:.0f} MB")
        log(f"[{NAME}] import_orders on {first:,} orders")
        part = measured(stack, ["import_orders", str(small), "--no-progress"])
        log(f"  peak {part['peak']:.0f} MB in {part['seconds']:.0f} s; RSS {trajectory(part['samples'])} MB")
        log(f"  {part['out']}")
        log(f"[{NAME}] import_orders on all {total:,} orders (the first {first:,} are skipped as already in)")
        full = measured(stack, ["import_orders", str(big), "--no-progress"])
        log(f"  peak {full['peak']:.0f} MB in {full['seconds']:.0f} s; RSS {trajectory(full['samples'])} MB")
        log(f"  {full['out']}")
        count = int(stack.psql("SELECT count(*) FROM loyalty_order"))
        log(f"[{NAME}] {count:,} orders in the database; ledger_verify")
        stack.manage("ledger_verify")
        growth = full["peak"] - part["peak"]
        rate = (total - first) / full["seconds"]
        flat = growth <= max(0.1 * part["peak"], 20)
        common = f"{members:,} members; {machine_note()}"
        rows.append(
            result(
                NAME,
                f"import_orders peak RSS, {first:,} orders",
                ours=part["peak"],
                baseline=floor["peak"],
                unit="MB",
                target=f"< {LIMIT_MB} MB",
                ok=part["peak"] < LIMIT_MB,
                notes=f"{first / part['seconds']:.0f} orders/s; RSS samples {trajectory(part['samples'])} MB; {common}",
            )
        )
        rows.append(
            result(
                NAME,
                f"import_orders peak RSS, {total:,} orders",
                ours=full["peak"],
                baseline=floor["peak"],
                unit="MB",
                target=f"< {LIMIT_MB} MB and flat (<= +10% over the {first:,} run)",
                ok=bool(full["peak"] < LIMIT_MB and flat and count == total),
                notes=(
                    f"{growth:+.0f} MB vs the {first:,} run; {rate:.0f} orders/s; RSS samples "
                    f"{trajectory(full['samples'])} MB; {count:,} orders in the db; "
                    f"baseline = manage.py check; {common}"
                ),
            )
        )
    finally:
        stack.close()
    results_print(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
