"""Webhooks in the staff admin: endpoints registered per program with a generated secret (audited),
the secret rotated (two signatures for 24 hours), the delivery log, and a resend with the same
event id."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group

from loyalty.models import AuditEntry, DeliveryStatus, Event, WebhookDelivery, WebhookEndpoint
from loyalty.services.events import events_process
from loyalty.services.webhooks import webhook_deliver
from tests.conftest import JUNE
from tests.factories import place_order
from tests.loyalty.test_admin import messages_of, url

pytestmark = pytest.mark.usefixtures("june")


@pytest.fixture
def manager_client(client, django_user_model):
    user = django_user_model.objects.create_user("manager", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="manager"))
    client.force_login(user)
    return client


def register(client, program, **overrides):
    data = {"program": program.pk, "url": "https://shop.example.com/hooks", "events": ["points.earned"], "active": "on"}
    return client.post(url(WebhookEndpoint, "add"), data | overrides)


def test_staff_register_an_endpoint_with_a_generated_secret(manager_client, program):
    assert register(manager_client, program).status_code == 302
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret.startswith("whsec_") and endpoint.events == ["points.earned"]
    page = manager_client.get(url(WebhookEndpoint, "change", endpoint.pk)).content.decode()
    assert endpoint.secret in page  # shown to staff who set up the receiving side
    entry = AuditEntry.objects.get()
    assert entry.action == "webhookendpoint.create" and entry.after["url"] == "https://shop.example.com/hooks"


def test_unknown_events_or_a_bad_url_are_refused(manager_client, program):
    bad = register(manager_client, program, events=["points.stolen"])
    assert bad.status_code == 200 and "events" in bad.context["adminform"].form.errors
    assert register(manager_client, program, url="ftp://x.example.com").status_code == 200
    assert not WebhookEndpoint.objects.exists()


def test_rotating_the_secret_keeps_the_old_one_for_24_hours(manager_client, program):
    register(manager_client, program)
    endpoint = WebhookEndpoint.objects.get()
    old = endpoint.secret
    manager_client.post(
        url(WebhookEndpoint, "changelist"), {"action": "rotate_secret", "_selected_action": [endpoint.pk]}
    )
    endpoint.refresh_from_db()
    assert endpoint.secret != old and endpoint.previous_secret == old
    assert endpoint.previous_secret_until == JUNE + timedelta(hours=24)
    assert AuditEntry.objects.filter(action="webhookendpoint.rotate_secret").count() == 1


def test_the_delivery_log_and_a_resend(manager_client, program, member, django_capture_on_commit_callbacks):
    register(manager_client, program, url="http://127.0.0.1:9/nothing")  # nobody listens there
    place_order(program, member, "100.00", placed_at=JUNE)
    events_process(event_ids=list(Event.objects.values_list("pk", flat=True)), now=JUNE)
    delivery = WebhookDelivery.objects.get()
    later = JUNE + timedelta(hours=25)
    while webhook_deliver(delivery_id=delivery.pk, now=later) == DeliveryStatus.PENDING:
        delivery.refresh_from_db()
        later = delivery.next_attempt_at
    listed = manager_client.get(url(WebhookDelivery, "changelist"), {"status__exact": "failed"})
    assert [d.pk for d in listed.context["cl"].result_list] == [delivery.pk]
    assert "evt_" in listed.content.decode()
    assert manager_client.post(url(WebhookDelivery, "change", delivery.pk), {"status": "delivered"}).status_code == 403

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.FAILED, 1)  # a day late: given up at once

    with django_capture_on_commit_callbacks(execute=True):
        done = manager_client.post(
            url(WebhookDelivery, "changelist"), {"action": "resend", "_selected_action": [delivery.pk]}, follow=True
        )
    assert "1 delivery queued again." in messages_of(done)
    delivery.refresh_from_db()  # tried again at once (the task runs eagerly here), still nobody listening
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.PENDING, 2)
    assert delivery.event_id == Event.objects.get(type="points.earned").pk


def test_support_reads_the_log_but_neither_sees_secrets_nor_resends(client, django_user_model, program):
    from loyalty.services.webhooks import webhook_endpoint_create

    endpoint = webhook_endpoint_create(program=program, url="https://x.example.com/h", events=["points.earned"])
    user = django_user_model.objects.create_user("support", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="support"))
    client.force_login(user)
    page = client.get(url(WebhookEndpoint, "change", endpoint.pk))
    assert page.status_code == 200 and endpoint.secret not in page.content.decode()
    assert register(client, program).status_code == 403
    log = client.get(url(WebhookDelivery, "changelist"))
    assert log.status_code == 200
    form = log.context["action_form"]
    assert form is None or "resend" not in dict(form.fields["action"].choices)
