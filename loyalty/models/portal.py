from django.conf import settings
from django.db import models


class PortalSession(models.Model):
    """A member's signed-in portal session, recorded at sign-in so that erasing the member (or a
    staff action) can end every one of them, whatever session backend is configured."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    session_key = models.CharField(max_length=40, unique=True)
    created_at = models.DateTimeField()

    def __str__(self):
        return f"{self.user_id}: {self.session_key[:6]}…"
