from django.conf import settings
from django.db import models
from django.db.models.functions import Lower

from .program import Program


class MemberStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    CLOSED = "closed", "Closed (personal data erased)"


class Member(models.Model):
    """A customer enrolled in one program, addressed by the shop's own id (`external_id`)."""

    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="members")
    external_id = models.CharField(max_length=128)
    email = models.EmailField(max_length=254)
    first_name = models.CharField(max_length=80, blank=True)
    last_name = models.CharField(max_length=80, blank=True)
    birth_date = models.DateField(null=True, blank=True)
    locale = models.CharField(max_length=10, blank=True)
    country = models.CharField(max_length=2, blank=True)
    marketing_opt_in = models.BooleanField(default=False)
    status = models.CharField(max_length=8, choices=MemberStatus.choices, default=MemberStatus.ACTIVE)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="member"
    )
    # Tier status (rules in tiers/): the tier earned by spend and the last date it holds; the tier
    # carried over from the last evaluation (a refund never drops below it); a staff pin.
    tier = models.ForeignKey("tiers.Tier", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    tier_valid_until = models.DateField(null=True, blank=True, help_text="Empty: holds for ever (lifetime).")
    # The floor and the pin are never searched by (only a tier's deletion, PROTECT, would): no index,
    # so the year-end evaluation's update of every due member writes two index entries less each.
    tier_floor = models.ForeignKey(
        "tiers.Tier",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        help_text="Carried over from the last evaluation: refunds never drop the member below it.",
    )
    tier_override = models.ForeignKey(
        "tiers.Tier",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        help_text="Pinned by staff: beats the earned tier until tier_override_until.",
    )
    tier_override_until = models.DateField(null=True, blank=True)
    enrolled_at = models.DateTimeField()
    last_activity_at = models.DateTimeField(
        null=True, blank=True, help_text="Last order or redemption (inactivity expiry counts from it)."
    )
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        permissions = [
            ("adjust_points", "Can adjust points (up to the program's limit)"),
            ("adjust_points_unlimited", "Can adjust points beyond the program's limit"),
            ("pin_tier", "Can pin a member's tier"),
            ("erase_member", "Can export and erase a member's personal data"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["program", "external_id"], name="member_external_id_unique"),
            models.UniqueConstraint("program", Lower("email"), name="member_email_unique"),
        ]
        indexes = [models.Index(Lower("email"), name="member_email_ci")]

    def __str__(self):
        return self.external_id

    @property
    def display_name(self) -> str:
        return " ".join(part for part in (self.first_name, self.last_name) if part) or self.external_id
