from django.core.management.base import BaseCommand, CommandError

from loyalty.models import Program
from loyalty.services.metrics import metrics_snapshots_backfill


class Command(BaseCommand):
    help = (
        "Store the retention metrics snapshots of the last --days days (the dashboard's time series); "
        "the nightly job keeps them up to date afterwards. What exists is not computed again."
    )

    def add_arguments(self, parser):
        parser.add_argument("--program", help="Program code (default: every program)")
        parser.add_argument("--days", type=int, default=30, help="How many daily snapshots back (default 30)")

    def handle(self, *args, program=None, days=30, **options):
        if days < 1 or days > 3660:
            raise CommandError("--days is 1 to 3660")
        programs = Program.objects.filter(code=program) if program else Program.objects.all()
        if program and not programs.exists():
            raise CommandError(f"No program {program!r}")
        for p in programs:
            done = metrics_snapshots_backfill(program=p, days=days)
            self.stdout.write(f"{p.code}: {done} snapshot(s) computed")
