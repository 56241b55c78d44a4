"""Proving the ledger: every check is one set-based SQL query, so it runs over millions of entries.

- every transaction's entries sum to zero per asset;
- every account's cached balance equals the sum of its entries, its version their count, and each
  entry's balance_after the running sum up to it;
- every lot's remaining equals its amount plus its movements;
- each member's pending balance equals their pending lots, available (when not overdrawn) their
  available lots, held the points of their open holds; buckets other than available never negative.
"""

from dataclasses import dataclass

from django.db import connection

CHECKS = {
    "transaction_not_zero": """
        SELECT e.transaction_id, a.asset_id, SUM(e.amount)
        FROM loyalty_entry e JOIN loyalty_account a ON a.id = e.account_id
        GROUP BY e.transaction_id, a.asset_id HAVING SUM(e.amount) <> 0""",
    "transaction_without_entries": """
        SELECT t.id, t.kind, 0 FROM loyalty_transaction t
        WHERE NOT EXISTS (SELECT 1 FROM loyalty_entry e WHERE e.transaction_id = t.id)""",
    "balance_not_sum_of_entries": """
        SELECT a.id, a.balance, COALESCE(s.total, 0) FROM loyalty_account a
        LEFT JOIN (SELECT account_id, SUM(amount) AS total, COUNT(*) AS n FROM loyalty_entry GROUP BY account_id) s
          ON s.account_id = a.id
        WHERE a.balance <> COALESCE(s.total, 0) OR a.version <> COALESCE(s.n, 0)""",
    "balance_after_broken": """
        SELECT account_id, id, balance_after FROM (
          SELECT account_id, id, balance_after,
                 SUM(amount) OVER (PARTITION BY account_id ORDER BY id ROWS UNBOUNDED PRECEDING) AS running
          FROM loyalty_entry) x
        WHERE balance_after <> running""",
    "lot_remaining_not_movements": """
        SELECT l.id, l.remaining, l.amount + COALESCE(m.total, 0) FROM loyalty_lot l
        LEFT JOIN (SELECT lot_id, SUM(amount) AS total FROM loyalty_lotmovement GROUP BY lot_id) m
          ON m.lot_id = l.id
        WHERE l.remaining <> l.amount + COALESCE(m.total, 0)""",
    "bucket_not_lots": """
        SELECT a.id, a.balance, COALESCE(l.total, 0) FROM loyalty_account a
        LEFT JOIN (SELECT member_id, asset_id, state, SUM(remaining) AS total FROM loyalty_lot
                   WHERE state IN ('pending', 'available') GROUP BY member_id, asset_id, state) l
          ON l.member_id = a.member_id AND l.asset_id = a.asset_id AND l.state = a.kind
        WHERE a.member_id IS NOT NULL AND a.kind IN ('pending', 'available')
          AND CASE WHEN a.balance < 0 THEN 0 ELSE a.balance END <> COALESCE(l.total, 0)""",
    "held_not_open_holds": """
        SELECT a.id, a.balance, COALESCE(r.total, 0) FROM loyalty_account a
        LEFT JOIN (SELECT member_id, asset_id, SUM(points) AS total FROM loyalty_redemption
                   WHERE status = 'held' GROUP BY member_id, asset_id) r
          ON r.member_id = a.member_id AND r.asset_id = a.asset_id
        WHERE a.member_id IS NOT NULL AND a.kind = 'held' AND a.balance <> COALESCE(r.total, 0)""",
    "bucket_negative": """
        SELECT a.id, a.kind, a.balance FROM loyalty_account a
        WHERE a.member_id IS NOT NULL AND a.kind <> 'available' AND a.balance < 0""",
}


@dataclass(frozen=True)
class LedgerProblem:
    check: str
    row: tuple

    def __str__(self):
        return f"{self.check}: {self.row}"


def ledger_problems(*, limit: int = 50) -> list[LedgerProblem]:
    """Every way the books disagree with themselves (empty when they verify)."""
    problems = []
    with connection.cursor() as cursor:
        for name, sql in CHECKS.items():
            cursor.execute(f"{sql} LIMIT {int(limit)}")
            problems += [LedgerProblem(name, tuple(row)) for row in cursor.fetchall()]
    return problems


def account_names(account_ids) -> dict[int, str]:
    from loyalty.models import Account

    return {a.pk: str(a) for a in Account.objects.filter(pk__in=account_ids).select_related("member", "asset")}
