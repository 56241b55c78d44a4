from .access import ALL_SCOPES, DEFAULT_SCOPES, KEY_PREFIX, ApiKey, IdempotencyRecord, Scope, hash_secret
from .audit import AuditEntry
from .events import Event
from .gamification import Badge, BadgeAward, Challenge, ChallengeProgress, Counts, CriterionKind, Repeat
from .ledger import (
    MEMBER_BUCKETS,
    Account,
    AccountKind,
    Entry,
    Lot,
    LotMovement,
    LotState,
    OpeningBalance,
    Transaction,
    TransactionKind,
)
from .member import Member, MemberStatus
from .metrics import (
    SCORE_RANGE,
    MetricSnapshot,
    SurveyKind,
    SurveyResponse,
    SurveySend,
    WinbackGrant,
    WinbackOffer,
    WinbackOfferKind,
)
from .orders import Order, OrderLine, OrderStatus, Refund, RefundKind
from .portal import PortalSession
from .program import Asset, AssetKind, ExpiryPolicy, FxRate, Program, RefundPolicy
from .redemption import Redemption, RedemptionStatus
from .rewards import LimitPeriod, Reward, RewardClaim, RewardKind
from .rules import EarnRule, EarnRuleKind
from .webhooks import WEBHOOK_EVENTS, DeliveryStatus, WebhookDelivery, WebhookEndpoint

__all__ = [
    "AuditEntry",
    "WEBHOOK_EVENTS",
    "DeliveryStatus",
    "WebhookDelivery",
    "WebhookEndpoint",
    "ALL_SCOPES",
    "DEFAULT_SCOPES",
    "Account",
    "AccountKind",
    "ApiKey",
    "Asset",
    "AssetKind",
    "Badge",
    "BadgeAward",
    "Challenge",
    "ChallengeProgress",
    "Counts",
    "CriterionKind",
    "EarnRule",
    "EarnRuleKind",
    "Entry",
    "Event",
    "ExpiryPolicy",
    "FxRate",
    "IdempotencyRecord",
    "KEY_PREFIX",
    "LimitPeriod",
    "Lot",
    "LotMovement",
    "LotState",
    "MEMBER_BUCKETS",
    "Member",
    "MemberStatus",
    "MetricSnapshot",
    "SCORE_RANGE",
    "SurveyKind",
    "SurveyResponse",
    "SurveySend",
    "WinbackGrant",
    "WinbackOffer",
    "WinbackOfferKind",
    "OpeningBalance",
    "Order",
    "OrderLine",
    "OrderStatus",
    "PortalSession",
    "Program",
    "Redemption",
    "RedemptionStatus",
    "Refund",
    "RefundKind",
    "RefundPolicy",
    "Repeat",
    "Reward",
    "RewardClaim",
    "RewardKind",
    "Scope",
    "Transaction",
    "TransactionKind",
    "hash_secret",
]
