"""Many new rows at once, without the ORM's per-object cost (a batch of orders builds and writes
thousands of orders, lines, transactions, lots, entries and events):

- `row_new(Model, **values)` builds an instance as `Model(**values)` does, setting the values it is
  given (and the defaults of the rest) without running a descriptor per field;
- `collection_deferred()` holds Python's cyclic garbage collector back while a bulk path runs;
- `rows_insert(objs)` is `bulk_create(objs)`: on PostgreSQL the ids come from the table's sequence in
  one statement and the rows go in by COPY. bulk_create prepares every value of every object through
  its field and psycopg adapts every element of the arrays it sends value by value, where COPY
  formats a row in C. The values are the ones bulk_create sends: each field's `get_db_prep_save`,
  skipped only for the Python types it returns unchanged. Small lists, and other databases, use
  bulk_create itself;
- `ids_take({Model: n})` takes ids for rows not written yet, and `insert_statement(objs)` is the
  INSERT of rows with their ids set, prepared as rows_insert prepares them: for writes sent together
  in one round trip (`statements_run`, psycopg's pipeline mode), all on PostgreSQL;
- `reads_run(querysets)` evaluates several querysets in one round trip (pipeline mode again).

tests/loyalty/test_rows.py holds both to what the ORM does.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from typing import TypeVar

import psycopg
from django.core.exceptions import EmptyResultSet
from django.db import DEFAULT_DB_ALIAS, connection, connections, models, router
from django.db.models.base import ModelState
from django.db.models.query import get_related_populators
from djmoney.models.fields import MoneyField

M = TypeVar("M", bound=models.Model)

MIN_ROWS = 50  # below this, bulk_create's one INSERT ... RETURNING is as good
_PLAIN = {  # internal type -> the Python type its get_db_prep_save returns as it is (on PostgreSQL)
    "CharField": str,
    "TextField": str,
    "BigIntegerField": int,
    "IntegerField": int,
    "PositiveIntegerField": int,
    "PositiveSmallIntegerField": int,
    "SmallIntegerField": int,
    "BooleanField": bool,
    "DecimalField": Decimal,
}


# --- collecting -------------------------------------------------------------------------------------
@contextmanager
def collection_deferred() -> Iterator[None]:
    """Python's cyclic garbage collector waits while a batch runs.

    A batch keeps its ~100,000 objects alive until it answers (bodies, drafts, instances, results):
    ageing into the oldest generation, they set off 2-3 full collections per batch, each walking
    every object of the process — a quarter of a batch's CPU (bench/profile_batch.py). What a batch
    leaves is freed by reference counting as it ends; the collector (one per process, shared by its
    threads) resumes when the last batch running in the process is done, as it was before."""
    global _deferring, _was_enabled
    with _deferring_lock:
        if _deferring == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _deferring += 1
    try:
        yield
    finally:
        with _deferring_lock:
            _deferring -= 1
            if _deferring == 0 and _was_enabled:
                gc.enable()


_deferring, _was_enabled, _deferring_lock = 0, True, threading.Lock()


# --- building ---------------------------------------------------------------------------------------
def row_new(model: type[M], /, **values) -> M:
    """`model(**values)`, for the bulk paths. A foreign key is given by name with an instance (set
    through its descriptor, as the ORM does) or by attname with an id; a money amount as a Decimal
    (what the field would keep of it; anything else goes through the field). Fields not given get
    their default. The model sends no pre_init/post_init signal receivers (nothing here connects any)."""
    new = _new_of(model)
    obj = model.__new__(model)
    obj._state = ModelState()
    data = obj.__dict__
    later = []
    for attname, name, default, kind in new.fields:
        if kind == _RELATION and name in values:
            related = values.pop(name)
            if new.direct and isinstance(related, new.related[name]):
                _relate(obj, name, attname, related)
            else:
                later.append((name, related))
        elif attname in values:
            value = values.pop(attname)
            if kind == _MONEY and value is not None and type(value) is not Decimal:
                data[attname] = None
                later.append((attname, value))
            else:
                data[attname] = value
        else:
            data[attname] = default()
    if values:
        raise TypeError(f"{model.__name__}() got unexpected keyword arguments: {', '.join(values)}")
    for name, value in later:
        setattr(obj, name, value)
    return obj


_FIELD, _MONEY, _RELATION = 0, 1, 2


class _New:
    def __init__(self, model):
        meta = model._meta
        assert not meta.abstract and not meta.parents, f"{model.__name__}: concrete models without parents only"
        self.fields = []
        for field in meta.fields:
            if field.generated or (field.column is None):
                continue
            kind = _RELATION if field.is_relation else _MONEY if isinstance(field, MoneyField) else _FIELD
            # a plain field's attribute is the instance's own (no descriptor sets it: DeferredAttribute)
            assert kind != _FIELD or not hasattr(type(getattr(model, field.attname, None)), "__set__"), field
            plain_default = type(field).get_default is models.Field.get_default  # not ForeignKey's, MoneyField's
            self.fields.append(
                (field.attname, field.name, field._get_default if plain_default else field.get_default, kind)
            )
        # the values ForwardManyToOneDescriptor.__set__ would set, set here when no router decides
        self.related = {f.name: f.remote_field.model._meta.concrete_model for f in meta.fields if f.is_relation}
        self.direct = not router.routers and all(
            f.many_to_one and not f.one_to_one and f.target_field.primary_key for f in meta.fields if f.is_relation
        )


def _relate(obj, name: str, attname: str, related) -> None:
    """`obj.<name> = related` as the ORM's descriptor does it when no database router is set: both
    rows on one database, the id copied, the instance cached."""
    state = obj._state
    if state.db is None:
        state.db = related._state.db or DEFAULT_DB_ALIAS
    if related._state.db is None:
        related._state.db = state.db
    elif related._state.db != state.db:
        raise ValueError(f"Cannot assign {related!r}: the current database router prevents this relation.")
    obj.__dict__[attname] = related.pk
    state.fields_cache[name] = related


_new: dict[type, _New] = {}


def _new_of(model) -> _New:
    if model not in _new:
        _new[model] = _New(model)
    return _new[model]


# --- writing ----------------------------------------------------------------------------------------
def rows_insert(objs: list[M]) -> list[M]:
    """Insert new instances of one model (no pk yet), as `bulk_create(objs)`: their pk is set."""
    if not objs:
        return objs
    model = type(objs[0])
    db = connections[DEFAULT_DB_ALIAS]  # the connection itself, not its proxy: used for every value
    if db.vendor != "postgresql" or len(objs) < MIN_ROWS or any(obj.pk is not None for obj in objs):
        model.objects.bulk_create(objs)  # (it returns a copy of the list)
        return objs
    columns = _columns(model)
    for obj in objs:
        columns.relate(obj)
    rows = [[prep(obj, db) for prep in columns.preps] for obj in objs]  # auto_now_add stamps before the ids
    db.validate_no_broken_transaction()
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [columns.table, columns.pk, len(objs)],
        )
        ids = sorted(row[0] for row in cursor.fetchall())
        start = time.monotonic()
        with cursor.cursor.copy(columns.copy) as copy:
            for pk, row in zip(ids, rows, strict=True):
                row.insert(0, pk)
                copy.write_row(row)
        if db.queries_logged:  # counted and shown like any statement
            db.queries_log.append({"sql": columns.copy, "time": f"{time.monotonic() - start:.3f}"})
    pk_attname = model._meta.pk.attname
    for obj, pk in zip(objs, ids, strict=True):
        obj.__dict__[pk_attname] = pk
        obj._state.adding = False
        obj._state.db = db.alias
    return objs


def ids_take(counts: dict[type[models.Model], int]) -> dict[type[models.Model], list[int]]:
    """Ids for rows of several models not written yet, from their sequences in one statement
    (PostgreSQL), each model's in ascending order."""
    sql, params = ids_statement(counts)
    return ids_parse(counts, _rows(connections[DEFAULT_DB_ALIAS], sql, params) if sql else [])


