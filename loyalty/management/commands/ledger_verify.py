from django.core.management.base import BaseCommand, CommandError

from loyalty.selectors.ledger import account_names, ledger_problems

ACCOUNT_CHECKS = {
    "balance_not_sum_of_entries",
    "balance_after_broken",
    "bucket_not_lots",
    "held_not_open_holds",
    "bucket_negative",
}


class Command(BaseCommand):
    help = "Recompute every balance from the entries and check every transaction sums to zero."

    def handle(self, *args, **options):
        problems = ledger_problems()
        if not problems:
            self.stdout.write(
                self.style.SUCCESS(
                    "Ledger verified: every transaction sums to zero, every balance "
                    "equals its entries, every lot its movements."
                )
            )
            return
        names = account_names([p.row[0] for p in problems if p.check in ACCOUNT_CHECKS])
        for p in problems:
            label = f" account {names.get(p.row[0], p.row[0])}" if p.check in ACCOUNT_CHECKS else ""
            self.stderr.write(f"{p.check}:{label} {p.row}")
        raise CommandError(f"Ledger NOT verified: {len(problems)} problem(s)")
