from decimal import Decimal

from django.conf import settings
from django.db import models

from loyalty.models import Member, Program, Transaction


class ReferralCode(models.Model):
    """A member's share code. One active code per member; a regenerated or erased member's old code
    is retired and never valid again (and never reissued: codes are unique for ever)."""

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="+")
    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="referral_codes")
    code = models.CharField(max_length=16)
    created_at = models.DateTimeField()
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["program", "code"], name="referral_code_unique"),
            models.UniqueConstraint(
                fields=["member"], condition=models.Q(retired_at__isnull=True), name="one_active_code_per_member"
            ),
        ]

    def __str__(self):
        return self.code


class ReferralPolicy(models.Model):
    """A program's referral rules (demo: 500 / 250 points, first order of 25 USD, 10 a month)."""

    program = models.OneToOneField(Program, on_delete=models.CASCADE, related_name="referral_policy")
    active = models.BooleanField(default=True)
    referrer_points = models.PositiveIntegerField(default=500)
    referee_points = models.PositiveIntegerField(default=250)
    min_order = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        default=Decimal("25"),
        help_text="The referee's first order of at least this qualifying spend (base currency) counts.",
    )
    monthly_cap = models.PositiveIntegerField(
        default=10, help_text="Rewarded referrals per referrer per calendar month; more are recorded, not paid."
    )

    class Meta:
        verbose_name_plural = "referral policies"

    def __str__(self):
        return f"{self.program.code}: {self.referrer_points}/{self.referee_points}"


class ReferralStatus(models.TextChoices):
    PENDING = "pending", "Pending (waiting for the first order to mature)"
    HELD = "held", "Held for staff review"
    QUALIFIED = "qualified", "Qualified and rewarded"
    REJECTED = "rejected", "Rejected"


class RejectionReason(models.TextChoices):
    SELF_EMAIL = "self_referral_email", "Self-referral: same e-mail address"
    SELF_PAYMENT = "self_referral_payment", "Self-referral: same payment method as the referrer"
    SELF_DEVICE = "self_referral_device", "Self-referral: same device as the referrer"
    EXISTING_CUSTOMER = "existing_customer", "The referee was already a customer"
    OVER_CAP = "over_cap", "The referrer is over the monthly cap"
    REFERRER_CLOSED = "referrer_closed", "The referrer's account is closed"
    FIRST_ORDER_REFUNDED = "first_order_refunded", "The first order was refunded below the minimum"
    FIRST_ORDER_CANCELLED = "first_order_cancelled", "The first order was cancelled"
    STAFF = "staff", "Rejected by staff"


class Referral(models.Model):
    """A referee who enrolled with a referrer's code. One referrer per referee."""

    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="+")
    referrer = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="referrals_made")
    referee = models.OneToOneField(Member, on_delete=models.PROTECT, related_name="referral")
    code = models.CharField(max_length=16)
    status = models.CharField(max_length=10, choices=ReferralStatus.choices, default=ReferralStatus.PENDING)
    reason = models.CharField(max_length=24, choices=RejectionReason.choices, blank=True)
    note = models.CharField(max_length=300, blank=True)
    staff_approved = models.BooleanField(default=False, help_text="Staff cleared it: fraud checks are skipped.")
    payment_fingerprint = models.CharField(max_length=128, blank=True, help_text="Sent with the enrollment")
    device_id = models.CharField(max_length=128, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    order = models.ForeignKey(
        "loyalty.Order",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The referee's first order of at least the minimum.",
    )
    referrer_points = models.PositiveIntegerField(default=0)
    referee_points = models.PositiveIntegerField(default=0)
    referrer_transaction = models.ForeignKey(
        Transaction, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    referee_transaction = models.ForeignKey(
        Transaction, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        permissions = [("decide_referral", "Can hold, approve or reject a referral")]
        indexes = [
            models.Index(fields=["referrer", "status", "decided_at"], name="referral_referrer_status"),
            models.Index(fields=["program", "status"], name="referral_status"),
            models.Index(fields=["program", "created_at"], name="referral_created"),
        ]

    def __str__(self):
        return f"{self.referrer_id} -> {self.referee_id} ({self.status})"
