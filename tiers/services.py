"""Tier services. (Filled out by the tiers issue; the foundation calls these hooks.)"""

from datetime import datetime

from loyalty.models import Member
from loyalty.services.ledger import Book


def tier_spend_changed(book: Book, *, member: Member, at: datetime) -> None:
    """An order, refund or cancel changed the member's qualifying spend: upgrade or drop the tier."""
