"""Referrals: codes, attribution at enrollment, fraud checks, qualification and two-sided rewards.

The rule for qualification (a decision, documented in README): the referee's *first order of at
least the minimum* counts (a smaller order before it does not spoil the referral). Both sides are
rewarded once that order has passed the return window, unless it was cancelled or refunded below
the minimum by then (rejected with that reason), or a fraud check or the monthly cap says no.
"""

import secrets
from datetime import datetime

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from loyalty import errors
from loyalty.dates import month_bounds
from loyalty.models import AccountKind, Member, MemberStatus, Order, OrderStatus, Program, TransactionKind
from loyalty.services.audit import audit_record, staff_require
from loyalty.services.ledger import Book
from loyalty.services.locks import members_lock
from loyalty.services.points import points_credit
from referrals.models import Referral, ReferralCode, ReferralPolicy, ReferralStatus, RejectionReason

# No 0/O, 1/I/L, U: codes are shown in upper case and read case-insensitively.
ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"
LENGTH = 8  # 30^8 = 6.6e11 codes: guessing one of a million members takes ~650k tries, rate limited

# Providers that deliver john.smith+anything@ to john.smith@ (and, for Gmail, ignore dots too).
DOTS_IGNORED = {"gmail.com", "googlemail.com"}
PLUS_TAGS_IGNORED = DOTS_IGNORED | {
    "outlook.com",
    "hotmail.com",
    "live.com",
    "msn.com",
    "icloud.com",
    "me.com",
    "mac.com",
    "fastmail.com",
    "fastmail.fm",
    "protonmail.com",
    "proton.me",
    "pm.me",
    "yandex.ru",
    "zoho.com",
}


class InvalidReferralCode(errors.LoyaltyError):
    code, title = "invalid_referral_code", "This referral code is not valid"


class AlreadyReferred(errors.Conflict):
    code, title = "already_referred", "The member already joined with a referral code"


class ReferralNotFound(errors.NotFound):
    code, title = "referral_not_found", "No such referral"


def email_normalize(email: str) -> str:
    """The mailbox an address delivers to: case, and for providers that ignore them, dots and +tags.
    `John.Smith+x@gmail.com` -> `johnsmith@gmail.com`; `john.smith@example.com` stays itself."""
    local, _, domain = email.strip().lower().rpartition("@")
    if domain in PLUS_TAGS_IGNORED:
        local = local.split("+", 1)[0]
    if domain in DOTS_IGNORED:
        local = local.replace(".", "")
        domain = "gmail.com"
    return f"{local}@{domain}"


def referral_code_normalize(code: str) -> str:
    return code.strip().upper().replace("-", "").replace(" ", "")


def referral_policy(program: Program) -> ReferralPolicy:
    if not hasattr(program, "_referral_policy"):
        policy = ReferralPolicy.objects.filter(program=program).first() or ReferralPolicy(program=program, active=False)
        policy.program = program
        program._referral_policy = policy
    return program._referral_policy


def referral_code_find(*, program: Program, code: str) -> ReferralCode | None:
    """The active code (any case, dashes and spaces ignored) of an active member, or None."""
    normalized = referral_code_normalize(code)
    if not normalized or len(normalized) > 16:
        return None
    return (
        ReferralCode.objects.select_related("member")
        .filter(program=program, code=normalized, retired_at__isnull=True, member__status=MemberStatus.ACTIVE)
        .first()
    )


def referral_code_issue(*, member: Member, now: datetime) -> ReferralCode:
    """Give the member a new code, retiring the active one (a retired code is never valid again)."""
    ReferralCode.objects.filter(member=member, retired_at__isnull=True).update(retired_at=now)
    while True:
        code = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
        if not ReferralCode.objects.filter(program_id=member.program_id, code=code).exists():
            return ReferralCode.objects.create(program_id=member.program_id, member=member, code=code, created_at=now)


# --- attribution ------------------------------------------------------------------------------------
def referral_attach(book: Book, *, referee: Member, code: str, context: dict) -> Referral:
    """Record that `referee` joined with `code` (inside the enrollment's transaction). Checks that can
    be made now (same e-mail, same payment method or device, closed referrer) reject at once."""
    program = referee.program
    found = referral_code_find(program=program, code=code) if referral_policy(program).active else None
    if found is None or found.member_id == referee.pk:
        raise InvalidReferralCode(f"{code!r} is not a valid referral code")
    if Referral.objects.filter(referee=referee).exists():
        raise AlreadyReferred()
    referral = Referral(
        program=program,
        referrer=found.member,
        referee=referee,
        code=found.code,
        created_at=book.now,
        payment_fingerprint=context.get("payment_fingerprint", "")[:128],
        device_id=context.get("device_id", "")[:128],
        ip_address=context.get("ip") or None,
    )
    reason = _fraud_reason(referral, fingerprint=referral.payment_fingerprint, device=referral.device_id)
    if reason is None and referee.orders.exists():
        reason = RejectionReason.EXISTING_CUSTOMER
    if reason:
        _reject(book, referral, reason)
    referral.save()
    return referral


