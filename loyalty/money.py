"""Every conversion between currencies, and between money and points, with its rounding rule named.

- Money is rounded to the currency's minor unit (cents; none for JPY) half up: MONEY_ROUNDING.
- Money becomes points rounded down, once per order: POINTS_ROUNDING. A member never earns a
  fraction they did not spend.
"""

from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from functools import cache

from babel.numbers import get_currency_precision
from djmoney.money import Money

MONEY_ROUNDING = ROUND_HALF_UP
POINTS_ROUNDING = ROUND_FLOOR


@cache
def minor_units(currency: str) -> int:
    return get_currency_precision(currency)


@cache
def quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-minor_units(currency))


def money_round(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(quantum(currency), rounding=MONEY_ROUNDING)


def has_valid_precision(amount: Decimal, currency: str) -> bool:
    """True when `amount` has no more decimals than the currency allows (12.345 EUR has too many)."""
    return amount == amount.quantize(quantum(currency), rounding=ROUND_FLOOR)


MAX_MONEY = Decimal("999999999999.99")  # what an amount column holds (14 digits, 2 decimals)


def to_base(amount: Decimal, *, rate: Decimal, base_currency: str) -> Decimal:
    """An amount in the order's currency, in the base currency at the order's FX snapshot."""
    return money_round(amount * rate, base_currency)


def from_base(amount: Decimal, *, rate: Decimal, currency: str) -> Decimal:
    return money_round(amount / rate, currency)


def points_floor(value: Decimal) -> int:
    """Exact points (a Decimal) to whole points: rounded down."""
    return int(value.to_integral_value(rounding=POINTS_ROUNDING))


def points_value(points: int, *, unit_value: Decimal, currency: str) -> Decimal:
    """What `points` are worth at redemption, in `currency` (the base currency)."""
    return money_round(unit_value * points, currency)


def money(amount: Decimal, currency: str) -> Money:
    return Money(amount, currency)


def money_dict(amount: Money | Decimal | dict, currency: str | None = None) -> dict:
    """The API's money shape: {"amount": "12.34", "currency": "EUR"} with the currency's decimals."""
    if isinstance(amount, dict):
        return amount
    if isinstance(amount, Money):
        amount, currency = amount.amount, str(amount.currency)
    return {"amount": str(money_round(Decimal(amount), currency)), "currency": currency}