def ids_statement(counts: dict[type[models.Model], int]) -> tuple[str, list]:
    """`ids_take`'s statement, to send with others (`reads_run`); "" when no id is wanted."""
    parts, params = [], []
    for tag, (model, count) in enumerate(counts.items()):
        if count:
            columns = _columns(model)
            parts.append(f"SELECT {tag}, nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)")
            params += [columns.table, columns.pk, count]
    return " UNION ALL ".join(parts), params


def ids_parse(counts: dict[type[models.Model], int], rows: list[tuple]) -> dict[type[models.Model], list[int]]:
    taken: dict[int, list[int]] = {tag: [] for tag in range(len(counts))}
    for tag, pk in rows:
        taken[tag].append(pk)
    return {model: sorted(taken[tag]) for tag, model in enumerate(counts)}


def id_take(model: type[models.Model]) -> int | None:
    """An id for one row of `model` not written yet; None where the database gives ids only as it
    inserts (SQLite)."""
    return ids_take({model: 1})[model][0] if connection.vendor == "postgresql" else None


def insert_statement(objs: list[M], *, with_ids: bool = True) -> tuple[str, list]:
    """The INSERT of new instances of one model, their ids set beforehand (`ids_take`) or, without
    ids, left to the table's sequence (rows nothing refers to: entries, lot movements). The values
    are rows_insert's; the instances count as saved."""
    model = type(objs[0])
    db = connections[DEFAULT_DB_ALIAS]
    columns = _columns(model)
    params = []
    for obj in objs:
        columns.relate(obj)
        if with_ids:
            assert obj.pk is not None, f"{model.__name__}: an id is taken before the insert"
            params.append(obj.pk)
        params += [prep(obj, db) for prep in columns.preps]
        obj._state.adding = False
        obj._state.db = db.alias
    names = columns.names if with_ids else columns.names[1:]
    row = "(" + ", ".join(["%s"] * len(names)) + ")"
    return f"INSERT INTO {columns.table} ({', '.join(names)}) VALUES {', '.join([row] * len(objs))}", params


