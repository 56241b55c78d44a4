"""Reading tiers. (Progress is filled out by the tiers issue.)"""

from datetime import datetime

from loyalty.models import Member


def tier_progress(*, member: Member, now: datetime) -> dict | None:
    return None
