"""Webhooks to a real HTTP receiver on loopback, started by the test."""

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from loyalty.models import DeliveryStatus, Event, WebhookDelivery
from loyalty.services.events import events_process
from loyalty.services.webhooks import (
    points_expiring_announce,
    webhook_deliver,
    webhook_endpoint_create,
    webhook_resend,
    webhook_secret_rotate,
    webhook_signature_verify,
)
from tests.conftest import JUNE
from tests.factories import place_order


class Receiver:
    """A webhook receiver: answers with the given statuses in turn (then 200), records requests."""

    def __init__(self, statuses=()):
        self.statuses = list(statuses)
        self.requests: list[tuple[dict, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = []

    def make(statuses=()):
        made.append(Receiver(statuses))
        return made[-1]

    yield make
    for r in made:
        r.close()


def order_and_process(program, member, now=JUNE):
    place_order(program, member, "100.00", placed_at=now)
    events_process(
        event_ids=list(Event.objects.filter(processed_at__isnull=True).values_list("pk", flat=True)), now=now
    )
    return WebhookDelivery.objects.get(event__type="points.earned")


def test_a_signed_event_after_an_order(program, member, receiver):
    hooks = receiver()
    endpoint = webhook_endpoint_create(program=program, url=hooks.url, events=["points.earned"])
    delivery = order_and_process(program, member)

    assert webhook_deliver(delivery_id=delivery.pk, now=JUNE) == DeliveryStatus.DELIVERED

    [(headers, body)] = hooks.requests
    assert webhook_signature_verify(body=body, header=headers["Loyalty-Signature"], secret=endpoint.secret, now=JUNE)
    assert not webhook_signature_verify(
        body=body + b" ", header=headers["Loyalty-Signature"], secret=endpoint.secret, now=JUNE
    )
    payload = json.loads(body)
    assert (payload["type"], payload["member"], payload["data"]["points"]) == ("points.earned", "anna", 100)
    assert payload["id"] == f"evt_{delivery.event_id}" == headers["Loyalty-Event-Id"]


def test_500_three_times_then_200_arrives_on_the_4th_attempt_with_the_same_event_id(program, member, receiver):
    hooks = receiver([500, 500, 500])
    webhook_endpoint_create(program=program, url=hooks.url, events=["points.earned"])
    delivery = order_and_process(program, member)

    now, statuses = JUNE, []
    for _ in range(4):
        statuses.append(webhook_deliver(delivery_id=delivery.pk, now=now))
        delivery.refresh_from_db()
        assert webhook_deliver(delivery_id=delivery.pk, now=now) == statuses[-1]  # not due again yet
        now = delivery.next_attempt_at
    assert statuses == ["pending", "pending", "pending", "delivered"]
    assert delivery.attempts == 4 and len(hooks.requests) == 4
    assert len({json.loads(body)["id"] for _, body in hooks.requests}) == 1


def test_retries_back_off_and_give_up_after_24_hours(program, member, receiver):
    hooks = receiver([503] * 100)
    webhook_endpoint_create(program=program, url=hooks.url, events=["points.earned"])
    delivery = order_and_process(program, member)
    now, waits = JUNE, []
    while webhook_deliver(delivery_id=delivery.pk, now=now) == DeliveryStatus.PENDING:
        delivery.refresh_from_db()
        waits.append(delivery.next_attempt_at - now)
        now = delivery.next_attempt_at
    assert waits[:4] == [timedelta(seconds=s) for s in (30, 60, 120, 240)] and max(waits) == timedelta(hours=1)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and now - JUNE >= timedelta(hours=24)
    # staff resend: same event id, delivered now that the receiver is back
    hooks.statuses = []
    webhook_resend(delivery=delivery, now=now)
    assert webhook_deliver(delivery_id=delivery.pk, now=now) == DeliveryStatus.DELIVERED
    assert json.loads(hooks.requests[-1][1])["id"] == f"evt_{delivery.event_id}"


def test_an_unreachable_receiver_is_retried(program, member):
    webhook_endpoint_create(program=program, url="http://127.0.0.1:9/nothing", events=["points.earned"])
    delivery = order_and_process(program, member)
    assert webhook_deliver(delivery_id=delivery.pk, now=JUNE) == DeliveryStatus.PENDING
    delivery.refresh_from_db()
    assert delivery.last_error.startswith("ConnectError")


def test_secret_rotation_keeps_the_old_secret_valid_for_24_hours(program, member, receiver):
    hooks = receiver()
    endpoint = webhook_endpoint_create(program=program, url=hooks.url, events=["points.earned", "points.matured"])
    old = endpoint.secret
    new = webhook_secret_rotate(endpoint=endpoint, now=JUNE)
    delivery = order_and_process(program, member)
    webhook_deliver(delivery_id=delivery.pk, now=JUNE + timedelta(hours=1))
    headers, body = hooks.requests[-1]
    assert headers["Loyalty-Signature"].count("v1=") == 2
    for secret in (old, new):
        assert webhook_signature_verify(
            body=body, header=headers["Loyalty-Signature"], secret=secret, now=JUNE + timedelta(hours=1)
        )
    resent = webhook_resend(delivery=delivery, now=JUNE + timedelta(hours=25))
    webhook_deliver(delivery_id=resent.pk, now=JUNE + timedelta(hours=25))
    headers, body = hooks.requests[-1]
    assert headers["Loyalty-Signature"].count("v1=") == 1
    assert not webhook_signature_verify(
        body=body, header=headers["Loyalty-Signature"], secret=old, now=JUNE + timedelta(hours=25)
    )


def test_unsubscribed_events_are_not_sent_and_an_event_processed_twice_is_delivered_once(program, member, receiver):
    hooks = receiver()
    webhook_endpoint_create(program=program, url=hooks.url, events=["points.earned"])
    place_order(program, member, "100.00", placed_at=JUNE)
    event = Event.objects.get(type="points.earned")
    from loyalty.services.webhooks import webhooks_enqueue

    webhooks_enqueue(event, now=JUNE)
    webhooks_enqueue(event, now=JUNE)
    webhooks_enqueue(Event.objects.get(type="order.placed"), now=JUNE)
    assert WebhookDelivery.objects.count() == 1


def test_points_expiring_is_announced_30_days_before_once(program, member):
    place_order(program, member, "100.00", placed_at=JUNE)  # expires 2027-12-15 12:00 (18 months of inactivity)
    day = JUNE.replace(year=2027, month=11, day=15, hour=11)
    assert points_expiring_announce(day) == 1
    assert points_expiring_announce(day) == 0
    event = Event.objects.get(type="points.expiring")
    assert event.properties["points"] == 100


def test_an_order_reaches_the_receiver_through_the_after_commit_tasks(
    program, member, receiver, django_capture_on_commit_callbacks
):
    # The whole path, as the embedded (eager) Celery runs it: order -> outbox event -> after-commit
    # processing -> one delivery -> the delivery task -> the receiver.
    hooks = receiver()
    endpoint = webhook_endpoint_create(program=program, url=hooks.url, events=["points.earned"])
    with django_capture_on_commit_callbacks(execute=True):
        place_order(program, member, "100.00", placed_at=JUNE)
    [(headers, body)] = hooks.requests
    assert json.loads(body)["type"] == "points.earned"
    from django.utils import timezone

    assert webhook_signature_verify(
        body=body, header=headers["Loyalty-Signature"], secret=endpoint.secret, now=timezone.now()
    )
    assert WebhookDelivery.objects.get().status == DeliveryStatus.DELIVERED


def test_each_attempt_waits_at_most_10_seconds(program, member, monkeypatch):
    from loyalty.services import webhooks

    # The attempt passes a 10 s timeout to the HTTP client...
    seen = {}

    class Client:
        def post(self, url, **kwargs):
            seen.update(kwargs)
            raise webhooks.httpx.ReadTimeout("slow")

    webhook_endpoint_create(program=program, url="http://127.0.0.1:9/hooks", events=["points.earned"])
    delivery = order_and_process(program, member)
    assert webhook_deliver(delivery_id=delivery.pk, now=JUNE, client=Client()) == DeliveryStatus.PENDING
    assert seen["timeout"] == webhooks.TIMEOUT_SECONDS == 10
    delivery.refresh_from_db()
    assert delivery.last_error.startswith("ReadTimeout") and delivery.next_attempt_at == JUNE + timedelta(seconds=30)


def test_a_receiver_slower_than_the_timeout_is_cut_off_and_retried(program, member, receiver, monkeypatch):
    import time

    from loyalty.services import webhooks

    monkeypatch.setattr(webhooks, "TIMEOUT_SECONDS", 0.3)  # the real 10 s, scaled down
    hooks = receiver()
    original = hooks.server.RequestHandlerClass.do_POST

    def slow(handler):
        time.sleep(1)
        original(handler)

    monkeypatch.setattr(hooks.server.RequestHandlerClass, "do_POST", slow)
    webhook_endpoint_create(program=program, url=hooks.url, events=["points.earned"])
    delivery = order_and_process(program, member)
    started = time.monotonic()
    assert webhook_deliver(delivery_id=delivery.pk, now=JUNE) == DeliveryStatus.PENDING
    assert time.monotonic() - started < 0.9
    delivery.refresh_from_db()
    assert delivery.last_error.startswith("ReadTimeout") and delivery.attempts == 1
