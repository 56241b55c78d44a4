"""Errors services raise. Each has a stable `code` and an HTTP status; the API maps them to
application/problem+json in one place (loyalty/api/errors.py), admin and portal show `message`."""


class LoyaltyError(Exception):
    code = "loyalty_error"
    status = 422
    title = "The request breaks a program rule"

    def __init__(self, message: str = "", **extra):
        super().__init__(message or self.title)
        self.message = message or self.title
        self.extra = extra


class NotFound(LoyaltyError):
    code, status, title = "not_found", 404, "Not found"


class MemberNotFound(NotFound):
    code, title = "member_not_found", "No member with this external id"


class OrderNotFound(NotFound):
    code, title = "order_not_found", "No order with this external id"


class RedemptionNotFound(NotFound):
    code, title = "redemption_not_found", "No redemption with this id"


class RewardNotFound(NotFound):
    code, title = "reward_not_found", "No reward with this id"


class Conflict(LoyaltyError):
    code, status, title = "conflict", 409, "Conflict"


class MemberExists(Conflict):
    code, title = "member_exists", "A member with this external id or email is already enrolled"


class OrderExists(Conflict):
    code, title = "order_exists", "An order with this external id was already placed"


class RefundExists(Conflict):
    code, title = "refund_exists", "A refund with this external id was already recorded"


class CurrencyNotAccepted(LoyaltyError):
    code, title = "currency_not_accepted", "The program does not accept this currency"


class InsufficientPoints(LoyaltyError):
    code, title = "insufficient_points", "Not enough available points"


class RedemptionStepError(LoyaltyError):
    code, title = "redemption_step", "Points must be at least the minimum and a multiple of the step"


class OrderTooSmall(LoyaltyError):
    code, title = "order_below_minimum", "The order is below the minimum for paying with points"


class HoldExpired(LoyaltyError):
    code, title = "hold_expired", "The hold has expired; its points went back to available"


class HoldVoided(LoyaltyError):
    code, title = "hold_voided", "The hold was voided"


class HoldCaptured(LoyaltyError):
    code, title = "hold_captured", "The hold was already captured"


class RefundExceedsOrder(LoyaltyError):
    code, title = "refund_exceeds_order", "The refund is more than what is left to refund on the order"


class OrderCancelled(LoyaltyError):
    code, title = "order_cancelled", "The order is cancelled"


class RewardUnavailable(LoyaltyError):
    code, title = "reward_unavailable", "The reward is not available"


class OutOfStock(LoyaltyError):
    code, title = "out_of_stock", "The reward is out of stock"


class TierRequired(LoyaltyError):
    code, title = "tier_required", "The reward needs a higher tier"


class ClaimLimitReached(LoyaltyError):
    code, title = "claim_limit_reached", "The member has claimed this reward as often as allowed"


class MemberClosed(LoyaltyError):
    code, title = "member_closed", "The member's account is closed"


class InvalidInput(LoyaltyError):
    """A rule about the input that a serializer cannot see (e.g. a line that is not on the order)."""

    code, status, title = "invalid_input", 400, "Invalid input"


class AmountTooLarge(InvalidInput):
    code, title = "amount_too_large", "An amount is larger than the books can hold"


class UnknownCurrency(InvalidInput):
    code, title = "unknown_currency", "Not a currency this system knows (ISO 4217 code expected)"


class IdempotencyKeyReused(Conflict):
    code, title = "idempotency_key_reused", "This Idempotency-Key was used with a different request"


class InvalidIdempotencyKey(InvalidInput):
    code, title = "invalid_idempotency_key", "The Idempotency-Key header must be 1 to 255 characters"
