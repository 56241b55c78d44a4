from django.db import models
from django.db.models import Q
from djmoney.models.fields import MoneyField

from .ledger import Transaction
from .member import Member
from .orders import AMOUNT
from .program import Asset, Program


class LimitPeriod(models.TextChoices):
    DAY = "day", "Per day"
    MONTH = "month", "Per calendar month"
    YEAR = "year", "Per calendar year"
    EVER = "ever", "Ever"


class RewardKind(models.TextChoices):
    PRODUCT = "product", "Product or sample"
    DISCOUNT = "discount", "Money off"
    BIRTHDAY_GIFT = "birthday_gift", "Birthday gift"
    EXPERIENCE = "experience", "Experience"


class Reward(models.Model):
    """A catalog item a member claims with points; a claim issues a unique coupon code."""

    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="rewards")
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=16, choices=RewardKind.choices, default=RewardKind.PRODUCT)
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="+")
    cost = models.PositiveIntegerField(help_text="Points (0 for gifts).")
    value = MoneyField(null=True, blank=True, help_text="Money off, for discount rewards.", **AMOUNT)
    min_tier = models.ForeignKey(
        "tiers.Tier",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Only members of this tier or above may claim it.",
    )
    stock = models.PositiveIntegerField(null=True, blank=True, help_text="Left to give; empty: unlimited.")
    limit_per_member = models.PositiveIntegerField(null=True, blank=True)
    limit_period = models.CharField(max_length=8, choices=LimitPeriod.choices, default=LimitPeriod.EVER)
    coupon_prefix = models.CharField(max_length=12, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["cost", "id"]

    def __str__(self):
        return self.name


class RewardClaim(models.Model):
    reward = models.ForeignKey(Reward, on_delete=models.PROTECT, related_name="claims")
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="reward_claims")
    coupon_code = models.CharField(max_length=40, unique=True)
    points = models.PositiveIntegerField()
    transaction = models.OneToOneField(
        Transaction, null=True, blank=True, on_delete=models.PROTECT, related_name="reward_claim"
    )
    claimed_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["member", "reward", "claimed_at"], name="claim_member_reward_time")]
        constraints = [models.CheckConstraint(condition=Q(points__gte=0), name="claim_points_not_negative")]

    def __str__(self):
        return self.coupon_code
