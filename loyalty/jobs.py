"""The periodic jobs, in one registry that Celery beat and `manage.py run_periodic_jobs` share.

An app adds a job with the `@job` decorator in its `jobs.py`. A job is `fn(now) -> int` (how many
things it did). Every job is idempotent and resumable: it works in committed batches and re-reads
what is due, so running it twice, or after a crash, does nothing twice."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from celery.schedules import crontab, schedule
from django.utils.module_loading import autodiscover_modules


@dataclass(frozen=True)
class Job:
    name: str
    fn: Callable[[datetime], int]
    every: schedule | crontab
    description: str


JOBS: dict[str, Job] = {}


def job(name: str, *, every, description: str):
    def register(fn):
        JOBS[name] = Job(name=name, fn=fn, every=every, description=description)
        return fn

    return register


def jobs() -> dict[str, Job]:
    autodiscover_modules("jobs")
    return JOBS


def job_run(name: str, *, now: datetime) -> dict:
    return {"job": name, "count": jobs()[name].fn(now)}


def beat_schedule() -> dict:
    return {
        name: {"task": "loyalty.tasks.job_run_task", "schedule": j.every, "args": (name,)} for name, j in jobs().items()
    }


# --- the loyalty app's own jobs -----------------------------------------------------------------
@job("points_mature", every=crontab(minute="*/10"), description="Post matured pending points")
def _points_mature(now):
    from loyalty.services.settlement import points_mature

    return points_mature(now)


@job("points_expire", every=crontab(minute=5), description="Post expired points")
def _points_expire(now):
    from loyalty.services.settlement import points_expire

    return points_expire(now)


@job("holds_expire", every=schedule(60), description="Void holds whose time to live ran out")
def _holds_expire(now):
    from loyalty.services.settlement import holds_expire

    return holds_expire(now)


@job("events_sweep", every=schedule(60), description="Process events whose after-commit task never ran")
def _events_sweep(now):
    from loyalty.services.events import events_sweep

    return events_sweep(now=now)


@job("idempotency_purge", every=crontab(minute=30), description="Forget idempotency keys older than the TTL")
def _idempotency_purge(now):
    from loyalty.services.settlement import idempotency_records_purge

    return idempotency_records_purge(now)


@job("challenges_close", every=crontab(minute=40, hour="*/3"), description="Close challenges past their grace period")
def _challenges_close(now):
    from loyalty.services.gamification import challenges_close

    return challenges_close(now)


@job("webhooks_deliver", every=schedule(60), description="Deliver webhooks whose next attempt is due")
def _webhooks_deliver(now):
    from loyalty.services.webhooks import webhooks_deliver_due

    return webhooks_deliver_due(now)


@job("points_expiring", every=crontab(minute=15, hour=7), description="Announce points expiring in 30 days")
def _points_expiring(now):
    from loyalty.services.webhooks import points_expiring_announce

    return points_expiring_announce(now)


@job("metrics_snapshot", every=crontab(minute=45, hour=1), description="Store the nightly retention metrics snapshot")
def _metrics_snapshot(now):
    from loyalty.services.metrics import metrics_snapshots_run

    return metrics_snapshots_run(now)
