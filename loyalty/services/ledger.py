"""The one writer of the ledger: a unit of work called a Book.

A service opens a Book inside its database transaction after locking the members it touches
(loyalty.services.locks), posts transactions and lot changes on it, and calls `commit()` last.
Nothing is written until then; `commit()` writes transactions, lots, lot movements, balances,
entries and events in a fixed order:

- member accounts are protected by the member's row lock, so their balances are known exactly and
  checked as legs are posted (pending and held never go below zero, available only where a
  clawback is allowed to overdraw);
- system accounts (issued, redeemed, ...) are sharded by member id and updated with one
  `UPDATE ... SET balance = balance + x ... RETURNING` each, in a fixed order (asset, kind, shard),
  as late as possible, so concurrent postings for different members neither deadlock nor queue on
  one hot row;
- every entry gets the balance after it, and the legs of every transaction sum to zero per asset.

A payment holds its member's lock until its transaction commits, and every round trip under the
lock counts (a hot member's payments queue on it). On PostgreSQL, `lock` sends the member's lock
and every read a payment makes under it in one round trip (psycopg's pipeline mode), ids for the
rows to write included, and `commit` sends a book of a few rows in one more (taking ids first only
if it writes more rows than were foreseen). Bigger books (batches, jobs) write each table in one
statement, by COPY from 50 rows (loyalty.services.rows); so does every book on SQLite.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F

from loyalty.errors import InsufficientPoints, MemberNotFound
from loyalty.models import (
    Account,
    AccountKind,
    Asset,
    Entry,
    Event,
    Lot,
    LotMovement,
    LotState,
    Member,
    Order,
    OrderStatus,
    Program,
    Transaction,
)
from loyalty.services.rows import (
    MIN_ROWS,
    ids_parse,
    ids_statement,
    ids_take,
    insert_statement,
    pipeline_supported,
    reads_run,
    row_new,
    rows_insert,
    statements_run,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

SHARDS = settings.LOYALTY["SYSTEM_ACCOUNT_SHARDS"]


@dataclass(frozen=True, order=True)
class SystemAccount:
    """A program system account, addressed by key and resolved when the book commits."""

    asset_id: int
    kind: str
    shard: int


@dataclass
class Posted:
    """A transaction posted on the book; `row` gets its id when the book commits."""

    row: Transaction
    legs: list[tuple[Account | SystemAccount, int]] = field(default_factory=list)


class Book:
    def __init__(self, *, program: Program, now: datetime):
        self.program = program
        self.now = now
        self.posted: list[Posted] = []
        self._accounts: dict[int, dict[tuple[int, str], Account]] = {}  # member id -> (asset id, kind) -> account
        self._versions: dict[int, int] = {}  # account id -> postings on it
        self._lots: dict[tuple[int, int], list[Lot]] = {}  # (member id, asset id) -> open lots
        self._new_lots: list[Lot] = []
        self._changed_lots: dict[int, Lot] = {}
        self._movements: list[tuple[Lot, Posted, int]] = []
        self._events: list[Event] = []
        self.completed_orders: set[int] = set()  # orders whose points matured in this book
        self._save_after: list = []
        self._writes: list[tuple[object, list[str] | None]] = []
        self._statements: list[tuple[str, list]] = []  # the service's own writes, not run yet
        self._reserved: dict[type, list[int]] = {}  # ids taken by `lock`
        self._completed_written = False
        self.committed = False

    # --- accounts -------------------------------------------------------------------------------
    def account(self, member: Member, asset: Asset, kind: str) -> Account:
        """A member's bucket (pending, available or held). The caller holds the member's lock."""
        self.accounts(member)
        accounts = self._accounts[member.pk]
        if (asset.pk, kind) not in accounts:
            Account.objects.bulk_create(
                [
                    Account(program=self.program, asset=asset, member=member, kind=bucket)
                    for bucket in (AccountKind.PENDING, AccountKind.AVAILABLE, AccountKind.HELD)
                ],
                ignore_conflicts=True,
            )
            for a in Account.objects.filter(member=member, asset=asset):
                accounts[(a.asset_id, a.kind)] = a
        return accounts[(asset.pk, kind)]

    def accounts(self, member: Member) -> list[Account]:
        """All of a member's buckets, in every asset (read once, as `account` reads them)."""
        if member.pk not in self._accounts:
            self._flush()
            self._accounts[member.pk] = {(a.asset_id, a.kind): a for a in Account.objects.filter(member=member)}
        return list(self._accounts[member.pk].values())

    def lock(
        self,
        *,
        external_id: str | None = None,
        member_id: int | None = None,
        asset: Asset | None = None,
        also=(),
        ids: dict | None = None,
    ) -> tuple[Member, list[list]]:
        """Lock a member (by external id or id) and read, under the lock and in the same round
        trip on PostgreSQL: their accounts, their open lots of `asset`, the querysets `also`
        (-> their rows) and ids for the rows the book will write (`ids`, {model: count}: the
        commit then takes none unless it writes more). A payment's reads, all at once."""
        from loyalty.services.locks import member_id_query, member_lock_query

        if member_id is not None:
            of_member = {"member_id": member_id}
        else:
            of_member = {"member_id": member_id_query(program=self.program, external_id=external_id)}
        queries = [
            member_lock_query(program=self.program, external_id=external_id, member_id=member_id),
            Account.objects.filter(**of_member),
        ]
        if asset is not None:
            queries.append(_lots_query(asset, **of_member))
        queries += also
        ids_sql = ids_statement(ids) if ids and pipeline_supported() else ("", [])
        if ids_sql[0]:
            queries.append(ids_sql)
        self._flush()
        found = reads_run(queries)
        if not found[0]:
            raise MemberNotFound(f"No member {external_id or member_id!r} in program {self.program.code!r}")
        [member], accounts = found[0], found[1]
        self._accounts[member.pk] = {(a.asset_id, a.kind): a for a in accounts}
        if asset is not None:
            self._lots_keep(member, asset, found[2])
        if ids_sql[0]:
            self._reserved = ids_parse(ids, found[-1])
            found = found[:-1]
        return member, found[2 + (asset is not None) :]

    def execute(self, sql: str, params: list) -> None:
        """Run a write of the service's own (the member's last activity) with the book's writes,
        or before the book next reads, whichever comes first."""
        self._statements.append((sql, params))

    def _flush(self) -> None:
        if self._statements:
            statements, self._statements = self._statements, []
            with connection.cursor() as cursor:
                for sql, params in statements:
                    cursor.execute(sql, params)

    def preload(self, members: list[Member]) -> None:
        """Read the accounts of many members in one query (bulk paths)."""
        self._flush()
        wanted = [m.pk for m in members if m.pk not in self._accounts]
        for pk in wanted:
            self._accounts[pk] = {}
        for a in Account.objects.filter(member_id__in=wanted):
            self._accounts[a.member_id][(a.asset_id, a.kind)] = a

    def balance(self, member: Member, asset: Asset, kind: str) -> int:
        return self.account(member, asset, kind).balance

    @staticmethod
    def system(asset: Asset, kind: str, member: Member | None) -> SystemAccount:
        return SystemAccount(asset.pk, kind, (member.pk if member else 0) % SHARDS)

    # --- transactions ---------------------------------------------------------------------------
    def post(
        self,
        *,
        kind: str,
        member: Member | None,
        legs: Iterable[tuple[Account | SystemAccount, int]],
        effective_at: datetime | None = None,
        allow_overdraft: bool = False,
        **fields,
    ) -> Posted:
        """Post one transaction. Legs are (account, signed amount) and must sum to zero per asset."""
        legs = [(account, amount) for account, amount in legs if amount]
        totals: dict[int, int] = defaultdict(int)
        for account, amount in legs:
            totals[account.asset_id] += amount
        if any(totals.values()):
            raise ValueError(f"unbalanced {kind} transaction: {dict(totals)}")
        for account, amount in legs:
            if isinstance(account, Account):
                new_balance = account.balance + amount
                if new_balance < 0 and not (allow_overdraft and account.kind == AccountKind.AVAILABLE):
                    raise InsufficientPoints(
                        f"{account.kind} balance {account.balance} cannot cover {-amount}",
                        available=account.balance,
                    )
                account.balance = new_balance
                self._versions[account.pk] = self._versions.get(account.pk, 0) + 1
        row = row_new(
            Transaction, program=self.program, member=member, kind=kind, effective_at=effective_at or self.now, **fields
        )
        posted = Posted(row=row, legs=legs)
        self.posted.append(posted)
        return posted

    def move(self, *, member: Member, asset: Asset, source, target, amount: int, kind: str, **fields) -> Posted:
        """Post `amount` from source to target: a two-legged transaction."""
        return self.post(kind=kind, member=member, legs=[(source, -amount), (target, amount)], **fields)

    # --- lots -----------------------------------------------------------------------------------
    def lots(self, member: Member, asset: Asset) -> list[Lot]:
        """The member's open lots of the asset (not expired, something left or still pending),
        soonest-expiring first: the order points are spent in."""
        key = (member.pk, asset.pk)
        if key not in self._lots:
            self._flush()
            self._lots_keep(member, asset, list(_lots_query(asset, member=member)))
        return self._lots[key]

    def _lots_keep(self, member: Member, asset: Asset, lots: list[Lot]) -> None:
        for lot in lots:
            lot.member, lot.asset = member, asset  # the objects the book already holds
        key = (member.pk, asset.pk)
        lots += [x for x in self._new_lots if (x.member.pk, x.asset.pk) == key]  # credited, not yet written
        self.sort_lots(lots)
        self._lots[key] = lots

    def add_lot(self, lot: Lot) -> Lot:
        self._new_lots.append(lot)
        lots = self._lots.get((lot.member.pk, lot.asset.pk))
        if lots is not None:  # keep a loaded list complete; an unloaded one will read it from the database
            lots.append(lot)
            self.sort_lots(lots)
        return lot

    def sort_lots(self, lots: list[Lot]) -> None:
        lots.sort(key=lambda x: (x.expires_at is None, x.expires_at or self.now, x.earned_at, x.pk or 0))

    def change_lot(self, lot: Lot, posted: Posted, delta: int) -> None:
        """Take from (negative) or give back to (positive) a lot's remaining, as part of `posted`."""
        lot.remaining += delta
        if not 0 <= lot.remaining <= lot.amount:
            raise ValueError(f"lot {lot.pk} remaining would be {lot.remaining}")
        self._movements.append((lot, posted, delta))
        self.touch_lot(lot)

    def touch_lot(self, lot: Lot) -> None:
        if lot.pk is not None:
            self._changed_lots[lot.pk] = lot

    # --- events ---------------------------------------------------------------------------------
    def emit(self, type: str, member: Member | None, properties: dict | None = None, *, occurred_at=None) -> None:
        """Record a domain event in the same transaction (the outbox of badges and webhooks)."""
        self._events.append(
            row_new(
                Event,
                program=self.program,
                member=member,
                type=type,
                occurred_at=occurred_at or self.now,
                properties=properties or {},
            )
        )

    def save_after(self, obj) -> None:
        """Save a row that points at what this book writes (an award, a claim) once it is written."""
        self._save_after.append(obj)

    def will_save(self, model, **fields) -> bool:
        """Is a row like this already waiting to be saved by this book?"""
        return any(
            isinstance(obj, model) and all(getattr(obj, k) == v for k, v in fields.items()) for obj in self._save_after
        )

    # --- commit ---------------------------------------------------------------------------------
    def write(self, obj, *, fields: list[str] | None = None) -> None:
        """Save a row that goes with this book's postings (a redemption, its new status) with the
        book's own writes: an insert when `fields` is None, else an update of `fields`. A new row's
        id is taken before (`rows.id_take`); where the database gives ids only on insert (None), it
        is saved now, as its id is needed at once."""
        if fields is None and obj.pk is None:
            obj.save(force_insert=True)
        else:
            self._writes.append((obj, fields))

    def commit(self) -> None:
        """Write everything posted, in an order that keeps locks short and deadlock-free."""
        assert connection.in_atomic_block, "a Book commits inside the caller's transaction"
        assert not self.committed, "a Book commits once"
        self.committed = True
        if (
            pipeline_supported()
            and max(len(self.posted), len(self._new_lots), len(self._movements), len(self._events)) < MIN_ROWS
        ):
            self._commit_together()
        else:
            self._commit_rows()
        if self.completed_orders and not self._completed_written:
            Order.objects.filter(pk__in=self.completed_orders, status=OrderStatus.PENDING).update(
                status=OrderStatus.COMPLETED
            )
        for obj in self._save_after:
            obj.save()
        if self._events:
            from loyalty.services.events import events_dispatch

            ids = [e.pk for e in self._events]
            transaction.on_commit(lambda: events_dispatch(event_ids=ids))

    def _commit_rows(self) -> None:
        self._flush()
        for obj, fields in self._writes:
            obj.save(force_insert=fields is None, update_fields=fields)
        rows_insert([p.row for p in self.posted])
        rows_insert(self._new_lots)  # foreign keys to rows created above resolve on save
        if self._changed_lots:
            rows_update(Lot._meta.db_table, *self._lots_changed())
        rows_insert(
            [row_new(LotMovement, lot=lot, transaction=p.row, amount=delta) for lot, p, delta in self._movements]
        )
        final = self._write_balances()
        entries = []
        running: dict[object, int] = {}
        for p in reversed(self.posted):
            for account, amount in reversed(p.legs):
                key = _key(account)
                after = running.get(key, final[key])
                entries.append(
                    row_new(
                        Entry,
                        transaction=p.row,
                        account_id=_account_id(account, final),
                        amount=amount,
                        balance_after=after,
                    )
                )
                running[key] = after - amount
        entries.reverse()
        rows_insert(entries)
        rows_insert(self._events)

    def _commit_together(self) -> None:
        """The same writes as `_commit_rows`, sent in one round trip after one that takes the new
        rows' ids. A system account's entries are inserted by the statement that updates its
        balance (their balances after are counted back from its RETURNING), so, as on the other
        path, they are numbered only once that row is locked."""
        new_lots = self._new_lots
        wanted = {Transaction: len(self.posted), Lot: len(new_lots), Event: len(self._events)}
        short = {model: max(0, n - len(self._reserved.get(model, ()))) for model, n in wanted.items()}
        more = ids_take(short) if any(short.values()) else {}
        for rows, model in ((self.posted, Transaction), (new_lots, Lot), (self._events, Event)):
            ids = (self._reserved.get(model, []) + more.get(model, []))[: len(rows)]
            for row, pk in zip(rows, ids, strict=True):
                (row.row if model is Transaction else row).pk = pk
        statements, self._statements = self._statements, []
        statements += [_written(obj, fields) for obj, fields in self._writes]
        for rows in ([p.row for p in self.posted], new_lots):
            if rows:
                statements.append(insert_statement(rows))
        if self._changed_lots:
            statements += update_statements(Lot._meta.db_table, *self._lots_changed())
        if self._movements:
            movements = [row_new(LotMovement, lot=lot, transaction=p.row, amount=d) for lot, p, d in self._movements]
            statements.append(insert_statement(movements, with_ids=False))
        member_accounts, system_deltas = self._balance_changes()
        statements += update_statements(
            Account._meta.db_table, ["balance", "version"], [(a.pk, a.balance, a.version) for a in member_accounts]
        )
        member_entries, system_entries = [], defaultdict(list)
        later: dict[object, int] = defaultdict(int)  # what the legs after this one add to its account
        for p in reversed(self.posted):
            for account, amount in reversed(p.legs):
                if isinstance(account, Account):
                    entry = row_new(
                        Entry,
                        transaction=p.row,
                        account_id=account.pk,
                        amount=amount,
                        balance_after=account.balance - later[account.pk],
                    )
                    member_entries.append(entry)
                    later[account.pk] += amount
                else:
                    system_entries[account].append((p.row.pk, amount, later[account]))
                    later[account] += amount
        if member_entries:
            member_entries.reverse()
            statements.append(insert_statement(member_entries, with_ids=False))
        system_refs, first_system = sorted(system_deltas), len(statements)
        statements += [_system_statement(self.program.pk, r, *system_deltas[r], system_entries[r]) for r in system_refs]
        if self._events:
            statements.append(insert_statement(self._events))
        if self.completed_orders:
            statements.append(
                (
                    "UPDATE loyalty_order SET status = %s WHERE id = ANY(%s) AND status = %s",
                    [OrderStatus.COMPLETED.value, sorted(self.completed_orders), OrderStatus.PENDING.value],
                )
            )
            self._completed_written = True
        written = statements_run(statements)
        for ref, count in zip(system_refs, written[first_system : first_system + len(system_refs)], strict=True):
            if not count:  # the shard was never created: create it, and write its balance and entries now
                Account.objects.bulk_create(
                    [Account(program_id=self.program.pk, asset_id=ref.asset_id, kind=ref.kind, shard=ref.shard)],
                    ignore_conflicts=True,
                )
                statements_run([_system_statement(self.program.pk, ref, *system_deltas[ref], system_entries[ref])])

    def _lots_changed(self):
        return (
            ["remaining", "state", "expires_at"],
            [(lot.pk, lot.remaining, lot.state, lot.expires_at) for lot in self._changed_lots.values()],
            {"expires_at": "timestamptz"},  # may be NULL
        )

    def _balance_changes(self) -> tuple[list[Account], dict[SystemAccount, list[int]]]:
        """The member accounts posted to (their new balance and version set), in id order, and
        each system account's change and number of postings."""
        member_accounts = {}
        system_deltas: dict[SystemAccount, list[int]] = defaultdict(lambda: [0, 0])
        for p in self.posted:
            for account, amount in p.legs:
                if isinstance(account, Account):
                    member_accounts[account.pk] = account
                else:
                    system_deltas[account][0] += amount
                    system_deltas[account][1] += 1
        changed = []
        for pk in sorted(member_accounts):
            account = member_accounts[pk]
            account.version += self._versions.pop(pk, 0)
            changed.append(account)
        return changed, system_deltas

    def _write_balances(self) -> dict[object, int]:
        """Apply the balance changes; -> final balance by account key (and system ids)."""
        changed, system_deltas = self._balance_changes()
        final: dict[object, int] = {("m", a.pk): a.balance for a in changed}
        rows_update(Account._meta.db_table, ["balance", "version"], [(a.pk, a.balance, a.version) for a in changed])
        with connection.cursor() as cursor:
            for ref in sorted(system_deltas):
                delta, count = system_deltas[ref]
                row = _update_system(cursor, self.program.pk, ref, delta, count)
                if row is None:
                    Account.objects.bulk_create(
                        [Account(program_id=self.program.pk, asset_id=ref.asset_id, kind=ref.kind, shard=ref.shard)],
                        ignore_conflicts=True,
                    )
                    row = _update_system(cursor, self.program.pk, ref, delta, count)
                final[("s", ref)] = row[1]
                final[("id", ref)] = row[0]
        return final


