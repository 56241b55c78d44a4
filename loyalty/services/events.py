"""Events: custom events from the shop, and processing of the outbox after commit.

Domain events are written by the Book in the same transaction as the change; after commit a
Celery task processes them (badges, challenges, webhooks). A sweep job picks up any event whose
task never ran (broker down, worker killed), so nothing is lost."""

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import TypeVar

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from loyalty.models import Event, Program
from loyalty.selectors.members import member_get

T = TypeVar("T")
logger = logging.getLogger(__name__)
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


# What consumes events, in order: each is `processor(events, now=...)`, given events of one program
# (of up to CHUNK members, in id order) inside the transaction that marks them processed, and must
# be idempotent.
PROCESSORS = [
    "loyalty.services.gamification.gamification_process",
    "loyalty.services.webhooks.webhooks_events_enqueue",
]
CHUNK = 100  # members whose events are processed in one transaction (under their locks, together)


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


_deferred: ContextVar[bool] = ContextVar("events_deferred", default=False)


@contextmanager
def events_deferred() -> Iterator[None]:
    """Inside it, events committed are not handed to the worker: whoever opened it processes them
    (`events_process` with its own `now`). A simulation whose clock is not the wall clock (the
    demo's synthetic history) uses it, so badges and challenges are evaluated as of its time."""
    token = _deferred.set(True)
    try:
        yield
    finally:
        _deferred.reset(token)


def events_dispatch(*, event_ids: list[int]) -> None:
    """Hand events to the worker (in-process when Celery runs eagerly), unless deferred."""
    if _deferred.get():
        return
    from loyalty.tasks import events_process_task

    events_process_task.delay(event_ids)


def events_process(*, event_ids: list[int], now: datetime | None = None) -> int:
    """Run every processor over the events not processed yet; -> how many were processed.

    A member's events are processed together, and the members of a program in chunks of CHUNK, each
    chunk in one transaction: badges and challenges are recomputed from the database, so one
    evaluation for a checkout's `order.placed`, `points.earned` and `tier.changed` gives what three
    would, and a maturity batch of hundreds of members costs a few queries per chunk."""
    now = now or timezone.now()
    token = _task_memo.set({})
    try:
        return _events_process(event_ids, now)
    finally:
        _task_memo.reset(token)


def _events_process(event_ids: list[int], now: datetime) -> int:
    groups: dict[int, dict[int | None, list[int]]] = {}  # program -> member -> its events
    unprocessed = Event.objects.filter(pk__in=event_ids, processed_at__isnull=True).order_by("pk")
    for pk, program_id, member_id in unprocessed.values_list("pk", "program_id", "member_id"):
        groups.setdefault(program_id, {}).setdefault(member_id, []).append(pk)
    done, failed = 0, None
    for members in groups.values():
        lists = list(members.values())
        for start in range(0, len(lists), CHUNK):
            try:
                done += _chunk_process(lists[start : start + CHUNK], now)
            except Exception as error:  # the next chunks go on; raised once they are done
                failed = failed or error
    if failed is not None:
        raise failed
    return done


def _chunk_process(members: list[list[int]], now: datetime) -> int:
    """One transaction for the events of several members. If it fails, each member is retried on
    its own, so that one member's failing events hold back nobody else's (the error is raised after).
    An error raised after the chunk committed (by work its commit started: an event it raised,
    processed at once when tasks run in-process) is raised as it is: there is nothing to retry."""
    committed: list[bool] = []
    try:
        return _events_commit([pk for ids in members for pk in ids], now, committed)
    except Exception:
        if committed or len(members) == 1:
            raise
        logger.exception("Events of %d members failed together; each member is retried alone", len(members))
    done, failed = 0, None
    for ids in members:
        try:
            done += _events_commit(ids, now, [])
        except Exception as error:  # raised below, once the others are done
            failed = failed or error
    if failed is not None:
        raise failed
    return done


def _events_commit(ids: list[int], now: datetime, committed: list[bool]) -> int:
    with transaction.atomic():
        # the first thing done at commit: what fails after it is not this transaction's failure
        transaction.on_commit(lambda: committed.append(True))
        events = list(
            Event.objects.select_for_update(skip_locked=True)
            .filter(pk__in=ids, processed_at__isnull=True)
            .order_by("pk")
        )
        if not events:  # processed already, or being processed by another worker
            return 0
        for processor in PROCESSORS:
            import_string(processor)(events, now=now)
        Event.objects.filter(pk__in=[e.pk for e in events]).update(processed_at=now)
        for event in events:
            event.processed_at = now
    return len(events)


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
