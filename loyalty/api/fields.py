"""Serializer fields for the API's money shape: {"amount": "12.34", "currency": "EUR"}, and bounded JSON."""

import json
from decimal import Decimal, InvalidOperation

from django.conf import settings
from drf_spectacular.utils import extend_schema_field, inline_serializer
from rest_framework import serializers

from loyalty import errors
from loyalty.money import money_dict

MAX_AMOUNT = Decimal("999999999999")

MONEY_SCHEMA = inline_serializer(
    "Money",
    fields={
        "amount": serializers.CharField(help_text='Decimal string, e.g. "12.34"'),
        "currency": serializers.CharField(help_text="ISO 4217 code"),
    },
)


def currency_validate(value: str) -> str:
    code = str(value).strip().upper()
    if code not in settings.CURRENCIES:
        raise errors.UnknownCurrency(
            f"{value!r} is not a known currency code",
            errors=[{"field": "currency", "message": "unknown currency", "code": "unknown_currency"}],
        )
    return code


class ExternalIdField(serializers.CharField):
    """The shop's id of a member or an order: it becomes part of URLs (`/orders/{id}/`), so no `/`,
    and not a word those URLs use for something else."""

    def __init__(self, *, reserved: frozenset[str] = frozenset(), **kwargs):
        self.reserved = reserved
        kwargs.setdefault("max_length", 128)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if "/" in value:
            raise serializers.ValidationError("May not contain '/': it is part of the resource's URL.")
        if value in self.reserved:
            raise serializers.ValidationError(f"{value!r} is reserved (a path of the API).")
        return value


class CurrencyField(serializers.CharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 3)
        kwargs.setdefault("min_length", 3)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        return currency_validate(super().to_internal_value(data))


@extend_schema_field(MONEY_SCHEMA)
class MoneyField(serializers.Field):
    """Money in and out. In, it also accepts a bare decimal string in the enclosing currency.
    -> (Decimal amount, currency or None)."""

    default_error_messages = {
        "invalid": 'Expected {{"amount": "12.34", "currency": "EUR"}} or a decimal string.',  # str.format
        "negative": "Must not be negative.",
        "not_positive": "Must be greater than zero.",
        "too_large": "Too large.",
    }

    def __init__(self, *, positive: bool = False, **kwargs):
        self.positive = positive
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        currency = None
        if isinstance(data, dict):
            currency = currency_validate(data.get("currency", "")) if data.get("currency") else None
            data = data.get("amount")
        if isinstance(data, bool) or not isinstance(data, str | int | float):
            self.fail("invalid")
        try:
            amount = Decimal(str(data))
        except InvalidOperation:
            self.fail("invalid")
        if not amount.is_finite():
            self.fail("invalid")
        if amount < 0:
            self.fail("negative")
        if self.positive and amount == 0:
            self.fail("not_positive")
        if amount > MAX_AMOUNT:
            self.fail("too_large")
        return amount, currency

    def to_representation(self, value):
        return money_dict(value)


class BoundedJSONField(serializers.DictField):
    """A JSON object with a size limit (bytes of its compact JSON) and a depth limit."""

    default_error_messages = {
        "too_large": "At most {max_bytes} bytes of JSON.",
        "too_deep": "At most {max_depth} levels of nesting.",
        "nul": "Text may not contain the NUL character (\\u0000).",
    }

    def __init__(self, *, max_bytes: int = 4096, max_depth: int = 4, **kwargs):
        self.max_bytes, self.max_depth = max_bytes, max_depth
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if len(json.dumps(value, separators=(",", ":"), default=str)) > self.max_bytes:
            self.fail("too_large", max_bytes=self.max_bytes)
        if _depth(value) > self.max_depth:
            self.fail("too_deep", max_depth=self.max_depth)
        if "\\u0000" in json.dumps(value, default=str):  # PostgreSQL's jsonb cannot store it
            self.fail("nul")
        return value


def _depth(value, level: int = 1) -> int:
    if isinstance(value, dict):
        return max([_depth(v, level + 1) for v in value.values()], default=level)
    if isinstance(value, list):
        return max([_depth(v, level + 1) for v in value], default=level)
    return level - 1
