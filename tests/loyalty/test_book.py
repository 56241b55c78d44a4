"""The Book's two ways of writing (loyalty/services/ledger.py): a few rows in one round trip
(PostgreSQL's pipeline mode), many rows by COPY or bulk_create. Both write the same ledger."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction

from loyalty.models import Account, AccountKind, Entry, Event, Redemption, Transaction, TransactionKind
from loyalty.services import ledger
from loyalty.services.ledger import Book
from loyalty.services.points import lots_settle, points_credit
from loyalty.services.redemptions import redemption_capture, redemption_hold, redemption_void
from loyalty.services.rows import ids_take, insert_statement, statements_run
from loyalty.services.settlement import points_mature
from tests.conftest import JUNE
from tests.factories import place_order


def story(program, member):
    """Orders whose points mature, a hold captured, a hold voided, three credits from one system
    account in one book."""
    place_order(program, member, "900.00", placed_at=JUNE, external_id=f"{member.external_id}-1")
    place_order(program, member, "400.00", placed_at=JUNE + timedelta(hours=1), external_id=f"{member.external_id}-2")
    later = JUNE + timedelta(days=40)  # past the return window
    hold = redemption_hold(program=program, member_external_id=member.external_id, points=500, now=later)
    redemption_capture(program=program, redemption_id=hold.pk, now=later)
    hold = redemption_hold(program=program, member_external_id=member.external_id, points=500, now=later)
    redemption_void(program=program, redemption_id=hold.pk, now=later)
    with transaction.atomic():  # a book with several legs on one system account
        book = Book(program=program, now=later)
        for n in range(3):
            points_credit(
                book,
                member=member,
                asset=program.primary_asset,
                amount=10 + n,
                kind=TransactionKind.ADJUST,
                source=AccountKind.ADJUSTMENTS,
            )
        lots_settle(book, member=member, asset=program.primary_asset)
        book.commit()


def ledger_of(member):
    """The member's ledger, without ids: per transaction its kind, reference and legs."""
    rows = []
    for txn in Transaction.objects.filter(member=member).order_by("id").prefetch_related("entries__account"):
        legs = sorted(
            (e.account.kind, e.account.member_id is not None, e.amount, e.balance_after) for e in txn.entries.all()
        )
        reference = txn.reference.split(" ")[0]  # (redemption ids differ between runs)
        rows.append((txn.kind, reference, txn.effective_at, legs))
    return rows


@pytest.mark.postgres
def test_both_ways_write_the_same_ledger(program, member_factory, monkeypatch):
    together = member_factory(external_id="together", email="t@example.com")
    story(program, together)
    monkeypatch.setattr(ledger, "pipeline_supported", lambda: False)
    by_rows = member_factory(external_id="rows", email="r@example.com")
    story(program, by_rows)
    assert ledger_of(together) == ledger_of(by_rows)
    assert len(ledger_of(together)) >= 9
    statuses = sorted(Redemption.objects.filter(member=together).values_list("status", flat=True))
    assert statuses == ["captured", "voided"]
    for member in (together, by_rows):
        for account in Account.objects.filter(member=member):
            last = Entry.objects.filter(account=account).order_by("-id").first()
            assert account.balance == (last.balance_after if last else 0)


def round_trips(run) -> list[list[str]]:
    """The statements `run` sends, grouped by round trip (those sent together in one pipeline)."""
    trips: list[tuple[object, list[str]]] = []

    def record(execute, sql, params, many, context):
        pipeline = connection.connection._pipeline
        if pipeline is None or not trips or trips[-1][0] is not pipeline:
            trips.append((pipeline, []))
        trips[-1][1].append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        run()
    return [sql for _, sql in trips]


@pytest.mark.postgres
def test_a_payment_holds_its_members_lock_for_two_round_trips(program, member):
    """The lock with every read under it, then every write: hold and capture alike."""
    place_order(program, member, "900.00", placed_at=JUNE - timedelta(days=40))
    points_mature(JUNE)  # (what matures with the hold takes ids of its own: one round trip more)
    holds = []

    def hold():
        holds.append(redemption_hold(program=program, member_external_id=member.external_id, points=500, now=JUNE))

    for run in (hold, lambda: redemption_capture(program=program, redemption_id=holds[0].pk, now=JUNE)):
        trips = round_trips(run)
        locked = next(n for n, trip in enumerate(trips) if "FOR UPDATE" in trip[0])
        under_lock = [trip for trip in trips[locked:] if not trip[0].startswith("RELEASE SAVEPOINT")]
        assert len(under_lock) == 2, under_lock
        reads, writes = under_lock
        assert all(sql.startswith("SELECT") for sql in reads)
        assert not any(sql.startswith("SELECT") for sql in writes)
    assert Redemption.objects.get(pk=holds[0].pk).status == "captured"


@pytest.mark.postgres
def test_a_system_account_never_created_is_created_as_the_book_writes(program, member):
    asset = program.primary_asset
    shard = member.pk % ledger.SHARDS
    Account.objects.filter(program=program, asset=asset, kind=AccountKind.ADJUSTMENTS, shard=shard).delete()
    with transaction.atomic():
        book = Book(program=program, now=JUNE)
        points_credit(
            book, member=member, asset=asset, amount=25, kind=TransactionKind.ADJUST, source=AccountKind.ADJUSTMENTS
        )
        book.commit()
    system = Account.objects.get(program=program, asset=asset, kind=AccountKind.ADJUSTMENTS, shard=shard)
    assert system.balance == -25
    assert list(Entry.objects.filter(account=system).values_list("amount", "balance_after")) == [(-25, -25)]


@pytest.mark.postgres
def test_writes_sent_together_fail_as_one(program, member):
    """A statement that fails raises Django's own error, and nothing after it is written."""
    [pk] = ids_take({Event: 1})[Event]
    first = Event(pk=pk, program=program, member=member, type="a", occurred_at=JUNE, properties={})
    again = Event(pk=pk, program=program, member=member, type="b", occurred_at=JUNE, properties={})
    after = Event(pk=pk + 10**9, program=program, member=member, type="c", occurred_at=JUNE, properties={})
    with pytest.raises(IntegrityError), transaction.atomic():
        statements_run([insert_statement([first]), insert_statement([again]), insert_statement([after])])
    assert not Event.objects.filter(pk__in=[pk, pk + 10**9]).exists()
    statements_run([insert_statement([first])])
    assert Event.objects.get(pk=pk).type == "a"
