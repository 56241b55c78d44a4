"""Setting a program up: the program, its point currency and system accounts, currencies."""

from decimal import Decimal

from django.db import transaction

from loyalty.models import Asset, FxRate, Program
from loyalty.services.ledger import system_accounts_create


@transaction.atomic
def program_create(
    *,
    code: str,
    name: str,
    base_currency: str = "USD",
    point_code: str = "PTS",
    point_name: str = "Points",
    unit_value: Decimal = Decimal("0.01"),
    fx_rates: dict[str, Decimal] | None = None,
    **settings,
) -> Program:
    program = Program.objects.create(code=code, name=name, base_currency=base_currency, **settings)
    asset = Asset.objects.create(
        program=program, code=point_code, name=point_name, is_primary=True, unit_value=unit_value
    )
    system_accounts_create(program=program, asset=asset)
    FxRate.objects.create(program=program, currency=base_currency, rate=Decimal(1))
    for currency, rate in (fx_rates or {}).items():
        if currency != base_currency:
            FxRate.objects.create(program=program, currency=currency, rate=rate)
    return program
