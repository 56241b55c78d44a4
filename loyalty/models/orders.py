from django.db import models
from django.db.models import Q
from djmoney.models.fields import MoneyField

from .member import Member
from .program import CURRENCY_CHOICES, Program

AMOUNT = {"max_digits": 14, "decimal_places": 2, "currency_choices": CURRENCY_CHOICES, "default_currency": None}


class OrderStatus(models.TextChoices):
    PENDING = "pending", "Pending (points pending)"
    COMPLETED = "completed", "Completed (points matured)"
    PARTIALLY_REFUNDED = "partially_refunded", "Partially refunded"
    REFUNDED = "refunded", "Refunded"
    CANCELLED = "cancelled", "Cancelled"


class Order(models.Model):
    """An order placed at checkout. Amounts are in the order's currency; `*_base` amounts are in the
    program's base currency at the FX rate snapshotted when the order was placed."""

    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="orders")
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="orders")
    external_id = models.CharField(max_length=128)
    status = models.CharField(max_length=20, choices=OrderStatus.choices, default=OrderStatus.PENDING)
    placed_at = models.DateTimeField()
    fx_rate = models.DecimalField(max_digits=18, decimal_places=8, help_text="Base units per unit, at placement.")
    merchandise = MoneyField(currency_field_name="currency", help_text="Lines net of discounts.", **AMOUNT)
    shipping = MoneyField(currency_field_name="currency", **AMOUNT)
    tax = MoneyField(currency_field_name="currency", **AMOUNT)
    total = MoneyField(currency_field_name="currency", help_text="Merchandise + shipping + tax.", **AMOUNT)
    points_payment = MoneyField(
        currency_field_name="currency", help_text="Part of the merchandise paid with points.", **AMOUNT
    )
    qualifying = MoneyField(
        currency_field_name="currency",
        help_text="What earns: merchandise (no gift cards) minus points paid.",
        **AMOUNT,
    )
    refunded = MoneyField(currency_field_name="currency", **AMOUNT)
    refunded_merchandise = MoneyField(currency_field_name="currency", **AMOUNT)
    refunded_qualifying = MoneyField(currency_field_name="currency", **AMOUNT)
    qualifying_base = MoneyField(currency_field_name="base_currency", **AMOUNT)
    spend_base = MoneyField(
        currency_field_name="base_currency",
        help_text="Qualifying spend in the base currency, net of refunds and cancels (tiers, metrics).",
        **AMOUNT,
    )
    points_earned = models.BigIntegerField(default=0)
    points_reversed = models.BigIntegerField(default=0, help_text="Clawed back or due, over all refunds.")
    earn_breakdown = models.JSONField(default=list, blank=True)
    available_at = models.DateTimeField(help_text="When the order's points mature.")
    payment_fingerprint = models.CharField(max_length=128, blank=True)
    device_id = models.CharField(max_length=128, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["program", "external_id"], name="order_external_id_unique"),
        ]
        indexes = [
            models.Index(fields=["member", "placed_at"], name="order_member_time"),
            models.Index(fields=["program", "placed_at"], name="order_program_time"),
            # The maturity job's orders still in their return window (a small, moving set).
            models.Index(fields=["available_at"], condition=models.Q(status="pending"), name="order_due"),
            # Retention metrics read every order of a program per member (first and last order,
            # counts, spend): an index-only scan in member order on PostgreSQL (docs/metrics.md).
            models.Index(
                fields=["program", "member", "placed_at"], include=["status", "spend_base"], name="order_metrics"
            ),
        ]

    def __str__(self):
        return self.external_id


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    sku = models.CharField(max_length=64)
    category = models.CharField(max_length=64, blank=True)
    quantity = models.PositiveIntegerField()
    unit_price = MoneyField(currency_field_name="currency", **AMOUNT)
    discount = MoneyField(currency_field_name="currency", **AMOUNT)
    net = MoneyField(currency_field_name="currency", help_text="quantity x unit price - discount", **AMOUNT)
    gift_card = models.BooleanField(default=False, help_text="Gift cards never earn.")
    refunded_quantity = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(refunded_quantity__lte=models.F("quantity")), name="line_refund_within_quantity"
            )
        ]

    def __str__(self):
        return f"{self.quantity} x {self.sku}"


class RefundKind(models.TextChoices):
    REFUND = "refund", "Refund"
    CANCEL = "cancel", "Cancel"


class Refund(models.Model):
    """A partial or full refund, or the cancel of an order. Points are clawed back pro rata to the
    merchandise refunded; what could not be clawed back under the program's policy is recorded."""

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="refunds")
    external_id = models.CharField(max_length=128)
    kind = models.CharField(max_length=8, choices=RefundKind.choices, default=RefundKind.REFUND)
    amount = MoneyField(currency_field_name="currency", **AMOUNT)
    merchandise = MoneyField(currency_field_name="currency", help_text="The merchandise part.", **AMOUNT)
    lines = models.JSONField(default=list, blank=True, help_text="[{sku, quantity}] when refunded by lines.")
    spend_reversed_base = MoneyField(currency_field_name="base_currency", **AMOUNT)
    points_due = models.BigIntegerField(help_text="Points this refund takes back, pro rata.")
    points_reversed = models.BigIntegerField(help_text="Points actually clawed back.")
    points_unrecovered = models.BigIntegerField(default=0, help_text="Due but not clawed back (policy).")
    reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["order", "external_id"], name="refund_external_id_unique"),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} {self.external_id} of {self.order_id}"
