"""Webhook delivery: signed, retried with exponential backoff for 24 hours, then marked failed.

- Fan-out: after commit, each event becomes one delivery per active endpoint subscribed to its type
  (a unique constraint: an event processed twice is delivered once).
- Delivery leases the row (next_attempt_at pushed past the timeout) in a short statement, posts
  outside any transaction, then records the result: a worker killed mid-call only delays a retry.
  At-least-once: receivers deduplicate by the event id, which never changes between attempts.
- Signature: `Loyalty-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`; during the
  24 h after a secret rotation a second v1 signs with the old secret.
"""

import hashlib
import hmac
import json
import secrets
from datetime import datetime, timedelta

import httpx
from django.db import transaction
from django.db.models import F, Min, Sum
from django.utils import timezone

from loyalty import errors
from loyalty.models import (
    WEBHOOK_EVENTS,
    DeliveryStatus,
    Event,
    ExpiryPolicy,
    Lot,
    LotState,
    Program,
    WebhookDelivery,
    WebhookEndpoint,
)
from loyalty.services.events import events_create_once, task_memo

TIMEOUT_SECONDS = 10
GIVE_UP_AFTER = timedelta(hours=24)
FIRST_RETRY = timedelta(seconds=30)
LONGEST_WAIT = timedelta(hours=1)
SECRET_OVERLAP = timedelta(hours=24)
SIGNATURE_HEADER = "Loyalty-Signature"


def _new_secret() -> str:
    return f"whsec_{secrets.token_urlsafe(32)}"


def webhook_endpoint_create(*, program: Program, url: str, events: list[str]) -> WebhookEndpoint:
    unknown = sorted(set(events) - set(WEBHOOK_EVENTS))
    if unknown or not events:
        raise errors.InvalidInput(
            f"Unknown event type(s): {', '.join(unknown)}" if unknown else "Choose events",
            errors=[{"field": "events", "message": "unknown or empty"}],
        )
    return WebhookEndpoint.objects.create(program=program, url=url, events=events, secret=_new_secret())


def webhook_secret_rotate(*, endpoint: WebhookEndpoint, now: datetime | None = None) -> str:
    """A new secret; the old one keeps signing (a second v1) for 24 hours."""
    now = now or timezone.now()
    endpoint.previous_secret, endpoint.previous_secret_until = endpoint.secret, now + SECRET_OVERLAP
    endpoint.secret = _new_secret()
    endpoint.save(update_fields=["secret", "previous_secret", "previous_secret_until"])
    return endpoint.secret


def webhook_signature(*, body: bytes, secrets_: list[str], timestamp: int) -> str:
    signed = f"{timestamp}.".encode() + body
    return ",".join(
        [f"t={timestamp}"]
        + [f"v1={hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()}" for secret in secrets_]
    )


def webhook_signature_verify(*, body: bytes, header: str, secret: str, now: datetime, tolerance: int = 300) -> bool:
    """What a receiver does (and the README shows): recompute, compare in constant time, check age."""
    parts = [part.split("=", 1) for part in header.split(",") if "=" in part]
    timestamp = next((int(v) for k, v in parts if k == "t"), None)
    if timestamp is None or abs(now.timestamp() - timestamp) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, v) for k, v in parts if k == "v1")


def webhook_payload(event: Event) -> dict:
    return {
        "id": f"evt_{event.pk}",
        "type": event.type,
        "created_at": event.occurred_at.isoformat(),
        "program": event.program.code,
        "member": event.member.external_id if event.member_id else None,
        "data": event.properties,
    }


# --- fan-out and delivery -----------------------------------------------------------------------
def webhooks_events_enqueue(events: list[Event], *, now: datetime) -> None:
    """The event processor: deliveries for each event, in order."""
    for event in events:
        webhooks_enqueue(event, now=now)


def webhooks_enqueue(event: Event, *, now: datetime) -> None:
    """One delivery per subscribed endpoint, delivered after commit (the program's active endpoints
    are read once per task)."""
    active = task_memo(
        ("webhook-endpoints", event.program_id),
        lambda: list(WebhookEndpoint.objects.filter(program_id=event.program_id, active=True)),
    )
    endpoints = [e for e in active if event.type in e.events]
    if not endpoints:
        return
    WebhookDelivery.objects.bulk_create(
        [WebhookDelivery(endpoint=e, event=event, next_attempt_at=now, created_at=now) for e in endpoints],
        ignore_conflicts=True,
    )
    ids = list(WebhookDelivery.objects.filter(event=event, status=DeliveryStatus.PENDING).values_list("pk", flat=True))

    def send():
        from loyalty.tasks import webhook_deliver_task

        for delivery_id in ids:
            webhook_deliver_task.delay(delivery_id)

    transaction.on_commit(send)


def backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, 4 min ... at most an hour between attempts."""
    return min(FIRST_RETRY * 2 ** max(attempts - 1, 0), LONGEST_WAIT)


def webhook_deliver(*, delivery_id: int, now: datetime | None = None, client: httpx.Client | None = None) -> str:
    """One attempt, if the delivery is due; -> its status afterwards."""
    now = now or timezone.now()
    lease = now + timedelta(seconds=TIMEOUT_SECONDS + 20)
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id, status=DeliveryStatus.PENDING, next_attempt_at__lte=now
    ).update(next_attempt_at=lease, attempts=F("attempts") + 1)
    delivery = WebhookDelivery.objects.select_related("endpoint", "event__program", "event__member").get(pk=delivery_id)
    if not claimed:
        return delivery.status
    endpoint = delivery.endpoint
    body = json.dumps(webhook_payload(delivery.event), separators=(",", ":"), default=str).encode()
    keys = [endpoint.secret] + (
        [endpoint.previous_secret] if endpoint.previous_secret_until and endpoint.previous_secret_until > now else []
    )
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "loyalty-webhooks/1",
        SIGNATURE_HEADER: webhook_signature(body=body, secrets_=keys, timestamp=int(now.timestamp())),
        "Loyalty-Event-Id": f"evt_{delivery.event_id}",
    }
    code, error = None, ""
    try:
        response = (client or httpx).post(endpoint.url, content=body, headers=headers, timeout=TIMEOUT_SECONDS)
        code = response.status_code
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:300]
    delivery.last_status_code, delivery.last_error = code, error or ("" if code and code < 300 else f"HTTP {code}")
    if code is not None and 200 <= code < 300:
        delivery.status, delivery.delivered_at = DeliveryStatus.DELIVERED, now
    elif now - delivery.created_at >= GIVE_UP_AFTER:
        delivery.status = DeliveryStatus.FAILED
    else:
        delivery.next_attempt_at = now + backoff(delivery.attempts)
    delivery.save(update_fields=["status", "delivered_at", "last_status_code", "last_error", "next_attempt_at"])
    return delivery.status


def webhooks_deliver_due(now: datetime) -> int:
    """The job: every delivery whose next attempt is due (a safety net behind the per-event tasks)."""
    due = WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
    done = 0
    with httpx.Client() as client:
        for delivery_id in due.order_by("next_attempt_at").values_list("pk", flat=True)[:1000]:
            webhook_deliver(delivery_id=delivery_id, now=now, client=client)
            done += 1
    return done


def webhook_resend(*, delivery: WebhookDelivery, now: datetime | None = None) -> WebhookDelivery:
    """Staff: send again now (the same event id), whatever happened before."""
    now = now or timezone.now()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=DeliveryStatus.PENDING, next_attempt_at=now, created_at=now
    )
    from loyalty.tasks import webhook_deliver_task

    transaction.on_commit(lambda: webhook_deliver_task.delay(delivery.pk))
    delivery.refresh_from_db()
    return delivery


# --- points.expiring ----------------------------------------------------------------------------
def points_expiring_announce(now: datetime, *, days: int = 30) -> int:
    """Once per member and expiry date, `days` before: a `points.expiring` event (set-based)."""
    start, end = now + timedelta(days=days), now + timedelta(days=days + 1)
    rows = (
        Lot.objects.filter(remaining__gt=0, expires_at__gte=start, expires_at__lt=end)
        .exclude(state=LotState.EXPIRED)
        .exclude(member__program__expiry_policy=ExpiryPolicy.NONE)
        .values("member_id", "member__program_id", "asset__code")
        .annotate(points=Sum("remaining"), at=Min("expires_at"))
    )
    events = [
        Event(
            program_id=row["member__program_id"],
            member_id=row["member_id"],
            type="points.expiring",
            occurred_at=now,
            external_id=f"expiring:{row['member_id']}:{row['asset__code']}:{row['at']:%Y-%m-%d}",
            properties={"points": row["points"], "asset": row["asset__code"], "expires_at": row["at"].isoformat()},
        )
        for row in rows
    ]
    return events_create_once(events)
