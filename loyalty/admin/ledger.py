"""The ledger, view-only: accounts, transactions with their entries, lots and their movements.

Entries are append-only: a mistake is fixed by a reversing transaction (an adjustment on the
member page), never by editing or deleting a row here."""

from django.contrib import admin
from django.utils.html import format_html

from loyalty.models import Account, Entry, Lot, LotMovement, Transaction

from .base import ViewOnlyAdmin, ViewOnlyTabularInline, admin_link, changelist_url, points


class OwnerFilter(admin.SimpleListFilter):
    title = "owner"
    parameter_name = "owner"

    def lookups(self, request, model_admin):
        return [("member", "Members"), ("system", "System accounts")]

    def queryset(self, request, queryset):
        if self.value() == "member":
            return queryset.filter(member__isnull=False)
        if self.value() == "system":
            return queryset.filter(member__isnull=True)
        return queryset


@admin.register(Account)
class AccountAdmin(ViewOnlyAdmin):
    list_display = ("id", "owner", "asset", "kind", "shard", "balance_display", "version", "program")
    list_filter = (OwnerFilter, "kind", "asset", "program")
    list_select_related = ("member", "asset", "program")
    search_fields = ("=member__external_id",)
    search_help_text = "The member's exact external id."
    fields = ("program", "asset", "member", "kind", "shard", "balance_display", "version", "entries_link")
    readonly_fields = ("balance_display", "entries_link")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("member", "asset", "program")

    @admin.display(description="owner", ordering="member__external_id")
    def owner(self, obj):
        return obj.member.external_id if obj.member_id else f"system (shard {obj.shard})"

    @admin.display(description="balance", ordering="balance")
    def balance_display(self, obj):
        return f"{points(obj.balance)} {obj.asset.code}"

    @admin.display(description="entries")
    def entries_link(self, obj):
        return format_html(
            '<a href="{}">All entries on this account</a>', changelist_url(Entry, account__id__exact=obj.pk)
        )


class EntryInline(ViewOnlyTabularInline):
    model = Entry
    fields = ("account", "amount_display", "balance_after_display")
    readonly_fields = ("amount_display", "balance_after_display")
    show_change_link = False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("account__member", "account__asset").order_by("id")

    @admin.display(description="amount")
    def amount_display(self, obj):
        return f"{points(obj.amount, signed=True)} {obj.account.asset.code}"

    @admin.display(description="balance after")
    def balance_after_display(self, obj):
        return points(obj.balance_after)


class LotMovementInline(ViewOnlyTabularInline):
    model = LotMovement
    fields = ("lot", "transaction", "amount")
    show_change_link = False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("lot", "transaction").order_by("id")


class LotCreatedInline(ViewOnlyTabularInline):
    model = Lot
    verbose_name_plural = "lots credited"
    fields = ("asset", "amount", "remaining", "state", "matures_at", "expires_at")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("asset")


@admin.register(Transaction)
class TransactionAdmin(ViewOnlyAdmin):
    list_display = ("id", "effective_at", "kind", "member", "reference", "memo_short", "created_by", "created_at")
    list_filter = ("kind", "created_at", "program")
    list_select_related = ("member", "created_by")
    search_fields = ("=member__external_id", "=order__external_id", "reference")
    search_help_text = "The member's or the order's exact external id, or words of the reference."
    ordering = ("-id",)
    fields = (
        "program",
        "kind",
        "member",
        "effective_at",
        "created_at",
        "reference",
        "memo",
        "created_by",
        "order",
        "refund",
        "redemption",
    )
    inlines = (EntryInline, LotCreatedInline, LotMovementInline)

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("program", "member", "order", "refund", "redemption", "created_by")
        )

    @admin.display(description="memo")
    def memo_short(self, obj):
        return obj.memo if len(obj.memo) <= 60 else f"{obj.memo[:59]}…"


@admin.register(Entry)
class EntryAdmin(ViewOnlyAdmin):
    list_display = ("id", "transaction_link", "account", "amount_display", "balance_after_display")
    list_filter = ("account__kind", "account__asset")
    list_select_related = ("transaction", "account__member", "account__asset")
    search_fields = ("=account__member__external_id",)
    search_help_text = "The member's exact external id."
    ordering = ("-id",)
    fields = ("transaction", "account", "amount", "balance_after")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("transaction", "account__member", "account__asset")

    @admin.display(description="transaction", ordering="transaction_id")
    def transaction_link(self, obj):
        return admin_link(obj.transaction)

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj):
        return f"{points(obj.amount, signed=True)} {obj.account.asset.code}"

    @admin.display(description="balance after")
    def balance_after_display(self, obj):
        return points(obj.balance_after)


class LotMovementOfLotInline(LotMovementInline):
    fields = ("transaction", "amount")


@admin.register(Lot)
class LotAdmin(ViewOnlyAdmin):
    list_display = (
        "id",
        "member",
        "asset",
        "amount",
        "remaining",
        "state",
        "earned_at",
        "matures_at",
        "expires_at",
        "order",
    )
    list_filter = ("state", "asset", "matures_at", "expires_at")
    list_select_related = ("member", "asset", "order")
    search_fields = ("=member__external_id", "=order__external_id")
    search_help_text = "The member's or the order's exact external id."
    ordering = ("-id",)
    fields = (
        "member",
        "asset",
        "amount",
        "remaining",
        "state",
        "earned_at",
        "matures_at",
        "expires_at",
        "order",
        "transaction",
    )
    inlines = (LotMovementOfLotInline,)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("member", "asset", "order", "transaction")


@admin.register(LotMovement)
class LotMovementAdmin(ViewOnlyAdmin):
    list_display = ("id", "lot", "transaction", "amount")
    list_select_related = ("lot", "transaction")
    search_fields = ("=lot__member__external_id",)
    search_help_text = "The member's exact external id."
    ordering = ("-id",)
    fields = ("lot", "transaction", "amount")
