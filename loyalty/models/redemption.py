from django.db import models
from djmoney.models.fields import MoneyField

from .member import Member
from .orders import AMOUNT
from .program import Asset, Program


class RedemptionStatus(models.TextChoices):
    HELD = "held", "Held"
    CAPTURED = "captured", "Captured"
    VOIDED = "voided", "Voided"
    EXPIRED = "expired", "Expired (voided by the system)"


class Redemption(models.Model):
    """Points as payment at checkout: held (available -> held) with a time to live, then captured
    (held -> redeemed) or voided (held -> available)."""

    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="redemptions")
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="redemptions")
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="+")
    points = models.BigIntegerField()
    value = MoneyField(help_text="What the points pay, in the base currency.", **AMOUNT)
    status = models.CharField(max_length=10, choices=RedemptionStatus.choices, default=RedemptionStatus.HELD)
    order_external_id = models.CharField(max_length=128, blank=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    settled_at = models.DateTimeField(null=True, blank=True, help_text="Captured, voided or expired at.")

    class Meta:
        indexes = [
            models.Index(fields=["expires_at"], condition=models.Q(status="held"), name="redemption_stale"),
            models.Index(fields=["program", "order_external_id"], name="redemption_order"),
        ]
        constraints = [models.CheckConstraint(condition=models.Q(points__gt=0), name="redemption_points_positive")]

    def __str__(self):
        return f"#{self.pk} {self.points} {self.asset_id} {self.status}"
