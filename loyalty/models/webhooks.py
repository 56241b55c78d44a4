"""Webhooks: endpoints staff register, and the deliveries of events to them.

Events are the outbox (written in the same transaction as the change); after commit each event
fans out to one delivery per subscribed endpoint, delivered signed with retries."""

from django.db import models

from .events import Event
from .program import Program

WEBHOOK_EVENTS = [
    "points.earned",
    "points.matured",
    "points.expiring",
    "points.expired",
    "redemption.captured",
    "tier.changed",
    "referral.qualified",
    "badge.awarded",
    "challenge.completed",
    "member.erased",
    "winback.granted",
]


class WebhookEndpoint(models.Model):
    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=500)
    events = models.JSONField(default=list, help_text=f"Any of: {', '.join(WEBHOOK_EVENTS)}")
    secret = models.CharField(max_length=80, editable=False)
    previous_secret = models.CharField(max_length=80, blank=True, editable=False)
    previous_secret_until = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="The old secret also signs until then (24 h)."
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return self.url


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed (gave up after 24 h)"


class WebhookDelivery(models.Model):
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField()
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        constraints = [models.UniqueConstraint(fields=["endpoint", "event"], name="one_delivery_per_event")]
        indexes = [models.Index(fields=["next_attempt_at"], condition=models.Q(status="pending"), name="delivery_due")]

    def __str__(self):
        return f"{self.event_id} -> {self.endpoint_id} ({self.status})"
