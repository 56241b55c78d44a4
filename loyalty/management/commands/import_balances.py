from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from loyalty.models import Program
from loyalty.services.imports import BALANCE_COLUMNS, balance_records, balances_import_chunk, run_import


class Command(BaseCommand):
    help = (
        f"Import opening balances from CSV (columns: {', '.join(BALANCE_COLUMNS)}; id is unique per row and "
        "makes re-runs credit nothing twice; expires_at is optional, ISO 8601 with an offset)."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--program", default="demo")
        parser.add_argument("--report", type=Path, help="Rejected rows (CSV). Default: <file>.rejects.csv")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, file: Path, program: str, report: Path | None, no_progress: bool, **options):
        found = Program.objects.filter(code=program).first()
        if found is None:
            raise CommandError(f"No program {program!r}")
        if not file.exists():
            raise CommandError(f"No file {file}")
        report = report or file.with_name(file.name + ".rejects.csv")
        with tqdm(total=None, unit=" rows", disable=no_progress, desc=file.name) as bar:
            counts = run_import(
                program=found,
                records=balance_records(file),
                importer=balances_import_chunk,
                report=report,
                progress=bar.update,
            )
        self.stdout.write(
            f"created {counts['created']}, already there {counts['exists']}, "
            f"rejected {counts['rejected']} (see {report})"
        )
