"""Celery tasks: thin. They take ids, call a service; the service makes a re-run harmless."""

from celery import shared_task


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=5)
def events_process_task(event_ids: list[int]) -> int:
    from loyalty.services.events import events_process

    return events_process(event_ids=event_ids)


@shared_task(acks_late=True)
def job_run_task(name: str, as_of: str | None = None) -> dict:
    """Run one periodic job (beat schedules one of these per job)."""
    from datetime import datetime

    from django.utils import timezone

    from loyalty.jobs import job_run

    now = datetime.fromisoformat(as_of) if as_of else timezone.now()
    return job_run(name, now=now)


@shared_task(acks_late=True, time_limit=60, soft_time_limit=50)  # below the global soft limit (14 min)
def webhook_deliver_task(delivery_id: int) -> str:
    """One delivery attempt; retries are scheduled on the row (next_attempt_at), not in Celery."""
    from loyalty.services.webhooks import webhook_deliver

    return webhook_deliver(delivery_id=delivery_id)


@shared_task(acks_late=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=5)
def portal_invitation_task(member_id: int) -> bool:
    """The "set your password" e-mail sent at enrollment."""
    from loyalty.portal.services import portal_invitation_send

    return portal_invitation_send(member_id=member_id)
