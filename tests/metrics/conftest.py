"""Helpers for the metrics tests: customers with an order history, built through the real services
(members are enrolled, orders placed, refunds recorded), never inserted raw."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from loyalty.selectors.metrics import Period
from loyalty.services.earning import LineDraft, OrderDraft
from loyalty.services.ingestion import orders_place_bulk
from tests.factories import MemberFactory


def at(year: int, month: int, day: int, hour: int = 12) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def period(program, start: date, end: date) -> Period:
    return Period(start, end, program.timezone)


@pytest.fixture
def customers(program):
    """customers([(external_id, [order times], amount), ...], currency=...) -> members.

    Orders go in through the bulk ingestion service (the same rules as one by one), so a hundred
    customers cost a few statements per batch rather than per order."""
    counter = iter(range(1, 10**6))

    def make(specs, *, currency: str = "USD", enrolled: datetime | None = None):
        members, drafts = [], []
        for external_id, times, amount in specs:
            first = min(times) if times else enrolled or at(2024, 1, 1)
            members.append(
                MemberFactory(program=program, external_id=external_id, now=enrolled or min(first, at(2024, 1, 1)))
            )
            for placed_at in times:
                drafts.append(
                    OrderDraft(
                        external_id=f"{external_id}-{next(counter)}",
                        member=external_id,
                        currency=currency,
                        lines=(LineDraft(sku="SKU", category="makeup", quantity=1, unit_price=Decimal(amount)),),
                        placed_at=placed_at,
                    )
                )
        drafts.sort(key=lambda d: d.placed_at)
        for i in range(0, len(drafts), 500):
            batch = drafts[i : i + 500]
            placed = orders_place_bulk(program=program, drafts=batch, now=max(d.placed_at for d in batch))
            assert all(p.status == "created" for p in placed), [p.error for p in placed if p.status != "created"]
        return members

    return make
