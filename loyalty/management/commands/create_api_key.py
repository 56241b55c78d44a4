from django.core.management.base import BaseCommand, CommandError

from loyalty.models import ALL_SCOPES, DEFAULT_SCOPES, Program
from loyalty.services.access import api_key_create


class Command(BaseCommand):
    help = "Create an API key for a program and print it (it is shown only once)."

    def add_arguments(self, parser):
        parser.add_argument("--program", required=True)
        parser.add_argument("--name", required=True)
        parser.add_argument(
            "--scopes",
            nargs="*",
            default=None,
            help=f"Default: {' '.join(DEFAULT_SCOPES)} (add `privacy` to export and erase members)",
        )

    def handle(self, *args, program, name, scopes, **options):
        found = Program.objects.filter(code=program).first()
        if found is None:
            raise CommandError(f"No program {program!r}")
        unknown = set(scopes or []) - set(ALL_SCOPES)
        if unknown:
            raise CommandError(f"Unknown scope(s) {', '.join(sorted(unknown))}; known: {' '.join(ALL_SCOPES)}")
        _, raw = api_key_create(program=found, name=name, scopes=scopes or DEFAULT_SCOPES)
        self.stdout.write(raw)
