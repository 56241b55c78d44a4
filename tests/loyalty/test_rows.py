"""rows_insert (COPY on PostgreSQL) writes exactly what bulk_create writes."""

from decimal import Decimal

import pytest
from djmoney.money import Money

from loyalty.models import Event, Order, OrderLine
from loyalty.services.rows import MIN_ROWS, rows_insert
from tests.conftest import JUNE

N = MIN_ROWS + 10


def build(program, member, tag):
    orders = [
        Order(
            program=program,
            member=member,
            external_id=f"{tag}-{n}",
            placed_at=JUNE,
            fx_rate=Decimal("1.08"),
            currency="EUR",
            base_currency="USD",
            merchandise=Decimal("10.5") + n,
            shipping=Money("1.25", "EUR"),
            tax=Decimal(0),
            total=Decimal("11.755"),  # the column rounds it
            points_payment=Decimal(0),
            qualifying=Decimal("10.50"),
            refunded=Decimal(0),
            refunded_merchandise=Decimal(0),
            refunded_qualifying=Decimal(0),
            qualifying_base=Decimal("11.34"),
            spend_base=Decimal("11.34"),
            points_earned=n,
            earn_breakdown=[{"rule": "base_rate", "points": "11.34"}],
            available_at=JUNE,
            payment_fingerprint="fp" if n % 2 else "",
            metadata={"n": n, "text": "zażółć \\ \t tab", "list": [1, None, True]},
        )
        for n in range(N)
    ]
    for order in orders[::3]:
        assert order.merchandise.amount  # read through the field: a Money is cached on the instance
    lines = [
        OrderLine(
            order=order,  # not saved yet: its id is copied once it is
            sku=f"S{n}",
            category="",
            quantity=n + 1,
            currency="EUR",
            unit_price=Decimal("3.10"),
            discount=Decimal(0),
            net=Decimal("3.10") * (n + 1),
            gift_card=bool(n % 2),
        )
        for n, order in enumerate(orders)
    ]
    events = [
        Event(
            program=program,
            member=member if n % 2 else None,
            type="order.placed",
            occurred_at=JUNE,
            properties={"order": f"{tag}-{n}", "points": n},
        )
        for n in range(N)
    ]
    return orders, lines, events


def rows_of(model, tag, **filters):
    rows = []
    for row in model.objects.filter(**filters).order_by("id").values():
        row.pop("id")
        if "order_id" in row:
            row["order_id"] = Order.objects.get(pk=row["order_id"]).external_id.split("-")[1]
        if "external_id" in row and row["external_id"]:
            row["external_id"] = row["external_id"].split("-")[1]
        if "properties" in row:
            row["properties"]["order"] = row["properties"]["order"].split("-")[1]
        rows.append(row)
    assert len(rows) == N
    return rows


def test_rows_insert_writes_what_bulk_create_writes(program, member, june):
    orders, lines, events = build(program, member, "copy")
    for objs in (orders, lines, events):
        assert rows_insert(objs) is objs
        assert all(obj.pk and not obj._state.adding for obj in objs)
        assert [obj.pk for obj in objs] == sorted(obj.pk for obj in objs)
    assert [line.order_id for line in lines] == [order.pk for order in orders]
    b_orders, b_lines, b_events = build(program, member, "orm")
    for objs in (b_orders, b_lines, b_events):
        type(objs[0]).objects.bulk_create(objs)

    assert rows_of(Order, "copy", external_id__startswith="copy-") == rows_of(
        Order, "orm", external_id__startswith="orm-"
    )
    assert rows_of(OrderLine, "copy", order__external_id__startswith="copy-") == rows_of(
        OrderLine, "orm", order__external_id__startswith="orm-"
    )
    assert rows_of(Event, "copy", properties__order__startswith="copy-") == rows_of(
        Event, "orm", properties__order__startswith="orm-"
    )


def test_rows_insert_refuses_an_unsaved_related_row_as_bulk_create_does(program, member):
    orders, lines, _ = build(program, member, "x")
    with pytest.raises(ValueError, match="unsaved related object 'order'"):
        rows_insert(lines)


def instance_state(obj):
    values = {k: (type(v), repr(v)) for k, v in obj.__dict__.items() if k != "_state"}
    cache = {k: id(v) for k, v in obj._state.fields_cache.items()}
    return values, cache, obj._state.db, obj._state.adding


def test_row_new_builds_what_the_model_builds(program, member):
    from loyalty.models import Lot, Transaction
    from loyalty.services.rows import row_new

    order = {
        "program": program,
        "member": member,
        "external_id": "R-1",
        "placed_at": JUNE,
        "fx_rate": Decimal("1.08"),
        "currency": "EUR",
        "base_currency": "USD",
        "merchandise": Decimal("10.50"),
        "shipping": Money("1.25", "EUR"),  # through the field
        "tax": Decimal(0),
        "total": Decimal("11.75"),
        "points_payment": Decimal(0),
        "qualifying": Decimal("10.5"),
        "qualifying_base": Decimal("11.34"),
        "spend_base": Decimal("11.34"),
        "points_earned": 11,
        "earn_breakdown": [{"rule": "base_rate"}],
        "available_at": JUNE,
        "metadata": {"a": 1},
    }  # refunded*, status, points_reversed, fingerprints, created_at: defaults
    assert instance_state(row_new(Order, **order)) == instance_state(Order(**order))
    unsaved = Order(**order)
    line = {
        "order": unsaved,
        "sku": "A",
        "quantity": 2,
        "currency": "EUR",
        "unit_price": Decimal("3.10"),
        "net": Decimal("6.2"),
    }
    assert instance_state(row_new(OrderLine, **line)) == instance_state(OrderLine(**line))
    event = {"program": program, "member": None, "type": "t", "occurred_at": JUNE}
    assert instance_state(row_new(Event, **event)) == instance_state(Event(**event))
    txn = {
        "program": program,
        "member": member,
        "kind": "earn",
        "effective_at": JUNE,
        "order": unsaved,
        "reference": "Order R-1",
    }
    assert instance_state(row_new(Transaction, **txn)) == instance_state(Transaction(**txn))
    lot = {"member_id": member.pk, "asset": program.primary_asset, "amount": 5, "remaining": 5, "state": "pending"}
    assert instance_state(row_new(Lot, **lot)) == instance_state(Lot(**lot))
    with pytest.raises(TypeError):
        row_new(Event, program=program, nonsense=1)
    with pytest.raises(ValueError, match="must be a"):
        row_new(Event, program=member)


def test_collection_waits_while_a_batch_runs_and_resumes_after_the_last():
    import gc

    from loyalty.services.rows import collection_deferred

    assert gc.isenabled()
    with collection_deferred():
        assert not gc.isenabled()
        with collection_deferred():  # two batches at once (threads of one process)
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collection_deferred():
        raise RuntimeError
    assert gc.isenabled()
    gc.disable()  # whoever turned it off keeps it off
    try:
        with collection_deferred():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
