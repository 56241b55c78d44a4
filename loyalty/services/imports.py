"""Importing history: orders (CSV or JSON lines) and opening balances, streamed in chunks.

Readers yield one record at a time and the importer works a chunk at a time, so memory stays flat
however long the file. Every chunk commits on its own: a run stopped half way is resumed by running
it again (orders and balances already in are answered `exists` and skipped). Rejected records are
written to a report with their line number and why."""

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import InvalidOperation
from pathlib import Path

from django.db import reset_queries, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from loyalty import errors
from loyalty.models import AccountKind, Member, OpeningBalance, Program, TransactionKind
from loyalty.services.ingestion import orders_place_bulk
from loyalty.services.ledger import Book
from loyalty.services.locks import members_lock
from loyalty.services.points import points_credit

CHUNK = 1000
ORDER_COLUMNS = [
    "order_id",
    "member",
    "currency",
    "placed_at",
    "sku",
    "category",
    "quantity",
    "unit_price",
    "discount",
    "gift_card",
    "shipping",
    "tax",
    "payment_fingerprint",
    "device_id",
]
BALANCE_COLUMNS = ["id", "member", "points", "expires_at", "note"]


@dataclass
class Outcome:
    line: int
    external_id: str
    status: str  # created | exists | rejected
    code: str = ""
    detail: str = ""


