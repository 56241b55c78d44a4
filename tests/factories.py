"""Factories on top of the services (a member is enrolled, an order is placed, never inserted raw)."""

from datetime import datetime
from decimal import Decimal
from itertools import count

import factory

from loyalty.models import Member, Order, Program
from loyalty.services.earning import LineDraft, OrderDraft
from loyalty.services.members import member_enroll
from loyalty.services.orders import order_place

_orders = count(1)


class MemberFactory(factory.Factory):
    class Meta:
        model = Member

    external_id = factory.Sequence(lambda n: f"member-{n}")
    email = factory.LazyAttribute(lambda o: f"{o.external_id}@example.com")
    first_name = "Anna"
    last_name = "Kowalska"

    @classmethod
    def _create(cls, model_class, *, program: Program, **kwargs):
        return member_enroll(program=program, **kwargs)


def place_order(
    program: Program,
    member: Member | str,
    amount: str | Decimal = "100.00",
    *,
    currency: str = "USD",
    category: str = "makeup",
    placed_at: datetime | None = None,
    now: datetime | None = None,
    external_id: str | None = None,
    lines: list[LineDraft] | None = None,
    **draft,
) -> Order:
    """One order of one line worth `amount` (or the given lines)."""
    external_id = external_id or f"order-{next(_orders)}"
    member_id = member if isinstance(member, str) else member.external_id
    lines = lines or [LineDraft(sku="SKU-1", category=category, quantity=1, unit_price=Decimal(amount))]
    return order_place(
        program=program,
        now=now or placed_at,
        draft=OrderDraft(
            external_id=external_id,
            member=member_id,
            currency=currency,
            lines=tuple(lines),
            placed_at=placed_at,
            **draft,
        ),
    )