def rows_update(table: str, columns: list[str], rows: list[tuple], types=None) -> None:
    """Set `columns` of many rows by id, one statement per 1,000 rows: `rows` are (id, *values)."""
    with connection.cursor() as cursor:
        for sql, params in update_statements(table, columns, rows, types):
            cursor.execute(sql, params)


def update_statements(table: str, columns: list[str], rows: list[tuple], types=None, *, batch: int = 1000):
    """`rows_update`'s statements. `UPDATE ... FROM (VALUES ...)` is one short statement where
    bulk_update builds a CASE WHEN per row and column (its compilation was a sixth of a bulk
    ingestion's time, and an eighth of a hold's work under the member's lock). The VALUES list types
    each column by its first row, so a column that may hold NULL names its PostgreSQL type in
    `types`."""
    quote = connection.ops.quote_name
    casts = {c: f"::{t}" for c, t in (types or {}).items()} if connection.vendor == "postgresql" else {}
    sets = ", ".join(f"{quote(c)} = v.column{i}{casts.get(c, '')}" for i, c in enumerate(columns, 2))
    statements = []
    for start in range(0, len(rows), batch):
        part = rows[start : start + batch]
        values = ", ".join(["(" + ", ".join(["%s"] * (len(columns) + 1)) + ")"] * len(part))
        statements.append(
            (
                f"UPDATE {quote(table)} SET {sets} FROM (VALUES {values}) AS v WHERE {quote(table)}.id = v.column1",
                [db_value(value) for row in part for value in row],
            )
        )
    return statements


