"""Enrollment and profile changes."""

from datetime import date, datetime

from django.db import IntegrityError, transaction
from django.db.models.functions import Lower
from django.utils import timezone

from loyalty import errors
from loyalty.models import Account, AccountKind, Member, Program
from loyalty.services.ledger import Book
from referrals.services import referral_attach, referral_code_issue

PROFILE_FIELDS = ("email", "first_name", "last_name", "birth_date", "locale", "country", "marketing_opt_in")


def member_enroll(
    *,
    program: Program,
    external_id: str,
    email: str,
    first_name: str = "",
    last_name: str = "",
    birth_date: date | None = None,
    locale: str = "",
    country: str = "",
    marketing_opt_in: bool = False,
    referral_code: str | None = None,
    referral_context: dict | None = None,
    invite: bool = True,
    now: datetime | None = None,
) -> Member:
    """Enroll a member. With `invite` (the default) the member gets a portal account and, once the
    enrollment has committed, an e-mail with a link to set their password."""
    now = now or timezone.now()
    try:
        with transaction.atomic():
            _refuse_duplicates(program=program, external_id=external_id, email=email)
            entry_tier = program.tiers.order_by("rank").first()
            member = Member.objects.create(
                program=program,
                external_id=external_id,
                email=email,
                first_name=first_name,
                last_name=last_name,
                birth_date=birth_date,
                locale=locale,
                country=country,
                marketing_opt_in=marketing_opt_in,
                tier=entry_tier,
                tier_floor=entry_tier,
                enrolled_at=now,
            )
            Account.objects.bulk_create(
                Account(program=program, asset=asset, member=member, kind=kind)
                for asset in program.assets.all()
                for kind in (AccountKind.PENDING, AccountKind.AVAILABLE, AccountKind.HELD)
            )
            referral_code_issue(member=member, now=now)
            book = Book(program=program, now=now)
            if referral_code:
                referral_attach(book, referee=member, code=referral_code, context=referral_context or {})
            book.emit("member.enrolled", member, {"external_id": external_id})
            book.commit()
            if invite:
                from loyalty.portal.services import portal_invitation_schedule

                portal_invitation_schedule(member=member)
            return member
    except IntegrityError:
        _refuse_duplicates(program=program, external_id=external_id, email=email)
        raise


def _refuse_duplicates(*, program: Program, external_id: str, email: str, exclude: int | None = None) -> None:
    others = Member.objects.filter(program=program).exclude(pk=exclude)
    if others.filter(external_id=external_id).exists():
        raise errors.MemberExists(f"Member {external_id} is already enrolled", field="external_id")
    if others.annotate(email_ci=Lower("email")).filter(email_ci=email.lower()).exists():
        raise errors.MemberExists("Another member is enrolled with this email", field="email")


@transaction.atomic
def member_update(*, member: Member, **changes) -> Member:
    """Change profile fields (not the external id, tier or balances)."""
    unknown = set(changes) - set(PROFILE_FIELDS)
    if unknown:
        raise errors.InvalidInput(f"Cannot change {', '.join(sorted(unknown))}")
    if "email" in changes and changes["email"].lower() != member.email.lower():
        _refuse_duplicates(
            program=member.program, external_id=member.external_id, email=changes["email"], exclude=member.pk
        )
    for name, value in changes.items():
        setattr(member, name, value)
    member.save(update_fields=list(changes))
    return member
