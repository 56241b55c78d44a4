"""import_orders and import_balances: streamed, idempotent, resumable, with a report of rejects."""

import csv
import json
from io import StringIO

from django.core.management import call_command

from loyalty.models import OpeningBalance, Order, Transaction
from loyalty.selectors.members import member_balances
from tests.conftest import JUNE


def run(command, path, **kwargs):
    out = StringIO()
    call_command(command, str(path), "--no-progress", stdout=out, **kwargs)
    return out.getvalue()


def rejects(path):
    with open(f"{path}.rejects.csv") as handle:
        return [(r["line"], r["external_id"], r["code"]) for r in csv.DictReader(handle)]


def test_import_orders_from_csv_with_bad_rows(tmp_path, program, member, june):
    path = tmp_path / "orders.csv"
    path.write_text(
        "order_id,member,currency,placed_at,sku,category,quantity,unit_price,discount,gift_card,shipping,tax\n"
        "H-1,anna,EUR,2025-03-01T10:00:00+00:00,A,skincare,1,100.00,10.00,,5.00,20.00\n"
        "H-1,anna,EUR,2025-03-01T10:00:00+00:00,B,makeup,1,20.00,,,,\n"
        "H-2,ghost,USD,2025-03-02T10:00:00+00:00,A,makeup,1,10.00,,,,\n"
        "H-3,anna,XYZ,2025-03-03T10:00:00+00:00,A,makeup,1,10.00,,,,\n"
        "H-4,anna,CHF,2025-03-03T10:00:00+00:00,A,makeup,1,10.00,,,,\n"
        "H-5,anna,USD,2025-03-04T10:00:00+00:00,A,makeup,0,10.00,,,,\n"
        "H-6,anna,USD,2025-03-05T10:00:00+00:00,A,makeup,2,15.50,,yes,,\n"
    )
    assert "created 2, already there 0, rejected 4" in run("import_orders", path)
    assert rejects(path) == [
        ("4", "H-2", "member_not_found"),
        ("5", "H-3", "unknown_currency"),
        ("6", "H-4", "currency_not_accepted"),
        ("7", "H-5", "validation_error"),
    ]
    order = Order.objects.get(external_id="H-1")
    assert (order.points_earned, str(order.shipping.amount), order.lines.count()) == (118, "5.00", 2)
    assert Order.objects.get(external_id="H-6").points_earned == 0  # a gift card
    # history: long past the return window, the points are available at once
    assert member_balances(member=member, now=JUNE)["PTS"]["available"] == 118

    # re-running (or resuming a stopped run) imports nothing twice
    assert "created 0, already there 2, rejected 4" in run("import_orders", path)
    assert Transaction.objects.filter(kind="earn").count() == 1


def test_import_orders_from_json_lines(tmp_path, program, member, june):
    path = tmp_path / "orders.jsonl"
    body = {
        "external_id": "J-1",
        "member": "anna",
        "currency": "USD",
        "placed_at": "2026-06-01T10:00:00+00:00",
        "lines": [{"sku": "A", "quantity": 1, "unit_price": "42.00"}],
    }
    path.write_text(json.dumps(body) + "\n{not json\n" + json.dumps(body | {"external_id": "J-1"}) + "\n")
    assert "created 1, already there 0, rejected 2" in run("import_orders", path)
    assert [r[2] for r in rejects(path)] == ["malformed", "order_exists"]


def test_import_balances(tmp_path, program, member, june):
    path = tmp_path / "balances.csv"
    path.write_text(
        "id,member,points,expires_at,note\n"
        "ob-1,anna,700,2027-01-31T00:00:00+00:00,from the old program\n"
        "ob-2,ghost,100,,\n"
        "ob-3,anna,-5,,\n"
        "ob-4,anna,50,31/01/2027,\n"
    )
    assert "created 1, already there 0, rejected 3" in run("import_balances", path)
    assert [r[2] for r in rejects(path)] == ["member_not_found", "validation_error", "validation_error"]
    assert member_balances(member=member, now=JUNE)["PTS"]["available"] == 700
    assert OpeningBalance.objects.get().transaction.kind == "import"
    assert "created 0, already there 1" in run("import_balances", path)
