"""Badges and challenges: data staff define, evaluated from events (loyalty/rules/criteria.py).

A badge is awarded once per member (a unique constraint). A challenge has a window, optional
opt-in, a goal, a reward (points and/or a badge), optional repeat per month, and progress per member
and period; it pays once per member and period. Awards stand when a refund later undoes the
criterion: the member did reach it, and taking back a badge is not worth the surprise."""

import logging
import uuid
from decimal import Decimal

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Q

from .ledger import Transaction
from .member import Member
from .program import Program

logger = logging.getLogger(__name__)


class CriterionKind(models.TextChoices):
    ORDER_COUNT = "order_count", "Number of orders"
    SPEND = "spend", "Qualifying spend (base currency)"
    CATEGORY_SPEND = "category_spend", "Spend in a category (base currency)"
    CURRENCIES = "currencies", "Different currencies ordered in"
    REFERRALS = "referrals", "Referrals qualified"
    EVENT_COUNT = "event_count", "Custom events of a type (e.g. review.posted)"
    TIER = "tier", "Tier reached"
    STREAK = "streak", "Consecutive calendar months with an order"
    NONE = "none", "None: given only by a challenge or staff"


class Counts(models.TextChoices):
    PLACED = "placed", "Orders count when placed (refunds and cancels reduce progress)"
    MATURED = "matured", "Orders count once past the return window"


def _version_key(program_id: int) -> str:
    return f"gamification-definitions:{program_id}"


def definitions_version(program_id: int) -> str | None:
    """The version of a program's badge and challenge definitions (in the shared cache): workers keep
    the definitions they read until it changes. Unknown (a cache emptied) is a new version; None
    when the cache cannot be reached (then nothing is kept)."""
    key = _version_key(program_id)
    try:
        version = cache.get(key)
        if version is None:
            cache.add(key, uuid.uuid4().hex, None)
            version = cache.get(key)
    except Exception:  # the cache is an optimisation: without it the definitions are read every time
        logger.warning("No cache for the gamification definitions' version", exc_info=True)
        return None
    return version


def definitions_changed(program_id: int) -> None:
    """A badge or challenge was saved or deleted: a new version now, and again at commit (a worker
    that read the old rows in between reads them again)."""

    def bump():
        try:
            cache.set(_version_key(program_id), uuid.uuid4().hex, None)
        except Exception:  # workers then keep what they read for DEFINITIONS_MAX_AGE at most
            logger.warning("Could not record a change of gamification definitions", exc_info=True)

    bump()
    transaction.on_commit(bump)


class Criterion(models.Model):
    """What must be reached: a kind (its strategy class), a target and the kind's parameter."""

    kind = models.CharField(max_length=16, choices=CriterionKind.choices)
    target = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("1"))
    category = models.CharField(max_length=64, blank=True, help_text="Category spend: the category.")
    event_type = models.CharField(max_length=64, blank=True, help_text="Event count: the event type.")
    tier = models.ForeignKey(
        "tiers.Tier",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Tier reached: the tier (or any above it).",
    )
    counts = models.CharField(max_length=8, choices=Counts.choices, default=Counts.MATURED)

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        definitions_changed(self.program_id)

    def delete(self, *args, **kwargs):
        program_id = self.program_id
        result = super().delete(*args, **kwargs)
        definitions_changed(program_id)
        return result

    def clean(self):
        from loyalty.rules.criteria import KINDS

        problems = KINDS[self.kind].problems(self) if self.kind in KINDS else {"kind": "Unknown kind."}
        if problems:
            raise ValidationError(problems)


