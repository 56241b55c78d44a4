import random
from datetime import timedelta
from decimal import Decimal

from django.core.management.base import BaseCommand
from django.utils import timezone
from tqdm import tqdm

from loyalty.demo import CODE, FX_TO_USD, demo_program_seed
from loyalty.models import Member
from loyalty.services.earning import LineDraft, OrderDraft
from loyalty.services.members import member_enroll
from loyalty.services.orders import order_place
from loyalty.services.settlement import points_mature

CATEGORIES = ["skincare", "makeup", "fragrance", "hair", "tools"]
FIRST = ["Anna", "Ben", "Chloe", "Dev", "Emma", "Felix", "Grace", "Hugo", "Iris", "Jonas", "Kasia", "Liam", "Maya"]
LAST = ["Kowalska", "Smith", "Nguyen", "Garcia", "Muller", "Rossi", "Tanaka", "Brown", "Nowak", "Dubois"]


class Command(BaseCommand):
    help = "Create the demo program (code `demo`) and, with --members, synthetic members with order history."

    def add_arguments(self, parser):
        parser.add_argument("--members", type=int, default=0)
        parser.add_argument("--days", type=int, default=365, help="Spread the order history over this many days")
        parser.add_argument("--seed", type=int, default=7)

    def handle(self, *args, members, days, seed, **options):
        now = timezone.now()
        program = demo_program_seed(year=now.year)
        self.stdout.write(f"Program {program.code!r}: {program.name}")
        if not members:
            return
        rng = random.Random(seed)
        start = Member.objects.filter(program=program).count()
        currencies = list(FX_TO_USD)
        for i in tqdm(range(start, start + members), desc="members", unit="member"):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            enrolled = now - timedelta(days=rng.randint(1, max(days, 1)))
            member = member_enroll(
                program=program,
                external_id=f"demo-{i:06d}",
                email=f"member{i}@example.com",
                first_name=first,
                last_name=last,
                invite=False,  # synthetic members get no e-mail (rundemo gives one a portal password)
                now=enrolled,
            )
            # a member's orders come in time order, as a shop would send them
            times = sorted(enrolled + (now - enrolled) * rng.random() for _ in range(rng.choice([0, 1, 1, 2, 3, 5, 8])))
            for n, placed in enumerate(times):
                currency = rng.choices(currencies, weights=[60, 20, 8, 5, 5, 2])[0]
                lines = tuple(
                    LineDraft(
                        sku=f"SKU-{rng.randint(1, 400)}",
                        category=rng.choice(CATEGORIES),
                        quantity=rng.randint(1, 3),
                        unit_price=_price(rng, currency),
                    )
                    for _ in range(rng.randint(1, 4))
                )
                order_place(
                    program=program,
                    now=placed,
                    draft=OrderDraft(
                        external_id=f"{member.external_id}-{n}",
                        member=member.external_id,
                        currency=currency,
                        lines=lines,
                        placed_at=placed,
                    ),
                )
        matured = points_mature(now)
        self.stdout.write(f"{members} members added; points matured for {matured} members. Program: {CODE}")


def _price(rng: random.Random, currency: str) -> Decimal:
    usd = Decimal(rng.randint(800, 9000)) / 100
    if currency == "JPY":
        return (usd / FX_TO_USD["JPY"]).quantize(Decimal("1"))
    return (usd / FX_TO_USD[currency]).quantize(Decimal("0.01"))
