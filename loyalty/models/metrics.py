"""Retention metrics: surveys sent and their answers, win-back offers and who got them, and the
nightly snapshots of the headline metrics (definitions in docs/metrics.md)."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from .ledger import Transaction
from .member import Member
from .program import Asset, Program
from .rewards import Reward, RewardClaim


class SurveyKind(models.TextChoices):
    NPS = "nps", "Net Promoter Score (0-10)"
    CSAT = "csat", "Customer satisfaction (1-5)"
    CES = "ces", "Customer effort (1-7)"


SCORE_RANGE = {SurveyKind.NPS: (0, 10), SurveyKind.CSAT: (1, 5), SurveyKind.CES: (1, 7)}


class SurveySend(models.Model):
    """A survey sent to a member (by the shop's survey tool): the denominator of the response rate."""

    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="+")
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="surveys_sent")
    kind = models.CharField(max_length=8, choices=SurveyKind.choices)
    survey_id = models.CharField(max_length=128, blank=True, help_text="The survey tool's id of the survey.")
    sent_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "survey sent"
        verbose_name_plural = "surveys sent"
        constraints = [
            models.UniqueConstraint(
                fields=["member", "kind", "survey_id"], condition=~Q(survey_id=""), name="survey_sent_once"
            ),
        ]
        indexes = [
            models.Index(fields=["program", "sent_at"], name="survey_send_time"),
            models.Index(fields=["member", "kind", "sent_at"], name="survey_send_member"),
        ]

    def __str__(self):
        return f"{self.kind} {self.survey_id or ''} to {self.member_id}".replace("  ", " ")


class SurveyResponse(models.Model):
    """A member's answer: NPS 0-10, CSAT 1-5 or CES 1-7, with an optional comment."""

    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="+")
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="survey_responses")
    kind = models.CharField(max_length=8, choices=SurveyKind.choices)
    score = models.SmallIntegerField()
    comment = models.TextField(blank=True)
    survey_id = models.CharField(max_length=128, blank=True)
    send = models.OneToOneField(
        SurveySend,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="response",
        help_text="The survey sent that this answers (one answer per survey sent).",
    )
    responded_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(kind="nps", score__gte=0, score__lte=10)
                | Q(kind="csat", score__gte=1, score__lte=5)
                | Q(kind="ces", score__gte=1, score__lte=7),
                name="survey_score_in_range",
            ),
        ]
        indexes = [models.Index(fields=["program", "kind", "responded_at"], name="survey_response_time")]

    def __str__(self):
        return f"{self.kind} {self.score} from {self.member_id}"


class WinbackOfferKind(models.TextChoices):
    POINTS = "points", "Bonus points"
    REWARD = "reward", "A reward (free: a coupon is issued)"


class WinbackOffer(models.Model):
    """What staff give lapsing members to bring them back: bonus points or a free reward."""

    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="winback_offers")
    name = models.CharField(max_length=120)
    kind = models.CharField(max_length=8, choices=WinbackOfferKind.choices, default=WinbackOfferKind.POINTS)
    points = models.PositiveIntegerField(null=True, blank=True, help_text="Bonus points, available at once.")
    asset = models.ForeignKey(
        Asset, null=True, blank=True, on_delete=models.PROTECT, related_name="+", help_text="Empty: the main points."
    )
    reward = models.ForeignKey(
        Reward, null=True, blank=True, on_delete=models.PROTECT, related_name="+", help_text="Given free of points."
    )
    message = models.CharField(max_length=300, blank=True, help_text="Sent with the winback.granted event.")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = "win-back offer"
        permissions = [("grant_winback", "Can grant win-back offers to members")]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind="points", points__gt=0, reward__isnull=True)
                | Q(kind="reward", reward__isnull=False, points__isnull=True),
                name="winback_offer_shape",
            ),
        ]

    def __str__(self):
        return self.name

    @property
    def description(self) -> str:
        if self.kind == WinbackOfferKind.POINTS:
            return f"{self.points:,} {self.asset.code if self.asset_id else 'points'}"
        return f"reward: {self.reward}"


class WinbackGrant(models.Model):
    """One member given one offer: once (the unique constraint makes a second grant impossible)."""

    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="+")
    offer = models.ForeignKey(WinbackOffer, on_delete=models.PROTECT, related_name="grants")
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="winback_grants")
    audience = models.CharField(max_length=40, help_text="Who was targeted: at_risk, segment:<name>, selected.")
    points = models.PositiveIntegerField(default=0)
    transaction = models.OneToOneField(
        Transaction, null=True, blank=True, on_delete=models.PROTECT, related_name="winback_grant"
    )
    reward_claim = models.OneToOneField(
        RewardClaim, null=True, blank=True, on_delete=models.PROTECT, related_name="winback_grant"
    )
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    granted_at = models.DateTimeField()

    class Meta:
        verbose_name = "win-back grant"
        constraints = [models.UniqueConstraint(fields=["offer", "member"], name="winback_once_per_offer")]
        indexes = [models.Index(fields=["program", "granted_at"], name="winback_grant_time")]

    def __str__(self):
        return f"{self.offer} to {self.member_id}"


class MetricSnapshot(models.Model):
    """The metrics of a closed period, stored by the nightly job so charts and the dashboard are
    instant. `end` is exclusive: the snapshot of [2026-05-16, 2026-06-15) is the 30 days to 14 June."""

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="metric_snapshots")
    start = models.DateField()
    end = models.DateField(help_text="Exclusive.")
    summary = models.JSONField(help_text="Every scalar metric, as GET /api/v1/metrics/summary/ returns it.")
    cohorts = models.JSONField(null=True, blank=True, help_text="The cohort matrix of the 12 months to `end`.")
    segments = models.JSONField(null=True, blank=True, help_text="RFM segment counts as of `end`.")
    flows = models.JSONField(null=True, blank=True, help_text="Points earned, redeemed, expired by month.")
    at_risk = models.PositiveIntegerField(null=True, blank=True, help_text="Members at risk as of `end`.")
    computed_at = models.DateTimeField()
    seconds = models.FloatField(default=0, help_text="How long computing it took.")

    class Meta:
        verbose_name = "metric snapshot"
        constraints = [
            models.UniqueConstraint(fields=["program", "start", "end"], name="metric_snapshot_once"),
            models.CheckConstraint(condition=Q(start__lt=models.F("end")), name="metric_snapshot_period"),
        ]
        indexes = [models.Index(fields=["program", "end"], name="metric_snapshot_end")]

    def __str__(self):
        return f"{self.program_id}: {self.start} to {self.end}"
