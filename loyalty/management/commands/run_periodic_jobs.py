from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from loyalty.jobs import jobs


class Command(BaseCommand):
    help = "Run every periodic job once, as of now or of --as-of (ISO 8601)."

    def add_arguments(self, parser):
        parser.add_argument("--as-of", help="e.g. 2027-01-01T00:05:00+00:00 (a date alone means its midnight UTC)")
        parser.add_argument("--only", nargs="*", help="Run only these jobs")

    def handle(self, *args, as_of=None, only=None, **options):
        now = timezone.now()
        if as_of:
            try:
                now = datetime.fromisoformat(as_of)
            except ValueError:
                raise CommandError(f"--as-of {as_of!r} is not an ISO 8601 date or time")
            if timezone.is_naive(now):
                now = now.replace(tzinfo=UTC)
        registry = jobs()
        unknown = set(only or []) - set(registry)
        if unknown:
            raise CommandError(f"Unknown job(s): {', '.join(sorted(unknown))}. Known: {', '.join(registry)}")
        for name, job in registry.items():
            if only and name not in only:
                continue
            count = job.fn(now)
            self.stdout.write(f"{name:<22} {count:>8}  {job.description}")