def db_value(value):
    """A parameter for hand-written SQL as the ORM would send it (SQLite stores datetimes as UTC
    text in its own format, which comparisons with the ORM's values rely on)."""
    if isinstance(value, datetime):
        return connection.ops.adapt_datetimefield_value(value)
    return value


def _update_system(cursor, program_id: int, ref: SystemAccount, delta: int, count: int):
    cursor.execute(
        "UPDATE loyalty_account SET balance = balance + %s, version = version + %s "
        "WHERE program_id = %s AND asset_id = %s AND kind = %s AND shard = %s AND member_id IS NULL "
        "RETURNING id, balance",
        [delta, count, program_id, ref.asset_id, ref.kind, ref.shard],
    )
    return cursor.fetchone()


def _lots_query(asset: Asset, **of_member):
    """A member's open lots of an asset, soonest-expiring first: the order points are spent in."""
    return (
        Lot.objects.filter(asset=asset, **of_member)
        .exclude(state=LotState.EXPIRED)
        .filter(remaining__gt=0)
        .select_related("order")
        .order_by(F("expires_at").asc(nulls_last=True), "earned_at", "id")
    )


def _system_statement(program_id: int, ref: SystemAccount, delta: int, count: int, entries: list[tuple]):
    """Update a system account's balance and insert its entries, (transaction id, amount, what the
    later legs add) in reverse posting order, each with its balance after counted back from the
    new balance."""
    values = ", ".join(["(%s::bigint, %s::bigint, %s::bigint, %s::bigint)"] * len(entries))
    return (
        "WITH s AS (UPDATE loyalty_account SET balance = balance + %s, version = version + %s "
        "WHERE program_id = %s AND asset_id = %s AND kind = %s AND shard = %s AND member_id IS NULL "
        "RETURNING id, balance) "
        "INSERT INTO loyalty_entry (transaction_id, account_id, amount, balance_after) "
        f"SELECT v.tx, s.id, v.amount, s.balance - v.later FROM s, (VALUES {values}) AS v(n, tx, amount, later) "
        "ORDER BY v.n DESC",
        [delta, count, program_id, ref.asset_id, ref.kind, ref.shard]
        + [value for n, entry in enumerate(entries) for value in (n, *entry)],
    )


