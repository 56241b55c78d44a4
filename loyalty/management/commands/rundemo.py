import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from loyalty.models import Member, MemberStatus, Program
from loyalty.portal.services import portal_user_ensure
from loyalty.services.access import api_key_create

SNAPSHOT_DAYS = 90


class Command(BaseCommand):
    help = (
        "Migrate; on the first run seed the demo program with synthetic members and two years of history "
        "and back-fill 90 days of metrics snapshots; create an admin and an API key; serve on 127.0.0.1:8000."
    )

    def add_arguments(self, parser):
        parser.add_argument("--members", type=int, default=50, help="Synthetic members on first run")
        parser.add_argument("--days", type=int, default=730, help="Days of history on first run (default 730)")
        parser.add_argument("--addrport", default="127.0.0.1:8000")
        parser.add_argument("--no-serve", action="store_true", help="Set everything up, do not start the server")

    def handle(self, *args, members, days, addrport, no_serve, **options):
        call_command("migrate", interactive=False, verbosity=0)
        first_run = not Program.objects.filter(code="demo").exists()
        call_command("seed_demo", members=members if first_run else 0, days=days, stdout=self.stdout)
        if first_run:  # the dashboard's time series draws at once; the nightly job keeps it up
            call_command("metrics_snapshot", program="demo", days=SNAPSHOT_DAYS, stdout=self.stdout)
        User = get_user_model()
        password = os.environ.get("DEMO_ADMIN_PASSWORD") or secrets.token_urlsafe(9)
        admin, _ = User.objects.get_or_create(username="admin", defaults={"email": "admin@example.com"})
        admin.is_staff = admin.is_superuser = True
        admin.set_password(password)
        admin.save()
        program = Program.objects.get(code="demo")
        _, key = api_key_create(program=program, name="demo checkout")
        host = addrport if ":" in addrport else f"127.0.0.1:{addrport}"
        portal = self.demo_member_login(program)
        self.stdout.write(
            self.style.SUCCESS(
                f"\n  Admin:    http://{host}/admin/   login: admin   password: {password}"
                f"\n  Portal:   http://{host}/portal/   {portal}"
                f"\n  API docs: http://{host}/api/docs/"
                f"\n  API key:  {key}"
                f"\n  Try:      curl -H 'Authorization: Bearer {key}' http://{host}/api/v1/members/demo-000001/\n"
            )
        )
        if not no_serve:
            call_command("runserver", addrport, use_reloader=False)

    def demo_member_login(self, program: Program) -> str:
        """A password for the first demo member, so a person can try the portal."""
        member = (
            Member.objects.filter(program=program, status=MemberStatus.ACTIVE, user__is_staff=False)
            .order_by("external_id")
            .first()
            or Member.objects.filter(program=program, status=MemberStatus.ACTIVE, user__isnull=True)
            .order_by("external_id")
            .first()
        )
        if member is None:
            return "(no demo member: run with --members N)"
        user = portal_user_ensure(member=member)
        password = os.environ.get("DEMO_MEMBER_PASSWORD") or secrets.token_urlsafe(9)
        user.set_password(password)
        user.save()
        return f"login: {member.email}   password: {password}"
