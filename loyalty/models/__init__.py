from .access import ALL_SCOPES, KEY_PREFIX, ApiKey, IdempotencyRecord, Scope, hash_secret
from .events import Event
from .ledger import (
    MEMBER_BUCKETS,
    Account,
    AccountKind,
    Entry,
    Lot,
    LotMovement,
    LotState,
    Transaction,
    TransactionKind,
)
from .member import Member, MemberStatus
from .orders import Order, OrderLine, OrderStatus, Refund, RefundKind
from .program import Asset, AssetKind, ExpiryPolicy, FxRate, Program, RefundPolicy
from .redemption import Redemption, RedemptionStatus
from .rewards import LimitPeriod, Reward, RewardClaim, RewardKind
from .rules import EarnRule, EarnRuleKind

__all__ = [
    "ALL_SCOPES", "KEY_PREFIX", "MEMBER_BUCKETS", "Account", "AccountKind", "ApiKey", "Asset", "AssetKind", "EarnRule",
    "EarnRuleKind", "Entry", "Event", "ExpiryPolicy", "FxRate", "IdempotencyRecord", "LimitPeriod", "Lot",
    "LotMovement", "LotState", "Member", "MemberStatus", "Order", "OrderLine", "OrderStatus", "Program",
    "Redemption", "RedemptionStatus", "Refund", "RefundKind", "RefundPolicy", "Reward", "RewardClaim",
    "RewardKind", "Scope", "Transaction", "TransactionKind", "hash_secret",
]  # fmt: skip