def _written(obj, fields: list[str] | None) -> tuple[str, list]:
    """The statement that saves `obj` as `Book.write` asks."""
    if fields is None:
        return insert_statement([obj])
    table, quote = obj._meta.db_table, connection.ops.quote_name
    db_fields = [obj._meta.get_field(name) for name in fields]
    sets = ", ".join(f"{quote(f.column)} = %s" for f in db_fields)
    return (
        f"UPDATE {quote(table)} SET {sets} WHERE id = %s",
        [f.get_db_prep_save(getattr(obj, f.attname), connection) for f in db_fields] + [obj.pk],
    )


def _key(account: Account | SystemAccount):
    return ("m", account.pk) if isinstance(account, Account) else ("s", account)


def _account_id(account: Account | SystemAccount, final: dict) -> int:
    return account.pk if isinstance(account, Account) else final[("id", account)]


def system_accounts_create(*, program: Program, asset: Asset) -> None:
    """Create every system account shard of an asset up front (cheap, and no insert on hot paths)."""
    Account.objects.bulk_create(
        [
            Account(program=program, asset=asset, kind=kind, shard=shard)
            for kind in AccountKind.values
            if kind not in ("pending", "available", "held")
            for shard in range(SHARDS)
        ],
        ignore_conflicts=True,
    )