def statements_run(statements: list[tuple[str, list]]) -> list[int]:
    """Run writes in one round trip (psycopg's pipeline mode, PostgreSQL): they go out together and
    run in order, the first failure raises (as Django's own error) and the rest do not run.
    -> the number of rows each one wrote."""
    with _pipelined(statements) as cursors:
        return [cursor.cursor.rowcount for cursor in cursors]


def reads_run(queries: list) -> list[list]:
    """Read several things in one round trip on PostgreSQL (pipeline mode), one after another
    elsewhere: a queryset gives its instances, as `list(queryset)` does (select_related included),
    an (sql, params) statement its rows. They run in order, so what follows a `select_for_update`
    is read under its lock."""
    db = connections[DEFAULT_DB_ALIAS]
    if not pipeline_supported():
        return [list(query) if isinstance(query, models.QuerySet) else _rows(db, *query) for query in queries]
    compiled = []
    for query in queries:
        if isinstance(query, models.QuerySet):
            compiler = query.query.get_compiler(using=query.db)
            try:
                compiled.append((compiler, *compiler.as_sql()))
            except EmptyResultSet:  # (a filter on an empty list)
                compiled.append((None, "SELECT 1 WHERE false", []))
        else:
            compiled.append((None, *query))
    with _pipelined([(sql, params) for _, sql, params in compiled]) as cursors:
        rows = [cursor.fetchall() for cursor in cursors]
    return [
        _instances(db, compiler, found) if compiler is not None else found
        for (compiler, _, _), found in zip(compiled, rows, strict=True)
    ]


@contextmanager
def _pipelined(statements: list[tuple[str, list]]) -> Iterator[list]:
    """Send statements in one round trip, each on a cursor of its own; -> those cursors, their
    results in (errors raised as Django's)."""
    db = connections[DEFAULT_DB_ALIAS]
    if not statements:
        yield []
        return
    db.validate_no_broken_transaction()
    cursors = [db.cursor() for _ in statements]
    try:
        with db.wrap_database_errors:
            with cursors[0].cursor.connection.pipeline():
                for cursor, (sql, params) in zip(cursors, statements, strict=True):
                    cursor.execute(sql, params)
            yield cursors
    finally:
        for cursor in cursors:
            cursor.close()


