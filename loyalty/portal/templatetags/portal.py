"""Formatting for the portal, in the language of the page: money and points by the locale's rules
(CLDR data through Babel: `$1,234.50` in English, `1234,50 USD` in Polish)."""

from datetime import timedelta
from decimal import Decimal

from babel.numbers import format_currency, format_decimal
from django import template
from django.utils import translation
from djmoney.money import Money

register = template.Library()

LOCALES = {"en": "en_US", "pl": "pl_PL"}


def current_locale() -> str:
    language = (translation.get_language() or "en").split("-")[0]
    return LOCALES.get(language, "en_US")


@register.filter
def money(value, currency: str | None = None) -> str:
    """A Money, an API money dict ({"amount", "currency"}) or an amount with its currency."""
    if value is None or value == "":
        return ""
    if isinstance(value, Money):
        amount, currency = value.amount, str(value.currency)
    elif isinstance(value, dict):
        amount, currency = Decimal(value["amount"]), value["currency"]
    else:
        amount = Decimal(value)
    return format_currency(amount, currency, locale=current_locale())


@register.filter
def points(value, signed: bool = False) -> str:
    """1234 -> `1,234` (en) or `1234` / `12 345` (pl); signed: `+148`, `−20`."""
    if value is None or value == "":
        return ""
    number = int(value)
    text = format_decimal(abs(number), locale=current_locale())
    if signed:
        return ("+" if number > 0 else "−" if number < 0 else "") + text
    return ("−" if number < 0 else "") + text


@register.filter
def number(value, digits: int = 0) -> str:
    if value is None or value == "":
        return ""
    pattern = "#,##0" + ("." + "0" * int(digits) if int(digits) else "")
    return format_decimal(Decimal(value), format=pattern, locale=current_locale())


@register.filter
def last_day(end):
    """The last moment inside a period that ends at `end` (exclusive), for "Ends 31 Dec" rather than
    "Ends 1 Jan"; formatted with `|date` after it in the page's time zone."""
    return end - timedelta(microseconds=1) if end else end
