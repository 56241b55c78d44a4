from django.db import models

from .member import Member
from .program import Program


class Event(models.Model):
    """Something that happened: the single input of badges and challenges, and the outbox webhooks
    are delivered from. Domain events are written in the same transaction as the change; custom
    events come from `POST /api/v1/events/` and are deduplicated by their `external_id`."""

    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="events")
    # No index of its own: event_member_type_time starts with member_id and serves every lookup by member
    # (one index less to write for every event, the outbox's hot path).
    member = models.ForeignKey(
        Member, null=True, blank=True, on_delete=models.PROTECT, related_name="events", db_index=False
    )
    type = models.CharField(max_length=64, help_text="e.g. order.placed, points.matured, review.posted")
    external_id = models.CharField(max_length=128, null=True, blank=True)
    occurred_at = models.DateTimeField()
    properties = models.JSONField(default=dict, blank=True)
    custom = models.BooleanField(default=False, help_text="Sent by the shop, not raised by the engine.")
    created_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["program", "external_id"],
                condition=models.Q(external_id__isnull=False),
                name="event_external_id_unique",
            )
        ]
        indexes = [
            models.Index(fields=["member", "type", "occurred_at"], name="event_member_type_time"),
            models.Index(fields=["id"], condition=models.Q(processed_at__isnull=True), name="event_unprocessed"),
        ]

    def __str__(self):
        return f"{self.type} #{self.pk}"
