"""Events: custom events from the shop, and processing of the outbox after commit.

Domain events are written by the Book in the same transaction as the change; after commit a
Celery task processes them (badges, challenges, webhooks). A sweep job picks up any event whose
task never ran (broker down, worker killed), so nothing is lost."""

from collections.abc import Callable
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import TypeVar

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from loyalty.models import Event, Program
from loyalty.selectors.members import member_get

T = TypeVar("T")
_task_memo: ContextVar[dict | None] = ContextVar("events_task_memo", default=None)


def task_memo(key: tuple, compute: Callable[[], T]) -> T:
    """Within one `events_process` call (one task), what every event would read alike (the
    program's badge and challenge definitions, its webhook endpoints) is read once; a maturity batch
    carries dozens of events. Outside a call, `compute()` runs every time."""
    memo = _task_memo.get()
    if memo is None:
        return compute()
    if key not in memo:
        memo[key] = compute()
    return memo[key]


# What consumes events, in order: each is `processor(event, now=...)` and must be idempotent.
PROCESSORS = [
    "loyalty.services.gamification.gamification_process",
    "loyalty.services.webhooks.webhooks_enqueue",
]


def event_record(
    *,
    program: Program,
    member_external_id: str,
    type: str,
    occurred_at: datetime | None = None,
    properties: dict | None = None,
    external_id: str | None = None,
    now: datetime | None = None,
) -> tuple[Event, bool]:
    """Store a custom event; -> (event, created). An event id seen before is ignored."""
    now = now or timezone.now()
    member = member_get(program=program, external_id=member_external_id)
    if external_id:
        existing = Event.objects.filter(program=program, external_id=external_id).first()
        if existing:
            return existing, False
    try:
        with transaction.atomic():
            event = Event.objects.create(
                program=program,
                member=member,
                type=type,
                occurred_at=occurred_at or now,
                properties=properties or {},
                external_id=external_id or None,
                custom=True,
            )
            transaction.on_commit(lambda: events_dispatch(event_ids=[event.pk]))
    except IntegrityError:
        return Event.objects.get(program=program, external_id=external_id), False
    return event, True


def events_dispatch(*, event_ids: list[int]) -> None:
    """Hand events to the worker (in-process when Celery runs eagerly)."""
    from loyalty.tasks import events_process_task

    events_process_task.delay(event_ids)


def events_process(*, event_ids: list[int], now: datetime | None = None) -> int:
    """Run every processor over the events not processed yet; -> how many were processed."""
    now = now or timezone.now()
    done = 0
    token = _task_memo.set({})
    try:
        done = _events_process(event_ids, now)
    finally:
        _task_memo.reset(token)
    return done


def _events_process(event_ids: list[int], now: datetime) -> int:
    done = 0
    for event_id in event_ids:
        with transaction.atomic():
            event = (
                Event.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("member", "program")
                .filter(pk=event_id, processed_at__isnull=True)
                .first()
            )
            if event is None:  # processed already, or being processed by another worker
                continue
            for processor in PROCESSORS:
                import_string(processor)(event, now=now)
            event.processed_at = now
            event.save(update_fields=["processed_at"])
            done += 1
    return done


def events_sweep(*, now: datetime) -> int:
    """Process events whose after-commit task never ran (older than a minute)."""
    ids = list(
        Event.objects.filter(processed_at__isnull=True, created_at__lte=now - timedelta(minutes=1))
        .order_by("id")
        .values_list("id", flat=True)[:5000]
    )
    return events_process(event_ids=ids, now=now)


def events_create_once(events: list[Event]) -> int:
    """Insert events whose `external_id` is new (announcements made once); -> how many were new."""
    ids = [e.external_id for e in events]
    seen = set(Event.objects.filter(external_id__in=ids).values_list("program_id", "external_id"))
    new = [e for e in events if (e.program_id, e.external_id) not in seen]
    Event.objects.bulk_create(new, ignore_conflicts=True)  # a concurrent run: the constraint decides
    return len(new)
