from decimal import Decimal

from django.db import models
from djmoney.models.fields import MoneyField

from loyalty.models.program import CURRENCY_CHOICES, Program


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
