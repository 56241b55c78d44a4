"""The member portal's writes: portal accounts, invitation and password e-mails, sessions.

A member's portal account is a Django user linked by `Member.user`. Its username is a non-personal
`member-<id>`; the e-mail lives only on the member (members sign in with it, within the portal's
program). A password is set through a signed one-time link (Django's password reset tokens): the
invitation sent after enrollment, or a reset the member asks for."""

from datetime import datetime
from importlib import import_module

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.contrib.sessions.backends.base import SessionBase
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from loyalty import errors
from loyalty.models import Member, MemberStatus, PortalSession
from loyalty.services.locks import members_lock
from loyalty.services.members import member_update


def portal_user_ensure(*, member: Member) -> "settings.AUTH_USER_MODEL":
    """The member's portal account, created (without a usable password) when missing."""
    if member.user_id:
        return member.user
    with transaction.atomic():
        [locked] = members_lock(member_ids=[member.pk])
        if locked.user_id is None:
            user = get_user_model()(username=f"member-{locked.pk}", is_active=True)
            user.set_unusable_password()
            user.save()
            locked.user = user
            locked.save(update_fields=["user"])
        member.user = locked.user
    return member.user


def password_link(*, member: Member, base_url: str | None = None) -> str:
    """An absolute one-time link to set the password (valid PASSWORD_RESET_TIMEOUT seconds)."""
    user = portal_user_ensure(member=member)
    path = reverse(
        "portal:password_set",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": default_token_generator.make_token(user),
        },
    )
    return (base_url or settings.PORTAL_BASE_URL).rstrip("/") + path


def _language(member: Member) -> str:
    codes = [code for code, _ in settings.LANGUAGES]
    wanted = (member.locale or "").replace("_", "-").lower()
    for candidate in (wanted, wanted.split("-")[0]):
        if candidate in codes:
            return candidate
    return settings.LANGUAGE_CODE


def password_email_send(*, member: Member, kind: str, base_url: str | None = None) -> None:
    """Send the invitation (`invite`) or the reset (`reset`) e-mail, in the member's language."""
    link = password_link(member=member, base_url=base_url)
    with translation.override(_language(member)):
        context = {"member": member, "program": member.program, "link": link, "kind": kind}
        subject = render_to_string("portal/email/password_subject.txt", context).strip()
        body = render_to_string("portal/email/password_body.txt", context)
    send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [member.email])


def portal_invitation_send(*, member_id: int) -> bool:
    """The task behind the enrollment invitation: nothing for a member closed or already signed up."""
    member = Member.objects.select_related("program", "user").filter(pk=member_id).first()
    if member is None or member.status != MemberStatus.ACTIVE:
        return False
    if member.user_id and member.user.has_usable_password():
        return False
    password_email_send(member=member, kind="invite")
    return True


def portal_invitation_schedule(*, member: Member) -> None:
    """Called inside enrollment: the account now, the e-mail once the enrollment has committed."""
    portal_user_ensure(member=member)

    def send():
        from loyalty.tasks import portal_invitation_task

        portal_invitation_task.delay(member.pk)

    transaction.on_commit(send)


# --- sessions ------------------------------------------------------------------------------------
def _store(session_key: str) -> SessionBase:
    return import_module(settings.SESSION_ENGINE).SessionStore(session_key)


def portal_session_record(*, user, session_key: str, now: datetime | None = None) -> None:
    PortalSession.objects.update_or_create(
        session_key=session_key, defaults={"user": user, "created_at": now or timezone.now()}
    )


def portal_sessions_end(*, user) -> int:
    """End every recorded session of the user (any session backend); -> how many."""
    keys = list(PortalSession.objects.filter(user=user).values_list("session_key", flat=True))
    for key in keys:
        _store(key).delete()
    PortalSession.objects.filter(user=user).delete()
    return len(keys)


def portal_session_on_login(sender, request, user, **kwargs) -> None:
    """`user_logged_in` handler: remember a member's session (staff sessions are not recorded)."""
    session = getattr(request, "session", None)
    if session is None or user.is_staff or not Member.objects.filter(user=user).exists():
        return
    if session.session_key is None:
        session.save()
    portal_session_record(user=user, session_key=session.session_key)


# --- profile --------------------------------------------------------------------------------------
class BirthDateLocked(errors.LoyaltyError):
    code, title = "birth_date_locked", "The birth date is set; only staff can change it"


def member_profile_update(*, member: Member, **changes) -> Member:
    """What a member may change about themselves: names, language, e-mail consent, and the birth
    date only while it is empty (it decides the birthday reward: once set, only staff change it)."""
    allowed = {"first_name", "last_name", "birth_date", "locale", "marketing_opt_in"}
    unknown = set(changes) - allowed
    if unknown:
        raise errors.InvalidInput(f"Cannot change {', '.join(sorted(unknown))}")
    if "birth_date" in changes and member.birth_date is not None and changes["birth_date"] != member.birth_date:
        raise BirthDateLocked()
    changed = {k: v for k, v in changes.items() if getattr(member, k) != v}
    if changed:
        member_update(member=member, **changed)
    return member
