import time
from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from tqdm import tqdm

from loyalty.demo import CODE, demo_program_seed
from loyalty.demo.history import demo_history_seed
from loyalty.demo.selectors import demo_census


class Command(BaseCommand):
    help = (
        "Create the demo program (code `demo`) and, with --members, synthetic members with --days of "
        "history played through the services: orders, refunds, points at checkout, rewards, referrals, "
        "reviews, surveys, win-back, and the periodic jobs as time advances."
    )

    def add_arguments(self, parser):
        parser.add_argument("--members", type=int, default=0, help="Synthetic members to add (numbered after any)")
        parser.add_argument("--days", type=int, default=730, help="Days of history, up to now (default 730)")
        parser.add_argument("--seed", type=int, default=7, help="The same seed gives the same history")
        parser.add_argument("--until", help="End the history then instead of now (ISO 8601; a date is midnight UTC)")

    def handle(self, *args, members, days, seed, until=None, **options):
        if members < 0 or not 1 <= days <= 3660:
            raise CommandError("--members is 0 or more; --days is 1 to 3660")
        now = timezone.now()
        if until:
            try:
                now = datetime.fromisoformat(until)
            except ValueError:
                raise CommandError(f"--until {until!r} is not an ISO 8601 date or time")
            if timezone.is_naive(now):
                now = now.replace(tzinfo=UTC)
        program = demo_program_seed(year=now.year)
        self.stdout.write(f"Program {program.code!r}: {program.name}")
        if not members:
            return
        began = time.perf_counter()
        with tqdm(total=days, desc=f"{members} members, {days} days", unit="day") as bar:
            result = demo_history_seed(
                program=program, members=members, days=days, seed=seed, now=now, progress=bar.update
            )
        census = demo_census(program=program)
        self.stdout.write(
            f"{members} members added, {days} days of history in {time.perf_counter() - began:.1f} s. "
            f"Program {CODE}: " + ", ".join(f"{value} {name.replace('_', ' ')}" for name, value in census.items())
        )
        if result.skipped:
            self.stdout.write(
                "Not possible when their time came (too few points, a limit): "
                + ", ".join(f"{n} {kind}" for kind, n in sorted(result.skipped.items()))
            )
