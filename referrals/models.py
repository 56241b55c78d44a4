from django.db import models

from loyalty.models import Member, Program


class ReferralCode(models.Model):
    """A member's share code. One active code per member; a regenerated or erased member's old code
    is retired and never valid again (and never reissued: codes are unique for ever)."""

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="+")
    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="referral_codes")
    code = models.CharField(max_length=16)
    created_at = models.DateTimeField()
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["program", "code"], name="referral_code_unique"),
            models.UniqueConstraint(
                fields=["member"], condition=models.Q(retired_at__isnull=True), name="one_active_code_per_member"
            ),
        ]

    def __str__(self):
        return self.code
