"""The rewards catalog: a claim checks tier, per-member limit and stock, spends the points and
issues a unique coupon code, all in one transaction."""

import secrets
from datetime import datetime

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from loyalty import errors
from loyalty.dates import period_start
from loyalty.models import (
    AccountKind,
    Member,
    MemberStatus,
    Program,
    Reward,
    RewardClaim,
    RewardKind,
    TransactionKind,
)
from loyalty.services.ledger import Book
from loyalty.services.locks import member_lock
from loyalty.services.points import activity_record, available_spend
from loyalty.services.redemptions import member_settle

CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: read aloud at a till without mistakes


def coupon_code_generate(prefix: str = "") -> str:
    body = "".join(secrets.choice(CODE_ALPHABET) for _ in range(10))
    return f"{prefix}-{body}" if prefix else body


def reward_eligibility_error(*, reward: Reward, member: Member) -> errors.LoyaltyError | None:
    """Why the member may not claim the reward (tier, stock, activity), or None. Limits and points
    are checked at claim time, inside the member's lock."""
    if not reward.active:
        return errors.RewardUnavailable(f"{reward.name} is not available")
    if reward.kind == RewardKind.BIRTHDAY_GIFT:
        return errors.RewardUnavailable(f"{reward.name} is taken through the birthday choice, in the birthday month")
    if reward.min_tier_id and (member.tier is None or member.tier.rank < reward.min_tier.rank):
        return errors.TierRequired(f"{reward.name} is for {reward.min_tier.name} members and above")
    if reward.stock is not None and reward.stock <= 0:
        return errors.OutOfStock(f"{reward.name} is out of stock")
    return None


def reward_claim(
    *,
    program: Program,
    reward_id: int,
    member_external_id: str,
    now: datetime | None = None,
    kind: str = TransactionKind.CLAIM,
) -> RewardClaim:
    now = now or timezone.now()
    with transaction.atomic():
        member = member_lock(program=program, external_id=member_external_id)
        if member.status == MemberStatus.CLOSED:
            raise errors.MemberClosed()
        reward = Reward.objects.select_related("min_tier", "asset").filter(program=program, pk=reward_id).first()
        if reward is None:
            raise errors.RewardNotFound(f"No reward {reward_id}")
        if problem := reward_eligibility_error(reward=reward, member=member):
            raise problem
        if reward.limit_per_member is not None:
            claims = RewardClaim.objects.filter(reward=reward, member=member)
            start = period_start(now, reward.limit_period, program.timezone)
            if start is not None:
                claims = claims.filter(claimed_at__gte=start)
            if claims.count() >= reward.limit_per_member:
                raise errors.ClaimLimitReached(
                    f"{reward.name}: at most {reward.limit_per_member} {reward.get_limit_period_display().lower()}"
                )
        if reward.stock is not None and not Reward.objects.filter(pk=reward.pk, stock__gt=0).update(
            stock=F("stock") - 1
        ):
            raise errors.OutOfStock(f"{reward.name} is out of stock")
        book = Book(program=program, now=now)
        claim = RewardClaim(
            reward=reward,
            member=member,
            coupon_code=coupon_code_generate(reward.coupon_prefix),
            points=reward.cost,
            claimed_at=now,
        )
        if reward.cost:
            member_settle(book, member=member, asset=reward.asset)
            posted = available_spend(
                book,
                member=member,
                asset=reward.asset,
                amount=reward.cost,
                target=book.system(reward.asset, AccountKind.REDEEMED, member),
                kind=kind,
                reference=f"Reward: {reward.name}",
            )
            activity_record(book, member=member, at=now)
            book.emit("reward.claimed", member, {"reward": reward.pk, "name": reward.name, "points": reward.cost})
            book.commit()
            claim.transaction = posted.row
        else:
            book.emit("reward.claimed", member, {"reward": reward.pk, "name": reward.name, "points": 0})
            book.commit()
        claim.save()
    return claim
