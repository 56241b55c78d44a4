"""Shared plumbing of the benchmarks (bench/bench_*.py): a fresh database per benchmark, the app
under gunicorn in production mode, wrk for HTTP load, pgbench for the raw SQL baselines, and the
BENCH result lines that bench/run collects.

Nothing here is imported by the application; the scripts run with the project's venv python from
the repository root: `.venv/bin/python bench/bench_<name>.py [--quick] [--keep]`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PY = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
PG = {"host": "127.0.0.1", "port": "5432", "user": "postgres"}
REDIS_DB = int(os.environ.get("BENCH_REDIS_DB", "9"))  # bench-core's Redis database (the convention: 8+N)
FORBIDDEN_DBS = {"test", "loyalty", "postgres", "root", "template0", "template1"}


def log(*parts) -> None:
    print(*parts, flush=True)


def dsn(db: str) -> str:
    """A libpq URL of a database on the benchmark server."""
    return f"postgresql://{PG['user']}@{PG['host']}:{PG['port']}/{db}"


def admin(sql: str) -> None:
    """Run one statement outside any transaction (CREATE/DROP DATABASE) on the server."""
    import psycopg

    with psycopg.connect(dsn("postgres"), autocommit=True) as conn:
        conn.execute(sql)


def args_parse(description: str, **extra) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of seconds")
    parser.add_argument("--keep", action="store_true", help="keep the bench database afterwards")
    parser.add_argument("--duration", type=float, help="seconds per timed phase (default: 8 quick, 30 full)")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("BENCH_WORKERS", "2")))
    parser.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", "8")))
    parser.add_argument("--connections", type=int, default=16)
    for name, kwargs in extra.items():
        parser.add_argument(f"--{name.replace('_', '-')}", **kwargs)
    args = parser.parse_args()
    if args.duration is None:
        args.duration = 8.0 if args.quick else 30.0
    return args


def result(bench: str, measure: str, *, ours, baseline, unit: str, target: str, ok, notes: str = "") -> dict:
    ratio = (ours / baseline) if (ours is not None and baseline) else None
    row = {
        "bench": bench,
        "measure": measure,
        "ours": None if ours is None else round(float(ours), 3),
        "baseline": None if baseline is None else round(float(baseline), 3),
        "unit": unit,
        "ratio": None if ratio is None else round(ratio, 4),
        "target": target,
        "ok": ok,
        "notes": notes,
    }
    return row


def results_print(rows: list[dict]) -> None:
    log("")
    for row in rows:
        log("BENCH " + json.dumps(row))


def machine_note() -> str:
    load = os.getloadavg()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores, {mem:.0f} GiB, {platform.python_version()}, load {load[0]:.2f}/{load[1]:.2f}"


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = (len(values) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


# --- tools ----------------------------------------------------------------------------------------
def tool_require(binary: str, package: str) -> str:
    """A Debian tool, installed with apt-get when missing (the convention allows it)."""
    found = shutil.which(binary)
    if found:
        return found
    log(f"{binary} not found: apt-get install -y {package}")
    subprocess.run(["apt-get", "update", "-qq"], check=False)
    subprocess.run(["apt-get", "install", "-y", "-qq", package], check=True)
    found = shutil.which(binary)
    if not found:
        raise SystemExit(f"{binary} is needed ({package})")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the benchmark's own database and environment -----------------------------------------------
class Stack:
    """A fresh database `bench_<name>`, the app's environment for it, and helpers to run things."""

    def __init__(self, name: str, args: argparse.Namespace):
        self.name = name
        self.args = args
        # BENCH_DB_SUFFIX lets two runs of one benchmark go side by side (bench_import_2, ...)
        self.db = f"bench_{name}{os.environ.get('BENCH_DB_SUFFIX', '')}"
        assert self.db not in FORBIDDEN_DBS and not self.db.startswith("test")
        self.url = f"postgres://{PG['user']}@{PG['host']}:{PG['port']}/{self.db}"
        self.tmp = Path(tempfile.mkdtemp(prefix=f"bench_{name}_"))
        self.env = {
            **os.environ,
            "DATABASE_URL": self.url,
            "CELERY_BROKER_URL": f"redis://127.0.0.1:6379/{REDIS_DB}",
            "DJANGO_DEBUG": "0",
            "SECRET_KEY": "bench-only-secret-key-not-for-production-0123456789abcdef",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "0",
            "SECURE_HSTS_SECONDS": "0",
            # The write limits are abuse limits, not capacity limits: lift them for the load test.
            "THROTTLE_WRITES_PER_KEY": "100000000/min",
            "THROTTLE_WRITES_PER_ADDRESS": "100000000/min",
            "LOG_LEVEL": "WARNING",
            "DB_CONN_MAX_AGE": "600",
            "PYTHONUNBUFFERED": "1",
        }
        self.gunicorn_proc = None
        self.port = None

    # database
    def psql(self, sql: str, *, db: str | None = None) -> str:
        out = subprocess.run(
            ["psql", "-h", PG["host"], "-p", PG["port"], "-U", PG["user"], "-d", db or self.db, "-XAtq", "-v",
             "ON_ERROR_STOP=1", "-c", sql],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        return out.stdout.strip()

    def create(self) -> None:
        self.drop()
        self.psql(f'CREATE DATABASE "{self.db}"', db="postgres")
        self.redis_flush()
        self.manage("migrate", "-v0")
        self.manage("seed_demo")  # the demo program, exactly as demo-program.md

    def drop(self) -> None:
        self.psql(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)', db="postgres")

    def redis_flush(self) -> None:
        import redis

        redis.Redis.from_url(f"redis://127.0.0.1:6379/{REDIS_DB}").flushdb()

    def close(self) -> None:
        self.gunicorn_stop()
        self.redis_flush()
        if not self.args.keep:
            self.drop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # the app
    def manage(self, *argv: str, capture: bool = False) -> str:
        out = subprocess.run(
            [PY, "manage.py", *argv], cwd=ROOT, env=self.env, check=True, text=True,
            stdout=subprocess.PIPE if capture else None,
        )  # fmt: skip
        return out.stdout or ""

    def django(self, code: str) -> str:
        """Run Python inside the app (manage.py shell -c) and return what it printed."""
        return self.manage("shell", "-c", code, capture=True)

    def api_key(self) -> str:
        out = self.manage("create_api_key", "--program", "demo", "--name", f"bench-{time.time_ns()}", capture=True)
        match = re.search(r"\blk_[A-Za-z0-9_\-]+", out)
        if not match:
            raise SystemExit(f"no API key in: {out}")
        return match.group(0)

    def members_seed(self, count: int, *, prefix: str = "b") -> None:
        """`count` members enrolled at the Insider tier with their buckets and a referral code, in four
        set-based statements (what member_enroll writes, without a Python loop per member)."""
        self.psql(
            f"""
            BEGIN;
            WITH p AS (SELECT id FROM loyalty_program WHERE code = 'demo'),
                 t AS (SELECT tiers_tier.id FROM tiers_tier, p WHERE program_id = p.id ORDER BY rank LIMIT 1)
            INSERT INTO loyalty_member (program_id, external_id, email, first_name, last_name, locale, country,
                marketing_opt_in, status, enrolled_at, tier_id, tier_floor_id)
            SELECT p.id, '{prefix}' || lpad(g::text, 7, '0'), '{prefix}' || g || '@bench.example', 'Bench', 'Member',
                'en', 'US', false, 'active', now() - interval '400 days', t.id, t.id
            FROM p, t, generate_series(1, {count}) g;
            INSERT INTO loyalty_account (program_id, asset_id, member_id, kind, shard, balance, version)
            SELECT m.program_id, a.id, m.id, k.kind, 0, 0, 0
            FROM loyalty_member m JOIN loyalty_asset a ON a.program_id = m.program_id,
                 (VALUES ('pending'), ('available'), ('held')) k(kind)
            WHERE m.external_id LIKE '{prefix}%';
            INSERT INTO referrals_referralcode (program_id, member_id, code, created_at)
            SELECT program_id, id, upper(substr(md5('{prefix}' || id::text), 1, 10)), now()
            FROM loyalty_member WHERE external_id LIKE '{prefix}%';
            COMMIT;
            ANALYZE;
            """
        )

    def balances_seed(self, members: list[str], points: int) -> None:
        """Opening balances through the project's own bulk service (`import_balances`)."""
        path = self.tmp / "balances.csv"
        with path.open("w") as out:
            out.write("id,member,points,expires_at,note\n")
            for external_id in members:
                out.write(f"open-{external_id},{external_id},{points},,bench\n")
        self.manage("import_balances", str(path), "--no-progress", capture=True)

    # gunicorn
    def gunicorn_start(self, *, workers: int | None = None, threads: int | None = None) -> str:
        self.gunicorn_stop()
        workers = workers or self.args.workers
        threads = threads or self.args.threads
        self.port = free_port()
        cmd = [
            str(Path(PY).with_name("gunicorn")), "config.wsgi", "-b", f"127.0.0.1:{self.port}",
            "-w", str(workers), "-k", "gthread", "--threads", str(threads),
            "--backlog", "2048", "--keep-alive", "30", "--log-level", "warning",
        ]  # fmt: skip
        self.gunicorn_proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, start_new_session=True)
        base = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except Exception:
                time.sleep(0.3)
        else:
            raise SystemExit("gunicorn did not come up")
        self.server_note = f"gunicorn gthread {workers}x{threads}"
        return base

    def gunicorn_stop(self) -> None:
        proc, self.gunicorn_proc = self.gunicorn_proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    # load
    def wrk(
        self, script: str, base: str, *, path: str = "/", duration: float, connections: int, script_args=()
    ) -> dict:
        """Run wrk with one thread per connection (so per-connection state in Lua is per thread) and
        return the JSON its Lua `done()` prints: requests/s, latency percentiles, statuses."""
        wrk = tool_require("wrk", "wrk")
        cmd = [
            wrk, "-t", str(connections), "-c", str(connections), "-d", f"{duration:.0f}s", "--timeout", "10s",
            "-s", str(BENCH / "lua" / script), base + path, "--", *map(str, script_args),
        ]  # fmt: skip
        env = {**os.environ, "BENCH_LUA": str(BENCH / "lua")}
        done = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
        out = done.stdout
        if done.stderr.strip():
            log("wrk: " + done.stderr.strip()[:500])
        lines = [x for x in out.splitlines() if x.startswith("WRKJSON ")]
        if not lines:
            raise SystemExit(f"wrk printed no result:\n{out}")
        return json.loads(lines[-1][len("WRKJSON ") :])

    def pgbench(self, script: str, *, duration: float, clients: int, defines: dict | None = None) -> dict:
        """Run a pgbench script against this database; -> tps and p50/p99 latency (ms) from its
        per-transaction log."""
        tool_require("pgbench", "postgresql-client")
        workdir = Path(tempfile.mkdtemp(dir=self.tmp))
        (workdir / "script.sql").write_text(script)
        cmd = [
            "pgbench", "-h", PG["host"], "-p", PG["port"], "-U", PG["user"], "-n", "-c", str(clients),
            "-j", str(min(clients, 2)), "-T", f"{duration:.0f}", "-f", "script.sql", "-l", "--log-prefix", "tx",
        ]  # fmt: skip
        for key, value in (defines or {}).items():
            cmd += ["-D", f"{key}={value}"]
        out = subprocess.run(cmd + [self.db], cwd=workdir, check=True, capture_output=True, text=True).stdout
        match = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)
        tps = float(match.group(1)) if match else None
        lat = []
        for path in workdir.glob("tx*"):
            for line in path.read_text().splitlines():
                parts = line.split()
                if len(parts) >= 3:
                    lat.append(int(parts[2]) / 1000)  # microseconds -> ms
        return {
            "rps": tps,
            "p50": percentile(lat, 50),
            "p99": percentile(lat, 99),
            "count": len(lat),
        }


def fmt(r: dict) -> str:
    return f"{r['rps']:.0f}/s p50 {r['p50']:.1f} ms p99 {r['p99']:.1f} ms"


def mean(values):
    return statistics.fmean(values) if values else float("nan")
