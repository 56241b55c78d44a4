import hashlib
import secrets

from django.db import models
from django.utils import timezone

from .program import Program


class Scope(models.TextChoices):
    MEMBERS = "members", "Enroll, read and update members"
    ORDERS = "orders", "Quote, place, refund and cancel orders"
    REDEMPTIONS = "redemptions", "Hold, capture and void redemptions"
    REWARDS = "rewards", "Read the catalog and claim rewards"
    EVENTS = "events", "Send custom events"
    REFERRALS = "referrals", "Look up referral codes"
    METRICS = "metrics", "Read retention metrics"
    PRIVACY = "privacy", "Export and erase members' personal data"
    SURVEYS = "surveys", "Record surveys sent and their answers (NPS, CSAT, CES)"


ALL_SCOPES = [scope.value for scope in Scope]
# What a key gets when nobody names its scopes: everything but `privacy`. A key that can export or
# erase customers' personal data is granted on purpose, never by default.
DEFAULT_SCOPES = [scope for scope in ALL_SCOPES if scope != Scope.PRIVACY]
KEY_PREFIX = "lk_"


def hash_secret(raw: str) -> str:
    """API keys are 256-bit random strings, so one round of SHA-256 is the right hash (unlike
    passwords there is nothing to brute-force), and lookups stay a single indexed query."""
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiKey(models.Model):
    """A program's key for an integration. Only its hash is stored; the key is shown once."""

    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="api_keys")
    name = models.CharField(max_length=80)
    prefix = models.CharField(max_length=16, unique=True, editable=False, help_text="Shown to tell keys apart.")
    hashed = models.CharField(max_length=64, editable=False)
    scopes = models.JSONField(default=list, help_text=f"Any of: {', '.join(ALL_SCOPES)}")
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @staticmethod
    def generate() -> tuple[str, str, str]:
        """-> (raw key, prefix, hash). The raw key is `lk_<prefix>_<secret>`."""
        prefix = secrets.token_hex(4)
        raw = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
        return raw, prefix, hash_secret(raw)

    def revoke(self, *, now=None) -> None:
        self.revoked_at = now or timezone.now()


class IdempotencyRecord(models.Model):
    """The first response to a POST carrying an `Idempotency-Key`, replayed to retries. Written in
    the same database transaction as the change it describes, so the two commit together."""

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of method, path and body.")
    status_code = models.PositiveSmallIntegerField(null=True)
    body = models.TextField(blank=True, help_text="The response body exactly as first sent (JSON).")
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["program", "key"], name="idempotency_key_unique")]
        indexes = [models.Index(fields=["created_at"], name="idempotency_age")]

    def __str__(self):
        return f"{self.key} -> {self.status_code}"
