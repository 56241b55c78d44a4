"""What checkout wrote through the API, view-only: orders with their lines and refunds,
redemptions, reward claims and events."""

import json

from django.contrib import admin
from django.utils.html import format_html

from loyalty.models import Event, Order, OrderLine, Redemption, Refund, RewardClaim, Transaction

from .base import ViewOnlyAdmin, ViewOnlyTabularInline, changelist_url, money, points


def pretty_json(value) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False, default=str))


class OrderLineInline(ViewOnlyTabularInline):
    model = OrderLine
    fields = ("sku", "category", "quantity", "unit_price", "discount", "net", "gift_card", "refunded_quantity")
    show_change_link = False


class RefundInline(ViewOnlyTabularInline):
    model = Refund
    fields = (
        "external_id",
        "kind",
        "created_at",
        "amount",
        "merchandise",
        "spend_reversed_base",
        "points_due",
        "points_reversed",
        "points_unrecovered",
        "reason",
    )
    show_change_link = False


@admin.register(Order)
class OrderAdmin(ViewOnlyAdmin):
    list_display = ("external_id", "member", "status", "total_display", "points_earned_display", "placed_at")
    list_filter = ("status", "placed_at", "currency", "program")
    list_select_related = ("member",)
    search_fields = ("=external_id", "=member__external_id", "=member__email")
    search_help_text = "The order's exact external id, or the member's exact external id or email."
    ordering = ("-placed_at", "-id")
    fieldsets = (
        (None, {"fields": ("program", "member", "external_id", "status", "placed_at", "available_at")}),
        (
            "Amounts (order currency)",
            {
                "fields": (
                    ("merchandise", "shipping", "tax", "total"),
                    ("points_payment", "qualifying"),
                    ("refunded", "refunded_merchandise", "refunded_qualifying"),
                )
            },
        ),
        ("Base currency", {"fields": ("fx_rate", ("qualifying_base", "spend_base"))}),
        ("Points", {"fields": ("points_earned", "points_reversed", "earn_breakdown_display", "ledger_link")}),
        ("Checkout", {"fields": ("payment_fingerprint", "device_id", "metadata_display", "created_at")}),
    )
    readonly_fields = ("earn_breakdown_display", "metadata_display", "ledger_link")
    inlines = (OrderLineInline, RefundInline)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("program", "member")

    @admin.display(description="total", ordering="total")
    def total_display(self, obj):
        return money(obj.total)

    @admin.display(description="points earned", ordering="points_earned")
    def points_earned_display(self, obj):
        return points(obj.points_earned)

    @admin.display(description="earn breakdown")
    def earn_breakdown_display(self, obj):
        return pretty_json(obj.earn_breakdown)

    @admin.display(description="metadata")
    def metadata_display(self, obj):
        return pretty_json(obj.metadata)

    @admin.display(description="ledger")
    def ledger_link(self, obj):
        return format_html(
            '<a href="{}">Transactions of this order</a>', changelist_url(Transaction, order__id__exact=obj.pk)
        )


@admin.register(Redemption)
class RedemptionAdmin(ViewOnlyAdmin):
    list_display = (
        "id",
        "member",
        "points_display",
        "value_display",
        "status",
        "order_external_id",
        "created_at",
        "expires_at",
        "settled_at",
    )
    list_filter = ("status", "created_at", "asset", "program")
    list_select_related = ("member", "asset")
    search_fields = ("=member__external_id", "=order_external_id")
    search_help_text = "The member's or the order's exact external id."
    ordering = ("-id",)
    fields = (
        "program",
        "member",
        "asset",
        "points",
        "value",
        "status",
        "order_external_id",
        "created_at",
        "expires_at",
        "settled_at",
        "ledger_link",
    )
    readonly_fields = ("ledger_link",)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("program", "member", "asset")

    @admin.display(description="points", ordering="points")
    def points_display(self, obj):
        return f"{points(obj.points)} {obj.asset.code}"

    @admin.display(description="value", ordering="value")
    def value_display(self, obj):
        return money(obj.value)

    @admin.display(description="ledger")
    def ledger_link(self, obj):
        return format_html(
            '<a href="{}">Transactions of this redemption</a>',
            changelist_url(Transaction, redemption__id__exact=obj.pk),
        )


@admin.register(RewardClaim)
class RewardClaimAdmin(ViewOnlyAdmin):
    list_display = ("coupon_code", "reward", "member", "points", "claimed_at")
    list_filter = ("reward", "claimed_at")
    list_select_related = ("reward", "member")
    search_fields = ("=coupon_code", "=member__external_id")
    search_help_text = "The exact coupon code or member external id."
    ordering = ("-id",)
    fields = ("reward", "member", "coupon_code", "points", "claimed_at", "transaction")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("reward", "member", "transaction")


@admin.register(Event)
class EventAdmin(ViewOnlyAdmin):
    list_display = ("id", "type", "member", "custom", "occurred_at", "processed_at")
    list_filter = ("type", "custom", "occurred_at", "program")
    list_select_related = ("member",)
    search_fields = ("=member__external_id", "=external_id")
    search_help_text = "The member's exact external id, or the event's own external id."
    ordering = ("-id",)
    fields = (
        "program",
        "type",
        "member",
        "external_id",
        "custom",
        "occurred_at",
        "created_at",
        "processed_at",
        "properties_display",
    )
    readonly_fields = ("properties_display",)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("program", "member")

    @admin.display(description="properties")
    def properties_display(self, obj):
        return pretty_json(obj.properties)
