"""Referral codes. (Attribution, qualification and fraud checks: the referrals issue.)"""

import secrets
from datetime import datetime

from loyalty.models import Member
from referrals.models import ReferralCode

# Crockford-style alphabet: no 0/O, 1/I/L, U; codes are shown in upper case and read case-insensitively.
ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"
LENGTH = 8  # 30^8 = 6.6e11 codes: guessing one among a million members takes ~650k tries (rate limited)


def referral_code_normalize(code: str) -> str:
    return code.strip().upper().replace("-", "").replace(" ", "")


def referral_code_issue(*, member: Member, now: datetime) -> ReferralCode:
    """Give the member a new code (retiring the active one, if any)."""
    ReferralCode.objects.filter(member=member, retired_at__isnull=True).update(retired_at=now)
    while True:
        code = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
        if not ReferralCode.objects.filter(program_id=member.program_id, code=code).exists():
            return ReferralCode.objects.create(program_id=member.program_id, member=member, code=code, created_at=now)