def _fraud_reason(referral: Referral, *, fingerprint: str, device: str) -> str | None:
    referrer, referee = referral.referrer, referral.referee
    if referrer.status != MemberStatus.ACTIVE:
        return RejectionReason.REFERRER_CLOSED
    if email_normalize(referrer.email) == email_normalize(referee.email):
        return RejectionReason.SELF_EMAIL
    if fingerprint and referrer.orders.filter(payment_fingerprint=fingerprint).exists():
        return RejectionReason.SELF_PAYMENT
    if device and referrer.orders.filter(device_id=device).exists():
        return RejectionReason.SELF_DEVICE
    return None


def _reject(book: Book, referral: Referral, reason: str, *, note: str = "", staff_user=None) -> None:
    referral.status, referral.reason, referral.note = ReferralStatus.REJECTED, reason, note[:300]
    referral.decided_at, referral.decided_by = book.now, staff_user
    book.emit("referral.rejected", referral.referrer, {"referee": referral.referee.external_id, "reason": reason})


# --- qualification ----------------------------------------------------------------------------------
def first_qualifying_order(referral: Referral, policy: ReferralPolicy) -> Order | None:
    return (
        Order.objects.filter(member_id=referral.referee_id, qualifying_base__gte=policy.min_order)
        .order_by("placed_at", "id")
        .first()
    )


def referral_decide(*, referral_id: int, now: datetime) -> Referral:
    """Decide a pending referral whose first qualifying order has matured: reward both sides once,
    or reject it with its reason. Locks both members, then re-reads the referral: a second job
    running at the same time finds it decided and does nothing."""
    with transaction.atomic():
        ids = Referral.objects.filter(pk=referral_id).values_list("referrer_id", "referee_id").first()
        if ids is None:
            raise ReferralNotFound()
        members = {m.pk: m for m in members_lock(member_ids=ids)}
        referral = Referral.objects.get(pk=referral_id)
        referral.referrer, referral.referee = members[ids[0]], members[ids[1]]
        if referral.status != ReferralStatus.PENDING:
            return referral
        program = referral.referee.program
        policy = referral_policy(program)
        order = first_qualifying_order(referral, policy)
        if order is None or order.available_at > now:
            return referral
        book = Book(program=program, now=now)
        referral.order = order
        reason = None
        if order.status == OrderStatus.CANCELLED:
            reason = RejectionReason.FIRST_ORDER_CANCELLED
        elif order.spend_base.amount < policy.min_order:
            reason = RejectionReason.FIRST_ORDER_REFUNDED
        elif not referral.staff_approved:
            reason = _fraud_reason(referral, fingerprint=order.payment_fingerprint, device=order.device_id)
            if reason is None and _was_customer(referral, order):
                reason = RejectionReason.EXISTING_CUSTOMER
            if reason is None and _rewarded_this_month(referral, now) >= policy.monthly_cap:
                reason = RejectionReason.OVER_CAP
        if reason:
            _reject(book, referral, reason)
        else:
            _reward(book, referral, policy)
        book.commit()  # first: the referral points at the transactions it creates
        referral.save()
    return referral


def _was_customer(referral: Referral, order: Order) -> bool:
    """Orders before the referral, or the first order's payment method already used by another member."""
    referee = referral.referee
    if referee.orders.filter(placed_at__lt=referral.created_at).exists():
        return True
    return (
        bool(order.payment_fingerprint)
        and Order.objects.filter(
            program_id=referee.program_id, payment_fingerprint=order.payment_fingerprint, placed_at__lt=order.placed_at
        )
        .exclude(member_id__in=[referee.pk, referral.referrer_id])
        .exists()
    )


def _rewarded_this_month(referral: Referral, now: datetime) -> int:
    start, end = month_bounds(now, referral.referrer.program.timezone)
    return Referral.objects.filter(
        referrer_id=referral.referrer_id, status=ReferralStatus.QUALIFIED, decided_at__gte=start, decided_at__lt=end
    ).count()


def _reward(book: Book, referral: Referral, policy: ReferralPolicy) -> None:
    asset = book.program.primary_asset
    for member, points, field, other in (
        (referral.referrer, policy.referrer_points, "referrer", referral.referee),
        (referral.referee, policy.referee_points, "referee", referral.referrer),
    ):
        if not points:
            continue
        lot = points_credit(
            book,
            member=member,
            asset=asset,
            amount=points,
            kind=TransactionKind.REFERRAL,
            source=AccountKind.REFERRAL_REWARDS,
            reference=f"Referral: {other.display_name}",
        )
        setattr(referral, f"{field}_points", points)
        setattr(referral, f"{field}_transaction", lot.transaction)
    referral.status, referral.reason, referral.decided_at = ReferralStatus.QUALIFIED, "", book.now
    book.emit(
        "referral.qualified",
        referral.referrer,
        {
            "referee": referral.referee.external_id,
            "referrer_points": referral.referrer_points,
            "referee_points": referral.referee_points,
            "order": referral.order.external_id,
        },
    )


