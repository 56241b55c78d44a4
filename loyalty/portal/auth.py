"""Members sign in with their e-mail (any case) and password, within the portal's program."""

from django.contrib.auth.backends import ModelBackend
from django.db.models.functions import Lower

from loyalty.models import Member, MemberStatus
from loyalty.portal.selectors import portal_program


class MemberEmailBackend(ModelBackend):
    def authenticate(self, request, email=None, password=None, **kwargs):
        if not email or password is None:
            return None
        program = portal_program()
        member = (
            Member.objects.annotate(email_ci=Lower("email"))
            .filter(program=program, email_ci=email.strip().lower(), status=MemberStatus.ACTIVE)
            .select_related("user")
            .first()
            if program
            else None
        )
        user = member.user if member is not None else None
        if user is None or user.is_staff:
            # The same work as a real check, so a wrong e-mail takes as long as a wrong password.
            self._dummy.set_password(password)
            return None
        if user.check_password(password) and self.user_can_authenticate(user):
            return user
        return None

    @property
    def _dummy(self):
        from django.contrib.auth import get_user_model

        return get_user_model()()
