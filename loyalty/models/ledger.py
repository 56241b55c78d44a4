"""The double-entry points ledger.

Accounts hold integer balances of one asset. A Transaction groups Entries whose amounts sum to
zero per asset. Entries are append-only; a mistake is fixed by a reversing transaction. Every
account caches its balance (and a version), every entry records the balance after it, and
`manage.py ledger_verify` proves the cache equals the entries. All writes go through
loyalty.services.ledger.Book; nothing else updates these tables.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from .member import Member
from .program import Asset, Program


class AccountKind(models.TextChoices):
    # A member's buckets
    PENDING = "pending", "Pending (inside the return window)"
    AVAILABLE = "available", "Available"
    HELD = "held", "Held for a redemption"
    # Program system accounts: where points come from and go to
    ISSUED = "issued", "Issued on orders"
    REDEEMED = "redeemed", "Redeemed"
    EXPIRED = "expired", "Expired"
    ADJUSTMENTS = "adjustments", "Staff adjustments"
    REFERRAL_REWARDS = "referral_rewards", "Referral rewards"
    GAMIFICATION = "gamification", "Badge and challenge rewards"
    BIRTHDAY = "birthday", "Birthday gifts"
    WINBACK = "winback", "Win-back offers"
    OPENING = "opening", "Opening balances (imports)"


MEMBER_BUCKETS = (AccountKind.PENDING, AccountKind.AVAILABLE, AccountKind.HELD)


class Account(models.Model):
    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="accounts")
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="accounts")
    member = models.ForeignKey(Member, null=True, blank=True, on_delete=models.PROTECT, related_name="accounts")
    kind = models.CharField(max_length=20, choices=AccountKind.choices)
    shard = models.PositiveSmallIntegerField(
        default=0, help_text="System accounts are split in shards by member id to avoid one hot row."
    )
    balance = models.BigIntegerField(default=0)
    version = models.BigIntegerField(default=0, help_text="Incremented by every posting.")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["member", "asset", "kind"], condition=Q(member__isnull=False), name="member_account_unique"
            ),
            models.UniqueConstraint(
                fields=["program", "asset", "kind", "shard"],
                condition=Q(member__isnull=True),
                name="system_account_unique",
            ),
            models.CheckConstraint(
                condition=Q(member__isnull=True) | Q(kind__in=[k.value for k in MEMBER_BUCKETS]),
                name="member_account_is_a_bucket",
            ),
            # Pending and held can never go below zero. Available may, only through a clawback under
            # the `unlimited` refund policy; every spend is a conditional debit.
            models.CheckConstraint(
                condition=Q(member__isnull=True) | Q(kind="available") | Q(balance__gte=0),
                name="bucket_not_negative",
            ),
        ]

    def __str__(self):
        owner = self.member.external_id if self.member_id else f"system#{self.shard}"
        return f"{owner}:{self.asset.code}:{self.kind}"


class TransactionKind(models.TextChoices):
    EARN = "earn", "Earned on an order"
    MATURE = "mature", "Matured (return window over)"
    EXPIRE = "expire", "Expired"
    CLAWBACK = "clawback", "Clawed back on a refund or cancel"
    HOLD = "hold", "Held for a redemption"
    CAPTURE = "capture", "Redemption captured"
    VOID = "void", "Redemption voided"
    CLAIM = "claim", "Reward claimed"
    ADJUST = "adjust", "Staff adjustment"
    REFERRAL = "referral", "Referral reward"
    BADGE = "badge", "Badge reward"
    CHALLENGE = "challenge", "Challenge reward"
    BIRTHDAY = "birthday", "Birthday gift"
    WINBACK = "winback", "Win-back offer"
    IMPORT = "import", "Opening balance"


class Transaction(models.Model):
    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="transactions")
    member = models.ForeignKey(Member, null=True, blank=True, on_delete=models.PROTECT, related_name="transactions")
    kind = models.CharField(max_length=12, choices=TransactionKind.choices)
    order = models.ForeignKey("loyalty.Order", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    refund = models.ForeignKey("loyalty.Refund", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    redemption = models.ForeignKey(
        "loyalty.Redemption", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reference = models.CharField(max_length=200, blank=True, help_text="What it is about, in the program's words.")
    memo = models.TextField(blank=True, help_text="Why (required for staff adjustments).")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    effective_at = models.DateTimeField(help_text="When it happened in the program's time (the as-of time).")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["member", "-id"], name="txn_member_newest"),
            models.Index(fields=["program", "kind", "effective_at"], name="txn_kind_time"),
        ]

    def __str__(self):
        return f"#{self.pk} {self.kind} {self.reference}"


class Entry(models.Model):
    transaction = models.ForeignKey(Transaction, on_delete=models.PROTECT, related_name="entries")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="entries")
    amount = models.BigIntegerField(help_text="Signed: positive raises the account's balance.")
    balance_after = models.BigIntegerField()

    class Meta:
        verbose_name_plural = "entries"
        indexes = [models.Index(fields=["account", "id"], name="entry_account_order")]
        constraints = [models.CheckConstraint(condition=~Q(amount=0), name="entry_amount_not_zero")]

    def __str__(self):
        return f"{self.amount:+d} on account {self.account_id} (after: {self.balance_after})"


class LotState(models.TextChoices):
    PENDING = "pending", "Pending"
    AVAILABLE = "available", "Available"
    EXPIRED = "expired", "Expired"


class Lot(models.Model):
    """One credit of points. Spending consumes the soonest-expiring lots first.

    `state` is what the books show (posted by the ledger); the truth as of any time follows from
    `matures_at` and `expires_at`, so a late job never makes a read or a spend wrong."""

    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="lots")
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="+")
    amount = models.BigIntegerField()
    remaining = models.BigIntegerField()
    state = models.CharField(max_length=10, choices=LotState.choices)
    earned_at = models.DateTimeField()
    matures_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires.")
    order = models.ForeignKey("loyalty.Order", null=True, blank=True, on_delete=models.PROTECT, related_name="lots")
    transaction = models.ForeignKey(Transaction, on_delete=models.PROTECT, related_name="lots")

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(remaining__gte=0) & Q(remaining__lte=models.F("amount")), name="lot_remaining_in_range"
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="lot_amount_positive"),
        ]
        indexes = [
            models.Index(fields=["member", "asset", "expires_at"], condition=Q(remaining__gt=0), name="lot_spendable"),
            models.Index(fields=["matures_at"], condition=Q(state="pending"), name="lot_due_to_mature"),
            models.Index(
                fields=["expires_at"], condition=Q(remaining__gt=0) & ~Q(state="expired"), name="lot_due_to_expire"
            ),
        ]

    def __str__(self):
        return f"Lot {self.pk}: {self.remaining}/{self.amount} {self.state}"


class LotMovement(models.Model):
    """A change to a lot's `remaining`: negative when points are spent, positive when a voided hold
    gives them back. `lot.remaining == lot.amount + sum(movements)` is checked by ledger_verify."""

    lot = models.ForeignKey(Lot, on_delete=models.PROTECT, related_name="movements")
    transaction = models.ForeignKey(Transaction, on_delete=models.PROTECT, related_name="lot_movements")
    amount = models.BigIntegerField()

    class Meta:
        constraints = [models.CheckConstraint(condition=~Q(amount=0), name="lot_movement_not_zero")]

    def __str__(self):
        return f"{self.amount:+d} on lot {self.lot_id}"


class OpeningBalance(models.Model):
    """Points brought over from a previous program (`import_balances`): one row per imported line,
    unique by its id, so re-running an import credits nothing twice."""

    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="+")
    external_id = models.CharField(max_length=128)
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="opening_balances")
    points = models.PositiveIntegerField()
    transaction = models.OneToOneField(Transaction, on_delete=models.PROTECT, related_name="+")
    imported_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["program", "external_id"], name="opening_balance_once")]

    def __str__(self):
        return f"{self.external_id}: {self.points}"
