"""The real stack: a Celery worker process on Redis, against the test's PostgreSQL database.

- an order placed through the API hands its after-commit task to the broker, and the worker
  processes it (the event is marked processed by the worker, not by the test process);
- a batch job killed mid-way (SIGKILL) is redelivered and finished by a restarted worker: every
  lot matured exactly once and the ledger verifies.
"""

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection

from loyalty.models import Event, Lot, LotState, Member, Transaction, TransactionKind
from loyalty.services.access import api_key_create
from loyalty.services.earning import LineDraft, OrderDraft
from loyalty.services.ingestion import orders_place_bulk
from tests.conftest import CheckedClient

# A checkout running its suite beside another sets its own Redis database here.
REDIS = os.environ.get("LOYALTY_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def redis_answers() -> bool:
    try:
        import redis

        return redis.Redis.from_url(REDIS, socket_connect_timeout=1).ping()
    except Exception:
        return False


@pytest.fixture
def broker(settings):
    if not redis_answers():
        if os.environ.get("LOYALTY_REQUIRE_SERVICES") == "1":
            pytest.fail(f"LOYALTY_REQUIRE_SERVICES=1 but Redis does not answer at {REDIS}")
        pytest.skip(f"needs Redis at {REDIS}")
    import redis

    from config.celery import app

    client = redis.Redis.from_url(REDIS)
    client.flushdb()
    saved = (app.conf.task_always_eager, app.conf.broker_url)
    app.conf.task_always_eager, app.conf.broker_url = False, REDIS
    settings.CELERY_TASK_ALWAYS_EAGER = False
    _reset_pool(app)
    yield app
    app.conf.task_always_eager, app.conf.broker_url = saved
    settings.CELERY_TASK_ALWAYS_EAGER = True
    _reset_pool(app)
    client.flushdb()


def _reset_pool(app):
    """Producers connect again with the current broker settings (kombu keeps its pools per URL)."""
    app._pool = None
    app.amqp._producer_pool = None


class Worker:
    def __init__(self, log: Path):
        settings = connection.settings_dict
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "CELERY_BROKER_URL": REDIS,
            "DATABASE_URL": f"postgres://{settings['USER']}@{settings['HOST']}:{settings['PORT'] or 5432}/"
            f"{settings['NAME']}",
            "CELERY_VISIBILITY_TIMEOUT": "3",
            "CELERY_RESTORE_INTERVAL": "1",
            "LOYALTY_SETTLE_BATCH": "20",
        }
        self.log = log.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-P",
                "solo",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-l",
                "INFO",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


def wait_for(predicate, timeout=60, every=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return False


def test_the_worker_processes_the_after_commit_task_of_an_api_order(broker, program, member, tmp_path):
    worker = Worker(tmp_path / "worker.log")
    try:
        client = CheckedClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(program=program, name='w')[1]}")
        body = {
            "external_id": "W-1",
            "member": "anna",
            "currency": "USD",
            "lines": [{"sku": "A", "quantity": 1, "unit_price": "100.00"}],
        }
        assert client.post("/api/v1/orders/", body, format="json").status_code == 201
        placed = Event.objects.get(type="order.placed")
        assert placed.processed_at is None  # not processed in the request
        assert wait_for(lambda: Event.objects.filter(pk=placed.pk, processed_at__isnull=False).exists(), 60), (
            tmp_path / "worker.log"
        ).read_text()[-3000:]
    finally:
        worker.stop()


def test_a_job_killed_mid_way_is_finished_by_a_restarted_worker(broker, program, tmp_path):
    from loyalty.tasks import job_run_task

    entry = program.tiers.get(rank=0)
    Member.objects.bulk_create(
        Member(
            program=program,
            external_id=f"k{i}",
            email=f"k{i}@example.com",
            tier=entry,
            tier_floor=entry,
            enrolled_at=datetime(2026, 1, 1, tzinfo=UTC),
        )
        for i in range(600)
    )
    placed = datetime(2026, 5, 1, tzinfo=UTC)
    drafts = [
        OrderDraft(
            external_id=f"K-{i}",
            member=f"k{i}",
            currency="USD",
            placed_at=placed,
            lines=(LineDraft(sku="A", quantity=1, unit_price=Decimal("25")),),
        )
        for i in range(600)
    ]
    for start in range(0, 600, 200):
        orders_place_bulk(program=program, drafts=drafts[start : start + 200], now=placed)
    as_of = (placed + timedelta(days=31)).isoformat()
    Event.objects.update(processed_at=placed)  # the setup's own events are not what this test is about
    broker.control.purge()

    def matured():
        return Transaction.objects.filter(kind=TransactionKind.MATURE).count()

    first = Worker(tmp_path / "worker.log")
    try:
        job_run_task.delay("points_mature", as_of)
        assert wait_for(lambda: matured() > 0, 60), (tmp_path / "worker.log").read_text()[-3000:]
        first.kill()  # mid-way: some batches committed, the rest not
    finally:
        first.stop()
    at_kill = matured()
    assert 0 < at_kill < 600, f"killed after {at_kill} of 600: not mid-way"

    second = Worker(tmp_path / "worker.log")  # the unacknowledged task comes back to it
    try:
        assert wait_for(lambda: matured() == 600, 90), (tmp_path / "worker.log").read_text()[-3000:]
    finally:
        second.stop()
    assert matured() == 600  # nothing doubled
    assert not Lot.objects.filter(state=LotState.PENDING).exists()  # nothing lost


@pytest.mark.django_db
def test_healthz_checks_the_database_and_the_broker(client, broker):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}


@pytest.mark.django_db
def test_healthz_says_503_when_the_broker_is_down(client, broker):
    broker.conf.broker_url = "redis://127.0.0.1:1/0"
    _reset_pool(broker)
    response = client.get("/healthz")
    assert response.status_code == 503 and response.json()["broker"].startswith("error")