def _rows(db, sql: str, params: list) -> list[tuple]:
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _instances(db, compiler, rows: list[tuple]) -> list:
    """The instances Django's ModelIterable builds from a compiled queryset's rows."""
    select, klass_info = compiler.select, compiler.klass_info
    model, fields = klass_info["model"], klass_info["select_fields"]
    start, end = fields[0], fields[-1] + 1
    init_list = [column[0].target.attname for column in select[start:end]]
    populators = get_related_populators(klass_info, select, db.alias)
    if compiler.has_extra_select:
        rows = [row[: compiler.col_count] for row in rows]
    instances = []
    for row in compiler.results_iter([rows]):
        obj = model.from_db(db.alias, init_list, row[start:end])
        for populator in populators:
            populator.populate(row, obj)
        instances.append(obj)
    return instances


def pipeline_supported() -> bool:
    return connection.vendor == "postgresql" and psycopg.Pipeline.is_supported()


class _Columns:
    def __init__(self, model):
        meta = model._meta
        quote = connection.ops.quote_name
        fields = [f for f in meta.concrete_fields if not f.primary_key and not f.generated]
        assert not any(f.db_returning for f in fields), f"{model.__name__} has columns the database fills"
        assert not meta.private_fields, f"{model.__name__} has private fields (generic relations)"
        self.table = quote(meta.db_table)
        self.pk = meta.pk.column
        self.preps = [_prep(f) for f in fields]
        self.relations = [(f.name, f.attname, f.target_field.attname) for f in fields if f.is_relation]
        self.names = [quote(c) for c in [meta.pk.column, *(f.column for f in fields)]]
        self.copy = f"COPY {self.table} ({', '.join(self.names)}) FROM STDIN"

    def relate(self, obj) -> None:
        """`_prepare_related_fields_for_save`, as bulk_create calls it: the id of a related row saved
        after it was assigned is copied; an unsaved one is refused (by the ORM's own check)."""
        cache, data = obj._state.fields_cache, obj.__dict__
        for name, attname, target in self.relations:
            related = cache.get(name)
            if related is None:
                continue
            pk = getattr(related, target)
            if pk is None:
                obj._prepare_related_fields_for_save(operation_name="bulk_create")  # raises
            if data[attname] is None:
                data[attname] = pk
            elif data[attname] != pk:
                del cache[name]


_columns_of: dict[type, _Columns] = {}


def _columns(model) -> _Columns:
    if model not in _columns_of:
        _columns_of[model] = _Columns(model)
    return _columns_of[model]


def _prep(field: models.Field):
    """(obj, connection) -> the value bulk_create would send for `field`."""
    attname = field.attname
    save = field.get_db_prep_save
    if field.is_relation:  # the related row's id (copied by relate)
        return lambda obj, db: obj.__dict__[attname]
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return lambda obj, db: (
            value if isinstance(value := field.pre_save(obj, True), datetime) and value.tzinfo is not None
            else save(value, db)
        )  # fmt: skip
    if isinstance(field, models.DateTimeField):
        return lambda obj, db: (
            value if isinstance(value := obj.__dict__[attname], datetime) and value.tzinfo is not None
            else save(value, db)
        )  # fmt: skip
    plain = _PLAIN.get(field.get_internal_type())
    if plain is None:
        return lambda obj, db: save(obj.__dict__[attname], db)
    if plain is Decimal:  # djmoney's MoneyField keeps a Decimal, or a Money once read
        return lambda obj, db: (
            value if (value := obj.__dict__[attname]) is None or (type(value) is Decimal and value.is_finite())
            else save(value, db)
        )  # fmt: skip
    return lambda obj, db: (
        value if (value := obj.__dict__[attname]) is None or type(value) is plain
        else save(value, db)
    )  # fmt: skip