# --- readers --------------------------------------------------------------------------------------
def order_records(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, order body shaped like POST /api/v1/orders/) from .jsonl or .csv."""
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if line.strip():
                    try:
                        yield number, json.loads(line)
                    except json.JSONDecodeError as exc:
                        yield number, {"__error__": f"not JSON: {exc.msg}"}
        return
    with path.open(encoding="utf-8", newline="") as handle:
        rows = csv.DictReader(handle)
        current, first_line = None, 0
        for number, row in enumerate(rows, 2):  # one row per order line, an order's rows together
            if current is not None and row.get("order_id") != current["external_id"]:
                yield first_line, current
                current = None
            if current is None:
                first_line = number
                current = {
                    "external_id": row.get("order_id", ""),
                    "member": row.get("member", ""),
                    "currency": row.get("currency", ""),
                    "lines": [],
                    **{
                        k: row[k]
                        for k in ("placed_at", "shipping", "tax", "payment_fingerprint", "device_id")
                        if row.get(k)
                    },
                }
            line = {k: row[k] for k in ("sku", "category", "quantity", "unit_price", "discount") if row.get(k)}
            if "quantity" in line:
                line["quantity"] = _int(line["quantity"])
            line["gift_card"] = (row.get("gift_card") or "").strip().lower() in ("1", "true", "yes")
            current["lines"].append(line)
        if current is not None:
            yield first_line, current


def _int(value: str):
    try:
        return int(value)
    except ValueError:
        return value  # the serializer says what is wrong with it


def balance_records(path: Path) -> Iterator[tuple[int, dict]]:
    with path.open(encoding="utf-8", newline="") as handle:
        yield from enumerate(csv.DictReader(handle), 2)


def chunks(records: Iterable, size: int = CHUNK) -> Iterator[list]:
    chunk = []
    for record in records:
        chunk.append(record)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# --- importers --------------------------------------------------------------------------------------
def orders_import_chunk(*, program: Program, records: list[tuple[int, dict]], now: datetime) -> list[Outcome]:
    from loyalty.api.errors import flatten_errors
    from loyalty.api.orders import orders_validate

    outcomes, drafts, lines, bodies = [], [], [], []
    for number, body in records:
        if not isinstance(body, dict):
            outcomes.append(Outcome(number, "", "rejected", "malformed", "not a JSON object"))
        elif "__error__" in body:
            outcomes.append(Outcome(number, "", "rejected", "malformed", body["__error__"]))
        else:
            bodies.append((number, body))
    for (number, body), (draft, exc) in zip(bodies, orders_validate(b for _, b in bodies), strict=True):
        external_id = str(body.get("external_id", ""))
        if isinstance(exc, errors.LoyaltyError):
            outcomes.append(Outcome(number, external_id, "rejected", exc.code, exc.message))
        elif exc is not None:  # DRF ValidationError
            detail = "; ".join(f"{e['field']}: {e['message']}" for e in flatten_errors(exc.detail))
            outcomes.append(Outcome(number, external_id, "rejected", "validation_error", detail))
        else:
            drafts.append(draft)
            lines.append(number)
    for number, result in zip(lines, orders_place_bulk(program=program, drafts=drafts, now=now), strict=True):
        error = result.error
        outcomes.append(
            Outcome(
                number, result.external_id, result.status, error.code if error else "", error.message if error else ""
            )
        )
    reset_queries()  # DEBUG keeps every query: never let a long import grow with it
    return sorted(outcomes, key=lambda o: o.line)


def balances_import_chunk(*, program: Program, records: list[tuple[int, dict]], now: datetime) -> list[Outcome]:
    """Opening balances: credited from the `opening` system account, available at once."""
    outcomes, good = [], []
    for number, row in records:
        external_id = (row.get("id") or "").strip()
        try:
            points = int(row.get("points", ""))
            if points <= 0 or not external_id or not row.get("member"):
                raise ValueError
            expires_at = parse_datetime(row["expires_at"]) if row.get("expires_at") else None
            if row.get("expires_at") and (expires_at is None or timezone.is_naive(expires_at)):
                raise InvalidOperation
        except ValueError:
            outcomes.append(
                Outcome(
                    number,
                    external_id,
                    "rejected",
                    "validation_error",
                    "id, member and points (a whole number above zero) are required",
                )
            )
            continue
        except InvalidOperation:
            outcomes.append(
                Outcome(
                    number, external_id, "rejected", "validation_error", "expires_at must be ISO 8601 with an offset"
                )
            )
            continue
        good.append((number, external_id, row["member"], points, expires_at, row.get("note", "")))
    done = set(
        OpeningBalance.objects.filter(program=program, external_id__in=[g[1] for g in good]).values_list(
            "external_id", flat=True
        )
    )
    with transaction.atomic():
        ids = Member.objects.filter(program=program, external_id__in={g[2] for g in good}).values_list("pk", flat=True)
        members = {m.external_id: m for m in members_lock(member_ids=ids)}
        book = Book(program=program, now=now)
        book.preload(list(members.values()))
        made, seen = [], set()
        for number, external_id, member_id, points, expires_at, note in good:
            member = members.get(member_id)
            if external_id in done or external_id in seen:
                outcomes.append(Outcome(number, external_id, "exists"))
            elif member is None:
                outcomes.append(
                    Outcome(number, external_id, "rejected", "member_not_found", f"No member {member_id!r}")
                )
            else:
                seen.add(external_id)
                member.program = program
                lot = points_credit(
                    book,
                    member=member,
                    asset=program.primary_asset,
                    amount=points,
                    kind=TransactionKind.IMPORT,
                    source=AccountKind.OPENING,
                    expires_at=expires_at,
                    reference=f"Opening balance {external_id}",
                    memo=note[:500],
                )
                made.append(
                    OpeningBalance(
                        program=program,
                        external_id=external_id,
                        member=member,
                        points=points,
                        transaction=lot.transaction,
                        imported_at=now,
                    )
                )
                outcomes.append(Outcome(number, external_id, "created"))
        book.commit()
        OpeningBalance.objects.bulk_create(made)
    reset_queries()
    return sorted(outcomes, key=lambda o: o.line)


def run_import(*, program: Program, records: Iterable, importer, report: Path, progress=None) -> dict:
    """Stream records through `importer` a chunk at a time; rejected ones go to `report` (CSV)."""
    counts = {"created": 0, "exists": 0, "rejected": 0}
    with report.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["line", "external_id", "code", "detail"])
        for chunk in chunks(records):
            for outcome in importer(program=program, records=chunk, now=timezone.now()):
                counts[outcome.status] += 1
                if outcome.status == "rejected":
                    writer.writerow([outcome.line, outcome.external_id, outcome.code, outcome.detail])
            if progress is not None:
                progress(len(chunk))
    return counts