def referrals_qualify(now: datetime) -> int:
    """The job: every pending referral whose referee has a first qualifying order past its window."""
    due = (
        Referral.objects.filter(status=ReferralStatus.PENDING, program__referral_policy__active=True)
        .filter(
            referee__orders__available_at__lte=now,
            referee__orders__qualifying_base__gte=F("program__referral_policy__min_order"),
        )
        .order_by("pk")
        .values_list("pk", flat=True)
        .distinct()
    )
    decided = 0
    for referral_id in due.iterator(chunk_size=500):
        if referral_decide(referral_id=referral_id, now=now).status != ReferralStatus.PENDING:
            decided += 1
    return decided


# --- staff decisions --------------------------------------------------------------------------------
def _staff_decision(referral: Referral, now: datetime | None, staff_user=None):
    staff_require(staff_user, "referrals.decide_referral", "decide referrals")
    now = now or timezone.now()
    members = {m.pk: m for m in members_lock(member_ids=[referral.referrer_id, referral.referee_id])}
    referral = Referral.objects.get(pk=referral.pk)
    referral.referrer, referral.referee = members[referral.referrer_id], members[referral.referee_id]
    return referral, Book(program=referral.referrer.program, now=now)


def referral_hold(*, referral: Referral, staff_user, note: str, now: datetime | None = None) -> Referral:
    """Park a pending referral for review: the job leaves it alone until staff decide."""
    with transaction.atomic():
        referral, book = _staff_decision(referral, now, staff_user)
        if referral.status != ReferralStatus.PENDING:
            raise errors.LoyaltyError(f"Only a pending referral can be held (this one is {referral.status})")
        referral.status, referral.note, referral.decided_by = ReferralStatus.HELD, note[:300], staff_user
        referral.save(update_fields=["status", "note", "decided_by"])
        _audit(staff_user, "referral.hold", referral, ReferralStatus.PENDING, note, book.now)
    return referral


def referral_reject(*, referral: Referral, staff_user, note: str, now: datetime | None = None) -> Referral:
    if not note.strip():
        raise errors.InvalidInput("A decision needs a reason", errors=[{"field": "note", "message": "required"}])
    with transaction.atomic():
        referral, book = _staff_decision(referral, now, staff_user)
        if referral.status not in (ReferralStatus.PENDING, ReferralStatus.HELD):
            raise errors.LoyaltyError(f"A {referral.status} referral cannot be rejected")
        status_before = referral.status
        _reject(book, referral, RejectionReason.STAFF, note=note, staff_user=staff_user)
        referral.save()
        _audit(staff_user, "referral.reject", referral, status_before, note, book.now)
        book.commit()
    return referral


def referral_approve(*, referral: Referral, staff_user, note: str, now: datetime | None = None) -> Referral:
    """Clear a held or rejected referral: fraud checks and the cap no longer apply to it; it is
    rewarded as soon as its first qualifying order has matured (at once if it has)."""
    now = now or timezone.now()
    if not note.strip():
        raise errors.InvalidInput("A decision needs a reason", errors=[{"field": "note", "message": "required"}])
    with transaction.atomic():
        referral, _ = _staff_decision(referral, now, staff_user)
        if referral.status not in (ReferralStatus.HELD, ReferralStatus.REJECTED):
            raise errors.LoyaltyError(f"A {referral.status} referral needs no approval")
        status_before = referral.status
        referral.status, referral.reason, referral.staff_approved = ReferralStatus.PENDING, "", True
        referral.note, referral.decided_by = note[:300], staff_user
        referral.save()
        _audit(staff_user, "referral.approve", referral, status_before, note, now)
    return referral_decide(referral_id=referral.pk, now=now)


def _audit(staff_user, action: str, referral: Referral, before: str, note: str, now: datetime) -> None:
    audit_record(
        actor=staff_user,
        action=action,
        obj=referral,
        program=referral.program,
        reason=note,
        before={"status": before},
        after={"status": referral.status},
        now=now,
    )


def referral_code_regenerate(*, member: Member, now: datetime | None = None) -> ReferralCode:
    with transaction.atomic():
        return referral_code_issue(member=member, now=now or timezone.now())


def referral_chain(member: Member) -> dict:
    """Who referred the member, and whom they referred (one level each way)."""
    upstream = Referral.objects.filter(referee=member).select_related("referrer").first()
    return {
        "referred_by": upstream,
        "referred": list(Referral.objects.filter(referrer=member).select_related("referee").order_by("-created_at")),
    }