class Badge(Criterion):
    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="badges")
    code = models.SlugField(max_length=40)
    name = models.CharField(max_length=80)
    description = models.CharField(max_length=240, blank=True)
    icon = models.CharField(max_length=8, blank=True, help_text="An emoji shown in the portal.")
    starts_at = models.DateTimeField(null=True, blank=True, help_text="Only activity from then counts (optional).")
    ends_at = models.DateTimeField(null=True, blank=True, help_text="Only activity before then counts (optional).")
    points = models.PositiveIntegerField(default=0, help_text="Points given with the badge (optional).")
    active = models.BooleanField(default=True)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["program", "position", "id"]
        constraints = [models.UniqueConstraint(fields=["program", "code"], name="badge_code_unique")]

    def __str__(self):
        return self.name


class BadgeAward(models.Model):
    badge = models.ForeignKey(Badge, on_delete=models.PROTECT, related_name="awards")
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="badge_awards")
    awarded_at = models.DateTimeField()
    value = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("0"))
    source = models.CharField(max_length=80, blank=True, help_text="criterion, a challenge, or staff")
    transaction = models.ForeignKey(Transaction, null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["badge", "member"], name="badge_once_per_member")]
        indexes = [models.Index(fields=["member", "-awarded_at"], name="badgeaward_member")]

    def __str__(self):
        return f"{self.badge_id} -> {self.member_id}"


class Repeat(models.TextChoices):
    NONE = "none", "Once over the whole window"
    MONTH = "month", "Every calendar month of the window"


class Challenge(Criterion):
    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="challenges")
    code = models.SlugField(max_length=40)
    name = models.CharField(max_length=80)
    description = models.CharField(max_length=240, blank=True)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField(help_text="Exclusive.")
    repeat = models.CharField(max_length=8, choices=Repeat.choices, default=Repeat.NONE)
    opt_in = models.BooleanField(default=False, help_text="Members must join; activity counts from then.")
    reward_points = models.PositiveIntegerField(default=0)
    reward_badge = models.ForeignKey(Badge, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    leaderboard_size = models.PositiveSmallIntegerField(default=10, help_text="0: no leaderboard.")
    active = models.BooleanField(default=True)
    closed_at = models.DateTimeField(null=True, blank=True, help_text="Final: set by the closing job.")

    class Meta:
        ordering = ["program", "starts_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["program", "code"], name="challenge_code_unique"),
            models.CheckConstraint(condition=Q(ends_at__gt=models.F("starts_at")), name="challenge_window"),
        ]

    def __str__(self):
        return self.name

    def clean(self):
        errors = {}
        try:
            super().clean()
        except ValidationError as exc:
            errors.update(exc.message_dict)
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            errors["ends_at"] = "The window must end after it starts."
        if not (self.reward_points or self.reward_badge_id):
            errors["reward_points"] = "A challenge needs a reward: points, a badge, or both."
        if self.kind == CriterionKind.NONE:
            errors["kind"] = "A challenge needs a goal."
        if not errors and self.kind == CriterionKind.STREAK and self.starts_at and self.ends_at:
            from loyalty.rules.criteria import months_spanned

            if months_spanned(self.starts_at, self.ends_at, self.repeat) < self.target:
                errors["target"] = "The window has fewer months than the streak asks for: it cannot be met."
        if errors:
            raise ValidationError(errors)


class ChallengeProgress(models.Model):
    """A member's progress in one period of a challenge (the whole window, or one month)."""

    challenge = models.ForeignKey(Challenge, on_delete=models.CASCADE, related_name="progress")
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="challenge_progress")
    period_start = models.DateTimeField()
    joined_at = models.DateTimeField(null=True, blank=True)
    value = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("0"))
    reached_at = models.DateTimeField(null=True, blank=True, help_text="When the current value was reached.")
    completed_at = models.DateTimeField(null=True, blank=True)
    transaction = models.ForeignKey(Transaction, null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        verbose_name_plural = "challenge progress"
        constraints = [
            models.UniqueConstraint(fields=["challenge", "member", "period_start"], name="progress_once_per_period")
        ]
        indexes = [models.Index(fields=["challenge", "period_start", "-value", "reached_at"], name="leaderboard")]

    def __str__(self):
        return f"{self.challenge_id}/{self.member_id}: {self.value}"
