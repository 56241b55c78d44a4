from decimal import Decimal

from django.conf import settings
from django.db import models
from djmoney.models.fields import MoneyField

from loyalty.models import Member, Program
from loyalty.models.program import CURRENCY_CHOICES


class Tier(models.Model):
    """A status level members reach by qualifying spend (Insider / VIB / Rouge in the demo)."""

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="tiers")
    code = models.SlugField(max_length=32)
    name = models.CharField(max_length=60)
    rank = models.PositiveSmallIntegerField(help_text="0 is the entry tier everyone has.")
    threshold = MoneyField(
        max_digits=14,
        decimal_places=2,
        default_currency=None,
        currency_choices=CURRENCY_CHOICES,
        help_text="Qualifying spend in the window, in the program's base currency.",
    )
    earn_multiplier = models.DecimalField(max_digits=6, decimal_places=3, default=Decimal("1"))
    birthday_points = models.PositiveIntegerField(
        default=0, help_text="Points a member may take instead of the birthday gift (0: gift only)."
    )
    perks = models.TextField(blank=True, help_text="Shown in the member portal.")

    class Meta:
        ordering = ["program", "rank"]
        constraints = [
            models.UniqueConstraint(fields=["program", "code"], name="tier_code_unique"),
            models.UniqueConstraint(fields=["program", "rank"], name="tier_rank_unique"),
        ]

    def __str__(self):
        return self.name


class TierWindow(models.TextChoices):
    CALENDAR_YEAR = "calendar_year", "Calendar year (status holds until the end of the next year)"
    ROLLING_12_MONTHS = "rolling_12_months", "Rolling 12 months"
    LIFETIME = "lifetime", "Lifetime"


class DowngradePolicy(models.TextChoices):
    ONE_DOWN = "one_down", "At most one tier down per evaluation"
    TO_EARNED = "to_earned", "To the tier the spend supports"


class TierPolicy(models.Model):
    """How a program's tiers are earned and kept."""

    program = models.OneToOneField(Program, on_delete=models.CASCADE, related_name="tier_policy")
    window = models.CharField(max_length=20, choices=TierWindow.choices, default=TierWindow.CALENDAR_YEAR)
    downgrade_policy = models.CharField(
        max_length=12, choices=DowngradePolicy.choices, default=DowngradePolicy.TO_EARNED
    )

    class Meta:
        verbose_name_plural = "tier policies"

    def __str__(self):
        return f"{self.program.code}: {self.window}, {self.downgrade_policy}"


class TierChangeReason(models.TextChoices):
    SPEND = "spend", "Spend crossed a threshold"
    REFUND = "refund", "A refund or cancel lowered the spend"
    YEAR_END = "year_end", "Year-end evaluation"
    WINDOW = "window", "Orders left the rolling window"
    OVERRIDE = "override", "Pinned by staff"
    OVERRIDE_END = "override_end", "Staff pin ended"


class TierChange(models.Model):
    """Tier history: from, to, why, when (and who, for staff pins)."""

    # Indexed once, by (member, newest first): the year-end writes a row per changed member (half a
    # million at 1M members), so no index that only a tier's deletion (PROTECT) would read.
    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="tier_changes", db_index=False)
    from_tier = models.ForeignKey(
        Tier, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    to_tier = models.ForeignKey(Tier, on_delete=models.PROTECT, related_name="+", db_index=False)
    reason = models.CharField(max_length=16, choices=TierChangeReason.choices)
    note = models.CharField(max_length=300, blank=True)
    valid_until = models.DateField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    changed_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["member", "-changed_at"], name="tierchange_member_newest")]

    def __str__(self):
        return f"{self.member_id}: {self.from_tier_id} -> {self.to_tier_id} ({self.reason})"


class TierEvaluation(models.Model):
    """A year-end evaluation that ran (the job runs once per program and year)."""

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="+")
    year = models.PositiveSmallIntegerField(help_text="The year evaluated into (run on its 1 January).")
    members_changed = models.PositiveIntegerField(default=0)
    ran_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["program", "year"], name="tier_evaluation_once")]

    def __str__(self):
        return f"{self.program.code} {self.year}"


class BirthdayChoice(models.TextChoices):
    GIFT = "gift", "The birthday gift"
    POINTS = "points", "Points instead (VIB and above)"


class BirthdayGift(models.Model):
    """A member's birthday reward for one year: the gift (a coupon) or points, taken once."""

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="birthday_gifts")
    year = models.PositiveSmallIntegerField()
    choice = models.CharField(max_length=8, choices=BirthdayChoice.choices)
    points = models.PositiveIntegerField(default=0)
    coupon_code = models.CharField(max_length=40, blank=True)
    taken_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["member", "year"], name="birthday_once_a_year")]

    def __str__(self):
        return f"{self.member_id} {self.year}: {self.choice}"
